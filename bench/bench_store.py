"""Subscriber store benchmark: a site whose database holds 100,000 subscribers (imported once with the real
`digest subscribers import`), then `digest send --dry-run`: the store read into the send list, every
subscriber checked against the suppression list, the variants rendered and every message built (a dry
run sends none and leaves the ledger alone). Each command is its own child process, so its figures are its
own: peak RSS and CPU time (user + sys) from os.wait4 on its pid.

Targets for the dry run of 100,000: peak RSS <= 150 MB, CPU <= 10 s, and memory flat: from a tenth of the
list (10,000, the baseline, measured in the same run) to all of it, the peak grows by at most 15 MB beyond
what the send list itself grows by (the Subscriber objects the store gives the send, sized in a child of
their own). A run of another size prints its figures, not a verdict.

    python bench/bench_store.py                       # 100,000 subscribers, SQLite, 3 dry runs
    python bench/bench_store.py --quick               # 2,000 subscribers, 1 dry run
    python bench/bench_store.py --subscribers 20000 --repeat 1
    python bench/bench_store.py --database postgresql+psycopg://postgres@127.0.0.1:54330/bench

A note on the figure: Linux carries a parent's peak RSS into a child at fork + exec, so this script imports
nothing heavy itself (its own peak is printed next to the children's: a child's figure means something only
well above it).

Exit status: 0 when measured (targets met or not), 2 when a command failed.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOW = "2026-11-23T09:00:00+09:00"  # Monday: week 2026-W47 has just ended
WEEK = "2026-W47"
SECRET = "bench-secret-not-for-production-0123456789"
TARGET_MB = 150.0
TARGET_CPU = 10.0
TARGET_GROWTH_MB = 15.0  # the peak's growth from a tenth of the list to all of it, beyond the list's own
TARGET_COUNT = 100_000  # the targets are for this many subscribers
EXPORT_FIELDS = (
    "email", "name", "status", "language", "tags", "format", "origin", "consent_at", "consent_method",
    "consent_source", "created_at", "paused_until",
)  # fmt: skip


@dataclass(frozen=True)
class Run:
    seconds: float  # wall clock
    cpu: float  # user + sys of the child
    peak_mb: float  # the child's peak RSS
    out: str


def write_site(root: Path, database: str) -> Path:
    """A small Jekyll-like site: three posts in the benchmark's week, a subscribers file of two entries."""
    posts = root / "posts"
    posts.mkdir(parents=True)
    for day, (slug, tag) in enumerate((("kettle", "notes"), ("orchard", "ML"), ("lantern", "notes")), start=17):
        (posts / f"2026-11-{day}-{slug}.md").write_text(
            f'---\ntitle: "A note on the {slug}"\ndate: 2026-11-{day} 09:00:00 +0900\ntags: [{tag}]\n---\n\n'
            + f"The {slug} story, told in a few invented sentences for the benchmark. " * 20
            + "\n",
            "utf-8",
        )
    (root / "subscribers.yaml").write_text(
        "subscribers:\n  - email: author@bench.example.com\n  - email: editor@bench.example.com\n", "utf-8"
    )
    state = f'database = "{database}"\n' if database else ""
    config = root / "digest.toml"
    config.write_text(
        f"""[site]
title = "Bench Weekly"
url = "https://bench.example.com/"
source = ["posts"]
timezone = "Asia/Seoul"

[email]
from = "Bench Weekly <digest@bench.example.com>"
public_url = "https://bench.example.com/newsletter/"

[subscribers]
file = "subscribers.yaml"

[state]
dir = "state"
{state}""",
        "utf-8",
    )
    return config


def write_export(path: Path, count: int) -> dict[str, int]:
    """`count` subscribers in the shape `digest subscribers export` writes, streamed to the file: most
    active, some on one topic, some in plain text, some paused, and the ones who left."""
    statuses: dict[str, int] = {}
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(EXPORT_FIELDS)
        for i in range(count):
            status = (
                "unsubscribed" if i % 50 == 1 else "bounced" if i % 100 == 2 else "complained" if i % 1000 == 3 else
                "active"
            )  # fmt: skip
            statuses[status] = statuses.get(status, 0) + 1
            consented = status == "active" or i % 2 == 0
            writer.writerow(
                (
                    f"reader{i:06d}@example.com",
                    f"구독자 {i}" if i % 10 == 0 else f"Reader {i}",
                    status,
                    "",  # the site's language: one issue for everyone (a language of its own is another issue)
                    "ML" if i % 5 == 0 else "",
                    "text" if i % 20 == 0 else "html",
                    "form",
                    "2025-03-01T10:00:00+00:00" if consented else "",
                    "form" if consented else "",
                    "https://bench.example.com/subscribe/" if consented else "",
                    "2025-03-01T09:59:00+00:00",
                    "",
                )
            )
    return statuses


def run(args: Sequence[str], env: dict[str, str]) -> Run:
    """One command as a child; its own CPU time and peak RSS from wait4."""
    started = time.monotonic()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, "-m", "digest.cli", *args], stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        text, problem = out.read(), err.read()
    if proc.returncode != 0:
        raise RuntimeError(f"digest {' '.join(args)} exited {proc.returncode}: {problem.strip()[-2000:]}")
    return Run(seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, text)


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


@dataclass(frozen=True)
class Measured:
    count: int
    statuses: dict[str, int]
    imported: Run
    dry: list[Run]
    list_mb: float  # the send list the store gives, in memory

    @property
    def peak(self) -> float:
        return statistics.median(r.peak_mb for r in self.dry)

    @property
    def cpu(self) -> float:
        return statistics.median(r.cpu for r in self.dry)

    @property
    def wall(self) -> float:
        return statistics.median(r.seconds for r in self.dry)


EMPTY = """
import sys
from sqlalchemy import MetaData, create_engine
engine = create_engine(sys.argv[1])
tables = MetaData()
tables.reflect(engine)
tables.drop_all(engine)
"""


def empty(database: str) -> None:
    """Drop every table of `database` (in a child: this process imports nothing heavy), so that the next
    import starts from an empty store as a SQLite one does."""
    done = subprocess.run([sys.executable, "-c", EMPTY, database], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"cannot empty {database.split('@')[-1]}: {done.stderr.strip()[-500:]}")


def measure(count: int, repeat: int, database: str, env: dict[str, str]) -> Measured:
    """A new site whose store holds `count` subscribers (imported with the real command), then `repeat`
    dry runs. Raises RuntimeError when a command fails."""
    if database:
        empty(database)
    with tempfile.TemporaryDirectory(prefix="digest-bench-store-") as tmp:
        root = Path(tmp)
        site = root / "site"
        write_site(site, database)
        export = root / "subscribers.csv"
        statuses = write_export(export, count)
        imported = run(["subscribers", "import", str(export), "--site", str(site), "--json"], env)
        summary = json.loads(imported.out)
        if summary["added"] != count:
            raise RuntimeError(f"the import added {summary['added']} of {count}")
        dry = [run(["send", "--dry-run", "--week", WEEK, "--site", str(site), "--json"], env) for _ in range(repeat)]
        sized = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--list-size-child", str(site)],
            capture_output=True, text=True, env=env,
        )  # fmt: skip
        if sized.returncode != 0:
            raise RuntimeError(f"the list-size child failed: {sized.stderr.strip()[-1000:]}")
    return Measured(count, statuses, imported, dry, json.loads(sized.stdout)["list_mb"])


def list_size_child(site: Path) -> None:
    """Runs in its own interpreter: the size of the send list the store gives `digest send` (the tuple of
    Subscriber objects and everything only they reference), as JSON."""
    from datetime import datetime

    import _run

    from digest import sender
    from digest.config import load_settings
    from digest.pipeline.state import open_store

    settings = load_settings(site=site)
    store = open_store(settings)
    try:
        found, _ = sender.Roster(store).for_send(datetime.fromisoformat(NOW))
    finally:
        store.close()
    print(json.dumps({"count": len(found), "list_mb": _run.graph_mb(found)}))


def verdict(ok: bool, count: int) -> str:
    return ("PASS" if ok else "FAIL") if count == TARGET_COUNT else f"n/a (the target is for {TARGET_COUNT:,})"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=TARGET_COUNT)
    parser.add_argument("--repeat", type=int, default=3, help="dry runs (the median is reported)")
    parser.add_argument("--database", default="", help="a database URL (default: SQLite in the site's state/)")
    parser.add_argument("--quick", action="store_true", help="2,000 subscribers, 1 dry run (a smoke run)")
    parser.add_argument("--list-size-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.list_size_child:
        list_size_child(args.list_size_child)
        return 0
    if args.quick:
        args.subscribers, args.repeat = 2_000, 1
    env = {**os.environ, "DIGEST_NOW": NOW, "DIGEST_SECRET": SECRET}
    env.pop("DIGEST_DATABASE_URL", None)
    load_before = load()
    own_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    try:
        base = measure(max(1, args.subscribers // 10), args.repeat, args.database, env)
        full = measure(args.subscribers, args.repeat, args.database, env)
    except (RuntimeError, KeyError, ValueError) as exc:
        print(f"setup error: {exc}", file=sys.stderr)
        return 2
    report = json.loads(full.dry[-1].out)
    database = args.database.split("@")[-1] if args.database else "SQLite"
    print(f"\n{args.subscribers:,} subscribers in the store ({database}): " + ", ".join(
        f"{n:,} {s}" for s, n in sorted(full.statuses.items())
    ))  # fmt: skip
    print(f"load average before {load_before}, after {load()}; this script's own peak RSS {own_mb:.1f} MB")
    print(f"medians of {len(full.dry)} dry run(s) each; baseline: the same site with {base.count:,} subscribers\n")
    print(f"| measure | {full.count:,} | baseline {base.count:,} | ratio | target | result |")
    print("| --- | ---: | ---: | ---: | --- | --- |")
    print(
        f"| `digest subscribers import` once: wall / CPU / peak RSS | {full.imported.seconds:.1f} s / "
        f"{full.imported.cpu:.1f} s / {full.imported.peak_mb:.1f} MB | {base.imported.seconds:.1f} s / "
        f"{base.imported.cpu:.1f} s / {base.imported.peak_mb:.1f} MB | | | |"
    )
    dry = "`digest send --dry-run`"
    cpu_ok, peak_ok = verdict(full.cpu <= TARGET_CPU, full.count), verdict(full.peak <= TARGET_MB, full.count)
    print(f"| {dry}, wall | {full.wall:.2f} s | {base.wall:.2f} s | {full.wall / base.wall:.1f}× | | |")
    print(f"| {dry}, CPU user+sys | {full.cpu:.2f} s | {base.cpu:.2f} s | {full.cpu / base.cpu:.1f}× | "
          f"≤ {TARGET_CPU:.0f} s | {cpu_ok} |")  # fmt: skip
    print(f"| {dry}, peak RSS | {full.peak:.1f} MB | {base.peak:.1f} MB | {full.peak / base.peak:.2f}× | "
          f"≤ {TARGET_MB:.0f} MB | {peak_ok} |")  # fmt: skip
    growth = (full.peak - base.peak) - (full.list_mb - base.list_mb)
    print(f"| the send list itself, in memory | {full.list_mb:.1f} MB | {base.list_mb:.1f} MB | | | |")
    flat = verdict(growth <= TARGET_GROWTH_MB, full.count)
    print(f"| {dry}, peak growth from the baseline beyond the list's | {growth:+.1f} MB | | | "
          f"≤ {TARGET_GROWTH_MB:.0f} MB | {flat} |")  # fmt: skip
    print(f"\nthe dry run built {report['sent']:,} messages and skipped {report['skipped']:,}")
    for m in (base, full):
        print(f"runs with {m.count:,}: " + "; ".join(
            f"{r.seconds:.2f} s wall, {r.cpu:.2f} s CPU, {r.peak_mb:.1f} MB" for r in m.dry
        ))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
