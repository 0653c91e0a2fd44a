"""Collector benchmark: digest.collector.collect over generated Jekyll sites of invented Markdown posts,
against a baseline in the same run that only reads the same files and parses their front matter with
python-frontmatter. collect() does much more (dates, permalinks, Markdown rendering, links); the ratio says
what that costs per file.

Two sites: one `_posts` folder of 2,000 posts (`--posts`), and a multilingual site of 5,000 posts
(`--multi-posts`) in 10 languages, each language in its own nested folder (`ko/news/_posts/`, …, no
top-level `_posts`), found with zero config. On the multilingual site it times what a weekly run does (the
posts of the last `output.feed_issues` weeks: a one-window collect) and a collect of every post, the
latter also with the collector's helper processes turned off (the serial path, in the same run), each with
its CPU time (the process and its helpers): on a machine whose CPUs are busy elsewhere, the helpers can
only share what is left.

collect() keeps parsed files in memory for long-running processes, so each repetition runs in a fresh
interpreter: the first call there is the cold run `digest build` makes, a second call is a warm one
(the weekly service).

    python bench/bench_collect.py                  # 2,000 + 5,000 posts, median of 3
    python bench/bench_collect.py --quick          # 200 + 500 posts, 1 repetition
    python bench/bench_collect.py --sources explicit   # the multilingual folders listed in digest.toml
Exit status: 0 when measured, 2 when the collector is not available or the setup failed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import frontmatter

from digest.config import load_settings

TZ = ZoneInfo("Asia/Seoul")
NOW_AT = datetime(2024, 6, 3, 9, 0, tzinfo=TZ)

_WORDS = (
    "kettle",
    "lantern",
    "orchard",
    "ledger",
    "pebble",
    "harbor",
    "window",
    "spindle",
    "meadow",
    "compass",
    "thimble",
    "beacon",
    "ferry",
    "quill",
    "cedar",
    "marble",
    "shovel",
    "paddle",
    "mitten",
    "tunnel",
)
_KO = ("오늘은", "작은", "정원", "기록", "주말", "산책", "커피", "자전거", "창문", "노트", "바람", "골목")


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(6, 12))] + [rng.choice(_KO) for _ in range(2)]
    rng.shuffle(words)
    return " ".join(words).capitalize() + "."


def _post(rng: random.Random, i: int, day: date) -> str:
    """A post in the shapes blogs use: YAML front matter, headings, lists, a link, a table, a code block."""
    tags = rng.sample(["notes", "garden", "code", "travel", "tea", "bikes"], 2)
    parts = [
        "---",
        f'title: "Field note {i}: {rng.choice(_WORDS)} and {rng.choice(_KO)}"',
        f"date: {day.isoformat()} {rng.randint(6, 22):02d}:{rng.randint(0, 59):02d}:00 +0900",
        f"tags: [{', '.join(tags)}]",
        "categories: journal",
        "---",
        "",
        " ".join(_sentence(rng) for _ in range(3)),
        "",
        "## What happened",
        "",
    ]
    parts += [f"- {_sentence(rng)}" for _ in range(4)]
    parts += [
        "",
        f"See [the previous note](/{day.year}/{day.month:02d}/field-note-{max(i - 1, 0)}/) for context.",
        "",
        "| item | count |",
        "| ---- | ----- |",
        f"| {rng.choice(_WORDS)} | {rng.randint(1, 99)} |",
        "",
        "```python",
        f"print({rng.randint(1, 1000)})",
        "```",
        "",
        "## 정리",
        "",
        " ".join(_sentence(rng) for _ in range(4)),
        "",
    ]
    return "\n".join(parts)


def write_site(root: Path, count: int) -> list[Path]:
    rng = random.Random(5)
    posts = root / "_posts"
    posts.mkdir(parents=True)
    (root / "_config.yml").write_text(
        'title: "Bench Journal"\nurl: "https://journal.example.com"\ntimezone: Asia/Seoul\n'
        "permalink: /:year/:month/:day/:title/\n",
        encoding="utf-8",
    )
    files = []
    first = NOW_AT.date() - timedelta(days=count // 2)
    for i in range(count):
        day = first + timedelta(days=i // 2)
        path = posts / f"{day.isoformat()}-field-note-{i}.md"
        path.write_text(_post(rng, i, day), encoding="utf-8")
        files.append(path)
    return files


LANGUAGES = ("en", "ko", "ja", "de", "fr", "es", "pt-br", "zh-cn", "ru", "it")
FEED_WEEKS = 10  # output.feed_issues' default: the weeks a weekly run renders
TARGET_ALL = 3.0  # a cold collect of every post against reading the files and their front matter


def write_multilingual_site(root: Path, count: int, explicit: bool) -> list[Path]:
    """``count`` posts: the same post in every language, one post a day, under ``<lang>/news/_posts/``."""
    rng = random.Random(9)
    root.mkdir(parents=True)
    (root / "_config.yml").write_text(
        'title: "Bench Multilingual"\nurl: "https://multi.example.com"\ntimezone: Asia/Seoul\n'
        "permalink: pretty\nlang: en\n",
        encoding="utf-8",
    )
    folders = [f"{lang}/news/_posts" for lang in LANGUAGES]
    for folder in folders:
        (root / folder).mkdir(parents=True)
    if explicit:
        listed = ", ".join(f'"{f}"' for f in folders)
        (root / "digest.toml").write_text(f"[site]\nsource = [{listed}]\n", encoding="utf-8")
    files = []
    for i in range(count):
        day = NOW_AT.date() - timedelta(days=i // len(LANGUAGES) + 1)
        folder = folders[i % len(LANGUAGES)]
        path = root / folder / f"{day.isoformat()}-field-note-{i // len(LANGUAGES)}.md"
        path.write_text(_post(rng, i, day), encoding="utf-8")
        files.append(path)
    return files


def baseline(files: Sequence[Path]) -> int:
    parsed = 0
    for path in files:
        post = frontmatter.loads(path.read_text("utf-8"))
        parsed += bool(post.metadata)
    return parsed


def renderer_cpu_ms(files: Sequence[Path]) -> float:
    """CPU time of the Markdown renderer alone (digest.collector.markdown.render, markdown-it-py as digest
    configures it) on the bodies of ``files``: what any collect of them must spend, whatever else it does.
    Spread over every CPU, divided by the baseline, it is the lowest ratio a collect can reach with this
    renderer."""
    render = importlib.import_module("digest.collector.markdown").render
    bodies = [frontmatter.loads(path.read_text("utf-8")).content for path in files]
    started = time.process_time()
    for body in bodies:
        render(body, "https://example.org/post/")
    return (time.process_time() - started) * 1000


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return (time.perf_counter() - started) * 1000, result


def helpers_off() -> None:
    """The collector without helper processes (digest.collector.workers, where it has them): the serial
    path, for comparison in the same run."""
    try:
        workers = importlib.import_module("digest.collector.workers")
    except ImportError:
        return
    workers.START = sys.maxsize


def children_cpu_ms() -> float:
    """CPU time (user + system) of this process's children that have ended: the collector's helpers."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (usage.ru_utime + usage.ru_stime) * 1000


def multi_child(root: Path, window: bool, collect_first: bool, serial: bool = False) -> None:
    """One cold collect of the multilingual site in a fresh interpreter: prints JSON with milliseconds. A
    collect of every post is followed (or preceded, alternately) by the baseline on the same files."""
    collect = importlib.import_module("digest.collector").collect
    if serial:
        helpers_off()
    result: dict[str, Any] = {}
    result["load_ms"], settings = timed(lambda: load_settings(site=root, env={}))
    site = settings.site
    since_at = NOW_AT - timedelta(weeks=FEED_WEEKS) if window else None
    files = sorted(root.glob("*/news/_posts/*.md"))
    if not window and not collect_first:
        result["baseline_ms"], result["parsed"] = timed(lambda: baseline(files))
    cpu_at, helpers_at = time.process_time(), children_cpu_ms()
    result["cold_ms"], found = timed(lambda: collect(site, NOW_AT, since_at))
    result["cpu_ms"] = (time.process_time() - cpu_at) * 1000
    result["helpers_cpu_ms"] = children_cpu_ms() - helpers_at
    if not window and collect_first:
        result["baseline_ms"], result["parsed"] = timed(lambda: baseline(files))
    if not window and not serial:
        result["render_cpu_ms"] = renderer_cpu_ms(files)
    result["entries"], result["problems"] = len(found.entries), len(found.problems)
    result["folders"] = len(site.source_dirs)
    result["languages"] = len({e.language for e in found.entries if hasattr(e, "language")})
    print(json.dumps(result))


def child(root: Path, collect_first: bool) -> None:
    """One repetition in a fresh interpreter: prints JSON with cold, warm and baseline milliseconds."""
    collect = importlib.import_module("digest.collector").collect
    site = load_settings(site=root, env={}).site
    files = sorted((root / "_posts").glob("*.md"))
    result: dict[str, Any] = {}
    steps = ["collect", "baseline"] if collect_first else ["baseline", "collect"]
    for step in steps:
        if step == "collect":
            result["cold_ms"], found = timed(lambda: collect(site, NOW_AT))
            result["warm_ms"], _ = timed(lambda: collect(site, NOW_AT))
            result["entries"], result["problems"] = len(found.entries), len(found.problems)
        else:
            result["baseline_ms"], result["parsed"] = timed(lambda: baseline(files))
    print(json.dumps(result))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=2_000, help="number of posts (default 2,000)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions; medians are reported (default 3)")
    parser.add_argument("--multi-posts", type=int, default=5_000, help="posts of the multilingual site (5,000)")
    parser.add_argument(
        "--sources",
        choices=("auto", "explicit"),
        default="auto",
        help="multilingual site: folders found with zero config (auto) or listed in digest.toml (explicit)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 200 + 500 posts, 1 repetition")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--multi-child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--window", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serial", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--collect-first", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.collect_first)
        return 0
    if args.multi_child:
        multi_child(args.multi_child, args.window, args.collect_first, args.serial)
        return 0
    if args.quick:
        args.posts, args.multi_posts, args.repeat = 200, 500, 1
    try:
        importlib.import_module("digest.collector").collect  # noqa: B018
    except (ImportError, AttributeError) as exc:
        print(f"setup error: digest.collector is not available ({exc})", file=sys.stderr)
        return 2
    load_before = os.getloadavg()
    runs: list[dict[str, Any]] = []
    multi: dict[str, list[dict[str, Any]]] = {"window": [], "all": [], "serial": []}
    with tempfile.TemporaryDirectory(prefix="digest-bench-collect-") as tmp:
        root = Path(tmp) / "single"
        write_site(root, args.posts)
        multi_root = Path(tmp) / "multi"
        write_multilingual_site(multi_root, args.multi_posts, args.sources == "explicit")
        for rep in range(args.repeat):
            kinds = ("window", "all", "serial")
            for kind in kinds[rep % 3 :] + kinds[: rep % 3]:
                cmd = [sys.executable, str(Path(__file__).resolve()), "--multi-child", str(multi_root)]
                cmd += ["--window"] if kind == "window" else []
                cmd += ["--serial"] if kind == "serial" else []
                cmd += ["--collect-first"] if rep % 2 == 0 else []
                done = subprocess.run(cmd, capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    print(f"setup error: the collect run failed:\n{done.stderr.strip()[-2000:]}", file=sys.stderr)
                    return 2
                multi[kind].append(json.loads(done.stdout.strip().splitlines()[-1]))
                r = multi[kind][-1]
                base_text = f"; baseline {r['baseline_ms']:6.0f} ms" if "baseline_ms" in r else ""
                cpu = r.get("cpu_ms", 0) + r.get("helpers_cpu_ms", 0)
                print(
                    f"  multilingual {kind:<6} cold {r['cold_ms']:7.0f} ms (config {r['load_ms']:.0f} ms,"
                    f" CPU {cpu:.0f} ms){base_text}",
                    file=sys.stderr,
                )
            # Alternate the order so neither side always reads the files first.
            cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(root)]
            cmd += ["--collect-first"] if rep % 2 == 0 else []
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                print(f"setup error: the collect run failed:\n{done.stderr.strip()[-2000:]}", file=sys.stderr)
                return 2
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
            r = runs[-1]
            print(
                f"  collect cold {r['cold_ms']:7.0f} ms, warm {r['warm_ms']:6.0f} ms;"
                f" baseline {r['baseline_ms']:6.0f} ms",
                file=sys.stderr,
            )

    def med(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    cold, warm, base = med("cold_ms"), med("warm_ms"), med("baseline_ms")
    last = runs[-1]
    print(f"\n{args.posts:,} posts, {args.repeat} repetition(s), each in a fresh interpreter")
    print(
        f"collect found {last['entries']:,} entries, {last['problems']} problems; baseline parsed {last['parsed']:,}\n"
    )
    rows = [
        ("collect, cold (ms, median)", f"{cold:,.0f}"),
        ("collect, warm: same process again (ms)", f"{warm:,.0f}"),
        ("read + python-frontmatter (ms, median)", f"{base:,.0f}"),
        ("collect cold per post (ms)", f"{cold / args.posts:.2f}"),
        ("collect cold / baseline", f"{cold / base:.1f}×"),
        ("collect warm / baseline", f"{warm / base:.2f}×"),
    ]
    print(f"{'measure':<42}{'value':>10}")
    for name, value in rows:
        print(f"{name:<42}{value:>10}")

    def mmed(kind: str, key: str) -> float:
        return statistics.median(r[key] for r in multi[kind])

    found = multi["all"][-1]
    window = multi["window"][-1]
    print(
        f"\n{args.multi_posts:,} posts in {len(LANGUAGES)} languages, nested _posts folders, {_cpus()} CPUs"
        f" (sources: {args.sources}); {found['folders']} folders, {found['languages']} languages found;"
        f" all: {found['entries']:,} entries, window of {FEED_WEEKS} weeks: {window['entries']:,} entries;"
        f" {found['problems']} problems\n"
    )
    # The ratio of each repetition (collect and baseline in the same interpreter, so under the same load),
    # then their median.
    ratio = statistics.median(r["cold_ms"] / r["baseline_ms"] for r in multi["all"])
    serial_ratio = statistics.median(r["cold_ms"] / r["baseline_ms"] for r in multi["serial"])

    # What any collect must do, reading the files (the baseline itself) and rendering every body with
    # markdown-it-py, spread perfectly over every CPU, against the baseline of the same repetition: no
    # collect with this renderer can take less (it leaves out dates, links, outlines and the processes).
    floor = statistics.median(
        (r["render_cpu_ms"] + r["baseline_ms"]) / _cpus() / r["baseline_ms"] for r in multi["all"]
    )

    def cpu(kind: str) -> float:
        return statistics.median(r.get("cpu_ms", 0) + r.get("helpers_cpu_ms", 0) for r in multi[kind])

    rows = [
        ("config load, site folders found (ms)", f"{mmed('all', 'load_ms'):,.0f}"),
        (f"collect, one window of {FEED_WEEKS} weeks, cold (ms)", f"{mmed('window', 'cold_ms'):,.0f}"),
        ("collect, every post, cold (ms)", f"{mmed('all', 'cold_ms'):,.0f}"),
        ("  its CPU: the process + its helpers (ms)", f"{cpu('all'):,.0f}"),
        ("collect every post per post (ms)", f"{mmed('all', 'cold_ms') / args.multi_posts:.2f}"),
        ("collect, every post, no helpers (ms)", f"{mmed('serial', 'cold_ms'):,.0f}"),
        ("  its CPU (ms)", f"{cpu('serial'):,.0f}"),
        ("  read + python-frontmatter in the same runs (ms)", f"{mmed('serial', 'baseline_ms'):,.0f}"),
        ("  no helpers / baseline, median of the runs' ratios", f"{serial_ratio:.2f}×"),
        ("read + python-frontmatter, every post (ms)", f"{mmed('all', 'baseline_ms'):,.0f}"),
        ("collect every post / baseline, median of the runs' ratios", f"{ratio:.2f}×"),
        ("markdown-it-py alone on every body, CPU (ms)", f"{mmed('all', 'render_cpu_ms'):,.0f}"),
        (f"  with the reading, over {_cpus()} CPUs / baseline: floor", f"{floor:.2f}×"),
    ]
    print(f"{'measure':<60}{'value':>10}")
    for name, value in rows:
        print(f"{name:<60}{value:>10}")
    verdict = "PASS" if ratio <= TARGET_ALL else "FAIL"
    print(f"\ntarget: collect every post, cold ≤ {TARGET_ALL:g}× read + python-frontmatter: {verdict}")
    if floor > TARGET_ALL:
        print(f"(out of reach with markdown-it-py on {_cpus()} CPUs: reading and rendering alone take {floor:.2f}×)")
    load = os.getloadavg()
    print(f"load average (1 min) {load_before[0]:.2f} → {load[0]:.2f}; 15 min at the end {load[2]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
