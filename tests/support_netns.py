"""Several hosts on one machine: network namespaces joined by veth pairs to a bridge, each with an address
of its own and (through `unshare --uts`) a host name of its own, so the senders judge each other as other
machines do: by their leases, not by looking at process ids. The services they share (PostgreSQL, an SMTP
server) listen on the bridge's address in the root namespace. Needs root and iproute2."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

POSTGRES_BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin"))


def skip_unless_possible() -> None:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    if not shutil.which("ip") or not shutil.which("unshare"):
        pytest.skip("iproute2 (ip) and util-linux (unshare) are needed")


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


@dataclass(frozen=True)
class Hosts:
    gateway: str  # the bridge's address in the root namespace, where the shared services listen
    namespaces: tuple[str, ...]

    def command(self, index: int, argv: list[str]) -> list[str]:
        """`argv` run on host `index` (0-based), under its own host name."""
        name = f"{self.namespaces[index]}"
        script = f'hostname {name} && exec "$@"'
        return ["ip", "netns", "exec", name, "unshare", "--uts", "sh", "-c", script, "sh", *argv]


@contextlib.contextmanager
def hosts(count: int) -> Iterator[Hosts]:
    skip_unless_possible()
    net = 200 + os.getpid() % 50  # 10.213.<net>.0/24, unlikely to clash with a parallel run
    tag = f"{os.getpid() % 10000}"
    bridge = f"dgb{tag}"
    gateway = f"10.213.{net}.1"
    namespaces = tuple(f"dg{tag}h{i}" for i in range(1, count + 1))
    try:
        sh("ip", "link", "add", bridge, "type", "bridge")
        sh("ip", "addr", "add", f"{gateway}/24", "dev", bridge)
        sh("ip", "link", "set", bridge, "up")
        for i, ns in enumerate(namespaces, start=1):
            outside, inside = f"dgv{tag}{i}", f"dgp{tag}{i}"
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "add", outside, "type", "veth", "peer", "name", inside)
            sh("ip", "link", "set", inside, "netns", ns)
            sh("ip", "link", "set", outside, "master", bridge)
            sh("ip", "link", "set", outside, "up")
            sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"10.213.{net}.{10 + i}/24", "dev", inside)
            sh("ip", "netns", "exec", ns, "ip", "link", "set", inside, "up")
            sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        yield Hosts(gateway, namespaces)
    finally:
        for ns in namespaces:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)


@dataclass(frozen=True)
class Postgres:
    url: str  # a database the hosts reach over the bridge


@contextlib.contextmanager
def postgres_on(address: str, subnet: str) -> Iterator[Postgres]:
    """A PostgreSQL server of its own, listening on `address` and trusting `subnet` (a test cluster)."""
    if not POSTGRES_BIN:
        pytest.skip("PostgreSQL is not installed (Debian: postgresql)")
    bin_dir = POSTGRES_BIN[-1]
    data = Path(tempfile.mkdtemp(prefix="digest-netns-pg-"))
    shutil.chown(data, "postgres")
    port = 20000 + os.getpid() % 20000

    def as_postgres(*args: str) -> None:
        subprocess.run(["su", "postgres", "-c", " ".join(args)], check=True, capture_output=True)

    as_postgres(str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres")
    with open(data / "pg_hba.conf", "a") as hba:
        hba.write(f"host all all {subnet} trust\n")
    options = f"'-p {port} -k {data} -c listen_addresses={address} -c max_connections=200 -c fsync=off'"
    as_postgres(str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(data / "log"), "-w", "start")
    try:
        as_postgres(str(bin_dir / "createdb"), "-h", address, "-p", str(port), "-U", "postgres", "digest")
        yield Postgres(f"postgresql+psycopg://postgres@{address}:{port}/digest")
    finally:
        subprocess.run(
            ["su", "postgres", "-c", f"{bin_dir / 'pg_ctl'} -D {data} -m immediate stop"], capture_output=True
        )
        time.sleep(0.2)
        shutil.rmtree(data, ignore_errors=True)
