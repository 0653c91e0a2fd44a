"""Preview benchmark: `digest preview` of one week (the real command, in a fresh process each time) on a
generated site of invented posts in several languages, against a baseline in the same run that collects
and renders every post of the site (what a preview would cost if it rendered everything).

What it shows: a preview renders the posts of the weeks the feeds list (per language) and, once a ledger
exists, those dated since its first issue; not the whole site.

    python bench/bench_preview.py                 # 5,000 posts in 10 languages, median of 3
    python bench/bench_preview.py --quick         # 500 posts, 1 repetition
Exit status: 0 when measured, 2 when a run failed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

TZ = ZoneInfo("Asia/Seoul")
NOW_AT = datetime(2026, 6, 1, 9, 0, tzinfo=TZ)  # a Monday
LANGUAGES = ("en", "ko", "ja", "de", "fr", "es", "pt", "it", "nl", "zh-Hant")
_WORDS = ("kettle", "lantern", "orchard", "ledger", "pebble", "harbor", "window", "meadow", "compass", "cedar")


def _post(rng: random.Random, i: int, day: date, lang: str) -> str:
    words = " ".join(rng.choice(_WORDS) for _ in range(40))
    return "\n".join(
        [
            "---",
            f'title: "Note {i} ({lang})"',
            f"date: {day.isoformat()} {rng.randint(6, 22):02d}:00:00 +0900",
            f"lang: {lang}",
            "tags: [notes]",
            "---",
            "",
            words,
            "",
            "## First part",
            "",
            *(f"- {rng.choice(_WORDS)} {rng.choice(_WORDS)}" for _ in range(5)),
            "",
            "```python",
            f"print({i})",
            "```",
            "",
            "## Second part",
            "",
            words,
            "",
        ]
    )


def write_site(root: Path, count: int, languages: int) -> None:
    """`count` posts, each language writing in turn, spread evenly over the years before NOW_AT."""
    rng = random.Random(11)
    posts = root / "posts"
    posts.mkdir(parents=True)
    (root / "digest.toml").write_text(
        '[site]\ntitle = "Bench Notes"\nurl = "https://notes.example.com/"\ntimezone = "Asia/Seoul"\n'
        'language = "en"\n[state]\ndir = "state"\n[subscribers]\nfile = "subscribers.yaml"\n',
        encoding="utf-8",
    )
    (root / "subscribers.yaml").write_text("subscribers:\n  - email: reader@example.com\n", encoding="utf-8")
    per_week = max(1, languages * 2)  # two posts per language a week
    first = NOW_AT.date() - timedelta(weeks=count // per_week + 1)
    for i in range(count):
        day = first + timedelta(days=(i * 7) // per_week)
        lang = LANGUAGES[i % languages]
        (posts / f"{day.isoformat()}-note-{i}.md").write_text(_post(rng, i, day, lang), encoding="utf-8")


def _digest(root: Path, *args: str, now: datetime = NOW_AT) -> float:
    env = {**os.environ, "DIGEST_NOW": now.isoformat(), "XDG_STATE_HOME": str(root / "xdg")}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "digest.cli", *args, "--site", str(root)], env=env, capture_output=True, text=True
    )
    elapsed = (time.perf_counter() - started) * 1000
    if done.returncode not in (0, 3):
        raise RuntimeError(f"digest {' '.join(args)} failed: {done.stderr.strip()[-1500:]}")
    return elapsed


def _render_all(root: Path) -> float:
    """Baseline: every post collected and rendered, in a fresh interpreter (the import time included)."""
    code = (
        "import sys, datetime; from pathlib import Path; from digest.config import load_settings; "
        "from digest.collector import collect; "
        f"s = load_settings(site=Path({str(root)!r}), env={{}}); "
        f"print(len(collect(s.site, datetime.datetime.fromisoformat({NOW_AT.isoformat()!r})).entries))"
    )
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return (time.perf_counter() - started) * 1000


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=5_000, help="number of posts (default 5,000)")
    parser.add_argument("--languages", type=int, default=10, help="languages they are written in (default 10)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions; medians are reported (default 3)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 500 posts, 1 repetition")
    args = parser.parse_args(argv)
    if args.quick:
        args.posts, args.repeat = 500, 1
    languages = max(1, min(args.languages, len(LANGUAGES)))
    figures: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="digest-bench-preview-") as tmp:
        root = Path(tmp)
        write_site(root, args.posts, languages)
        steps = {
            "preview, one week (site's language)": ("preview", "--week", "last", "--json"),
            "preview, one week (--lang ko)": ("preview", "--week", "last", "--lang", "ko", "--json"),
            "render every post (baseline)": (),
        }
        try:
            for rep in range(args.repeat):
                order = list(steps.items())
                order = order[rep % len(order) :] + order[: rep % len(order)]
                for name, command in order:
                    took = _digest(root, *command) if command else _render_all(root)
                    figures.setdefault(name, []).append(took)
                    print(f"  {name}: {took:,.0f} ms", file=sys.stderr)
            # a ledger whose first issue was 12 weeks ago: the late arrivals since then are looked at too
            _digest(root, "send", "--week", "last", now=NOW_AT - timedelta(weeks=12))
            for _ in range(args.repeat):
                took = _digest(root, "preview", "--week", "last", "--json")
                figures.setdefault("preview, one week, ledger 12 weeks old", []).append(took)
        except (RuntimeError, subprocess.CalledProcessError) as exc:
            print(f"setup error: {exc}", file=sys.stderr)
            return 2
    base = statistics.median(figures["render every post (baseline)"])
    print(f"\n{args.posts:,} posts in {languages} languages, {args.repeat} repetition(s), each a fresh process")
    print(f"{'measure':<44} {'ms':>9} {'of baseline':>12}")
    for name, values in figures.items():
        value = statistics.median(values)
        print(f"{name:<44} {value:>9,.0f} {value / base:>11.0%}")
    print(json.dumps({k: round(statistics.median(v)) for k, v in figures.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
