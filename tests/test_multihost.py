"""Several machines, one list, nothing twice: three sender hosts (network namespaces with their own
addresses and host names) share one PostgreSQL ledger and one SMTP server, and all run `digest send` on
20,000 subscribers at once; one host is SIGKILLed in the middle. Every subscriber receives the issue once,
except at most the messages the killed host had sent and not yet recorded in the database (one per
connection in flight, and up to UNRECORDED more per connection in its own outcome journal, which only it
reads), and the other hosts send the killed host's share once its lease runs out. When the killed host
comes back, its first send records its journal and sends nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from digest.sender.journal import SUFFIX
from digest.sender.recorder import UNRECORDED
from tests.support_netns import hosts, postgres_on
from tests.support_service import SECRET, write

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
SUBSCRIBERS = 20_000
CONNECTIONS = 4
LEASE = 8  # seconds: the killed host's rows come back to the others after this
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=ZoneInfo("Asia/Seoul"))


class Counting:
    """An SMTP server that keeps only who received what, and from which host."""

    def __init__(self) -> None:
        self.rcpts: list[tuple[str, str]] = []  # (recipient, client address)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.rcpts.extend((r.lower(), session.peer[0]) for r in envelope.rcpt_tos)
        return "250 2.0.0 Ok: queued"


def site(folder: Path, database: str, smtp: tuple[str, int]) -> Path:
    week_start = NOW - timedelta(days=7)
    write(
        folder / "posts" / f"{week_start:%Y-%m-%d}-note.md",
        f"---\ntitle: A short note for many readers\ndate: {(week_start + timedelta(days=2)).isoformat()}\n---\n\n"
        "One paragraph, so that twenty thousand messages stay small.\n",
    )
    write(
        folder / "subscribers.yaml",
        "subscribers:\n" + "".join(f"  - email: r{n:05d}@example.com\n" for n in range(SUBSCRIBERS)),
    )
    return write(
        folder / "digest.toml",
        f"""[site]
title = "Many hosts"
url = "https://hosts.example.org/"
source = ["posts"]
timezone = "Asia/Seoul"

[email]
from = "Many Hosts <digest@hosts.example.org>"

[smtp]
host = "{smtp[0]}"
port = {smtp[1]}
mode = "plain"
allow_plain = true

[delivery]
connections = {CONNECTIONS}
lease_seconds = {LEASE}

[state]
database = "{database}"
""",
    )


def test_three_hosts_one_list_one_killed(tmp_path: Path) -> None:
    with hosts(3) as net:
        subnet = net.gateway.rsplit(".", 1)[0] + ".0/24"
        with postgres_on(net.gateway, subnet) as pg:
            counting = Counting()
            controller = Controller(counting, hostname=net.gateway, port=2525)
            controller.start()
            try:
                config = site(tmp_path / "site", pg.url, (net.gateway, 2525))
                env = {**os.environ, "DIGEST_SECRET": SECRET, "DIGEST_NOW": NOW.isoformat(), "PYTHONPATH": str(ROOT)}
                send = [sys.executable, "-m", "digest.cli", "send", "--config", str(config), "--json"]
                states = [tmp_path / f"state-{i}" for i in range(3)]  # each host its own disk
                senders = [
                    subprocess.Popen(
                        net.command(i, send),
                        env={**env, "XDG_STATE_HOME": str(states[i])},
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                    )
                    for i in range(3)
                ]
                deadline = time.monotonic() + 300
                while len(counting.rcpts) < SUBSCRIBERS // 4:
                    ended = [p.communicate()[1].decode() for p in senders if p.poll() is not None]
                    assert not ended, f"a sender ended early: {ended}"
                    assert time.monotonic() < deadline, "too slow"
                    time.sleep(0.05)
                senders[1].send_signal(signal.SIGKILL)  # the second host dies in the middle of its share
                results = [p.communicate(timeout=300) for p in senders]
                left = list(states[1].rglob(f"*{SUFFIX}"))  # what the killed host sent and had not recorded
                back = subprocess.run(  # the killed host comes back
                    net.command(1, send),
                    env={**env, "XDG_STATE_HOME": str(states[1])},
                    capture_output=True,
                    timeout=300,
                )
            finally:
                controller.stop()
            assert senders[1].returncode == -signal.SIGKILL
            for p, (_out, err) in ((senders[0], results[0]), (senders[2], results[2])):
                assert p.returncode == 0, err.decode()
                assert b"Traceback" not in err

            copies = Counter(r for r, _ in counting.rcpts)
            expected = {f"r{n:05d}@example.com" for n in range(SUBSCRIBERS)}
            assert set(copies) == expected  # nobody lost
            twice = sum(n - 1 for n in copies.values())
            assert twice <= CONNECTIONS * (UNRECORDED + 1)  # only what the killed host had not recorded
            assert len(left) == 1 and not left[0].exists()  # its journal, recorded when it came back
            assert back.returncode == 0 and b'"sent": 0' in back.stdout, back.stderr.decode()
            by_host = Counter(peer for _, peer in counting.rcpts)
            assert len(by_host) == 3 and all(n > 1000 for n in by_host.values())  # all three really sent
            engine = sa.create_engine(pg.url)
            with engine.connect() as conn:
                states = dict(conn.execute(sa.text("SELECT state, count(*) FROM deliveries GROUP BY state")).all())
            engine.dispose()
            assert states == {"sent": SUBSCRIBERS}
