"""The real `digest schedule` process on the real clock: a schedule a few seconds ahead, 2,000 subscribers
to an SMTP server on 127.0.0.1. Killed (SIGKILL) or stopped (SIGTERM) in the middle of the send and
started again, or with the server answering 451 to one message in ten for a while: every subscriber gets
the issue, each once. After a SIGKILL the only copies sent twice are the messages in flight at the kill:
at most one per connection, the same message (the same Message-ID) that a mailbox shows once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.support_service import SECRET, Mailbox, Post, smtp_box, write, write_site

__all__ = ["smtp_box"]

ROOT = Path(__file__).resolve().parents[1]
READERS = [f"reader{n:04d}@example.com" for n in range(2000)]
CONNECTIONS = 4
ZONE = "Asia/Seoul"
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

pytestmark = pytest.mark.slow


def service_site(tmp_path: Path, box: Mailbox) -> tuple[Path, datetime]:
    """A site whose schedule fires a few seconds from now; the week that run sends has one post."""
    fire_at = (datetime.now(ZoneInfo(ZONE)) + timedelta(seconds=4)).replace(microsecond=0)
    this_week_start = (fire_at - timedelta(days=fire_at.weekday())).replace(hour=0, minute=0, second=0)
    post_at = this_week_start - timedelta(days=3)  # in the week before the fire time's week: the one it sends
    config = write_site(
        tmp_path,
        [Post("weekly", "지난주 소식 · last week", post_at)],
        READERS,
        smtp_port=box.port,
        extra=(f'[schedule]\nday = "{DAYS[fire_at.weekday()]}"\ntime = "{fire_at:%H:%M:%S}"\ntick_seconds = 1\n'),
    )
    text = config.read_text("utf-8").replace(
        "[delivery]\nconnections = 1\n", f"[delivery]\nconnections = {CONNECTIONS}\nretry_base_seconds = 1\n"
    )
    write(config, text)
    return config, fire_at


def start(config: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "DIGEST_SECRET": SECRET}
    command = [sys.executable, "-m", "digest.cli", "schedule", "--config", str(config)]
    return subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)


def wait_until(condition: object, proc: subprocess.Popen[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if proc.poll() is not None:
            raise AssertionError(f"the service exited: {proc.stderr.read() if proc.stderr else ''}")
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def stop(proc: subprocess.Popen[str], sig: signal.Signals = signal.SIGTERM) -> str:
    proc.send_signal(sig)
    try:
        _, log = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return log


def message_ids(box: Mailbox) -> dict[str, set[str]]:
    with box.lock:
        ids: dict[str, set[str]] = {}
        for rcpt, message in box.received:
            ids.setdefault(rcpt, set()).add(str(message["Message-ID"]))
    return ids


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_stopped_mid_send_and_started_again_everyone_gets_it_once(
    tmp_path: Path, smtp_box: Mailbox, sig: signal.Signals
) -> None:
    config, fire_at = service_site(tmp_path, smtp_box)
    smtp_box.delay = 0.002  # a send of a few seconds, so the signal lands in the middle
    proc = start(config)
    wait_until(lambda: len(smtp_box.received) >= 300, proc)
    assert datetime.now(UTC) >= fire_at.astimezone(UTC)  # it waited for its time
    log = stop(proc, sig)
    if sig == signal.SIGTERM:
        assert proc.returncode == 0 and "SIGTERM" in log and "Traceback" not in log
    at_stop = len(smtp_box.received)
    assert at_stop < len(READERS), "the send finished before the signal"

    proc = start(config)  # the restart finds the week unfinished and finishes it
    wait_until(lambda: len(set(smtp_box.recipients())) >= len(READERS), proc)
    time.sleep(1.5)  # room for a wrong second copy to show up
    log = stop(proc)
    assert "Traceback" not in log

    copies = Counter(smtp_box.recipients())
    assert sorted(copies) == READERS  # nobody lost
    extra = sum(n - 1 for n in copies.values())
    if sig == signal.SIGTERM:
        assert extra == 0  # a clean stop leaves nothing in flight
    else:
        assert extra <= CONNECTIONS  # the messages in flight at the kill: one per connection at most
    ids = message_ids(smtp_box)
    assert all(len(found) == 1 for found in ids.values())  # a copy sent twice is the same message


def test_a_server_deferring_one_in_ten_for_a_while_still_delivers_everyone_once(
    tmp_path: Path, smtp_box: Mailbox
) -> None:
    config, _ = service_site(tmp_path, smtp_box)
    smtp_box.defer_rate = 0.1
    proc = start(config)
    wait_until(lambda: smtp_box.deferred >= 150, proc)
    smtp_box.defer_rate = 0  # the server recovers; the service retries on its tick
    wait_until(lambda: len(set(smtp_box.recipients())) >= len(READERS), proc)
    time.sleep(1.5)
    log = stop(proc)
    assert "Traceback" not in log
    copies = Counter(smtp_box.recipients())
    assert sorted(copies) == READERS and set(copies.values()) == {1}
    assert smtp_box.deferred >= 150
