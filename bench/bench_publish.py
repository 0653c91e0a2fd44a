"""Publish benchmark: `digest publish` of a generated Jekyll site of 1,000 posts over 500 weeks, next to
Debian's `hugo` building the same posts in the same run.

  full rebuild    `digest publish` with no output and no state folder, `output.feed_issues = 500`: the
                  archive page of each of the 500 issues, the archive index and the Atom, RSS and JSON
                  feeds listing all 500 (by default digest keeps only the last 10 issues there, so 500 is
                  what "all 500 issues" takes)
  hugo            `hugo --quiet` on the same 1,000 posts (content/posts/, the same front matter and
                  Markdown) with trivial layouts written here, no theme, Hugo's defaults otherwise (its
                  home, section, tag and category pages and their RSS), into an empty public/
  weekly publish  one new post in the next week after a full rebuild's output, then `digest publish`: the
                  new issue's page, the index and the feeds; its wall time minus the start-up
                  (`digest --help`, measured in the same run); also with the default feed_issues = 10

    python bench/bench_publish.py                 # 1,000 posts over 500 weeks, median of 3
    python bench/bench_publish.py --quick         # 100 posts over 50 weeks, 1 repetition
Exit status: 0 when the figures were measured (targets met or not), 2 when the setup failed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path

import _run
import _sites
from _run import Report, SetupError, fmt, log, median, paired, verdict

TARGET_VS_HUGO = 0.5  # full rebuild / hugo
TARGET_WEEKLY_S = 0.3  # the weekly publish after start-up, seconds
PER_WEEK = 2
LAST_MONDAY = datetime(2024, 6, 3, tzinfo=_sites.TZ)
ISSUE_DIR = re.compile(r"\d{4}-W\d{2}")


def env(site: Path, now: datetime) -> dict[str, str]:
    # The state folder defaults to $XDG_STATE_HOME/digest/<name>: kept beside the site, so it can be wiped.
    return _run.user_env({"DIGEST_NOW": now.isoformat(), "XDG_STATE_HOME": str(site.parent / "xdg")})


def after(monday: datetime) -> datetime:
    """Monday 09:00 of the week after `monday`'s: `digest publish` (default: last week) publishes that week."""
    return monday + timedelta(days=7, hours=9)


def clean(site: Path) -> None:
    """No output and no state folder (where a cache would live)."""
    for folder in (site / "_digest", site / ".digest", site.parent / "xdg"):
        shutil.rmtree(folder, ignore_errors=True)


class Sites:
    def __init__(self, root: Path, weeks: int) -> None:
        self.weeks = weeks
        self.digest, self.hugo = root / "jekyll", root / "hugo"
        posts = _sites.make_posts(weeks, PER_WEEK, LAST_MONDAY)
        _sites.write_jekyll(self.digest, posts)
        _sites.write_hugo(self.hugo, posts)
        # one config per feed_issues value, each in the site folder (a config's folder is its site)
        self.configs = {n: self.digest / f"digest-{n}.toml" for n in (weeks, 10)}
        for n, path in self.configs.items():
            path.write_text(f"[output]\nfeed_issues = {n}\n", encoding="utf-8")
        self.new_post = _sites.make_posts(1, 1, LAST_MONDAY + timedelta(days=7), seed=11)[0]
        self.hugo_bin = _run.tool("hugo", "apt-get install -y hugo")

    def publish(self, issues: int, now: datetime) -> _run.Ran:
        cmd = _run.digest_command() + ["--config", str(self.configs[issues]), "publish"]
        ran = _run.run(cmd, env=env(self.digest, now)).check("digest publish")
        return ran

    def full(self, issues: int) -> float:
        clean(self.digest)
        ran = self.publish(issues, after(LAST_MONDAY))
        written = sum(1 for p in (self.digest / "_digest").iterdir() if ISSUE_DIR.fullmatch(p.name))
        if written != min(issues, self.weeks):
            raise SetupError(f"digest publish wrote {written} issue pages, not {min(issues, self.weeks)}: {ran.stdout}")
        return ran.wall

    def weekly(self, issues: int) -> float:
        """After a full rebuild's output: one new post next week, then the weekly `digest publish`."""
        path = _sites.add_post(self.digest, self.new_post)
        try:
            ran = self.publish(issues, after(LAST_MONDAY + timedelta(days=7)))
        finally:
            path.unlink()
        if not (self.digest / "_digest" / _sites.week_label(self.new_post.published_at)).is_dir():
            raise SetupError(f"the weekly publish did not write the new issue: {ran.stdout}")
        return ran.wall

    def renderer_cpu(self) -> float:
        """CPU seconds, in a new process, of reading every post with python-frontmatter and rendering its
        body with markdown-it-py as digest configures it: what any publish of these posts runs, whatever
        else it does."""
        ran = _run.run([sys.executable, __file__, "--render-child", str(self.digest / "_posts")])
        return float(ran.check("the renderer alone").stdout.split()[-1])

    def hugo_build(self) -> float:
        for name in ("public", "resources"):
            shutil.rmtree(self.hugo / name, ignore_errors=True)
        ran = _run.run([self.hugo_bin, "--quiet", "-s", str(self.hugo), "-d", "public"]).check("hugo")
        pages = sum(1 for _ in (self.hugo / "public").glob("20*/*/*/*/index.html"))
        if pages != self.weeks * PER_WEEK:
            raise SetupError(f"hugo wrote {pages} post pages, not {self.weeks * PER_WEEK}: {ran.stderr[-500:]}")
        return ran.wall


def render_child(folder: Path) -> None:
    import frontmatter

    from digest.collector.markdown import render

    started = time.process_time()
    bodies = [frontmatter.loads(path.read_text("utf-8")).content for path in sorted(folder.glob("*.md"))]
    for body in bodies:
        render(body, "https://example.org/post/")
    print(f"{time.process_time() - started:.4f}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--render-child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--weeks", type=int, default=500, help=f"weeks of posts, {PER_WEEK} a week (500)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions; medians are reported (3)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 50 weeks, 1 repetition")
    args = parser.parse_args(argv)
    if args.render_child:
        render_child(args.render_child)
        return 0
    if args.quick:
        args.weeks, args.repeat = 50, 1
    report = Report(
        f"bench_publish: {args.weeks * PER_WEEK:,} posts over {args.weeks} weeks, {args.repeat} repetition(s)",
        loads=[_run.load1()],
    )
    return _run.finish(report, lambda: measure(args, report))


def measure(args: argparse.Namespace, report: Report) -> None:
    _run.warm_bytecode()
    times: dict[str, list[float]] = {}

    def add(name: str, seconds: float) -> None:
        times.setdefault(name, []).append(seconds)

    with tempfile.TemporaryDirectory(prefix="digest-bench-publish-") as tmp:
        sites = Sites(Path(tmp), args.weeks)
        n = args.weeks

        def digest_all() -> None:
            add("full", sites.full(n))
            add("weekly", sites.weekly(n))
            log(f"  digest publish: full rebuild {times['full'][-1]:.2f} s, weekly {times['weekly'][-1]:.2f} s")

        def digest_default() -> None:
            sites.full(10)
            add("weekly 10", sites.weekly(10))
            log(f"  digest publish, feed_issues = 10: weekly {times['weekly 10'][-1]:.2f} s")

        def hugo() -> None:
            add("hugo", sites.hugo_build())
            log(f"  hugo: {times['hugo'][-1]:.2f} s")
            add("renderer", sites.renderer_cpu())  # next to hugo, under the same load
            log(f"  markdown-it-py alone: {times['renderer'][-1]:.2f} s CPU")

        def startup() -> None:
            for _ in range(3):
                add("help", _run.run(_run.digest_command() + ["--help"]).check("digest --help").wall)
            log(f"  digest --help: {times['help'][-1]:.3f} s")

        steps: list[Callable[[], None]] = [digest_all, hugo, digest_default, startup]
        for rep in range(args.repeat):
            log(f"repetition {rep + 1}/{args.repeat}")
            shift = rep % len(steps)
            for step in steps[shift:] + steps[:shift]:
                step()
    rows(report, times, args)


def rows(report: Report, times: dict[str, list[float]], args: argparse.Namespace) -> None:
    m = {name: median(values) for name, values in times.items()}
    n = args.weeks
    report.notes.append(
        f"site: {n * PER_WEEK:,} posts in _posts/, {PER_WEEK} a week; digest with output.feed_issues = {n} (every "
        f"issue in the archive and the feeds); hugo {hugo_version()} on the same posts; wall times, medians"
    )
    ratio = paired(times["full"], times["hugo"])
    report.add(
        f"digest publish, full rebuild of {n} issues (s)",
        fmt(m["full"], "", 2),
        f"hugo {fmt(m['hugo'], '', 2)}",
        fmt(ratio, "×", 2),
        f"≤ {TARGET_VS_HUGO}×",
        verdict(None if ratio is None else ratio <= TARGET_VS_HUGO),
    )
    # Start-up, then reading and rendering every post spread perfectly over every CPU: no publish that
    # renders the posts with markdown-it-py takes less, before it writes a page or a feed.
    cpus = os.cpu_count() or 1
    floors = [r / cpus + (m["help"] or 0.0) for r in times["renderer"]]
    floor = paired(floors, times["hugo"])
    report.add(
        f"  start-up, reading and markdown-it-py alone over {cpus} CPUs (s)",
        fmt(median(floors), "", 2),
        f"hugo {fmt(m['hugo'], '', 2)}",
        fmt(floor, "×", 2),
        "floor",
        "out of reach" if floor is not None and floor > TARGET_VS_HUGO else "",
    )
    help_s = m["help"]
    for name, label, target in (
        ("weekly", f"weekly digest publish after start-up, feed_issues = {n} (s)", True),
        ("weekly 10", "weekly digest publish after start-up, feed_issues = 10 (s)", False),
    ):
        whole = m[name]
        net = None if whole is None or help_s is None else whole - help_s
        report.add(
            label,
            fmt(net, "", 2),
            f"whole {fmt(whole, '', 2)}",
            "",
            f"≤ {TARGET_WEEKLY_S} s" if target else "",
            verdict(None if net is None else net <= TARGET_WEEKLY_S) if target else "",
        )
    report.add("start-up: digest --help (s)", fmt(help_s, "", 3))


def hugo_version() -> str:
    try:
        ran = _run.run([_run.tool("hugo", ""), "version"])
    except SetupError:
        return "?"
    found = re.search(r"v(\d+\.\d+\.\d+)", ran.stdout)
    return found.group(1) if found else "?"


if __name__ == "__main__":
    sys.exit(main())
