"""The outcome journal of sends on PostgreSQL: a killed run's sent messages are recorded from this host's
disk before anyone claims them again, and `digest send` SIGKILLed while the database lags behind its
workers sends nobody twice after a rerun."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from digest.errors import LedgerError
from digest.models import State, Subscriber
from digest.sender.deliver import deliver
from digest.sender.journal import SUFFIX, Journal, replay
from digest.sender.ledger import Ledger
from digest.sender.outcome import DEFERRED, SENT, SendResult
from digest.sender.recorder import UNRECORDED
from digest.sender.transports import SmtpTransport
from tests.crash_driver import settings_for
from tests.support_postgres import Proxy
from tests.support_postgres import ledger as ledger  # noqa: F401  (fixture)
from tests.support_postgres import ledger_url as ledger_url  # noqa: F401  (fixture)
from tests.support_smtp import AiosmtpdStore, SimpleFactory, copies
from tests.support_smtp import aiosmtpd_store as aiosmtpd_store  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
PEOPLE = [f"p{n}@example.com" for n in range(5)]

# A run that journals three sent messages and one deferral, says so and waits to be killed.
CHILD = """
import sys, time
from datetime import datetime, timezone
from pathlib import Path
from digest.sender.journal import Journal
from digest.sender.outcome import SendResult, SENT, DEFERRED
journal = Journal(Path(sys.argv[1]), "host:1:abc/run")
at = datetime(2026, 11, 23, 0, 5, tzinfo=timezone.utc)
for n in range(3):
    journal.append("w47", f"p{n}@example.com", SendResult(SENT, 250, f"250 ok {n}", f"<m{n}@x>"), at)
journal.append("w47", "p3@example.com", SendResult(DEFERRED, 451, "451 later"), at)
print("journaled", flush=True)
time.sleep(60)
"""


def _planned(ledger: Ledger) -> None:  # noqa: F811
    ledger.plan("w47", PEOPLE, {}, NOW)
    assert len(ledger.claim("w47", "host:1:abc/0", 10, NOW)) == len(PEOPLE)


def _states(ledger: Ledger) -> dict[str, tuple[str, str]]:  # noqa: F811
    return {d.recipient: (d.state, d.message_id) for d in ledger.deliveries("w47")}


def test_a_killed_runs_journal_is_recorded_once_it_is_dead(ledger: Ledger, tmp_path: Path) -> None:  # noqa: F811
    _planned(ledger)
    folder = tmp_path / "journal"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(folder)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "journaled"
        assert replay(folder, ledger.record_many) == 0  # alive: its lock is held, nothing is taken
        assert {s for s, _ in _states(ledger).values()} == {State.SENDING}
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
    assert replay(folder, ledger.record_many) == 3
    states = _states(ledger)
    assert {r: states[r] for r in PEOPLE[:3]} == {f"p{n}@example.com": (State.SENT, f"<m{n}@x>") for n in range(3)}
    assert states["p3@example.com"][0] == State.SENDING  # a deferral sent nothing: not journaled
    assert list(folder.glob(f"*{SUFFIX}")) == []
    assert replay(folder, ledger.record_many) == 0  # replayed once


def test_release_dead_replays_before_it_hands_rows_back(ledger_url: str, tmp_path: Path) -> None:  # noqa: F811
    folder = tmp_path / "journal"
    ledger = Ledger(ledger_url, journal=folder)  # noqa: F811
    try:
        _planned(ledger)
        journal = Journal(folder, "host:1:abc")
        journal.append("w47", "p1@example.com", SendResult(SENT, 250, "250 ok", "<m1@x>"), NOW)
        journal.close(committed=False)  # the run ended with its database down: the file stays
        assert [p.suffix for p in folder.iterdir()] == [SUFFIX]
        assert ledger.release_dead("w47", lambda worker: True, NOW) == len(PEOPLE) - 1
        states = _states(ledger)
        assert states["p1@example.com"] == (State.SENT, "<m1@x>")
        assert {states[r][0] for r in PEOPLE if r != "p1@example.com"} == {State.PENDING}
        assert list(folder.glob(f"*{SUFFIX}")) == []
    finally:
        ledger.close()


def test_a_run_that_committed_everything_leaves_no_journal(tmp_path: Path) -> None:
    folder = tmp_path / "journal"
    journal = Journal(folder, "h:2:def/x y")
    journal.append("w47", "p0@example.com", SendResult(SENT, 250, "250 ok", "<m0@x>"), NOW)
    journal.append("w47", "p1@example.com", SendResult(DEFERRED, 451, "451 later"), NOW)
    assert journal.path.read_text("utf-8").count("\n") == 1
    journal.close(committed=True)
    assert list(folder.iterdir()) == []


def test_a_line_cut_short_is_skipped_and_the_rest_recorded(tmp_path: Path) -> None:
    folder = tmp_path / "journal"
    journal = Journal(folder, "h:3:abc")
    for n in range(2):
        journal.append("w47", f"p{n}@example.com", SendResult(SENT, 250, "250 ok", f"<m{n}@x>"), NOW)
    journal.close(committed=False)
    with journal.path.open("ab") as handle:
        handle.write(b'["w47", "p9@exam')  # a full disk in the middle of a write
    got: list[tuple[str, list[str], datetime]] = []
    assert replay(folder, lambda issue, results, at: got.append((issue, [r for r, _ in results], at))) == 2
    assert got == [("w47", ["p0@example.com", "p1@example.com"], NOW)]


def test_a_journal_that_cannot_be_written_is_a_one_line_ledger_error(tmp_path: Path) -> None:
    blocked = tmp_path / "state"
    blocked.write_text("a file where the state folder should be\n", "utf-8")
    with pytest.raises(LedgerError) as caught:
        Journal(blocked / "journal", "h:4:abc")
    assert "outcome journal" in caught.value.message and "\n" not in caught.value.message
    assert "state folder" in caught.value.hint


# -- `digest send` itself, on PostgreSQL, killed while its database lags -----------------------------------

COUNT = 200
CONNECTIONS = 2


def _site(tmp_path: Path, database: str, port: int) -> Path:
    site = tmp_path / "site"
    shutil.copytree(ROOT / "examples" / "site", site, ignore=shutil.ignore_patterns("_digest", ".digest"))
    lines = ["subscribers:"] + [f"  - email: reader{i:04}@example.com" for i in range(COUNT)]
    (site / "subscribers.yaml").write_text("\n".join(lines) + "\n", "utf-8")
    config = site / "digest.toml"
    config.write_text(
        config.read_text("utf-8")
        + f'\n[smtp]\nhost = "127.0.0.1"\nport = {port}\nmode = "plain"\n'
        + f"\n[delivery]\nconnections = {CONNECTIONS}\n"
        + f'\n[state]\ndatabase = "{database}"\n',
        "utf-8",
    )
    return site


def _settled(store: AiosmtpdStore, seconds: float, deadline: float) -> int:
    """The count of messages received once it has not moved for `seconds`."""
    count, since = len(store.messages()), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = len(store.messages())
        if now != count:
            count, since = now, time.monotonic()
        elif time.monotonic() - since >= seconds:
            return count
    raise AssertionError("the send never stopped while its database was locked")


@pytest.mark.slow
@pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)
def test_digest_send_killed_while_postgresql_lags_sends_nobody_twice(
    ledger_url: str,
    tmp_path: Path,
    aiosmtpd_store: AiosmtpdStore,  # noqa: F811
) -> None:
    """The database is locked in the middle of a send: the workers go on sending, each until it is
    UNRECORDED messages ahead of the database, and are SIGKILLed there. Every message they sent is in
    the journal only; the rerun records them before it takes the killed run's rows back, so nobody gets
    a second copy (without the replay, every one of them would)."""
    site = _site(tmp_path, ledger_url, aiosmtpd_store.port)
    env = {
        **os.environ,
        "DIGEST_NOW": "2026-11-23T09:00:00+09:00",
        "PYTHONPATH": str(ROOT),
        "XDG_STATE_HOME": str(tmp_path / "xdg"),
    }
    args = [sys.executable, "-m", "digest.cli", "send", "--site", str(site), "--week", "2026-W47", "--json"]
    plain = sa.make_url(ledger_url).set(drivername="postgresql")
    schema = plain.query["options"].split("=", 1)[1]
    locked, release = threading.Event(), threading.Event()

    def hold_lock() -> None:
        dsn = plain.set(query={}).render_as_string(hide_password=False)
        with psycopg.connect(dsn) as conn:
            conn.execute(f'LOCK TABLE "{schema}".deliveries IN EXCLUSIVE MODE')  # reads pass, writes wait
            locked.set()
            release.wait(60)
            conn.rollback()

    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    holder = threading.Thread(target=hold_lock)
    try:
        deadline = time.monotonic() + 60
        while len(aiosmtpd_store.messages()) < 20 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert proc.poll() is None, proc.communicate()[1].decode()
        holder.start()
        assert locked.wait(10)
        at_lock = len(aiosmtpd_store.messages())
        stopped = _settled(aiosmtpd_store, 1.0, time.monotonic() + 30)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        release.set()
        if proc.poll() is None:
            proc.kill()
        if holder.is_alive():
            holder.join(10)
    ahead = stopped - at_lock
    assert 0 < ahead <= CONNECTIONS * (UNRECORDED + 1)  # the workers went on, each a bounded way
    journals = list((tmp_path / "xdg").rglob(f"*{SUFFIX}"))
    assert len(journals) == 1
    final = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert final.returncode == 0, final.stderr
    got = copies(aiosmtpd_store)
    assert set(got) == {f"reader{i:04}@example.com" for i in range(COUNT)}
    assert sum(n - 1 for n in got.values()) <= CONNECTIONS  # at most what was past its gate at the kill
    assert not journals[0].exists()


def test_the_journal_is_private_like_the_state_folder(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "state" / "journal", "h:5:abc")
    journal.close(committed=True)
    assert (tmp_path / "state" / ".gitignore").read_text("utf-8").strip() == "*"
    assert {oct(p.stat().st_mode & 0o777) for p in (tmp_path / "state", tmp_path / "state" / "journal")} == {"0o700"}


def test_a_send_whose_journal_cannot_be_made_still_sends_each_once_and_says_why(
    ledger_url: str,  # noqa: F811
    tmp_path: Path,
    aiosmtpd_store: AiosmtpdStore,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The journal only makes PostgreSQL faster: a state folder where it cannot be written (here a file in
    its place) costs speed, with one warning, never a message."""
    blocked = tmp_path / "state" / "journal"
    blocked.parent.mkdir()
    blocked.write_text("not a folder\n", "utf-8")
    settings = settings_for(aiosmtpd_store.port)
    people = [Subscriber(f"r{n:03}@example.com") for n in range(40)]
    ledger = Ledger(ledger_url, journal=blocked)  # noqa: F811
    try:
        with caplog.at_level(logging.WARNING, logger="digest.sender"):
            report = deliver(
                SimpleFactory("w47"),
                people,
                ledger,
                lambda: SmtpTransport(settings.smtp, local_hostname="localhost"),
                settings.delivery,
                lambda: NOW,
                issue_id="w47",
            )
    finally:
        ledger.close()
    assert report.sent == len(people)
    assert copies(aiosmtpd_store) == {p.email: 1 for p in people}
    warnings = [r.getMessage() for r in caplog.records if r.name == "digest.sender"]
    assert len(warnings) == 1 and "cannot write the outcome journal" in warnings[0], warnings
    assert blocked.read_text("utf-8") == "not a folder\n"


@pytest.mark.slow
@pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)
def test_a_database_lost_mid_send_is_one_line_and_the_rerun_sends_nobody_twice(
    ledger_url: str,  # noqa: F811
    tmp_path: Path,
    aiosmtpd_store: AiosmtpdStore,  # noqa: F811
) -> None:
    url = sa.make_url(ledger_url)
    proxy = Proxy(url.host or "127.0.0.1", url.port or 5432)
    through = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    site = _site(tmp_path, through, aiosmtpd_store.port)
    env = {**os.environ, "DIGEST_NOW": "2026-11-23T09:00:00+09:00", "PYTHONPATH": str(ROOT)}
    env["XDG_STATE_HOME"] = str(tmp_path / "xdg")
    args = [sys.executable, "-m", "digest.cli", "send", "--site", str(site), "--week", "2026-W47"]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while len(aiosmtpd_store.messages()) < 30 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        proxy.cut()
        _out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err
    assert "Traceback" not in err and "state database" in err, err
    assert len([line for line in err.splitlines() if line.strip()]) == 1, err  # the error and what to do
    site_config = site / "digest.toml"
    site_config.write_text(site_config.read_text("utf-8").replace(through, ledger_url), "utf-8")
    again = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    got = copies(aiosmtpd_store)
    assert set(got) == {f"reader{i:04}@example.com" for i in range(COUNT)}
    assert sum(n - 1 for n in got.values()) <= CONNECTIONS


@pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)
def test_check_warns_when_the_journal_of_postgresql_sends_cannot_be_written(
    ledger_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    site = _site(tmp_path, ledger_url, 25)
    state = tmp_path / "state"
    config = site / "digest.toml"
    config.write_text(config.read_text("utf-8") + f'dir = "{state}"\n', "utf-8")
    env = {**os.environ, "DIGEST_NOW": "2026-11-23T09:00:00+09:00", "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-m", "digest.cli", "check", "--site", str(site), "--json"]

    def folders() -> dict[str, str]:
        ran = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
        return next(f for f in json.loads(ran.stdout) if f["check"] == "folders")

    assert folders()["level"] == "ok"
    (state / "journal").rmdir()
    (state / "journal").write_text("in the way\n", "utf-8")
    found = folders()
    assert found["level"] == "warn" and "outcome journal" in found["detail"], found


def test_a_dry_run_and_a_status_count_a_dead_runs_journal_as_sent_and_write_nothing(
    ledger_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    folder = tmp_path / "journal"
    ledger = Ledger(ledger_url, journal=folder)  # noqa: F811
    try:
        _planned(ledger)  # every row claimed by host:1:abc/0, a run that is gone
        journal = Journal(folder, "host:1:abc")
        for n in (0, 1):
            journal.append("w47", f"p{n}@example.com", SendResult(SENT, 250, "250 ok", f"<m{n}@x>"), NOW)
        journal.close(committed=False)
        to_send, status = ledger.forecast("w47", PEOPLE, {}, NOW, lambda worker: True)
        assert sorted(to_send) == PEOPLE[2:]  # the two in the journal are not sent again
        assert status.counts[State.SENT] == len(PEOPLE)  # the status once the send is done
        counts = ledger.status("w47").counts
        assert (counts[State.SENT], counts[State.SENDING]) == (2, 3)
        assert {s for s, _ in _states(ledger).values()} == {State.SENDING}  # nothing written
        assert len(list(folder.glob(f"*{SUFFIX}"))) == 1
        ledger.release_dead("w47", lambda worker: True, NOW)  # what a send does first
        counts = ledger.status("w47").counts
        assert (counts[State.SENT], counts[State.PENDING], counts[State.SENDING]) == (2, 3, 0)
    finally:
        ledger.close()
