"""Markdown renderers and their options on the same bodies: what each costs, and whether it writes the same
HTML as the renderer the collector used before (markdown-it-py with linkify-it on every paragraph).

The bodies are the 5,000 posts of bench_collect.py's multilingual site (the same generator and seed, front
matter cut off); `--also DIR` adds every Markdown file under DIR (a real blog's posts, say) as a second set,
timed and compared on its own. Every candidate renders every body of a set in the same process, in chunks
of 100 bodies taken by every candidate in turn (see measure()); the figure is the median over repetitions,
and the ratio is to the baseline (the renderer used before) in the same repetition, its median over
repetitions.

Equivalence: each candidate's HTML is compared with the baseline's after whitespace normalisation (runs of
whitespace become one space, whitespace between tags is dropped); "differ" counts the bodies that still
differ. The collector's own `render()` (headings with anchors, outline, attribute lists, absolute links,
summary) is timed as it runs now and with linkify-it alone in place of the quick test in front of it, and
those two are compared with each other (their HTML has anchors and absolute links, so not with the
baseline).

    python bench/bench_markdown.py                 # 5,000 bodies, median of 3
    python bench/bench_markdown.py --quick         # 500 bodies, 1 repetition
    python bench/bench_markdown.py --also ~/blog/_posts --show-diff 2
Candidates whose package is not installed are listed as skipped (`pip install cmarkgfm mistune
markdown-it-pyrs` to compare them all). Exit status: 0 when measured, 2 when setup failed.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_collect import LANGUAGES, NOW_AT, _post  # noqa: E402

from digest.collector import markdown as digest_markdown  # noqa: E402
from digest.collector.links import Linker  # noqa: E402

Render = Callable[[str], str]
BASELINE = "markdown-it-py, linkify-it (before)"


def collect_bodies(count: int) -> list[str]:
    """The bodies of bench_collect.py's multilingual site, in the same order and with the same seed."""
    rng = random.Random(9)
    bodies = []
    for i in range(count):
        day = NOW_AT.date() - timedelta(days=i // len(LANGUAGES) + 1)
        text = _post(rng, i, day)
        bodies.append(text.split("---\n", 2)[2])
    return bodies


def folder_bodies(folder: Path) -> list[str]:
    bodies = []
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() in (".md", ".markdown", ".mdown", ".mkd") and path.is_file():
            text = path.read_text("utf-8", errors="replace")
            if text.startswith("---\n") and text.count("---\n") >= 2:
                text = text.split("---\n", 2)[2]
            bodies.append(text)
    return bodies


def _markdown_it(linkify: bool) -> MarkdownIt:
    rules = ["table", "strikethrough"] + (["linkify"] if linkify else [])
    return MarkdownIt("commonmark", {"html": True, "linkify": linkify}).enable(rules)


class _OnlyObviousLinks:
    """linkify-it, asked only when the text has "://", "www." or "@": cheaper, but bare domains such as
    ``example.com`` (which linkify-it links) stay text."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def pretest(self, text: str) -> bool:
        return ("://" in text or "www." in text or "@" in text) and bool(self.inner.pretest(text))

    def test(self, text: str) -> bool:
        return ("://" in text or "www." in text or "@" in text) and bool(self.inner.test(text))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def candidates() -> tuple[dict[str, Render], list[str]]:
    """Every renderer that can run here, baseline first, and the names of those that cannot."""
    found: dict[str, Render] = {}
    skipped: list[str] = []
    before = _markdown_it(linkify=True)
    found[BASELINE] = before.render
    found["markdown-it-py, no linkify"] = _markdown_it(linkify=False).render
    obvious = _markdown_it(linkify=True)
    obvious.linkify = _OnlyObviousLinks(obvious.linkify)
    found["markdown-it-py, linkify-it only on ://, www., @"] = obvious.render
    # The collector's renderer as configured now (the quick test in front of linkify-it).
    found["markdown-it-py, quick test + linkify-it (digest)"] = digest_markdown._MD.render
    try:
        import cmarkgfm
        from cmarkgfm.cmark import Options

        found["cmarkgfm (table, strikethrough, autolink; unsafe HTML)"] = lambda text: (
            cmarkgfm.markdown_to_html_with_extensions(
                text, options=Options.CMARK_OPT_UNSAFE, extensions=["table", "strikethrough", "autolink"]
            )
        )
    except ImportError:
        skipped.append("cmarkgfm")
    try:
        import mistune

        found["mistune (table, strikethrough, url)"] = mistune.create_markdown(
            escape=False, plugins=["table", "strikethrough", "url"]
        )  # type: ignore[assignment]
    except ImportError:
        skipped.append("mistune")
    try:
        import markdown_it_pyrs

        rust = markdown_it_pyrs.MarkdownIt("commonmark").enable_many(["table", "strikethrough", "autolink_ext"])
        found["markdown-it-pyrs (Rust; table, strikethrough, autolink_ext)"] = rust.render
    except ImportError:
        skipped.append("markdown-it-pyrs")
    linker = Linker("https://multi.example.com/2024/05/01/note/", "https://multi.example.com/")
    found["digest render(): quick test (now)"] = lambda text: _digest_render(text, linker)
    found["digest render(): linkify-it alone"] = lambda text: _digest_render(text, linker, alone=True)
    return {name: _guarded(name, render) for name, render in found.items()}, skipped


CRASHES: dict[str, int] = {}


def _guarded(name: str, render: Render) -> Render:
    """A renderer that fails on a body (an exception, or a panic of a compiled one) is counted and shown,
    not fatal: that too is a figure."""

    def run(text: str) -> str:
        try:
            return render(text)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - pyo3's PanicException derives from BaseException
            CRASHES[name] = CRASHES.get(name, 0) + 1
            return f"<!-- failed: {type(exc).__name__}: {exc} -->"

    return run


def _digest_render(text: str, linker: Linker, alone: bool = False) -> str:
    quick = digest_markdown._MD.linkify
    if alone:
        digest_markdown._MD.linkify = quick.inner
    try:
        done = digest_markdown.render(text, linker.page_url, {}, linker)
    finally:
        digest_markdown._MD.linkify = quick
    outline = "".join(f"{h.level} {h.text} {h.anchor};" for h in done.outline)
    return f"{done.html}\n<!-- summary -->{done.summary_html}\n<!-- outline -->{outline}"


_SPACE = re.compile(r"\s+")
_BETWEEN_TAGS = re.compile(r">\s+<")


def normalise(html: str) -> str:
    return _SPACE.sub(" ", _BETWEEN_TAGS.sub("><", html)).strip()


def measure(renderers: dict[str, Render], bodies: Sequence[str], repeat: int) -> dict[str, list[float]]:
    """Milliseconds each renderer takes for all ``bodies``, once per repetition. The machine is shared, so
    the bodies go in chunks of 100 and every renderer does each chunk before the next one starts (in an
    order that rotates): a burst of load from elsewhere falls on all of them alike."""
    names = list(renderers)
    for name in names:  # warm-up: imports, compiled patterns, caches of the renderers themselves
        for text in bodies[:20]:
            renderers[name](text)
    times: dict[str, list[float]] = {name: [] for name in names}
    chunks = [bodies[i : i + 100] for i in range(0, len(bodies), 100)]
    for rep in range(repeat):
        spent = dict.fromkeys(names, 0.0)
        for number, chunk in enumerate(chunks):
            shift = (rep + number) % len(names)
            for name in names[shift:] + names[:shift]:
                render = renderers[name]
                started = time.perf_counter()
                for text in chunk:
                    render(text)
                spent[name] += time.perf_counter() - started
        for name in names:
            times[name].append(spent[name] * 1000)
        print(f"  repetition {rep + 1}/{repeat} done, load average {os.getloadavg()[0]:.2f}", file=sys.stderr)
    return times


def differ(renderers: dict[str, Render], bodies: Sequence[str], show: int) -> tuple[dict[str, int], dict[str, int]]:
    reference = [normalise(renderers[BASELINE](text)) for text in bodies]
    now = [normalise(renderers["digest render(): linkify-it alone"](text)) for text in bodies]
    counts: dict[str, int] = {}
    CRASHES.clear()
    for name, render in renderers.items():
        against = now if name.startswith("digest render()") else reference
        different = [i for i, text in enumerate(bodies) if normalise(render(text)) != against[i]]
        counts[name] = len(different)
        for i in different[:show]:
            got = normalise(render(bodies[i]))
            same = (a == b for a, b in zip(against[i], got, strict=False))
            at = next((k for k, equal in enumerate(same) if not equal), min(len(got), len(against[i])))
            start = max(at - 120, 0)
            print(f"\n--- {name}: body {i} differs at character {at}", file=sys.stderr)
            print(f"expected: …{against[i][start : at + 200]}\ngot:      …{got[start : at + 200]}", file=sys.stderr)
    for name, failed in CRASHES.items():
        print(f"  {name}: failed on {failed:,} of {len(bodies):,} bodies (counted in differ)", file=sys.stderr)
    return counts, dict(CRASHES)


def report(
    title: str, bodies: Sequence[str], times: dict[str, list[float]], counts: tuple[dict[str, int], dict[str, int]]
) -> None:
    differing, failed = counts
    print(f"\n{title}: {len(bodies):,} bodies, {sum(len(b) for b in bodies) / 1024:,.0f} KiB of Markdown")
    print(f"{'renderer':<62}{'ms (median)':>12}{'µs/body':>9}{'ratio':>8}{'differ':>8}{'failed':>8}")
    for name, values in times.items():
        value = statistics.median(values)
        ratio = statistics.median(v / b for v, b in zip(values, times[BASELINE], strict=True))
        per_body = value * 1000 / len(bodies)
        figures = f"{value:>12,.0f}{per_body:>9,.0f}{ratio:>7.2f}×{differing[name]:>8,}{failed.get(name, 0):>8,}"
        print(f"{name:<62}{figures}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bodies", type=int, default=5_000, help="bodies of the generated site (default 5,000)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions; medians are reported (default 3)")
    parser.add_argument("--also", type=Path, action="append", default=[], help="a folder of Markdown files to add")
    parser.add_argument("--show-diff", type=int, default=0, metavar="N", help="print N differing bodies each")
    parser.add_argument("--quick", action="store_true", help="smoke run: 500 bodies, 1 repetition")
    args = parser.parse_args(argv)
    if args.quick:
        args.bodies, args.repeat = 500, 1
    sets = [("generated site (bench_collect's multilingual posts)", collect_bodies(args.bodies))]
    for folder in args.also:
        if not folder.is_dir():
            print(f"setup error: --also {folder}: not a folder", file=sys.stderr)
            return 2
        found = folder_bodies(folder)
        if not found:
            print(f"setup error: --also {folder}: no Markdown files in it", file=sys.stderr)
            return 2
        sets.append((f"Markdown files under {folder.name}/", found))
    # A compiled renderer that panics prints the panic; a Rust backtrace on top of it for every body says
    # nothing more.
    os.environ.pop("RUST_BACKTRACE", None)
    renderers, skipped = candidates()
    load_before = os.getloadavg()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in load_before)}", file=sys.stderr)
    results = []
    for title, bodies in sets:
        times = measure(renderers, bodies, args.repeat)
        results.append((title, bodies, times, differ(renderers, bodies, args.show_diff)))
    load_after = os.getloadavg()
    print(
        f"\n{args.repeat} repetition(s), one process, Python {sys.version.split()[0]};"
        f" load average {load_before[0]:.2f} → {load_after[0]:.2f} (1 min)"
    )
    print(f"ratio: to «{BASELINE}» in the same run; differ: bodies whose HTML differs after whitespace")
    print("normalisation (digest render() rows: from each other; the others: from the baseline), failed among them")
    print("failed: bodies on which the renderer raised an exception or panicked")
    for title, bodies, times, counts in results:
        report(title, bodies, times, counts)
    if skipped:
        print(f"\nskipped (not installed): {', '.join(skipped)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
