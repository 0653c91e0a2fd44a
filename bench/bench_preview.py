"""Preview benchmark: `digest preview` of a 20-entry week on a generated 5,000-post Jekyll site, as the author
runs it (a new process each time, wall time including start-up), next to rss2email making one 50-item digest
in the same run.

  digest, first run     `digest preview` with no output and no state folder (nothing cached anywhere)
  digest, second run    the same command again, a new process (whatever the first run left may help)
  old week              `digest preview --week <a week 80 % of the way back>` (200 weeks on 5,000 posts),
                        first and second run
  rss2email             `r2e run` of a 50-item Atom feed served on 127.0.0.1, digest = True, delivered to a
                        sendmail stand-in that writes the message to a file; rss2email is installed with pip
                        into a side environment in the temporary folder (kept between runs)
  start-up              `digest --help` next to `python -c pass`

and (--parts languages) on a site of 5,000 posts in 10 languages, `digest preview --week last` in the site's
language, with `--lang ko`, and once a ledger exists whose first issue was 12 weeks earlier, each against
collecting and rendering every post of that site in the same run (what a preview would cost if it rendered
everything).

    python bench/bench_preview.py                 # both parts, 5,000 posts each, median of 3
    python bench/bench_preview.py --quick         # 500 posts, 1 repetition
    python bench/bench_preview.py --parts rss2email
Exit status: 0 when the figures were measured (targets met or not), 2 when the setup failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path

import _run
import _sites
from _run import Report, SetupError, fmt, log, median, paired, verdict

TARGET_SECOND = 1.0  # second run / rss2email
TARGET_FIRST = 2.0  # first run / rss2email
TARGET_HELP = 3.0  # digest --help / python -c pass
TARGET_OLD = 1.25  # an old week / the current week: "about the same"
PER_WEEK = 20
FEED_ITEMS = 50
LAST_MONDAY = datetime(2024, 6, 3, tzinfo=_sites.TZ)
NOW = LAST_MONDAY + timedelta(days=6, hours=21)  # Sunday 21:00: every post of the last week is out
PARTS = ("rss2email", "languages")


def write_site(root: Path, posts: int) -> tuple[str, str]:
    """`posts` posts, PER_WEEK a week; returns the current week's label and that of a week 80 % back."""
    weeks = max(1, posts // PER_WEEK)
    _sites.write_jekyll(root, _sites.make_posts(weeks, PER_WEEK, LAST_MONDAY))
    old_monday = LAST_MONDAY - timedelta(days=7 * (weeks * 4 // 5))
    return _sites.week_label(LAST_MONDAY), _sites.week_label(old_monday)


def env(site: Path) -> dict[str, str]:
    # The state folder defaults to $XDG_STATE_HOME/digest/<name>: kept beside the site, so it can be wiped.
    return _run.user_env({"DIGEST_NOW": NOW.isoformat(), "XDG_STATE_HOME": str(site.parent / "xdg")})


def clean(site: Path) -> None:
    """Nothing left from an earlier run: the output folder and the state folder (where a cache would live)."""
    for folder in (site / "_digest", site / ".digest", site.parent / "xdg"):
        shutil.rmtree(folder, ignore_errors=True)


def preview(site: Path, week: str | None) -> float:
    cmd = _run.digest_command() + ["--site", str(site), "preview"] + (["--week", week] if week else [])
    return _run.run(cmd, env=env(site)).check("digest preview").wall


def check_weeks(site: Path, weeks: dict[str, str | None]) -> None:
    for what, week in weeks.items():
        cmd = _run.digest_command() + ["--site", str(site), "preview", "--json"] + (["--week", week] if week else [])
        summary = json.loads(_run.run(cmd, env=env(site)).check("digest preview --json").stdout)
        if len(summary["entries"]) != PER_WEEK or summary["warnings"]:
            raise SetupError(f"{what} week {summary['week']}: {len(summary['entries'])} entries, {summary['warnings']}")
        log(f"{what} week {summary['week']}: {PER_WEEK} entries, {summary['sizes'].get('email.html', 0):,} B HTML")
    clean(site)


# -- rss2email -----------------------------------------------------------------------------------------------


def rss2email_env(folder: Path, fresh: bool) -> Path:
    """A side environment with rss2email from PyPI; reused while it works."""
    r2e = folder / "bin" / "r2e"
    if fresh:
        shutil.rmtree(folder, ignore_errors=True)
    if r2e.exists() and _run.run([str(r2e), "--version"]).returncode == 0:
        return r2e
    log(f"installing rss2email into {folder}")
    shutil.rmtree(folder, ignore_errors=True)
    _run.run([sys.executable, "-m", "venv", str(folder)]).check("python -m venv")
    pip = [str(folder / "bin" / "python"), "-m", "pip", "install", "-q", "rss2email"]
    _run.run(pip, timeout=600).check("pip install rss2email")
    return r2e


@contextlib.contextmanager
def http_server(folder: Path) -> Iterator[int]:
    """`python -m http.server` on a free port of 127.0.0.1, serving `folder`."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cmd = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(folder), str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SetupError("the feed's HTTP server did not start")
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


class Rss2email:
    """One feed of FEED_ITEMS items, configured to send one digest of them to a sendmail stand-in."""

    def __init__(self, r2e: Path, work: Path, port: int) -> None:
        self.r2e, self.work = r2e, work
        self.config, self.data, self.mbox = work / "r2e.cfg", work / "r2e.json", work / "sent.mbox"
        self.pristine = work / "r2e.json.new"
        sendmail = work / "sendmail"
        sendmail.write_text(f'#!/bin/sh\ncat >> "{self.mbox}"\n', encoding="utf-8")
        sendmail.chmod(0o755)
        self.cmd(["new", "reader@example.com"])
        text = self.config.read_text("utf-8")
        lines = []
        for line in text.splitlines():
            if line.startswith("digest ="):
                line = "digest = True"
            elif line.startswith("email-protocol ="):
                line = "email-protocol = sendmail"
            elif line.startswith("sendmail ="):
                line = f"sendmail = {sendmail}"
            lines.append(line)
        self.config.write_text("\n".join(lines) + "\n", "utf-8")
        self.cmd(["add", "bench", f"http://127.0.0.1:{port}/feed.xml"])
        shutil.copy(self.data, self.pristine)

    def cmd(self, args: list[str]) -> _run.Ran:
        full = [str(self.r2e), "-c", str(self.config), "-d", str(self.data), *args]
        return _run.run(full).check(f"r2e {args[0]}")

    def run(self) -> float:
        """`r2e run` as on a first fetch of the feed: every item is new; one digest message goes out."""
        shutil.copy(self.pristine, self.data)
        self.mbox.unlink(missing_ok=True)
        ran = self.cmd(["run"])
        parts = self.mbox.read_text("utf-8", errors="replace").count("Content-Type: message/rfc822")
        if parts != FEED_ITEMS:
            raise SetupError(f"rss2email sent a digest of {parts} items, not {FEED_ITEMS}: {ran.stderr[-500:]}")
        return ran.wall


# -- languages: one week's preview on a multilingual site, against rendering every post ------------------

ML_NOW = datetime(2026, 6, 1, 9, 0, tzinfo=_sites.TZ)  # a Monday
LANGUAGES = ("en", "ko", "ja", "de", "fr", "es", "pt", "it", "nl", "zh-Hant")
_ML_WORDS = ("kettle", "lantern", "orchard", "ledger", "pebble", "harbor", "window", "meadow", "compass", "cedar")


def _ml_post(rng: random.Random, i: int, day: date, lang: str) -> str:
    words = " ".join(rng.choice(_ML_WORDS) for _ in range(40))
    lines = ["---", f'title: "Note {i} ({lang})"', f"date: {day.isoformat()} {rng.randint(6, 22):02d}:00:00 +0900"]
    lines += [f"lang: {lang}", "tags: [notes]", "---", "", words, "", "## First part", ""]
    lines += [f"- {rng.choice(_ML_WORDS)} {rng.choice(_ML_WORDS)}" for _ in range(5)]
    lines += ["", "```python", f"print({i})", "```", "", "## Second part", "", words, ""]
    return "\n".join(lines)


def write_multilingual(root: Path, count: int, languages: int) -> None:
    """`count` posts, each language writing in turn (two posts per language a week), before ML_NOW."""
    rng = random.Random(11)
    posts = root / "posts"
    posts.mkdir(parents=True)
    (root / "digest.toml").write_text(
        '[site]\ntitle = "Bench Notes"\nurl = "https://notes.example.com/"\ntimezone = "Asia/Seoul"\n'
        'language = "en"\n[state]\ndir = "state"\n[subscribers]\nfile = "subscribers.yaml"\n',
        encoding="utf-8",
    )
    (root / "subscribers.yaml").write_text("subscribers:\n  - email: reader@example.com\n", encoding="utf-8")
    per_week = max(1, languages * 2)
    first = ML_NOW.date() - timedelta(weeks=count // per_week + 1)
    for i in range(count):
        day = first + timedelta(days=(i * 7) // per_week)
        lang = LANGUAGES[i % languages]
        (posts / f"{day.isoformat()}-note-{i}.md").write_text(_ml_post(rng, i, day, lang), encoding="utf-8")


def ml_digest(root: Path, *args: str, now: datetime = ML_NOW) -> float:
    cmd = _run.digest_command() + [*args, "--site", str(root)]
    xdg = str(root / "xdg")
    env = _run.user_env({"DIGEST_NOW": now.isoformat(), "XDG_STATE_HOME": xdg})
    return _run.run(cmd, env=env).check(f"digest {args[0]}", ok=(0, 3)).wall


def render_all(root: Path) -> float:
    """Every post collected and rendered, in a fresh interpreter (start-up and imports included)."""
    code = (
        "import datetime; from pathlib import Path; from digest.config import load_settings; "
        "from digest.collector import collect; "
        f"s = load_settings(site=Path({str(root)!r}), env={{}}); "
        f"print(len(collect(s.site, datetime.datetime.fromisoformat({ML_NOW.isoformat()!r})).entries))"
    )
    return _run.run([sys.executable, "-c", code], env=_run.user_env()).check("rendering every post").wall


def languages_part(args: argparse.Namespace, report: Report) -> None:
    languages = max(1, min(args.languages, len(LANGUAGES)))
    steps = {
        "site's language": ("preview", "--week", "last", "--json"),
        "--lang ko": ("preview", "--week", "last", "--lang", "ko", "--json"),
        "every post": (),
    }
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="digest-bench-languages-") as tmp:
        root = Path(tmp)
        write_multilingual(root, args.posts, languages)
        for rep in range(args.repeat):
            log(f"languages: repetition {rep + 1}/{args.repeat}")
            order = list(steps.items())
            order = order[rep % len(order) :] + order[: rep % len(order)]
            for name, command in order:
                took = ml_digest(root, *command) if command else render_all(root)
                times.setdefault(name, []).append(took)
                log(f"  {name}: {took:.2f} s")
        # a ledger whose first issue was 12 weeks ago: the late arrivals since then are looked at too
        ml_digest(root, "send", "--week", "last", now=ML_NOW - timedelta(weeks=12))
        for _ in range(args.repeat):
            times.setdefault("ledger", []).append(ml_digest(root, "preview", "--week", "last", "--json"))
            times.setdefault("every post, again", []).append(render_all(root))
    report.notes.append(
        f"languages: {args.posts:,} posts in {languages} languages, `digest preview --week last --json`, each a new"
        " process, against collecting and rendering every post in a new interpreter (the same run)"
    )
    for name, label, against in (
        ("site's language", "languages: preview of one week, the site's language (s)", "every post"),
        ("--lang ko", "languages: preview of one week, --lang ko (s)", "every post"),
        ("ledger", "languages: preview, a ledger 12 weeks old (s)", "every post, again"),
    ):
        ratio = paired(times[name], times[against])
        baseline = f"every post {fmt(median(times[against]), '', 2)}"
        report.add(label, fmt(median(times[name]), "", 2), baseline, fmt(ratio, "×", 2))


# -- main ----------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=5_000, help="posts on the site (5,000)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions; medians are reported (3)")
    parser.add_argument("--languages", type=int, default=10, help="languages of the multilingual site (10)")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}")
    parser.add_argument("--fresh-rss2email", action="store_true", help="reinstall rss2email's side environment")
    parser.add_argument("--quick", action="store_true", help="smoke run: 500 posts, 1 repetition")
    args = parser.parse_args(argv)
    if args.quick:
        args.posts, args.repeat = 500, 1
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    if set(parts) - set(PARTS):
        parser.error(f"unknown part(s) {', '.join(sorted(set(parts) - set(PARTS)))}: use {', '.join(PARTS)}")
    report = Report(f"bench_preview: {args.posts:,} posts, {args.repeat} repetition(s)", loads=[_run.load1()])

    def work() -> None:
        _run.warm_bytecode()
        if "rss2email" in parts:
            measure(args, report)
        if "languages" in parts:
            languages_part(args, report)

    return _run.finish(report, work)


def measure(args: argparse.Namespace, report: Report) -> None:
    r2e = rss2email_env(Path(tempfile.gettempdir()) / "digest-bench-rss2email", args.fresh_rss2email)
    with tempfile.TemporaryDirectory(prefix="digest-bench-preview-") as tmp:
        root = Path(tmp)
        site = root / "site"
        current, old = write_site(site, args.posts)
        check_weeks(site, {"current": None, "old": old})
        served = root / "feed"
        served.mkdir()
        items = _sites.make_posts(3, 17, LAST_MONDAY, seed=9)[-FEED_ITEMS:]
        with http_server(served) as port:
            _sites.write_atom(served / "feed.xml", items, f"http://127.0.0.1:{port}/feed.xml")
            feed = Rss2email(r2e, root, port)
            times: dict[str, list[float]] = {}

            def add(name: str, seconds: float) -> None:
                times.setdefault(name, []).append(seconds)

            def digest_current() -> None:
                clean(site)
                add("first", preview(site, None))
                add("second", preview(site, None))
                log(f"  digest preview {current}: first {times['first'][-1]:.2f} s, second {times['second'][-1]:.2f} s")

            def digest_old() -> None:
                clean(site)
                add("old first", preview(site, old))
                add("old second", preview(site, old))
                first, second = times["old first"][-1], times["old second"][-1]
                log(f"  digest preview {old}: first {first:.2f} s, second {second:.2f} s")

            def rss2email() -> None:
                add("rss2email", feed.run())
                log(f"  rss2email, {FEED_ITEMS}-item digest: {times['rss2email'][-1]:.2f} s")

            def startup() -> None:
                for _ in range(3):
                    add("help", _run.run(_run.digest_command() + ["--help"]).check("digest --help").wall)
                    add("pass", _run.run([sys.executable, "-c", "pass"]).check("python -c pass").wall)
                log(f"  digest --help {times['help'][-1]:.3f} s, python -c pass {times['pass'][-1]:.3f} s")

            steps: list[Callable[[], None]] = [digest_current, rss2email, digest_old, startup]
            for rep in range(args.repeat):
                log(f"repetition {rep + 1}/{args.repeat}")
                shift = rep % len(steps)
                for step in steps[shift:] + steps[:shift]:
                    step()
    rows(report, times, args, current, old)


def rows(report: Report, times: dict[str, list[float]], args: argparse.Namespace, current: str, old: str) -> None:
    m = {name: median(values) for name, values in times.items()}
    r2e = m["rss2email"]
    report.notes.append(
        f"site: {args.posts:,} posts in _posts/ ({PER_WEEK} a week); preview of {current} (this week) and of {old};"
        f" rss2email: one digest of {FEED_ITEMS} items; wall times with start-up, medians"
    )
    for name, label, target in (
        ("second", "digest preview, second run (s)", TARGET_SECOND),
        ("first", "digest preview, first run (s)", TARGET_FIRST),
    ):
        ratio = paired(times[name], times["rss2email"])
        report.add(
            label,
            fmt(m[name], "", 2),
            f"rss2email {fmt(r2e, '', 2)}",
            fmt(ratio, "×", 2),
            f"≤ {target:.1f}×",
            verdict(None if ratio is None else ratio <= target),
        )
    for name, label, base in (
        ("old first", f"digest preview --week {old}, first run (s)", "first"),
        ("old second", f"digest preview --week {old}, second run (s)", "second"),
    ):
        ratio = paired(times[name], times[base])
        report.add(
            label,
            fmt(m[name], "", 2),
            f"this week {fmt(m[base], '', 2)}",
            fmt(ratio, "×", 2),
            f"≤ {TARGET_OLD}× (about the same)",
            verdict(None if ratio is None else ratio <= TARGET_OLD),
        )
    ratio = paired(times["help"], times["pass"])
    report.add(
        "digest --help (s)",
        fmt(m["help"], "", 3),
        f"python -c pass {fmt(m['pass'], '', 3)}",
        fmt(ratio, "×", 1),
        f"≤ {TARGET_HELP:.0f}×",
        verdict(None if ratio is None else ratio <= TARGET_HELP),
    )


if __name__ == "__main__":
    sys.exit(main())
