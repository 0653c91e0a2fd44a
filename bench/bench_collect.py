"""Collector benchmark: digest.collector.collect over a generated Jekyll site of invented Markdown posts,
against a baseline in the same run that only reads the same files and parses their front matter with
python-frontmatter. collect() does much more (dates, permalinks, Markdown rendering, links); the ratio says
what that costs per file.

    python bench/bench_collect.py                  # 2,000 posts, median of 3
    python bench/bench_collect.py --quick          # 200 posts, 1 repetition
Exit status: 0 when measured, 2 when the collector is not available or the setup failed.
"""

from __future__ import annotations

import argparse
import importlib
import random
import statistics
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


def baseline(files: Sequence[Path]) -> int:
    parsed = 0
    for path in files:
        post = frontmatter.loads(path.read_text("utf-8"))
        parsed += bool(post.metadata)
    return parsed


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return (time.perf_counter() - started) * 1000, result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=2_000, help="number of posts (default 2,000)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions; medians are reported (default 3)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 200 posts, 1 repetition")
    args = parser.parse_args(argv)
    if args.quick:
        args.posts, args.repeat = 200, 1
    try:
        collect = importlib.import_module("digest.collector").collect
    except (ImportError, AttributeError) as exc:
        print(f"setup error: digest.collector is not available ({exc})", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="digest-bench-collect-") as tmp:
        root = Path(tmp)
        files = write_site(root, args.posts)
        site = load_settings(site=root, env={}).site
        times_collect: list[float] = []
        times_base: list[float] = []
        entries = problems = parsed = 0
        for rep in range(args.repeat):
            # Alternate the order so neither side always gets the warm page cache first.
            runs = [("collect", lambda: collect(site, NOW_AT)), ("baseline", lambda: baseline(files))]
            for name, fn in runs if rep % 2 == 0 else runs[::-1]:
                ms, result = timed(fn)
                if name == "collect":
                    times_collect.append(ms)
                    entries, problems = len(result.entries), len(result.problems)
                else:
                    times_base.append(ms)
                    parsed = result
                print(f"  {name:<9}{ms:9.0f} ms", file=sys.stderr)
    c, b = statistics.median(times_collect), statistics.median(times_base)
    print(
        f"\n{args.posts:,} posts, {args.repeat} repetition(s); collect found {entries:,} entries, {problems} problems"
    )
    print(f"baseline parsed front matter of {parsed:,} files\n")
    print(f"{'measure':<40}{'value':>12}")
    print(f"{'collect (ms, median)':<40}{c:>12,.0f}")
    print(f"{'read + python-frontmatter (ms, median)':<40}{b:>12,.0f}")
    print(f"{'collect per post (ms)':<40}{c / args.posts:>12.2f}")
    print(f"{'collect / baseline':<40}{c / b:>11.1f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
