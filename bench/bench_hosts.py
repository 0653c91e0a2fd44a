"""Scaling out: messages per second with 1, 2 and 3 sender hosts sharing one PostgreSQL ledger.

Each host is a network namespace with its own address and host name (tests/support_netns.py); PostgreSQL
(a cluster of its own) and Postfix's `smtp-sink` listen on the bridge in the root namespace. Every host runs
the real command, `digest send`, on the same issue and the same subscribers.yaml; the rate is the list size
over the wall time from the first start to the last exit. In the same run, `smtp-source` from the root
namespace gives the ceiling of the sink. Medians of N repetitions; the machine's load average is printed.

    python bench/bench_hosts.py                    # 20,000 subscribers, 1/2/3 hosts, 3 repetitions
    python bench/bench_hosts.py --quick            # 2,000 subscribers, 1 repetition

Needs root (network namespaces), iproute2, PostgreSQL and Postfix (smtp-sink, smtp-source).
Note: the hosts share this machine's CPUs, so more hosts cannot be faster than the CPUs allow; the figure
says whether the ledger's claims scale, not what N machines would do.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support_netns import Hosts, hosts, postgres_on  # noqa: E402

SECRET = "a secret for the hosts benchmark, 32+ bytes"


def tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin")
    if not found:
        sys.exit(f"{name} not found: install Postfix (Debian: apt-get install postfix)")
    return found


def write_site(folder: Path, database: str, sink: tuple[str, int], count: int) -> Path:
    (folder / "posts").mkdir(parents=True)
    (folder / "posts" / "2026-11-18-note.md").write_text(
        "---\ntitle: A note for many readers\ndate: 2026-11-18 10:00\n---\n\n" + "A paragraph of text. " * 200 + "\n",
        "utf-8",
    )
    (folder / "subscribers.yaml").write_text(
        "subscribers:\n" + "".join(f"  - email: r{n:06d}@example.com\n" for n in range(count)), "utf-8"
    )
    config = folder / "digest.toml"
    config.write_text(
        f"""[site]
title = "Hosts"
url = "https://hosts.example.org/"
source = ["posts"]
timezone = "Asia/Seoul"

[email]
from = "Hosts <digest@hosts.example.org>"

[smtp]
host = "{sink[0]}"
port = {sink[1]}
mode = "plain"
allow_plain = true

[delivery]
connections = 4

[state]
database = "{database}"
""",
        "utf-8",
    )
    return config


def reset(database_url: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()


def run_hosts(net: Hosts, n: int, config: Path, database: str) -> float:
    reset(database)
    env = {**os.environ, "DIGEST_SECRET": SECRET, "DIGEST_NOW": "2026-11-23T09:00:00+09:00", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "digest.cli", "send", "--config", str(config), "--week", "2026-W47", "--json"]
    started = time.monotonic()
    procs = [
        subprocess.Popen(net.command(i, command), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for i in range(n)
    ]
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            sys.exit(f"digest send failed on a host: {err.decode()}")
    return time.monotonic() - started


def smtp_source(address: str, port: int, count: int, size_kb: int) -> float:
    started = time.monotonic()
    subprocess.run(
        [tool("smtp-source"), "-s", "4", "-m", str(count), "-l", str(size_kb * 1024), "-d", "-c",
         "-f", "digest@hosts.example.org", "-t", "r@example.com", f"{address}:{port}"],
        check=True, capture_output=True,
    )  # fmt: skip
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.subscribers, args.repeat = 2_000, 1
    if os.geteuid() != 0:
        sys.exit("needs root (network namespaces)")
    load_before = os.getloadavg()[0]
    rates: dict[str, list[float]] = {}
    with hosts(3) as net, postgres_on(net.gateway, net.gateway.rsplit(".", 1)[0] + ".0/24") as pg:
        with socket.socket() as probe:  # a free port: one derived from the pid met PostgreSQL's
            probe.bind((net.gateway, 0))
            port = probe.getsockname()[1]
        sink = subprocess.Popen([tool("smtp-sink"), "-u", "nobody", f"{net.gateway}:{port}", "1024"])
        work = Path(tempfile.mkdtemp(prefix="digest-bench-hosts-"))
        try:
            time.sleep(0.5)
            config = write_site(work / "site", pg.url, (net.gateway, port), args.subscribers)
            for repetition in range(args.repeat):
                for n in (1, 2, 3):
                    seconds = run_hosts(net, n, config, pg.url)
                    rates.setdefault(f"{n} host(s)", []).append(args.subscribers / seconds)
                    print(
                        f"repetition {repetition + 1}: {n} host(s) {args.subscribers / seconds:,.0f} msg/s", flush=True
                    )
                seconds = smtp_source(net.gateway, port, args.subscribers, 8)
                rates.setdefault("smtp-source", []).append(args.subscribers / seconds)
        finally:
            sink.terminate()
            shutil.rmtree(work, ignore_errors=True)
    print(f"\n{args.subscribers:,} subscribers, median of {args.repeat}; load average {load_before:.1f} → "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")  # fmt: skip
    print(f"{'senders':<14}{'msg/s':>10}{'vs 1 host':>12}")
    one = statistics.median(rates["1 host(s)"])
    for name, values in rates.items():
        rate = statistics.median(values)
        print(f"{name:<14}{rate:>10,.0f}{rate / one:>11.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
