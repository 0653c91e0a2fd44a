"""`digest send` itself, SIGKILLed at random moments and rerun at once: nobody is missed, and the only
duplicates are messages that were in flight at a kill (at most connections × 8 per kill)."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support_smtp import AiosmtpdStore, copies
from tests.support_smtp import aiosmtpd_store as aiosmtpd_store  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "site"
COUNT = 300
CONNECTIONS = 4
IN_FLIGHT = CONNECTIONS  # one message per connection (deliver()'s gate)


@pytest.fixture
def big_site(tmp_path: Path, aiosmtpd_store: AiosmtpdStore) -> Iterator[Path]:  # noqa: F811
    site = tmp_path / "site"
    shutil.copytree(EXAMPLE, site, ignore=shutil.ignore_patterns("_digest", ".digest"))
    lines = ["subscribers:"] + [f"  - email: reader{i:04}@example.com\n    name: 독자 {i}" for i in range(COUNT)]
    (site / "subscribers.yaml").write_text("\n".join(lines) + "\n", "utf-8")
    config = site / "digest.toml"
    config.write_text(
        config.read_text("utf-8")
        + f'\n[smtp]\nhost = "127.0.0.1"\nport = {aiosmtpd_store.port}\nmode = "plain"\nconnections = {CONNECTIONS}\n',
        "utf-8",
    )
    yield site


@pytest.mark.slow
def test_sigkilled_digest_send_reruns_to_exactly_once(big_site: Path, aiosmtpd_store: AiosmtpdStore) -> None:  # noqa: F811
    env = {**os.environ, "DIGEST_NOW": "2026-11-23T09:00:00+09:00", "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-m", "digest.cli", "send", "--site", str(big_site), "--week", "2026-W47", "--json"]
    rng = random.Random(3)
    kills = 0
    for _ in range(3):
        before = len(aiosmtpd_store.messages())
        proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        target, deadline = before + rng.randint(10, 60), time.monotonic() + 30
        while len(aiosmtpd_store.messages()) < target and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=30)
    final = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert final.returncode == 0, final.stderr
    got = copies(aiosmtpd_store)
    wanted = {f"reader{i:04}@example.com" for i in range(COUNT)}
    assert sorted(wanted - set(got)) == []
    assert set(got) <= wanted
    assert kills >= 1
    assert sum(n - 1 for n in got.values()) <= kills * IN_FLIGHT
    assert {m.mail_from for m in aiosmtpd_store.messages()} == {"digest@notes.example.org"}  # the From address
    again = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and '"sent": 0' in again.stdout
