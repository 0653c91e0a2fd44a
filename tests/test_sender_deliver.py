"""deliver() end to end: real SMTP servers, a real ledger, an injected clock."""

from __future__ import annotations

import email
import email.policy
import mailbox
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from digest.config import DeliveryPolicy, OutputSettings, Settings, SmtpSettings
from digest.errors import DeliverabilityError
from digest.models import Site, State, Subscriber
from digest.records import DeliveryReport
from digest.sender.deliver import STOP_REQUESTED, deliver
from digest.sender.ledger import REMOVED, Ledger
from digest.sender.outcome import SendResult
from digest.sender.suppressions import Suppressions
from digest.sender.transports import MaildirTransport, SmtpTransport, Transport
from tests import crash_driver
from tests.support_postgres import ledger, ledger_url
from tests.support_smtp import (
    AiosmtpdStore,
    FaultHandler,
    MemoryHandler,
    SimpleFactory,
    Store,
    copies,
    fault_server,
    smtp_store,
)

__all__ = ["fault_server", "ledger", "ledger_url", "smtp_store"]  # fixtures

ROOT = Path(__file__).resolve().parents[1]
ISSUE = "2024-W10"
START_AT = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)


class FakeClock:
    """The injected clock: time moves only when someone sleeps or the test says so."""

    def __init__(self, now_at: datetime = START_AT) -> None:
        self.now_at = now_at
        self.slept: list[float] = []
        self.lock = threading.Lock()

    def __call__(self) -> datetime:
        return self.now_at

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.slept.append(seconds)
            self.now_at += timedelta(seconds=seconds)

    def advance(self, **delta: float) -> None:
        self.now_at += timedelta(**delta)


def settings_for(host: str = "127.0.0.1", port: int = 25, **knobs: object) -> Settings:
    """Settings for SMTP to host:port; keys of SmtpSettings and of DeliveryPolicy among `knobs` go to each."""
    site = Site("Test", "http://localhost/", Path("."), (), "UTC", "/:title/")
    settings = Settings(site=site, output=OutputSettings(dir=Path("."), url="http://localhost/newsletter/"))
    policy = {k: v for k, v in knobs.items() if k in DeliveryPolicy.__dataclass_fields__}
    values = {"host": host, "port": port, "mode": "plain", "timeout": 5.0}
    values.update({k: v for k, v in knobs.items() if k not in policy})
    return replace(settings, smtp=SmtpSettings(**values), delivery=DeliveryPolicy(**policy))  # type: ignore[arg-type]


def smtp_to(store: Store, **smtp: object) -> tuple[Settings, Callable[[], Transport]]:
    settings = settings_for(store.host, store.port, **smtp)
    return settings, lambda: SmtpTransport(settings.smtp, local_hostname="localhost")


def people(n: int, prefix: str = "p") -> list[Subscriber]:
    return [Subscriber(f"{prefix}{i:03}@example.com", name="김민지" if i % 3 == 0 else "") for i in range(n)]


def run(store: Store, ledger: Ledger, subs: list[Subscriber], clock: FakeClock, **kwargs: Any) -> DeliveryReport:
    """deliver() of the test issue through SMTP; SmtpSettings and DeliveryPolicy fields among kwargs go there."""
    fields = SmtpSettings.__dataclass_fields__.keys() | DeliveryPolicy.__dataclass_fields__.keys()
    knobs = {k: kwargs.pop(k) for k in list(kwargs) if k in fields}
    settings, transports = smtp_to(store, **knobs)
    factory = SimpleFactory(ISSUE)
    return deliver(
        factory, subs, ledger, transports, settings.delivery, clock, issue_id=ISSUE, sleep=clock.sleep, **kwargs
    )


def test_every_subscriber_gets_exactly_one_copy_and_a_rerun_sends_nothing(smtp_store: Store, ledger: Ledger) -> None:
    subs = people(40)
    seen: list[tuple[int, int]] = []
    report = run(smtp_store, ledger, subs, FakeClock(), progress=lambda done, total: seen.append((done, total)))
    assert (report.sent, report.deferred, report.failed, report.exit_code) == (40, 0, 0, 0)
    assert copies(smtp_store) == {s.email: 1 for s in subs}
    assert sorted(seen)[-1] == (40, 40)
    for received in smtp_store.messages():
        msg = email.message_from_bytes(received.data, policy=email.policy.default)
        assert msg["Message-ID"] == f"<{ISSUE}.{received.recipients[0].replace('@', '.')}@digest.test>"
    again = run(smtp_store, ledger, subs, FakeClock())
    assert (again.sent, again.exit_code) == (0, 0)
    assert len(smtp_store.messages()) == 40
    row = ledger.deliveries(ISSUE)[0]
    assert (row.state, row.attempts) == ("sent", 1) and row.reply.startswith("250") and row.message_id


def test_faults_deferred_then_retried_failures_kept_with_their_reply(
    fault_server: AiosmtpdStore, ledger: Ledger
) -> None:
    subs = people(20) + [Subscriber(f"{kind}@example.com") for kind in ("busy", "closing", "drop", "reject-1")]
    clock = FakeClock()
    first = run(fault_server, ledger, subs, clock, max_attempts=3)
    assert (first.sent, first.deferred, first.failed, first.exit_code) == (20, 3, 1, 3)
    failed = {f.recipient: f for f in first.failures}
    assert failed["reject-1@example.com"].state == "failed"
    assert "550 5.1.1" in failed["reject-1@example.com"].reply
    assert "451 4.3.0" in failed["busy@example.com"].reply and failed["busy@example.com"].state == "deferred"
    assert failed["drop@example.com"].reply.startswith("connection error")
    early = run(fault_server, ledger, subs, clock)  # nothing is due yet
    assert (early.sent, early.exit_code) == (0, 3)  # three rows still wait for their retry
    clock.advance(hours=1)
    second = run(fault_server, ledger, subs, clock)
    assert (second.sent, second.deferred, second.failed) == (3, 0, 0)
    # the 550 stays failed (never retried), but it is an earlier run's: this run leaves nothing to do
    assert (second.exit_code, second.earlier_failed) == (0, 1)
    expected = {s.email: 1 for s in subs if not s.email.startswith("reject")}
    assert copies(fault_server) == expected


def test_skipped_inactive_suppressed_and_removed_people_get_nothing(smtp_store: Store, ledger: Ledger) -> None:
    subs = people(6) + [Subscriber("asleep@example.com", active=False), Subscriber("Gone@Example.com")]
    Suppressions(ledger.store).add("gone@example.com", START_AT, "one-click")
    clock = FakeClock()
    report = run(smtp_store, ledger, subs[:5] + subs[6:], clock, skipped={"p001@example.com": "no matching entries"})
    assert report.sent == 4
    run(smtp_store, ledger, subs[2:], clock)  # p000 and p001 left the list; p005 joined
    got = set(copies(smtp_store))
    assert got == {"p000@example.com", "p002@example.com", "p003@example.com", "p004@example.com", "p005@example.com"}
    reasons = {d.recipient: d.reply for d in ledger.deliveries(ISSUE) if d.state == "skipped"}
    assert reasons == {
        "asleep@example.com": "inactive",
        "gone@example.com": "unsubscribed: one-click",
        "p001@example.com": REMOVED,
    }


def test_a_reader_who_unsubscribes_during_the_send_is_not_sent_to(
    smtp_store: Store, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Claimed rows are checked against the suppressions again while the send runs (at most once a second;
    here at every message): a one-click unsubscribe in the middle of a long send is honoured for it."""
    monkeypatch.setattr(sys.modules["digest.sender.deliver"], "RECHECK_SECONDS", 0.0)
    subs = people(8)

    class UnsubscribeMidway(SimpleFactory):
        def build(self, subscriber: Subscriber) -> Any:
            if subscriber.email == "p002@example.com":  # p000 and p001 are out: p005 clicks the link now
                Suppressions(ledger.store).add("p005@example.com", START_AT, "one-click")
            return super().build(subscriber)

    settings, transports = smtp_to(smtp_store)
    clock = FakeClock()
    report = deliver(
        UnsubscribeMidway(ISSUE), subs, ledger, transports, replace(settings.delivery, connections=1), clock,
        issue_id=ISSUE, sleep=clock.sleep,
    )  # fmt: skip
    assert report.sent == 7
    assert "p005@example.com" not in copies(smtp_store) and len(copies(smtp_store)) == 7
    rows = {d.recipient: (d.state, d.reply) for d in ledger.deliveries(ISSUE)}
    assert rows["p005@example.com"] == ("skipped", "unsubscribed")


def test_the_error_budget_stops_the_run_and_hands_back_the_rest(fault_server: AiosmtpdStore, ledger: Ledger) -> None:
    subs = [Subscriber(f"reject-{i:02}@example.com") for i in range(30)]
    service_stop = threading.Event()  # what the weekly service passes: the run's end must not set it
    report = run(fault_server, ledger, subs, FakeClock(), error_budget=5, connections=1, stop=service_stop)
    assert not service_stop.is_set()
    assert report.stopped.startswith("error budget: 5") and "550" in report.stopped
    assert report.failed == 5 and report.exit_code == 3
    status = ledger.status(ISSUE)
    assert (status.counts["failed"], status.counts["pending"], status.counts["sending"]) == (5, 25, 0)


@pytest.mark.parametrize(("local", "code"), [("unauth", "5.7.26"), ("msunauth", "5.7.515")])
def test_an_unauthenticated_refusal_stops_the_run_and_fails_nobody(
    fault_server: AiosmtpdStore, ledger: Ledger, local: str, code: str
) -> None:
    # rows are claimed in address order: five before the refusals, twenty after
    subs = people(5, "a") + [Subscriber(f"{local}-{i}@example.com") for i in range(3)] + people(20, "z")
    with pytest.raises(DeliverabilityError, match=re.escape(code)) as raised:
        run(fault_server, ledger, subs, FakeClock(), connections=1, error_budget=50)
    assert "fix SPF, DKIM and DMARC" in str(raised.value) and "\n" not in str(raised.value)
    status = ledger.status(ISSUE)
    assert (status.counts["sent"], status.counts["failed"], status.counts["sending"]) == (5, 0, 0)
    assert status.counts["pending"] == len(subs) - 5
    # fixed (the server now accepts): the next run sends the rest, each once
    assert isinstance(fault_server.handler, FaultHandler)
    fault_server.handler.times = 0
    report = run(fault_server, ledger, subs, FakeClock(START_AT + timedelta(hours=1)), connections=3)
    assert report.sent == len(subs) - 5 and report.failed == 0
    assert set(copies(fault_server).values()) == {1} and len(copies(fault_server)) == len(subs)


def test_stop_flag_finishes_the_message_in_flight_and_leaves_no_claims(smtp_store: Store, ledger: Ledger) -> None:
    stop = threading.Event()
    subs = people(30)

    def progress(done: int, total: int) -> None:
        if done >= 5:
            stop.set()

    report = run(smtp_store, ledger, subs, FakeClock(), progress=progress, stop=stop, connections=2)
    assert report.stopped == STOP_REQUESTED and report.exit_code == 3
    assert 5 <= report.sent < 30
    status = ledger.status(ISSUE)
    assert status.counts["sending"] == 0 and status.counts["sent"] == report.sent
    assert len(smtp_store.messages()) == report.sent
    rest = run(smtp_store, ledger, subs, FakeClock())
    assert rest.sent == 30 - report.sent and copies(smtp_store) == {s.email: 1 for s in subs}


def test_two_runs_at_once_send_each_subscriber_once(smtp_store: Store, ledger_url: str) -> None:
    subs = people(120)
    reports = []

    def one() -> None:
        mine = Ledger(ledger_url)
        reports.append(run(smtp_store, mine, subs, FakeClock(), connections=3, batch=5))
        mine.close()

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(reports) == 2 and sum(r.sent for r in reports) == 120
    assert copies(smtp_store) == {s.email: 1 for s in subs}
    # the one that finished first saw the other's claims still sending: not work for a person, exit 0
    assert [r.exit_code for r in reports] == [0, 0]


@pytest.mark.parametrize(
    ("per_second", "per_hour", "domains", "expected_slept"),
    [
        (5.0, 0, (), 3.0),  # 5 in the first second, then 5 more in each of the next three
        (0.0, 10, (), 3600.0),  # the hour's 10 at once, the next 10 an hour later
        (0.0, 3600, (), 0.0),
        (0.0, 0, (), 0.0),
        (0.0, 0, (("example.com", 4.0),), 4.0),  # everyone is at example.com: its own limit paces them
        (0.0, 0, (("gmail.com", 1.0),), 0.0),  # a limit of another domain changes nothing
    ],
)
def test_rate_limits_wait_on_the_injected_clock(
    smtp_store: Store,
    ledger: Ledger,
    per_second: float,
    per_hour: int,
    domains: tuple[tuple[str, float], ...],
    expected_slept: float,
) -> None:
    clock = FakeClock()
    report = run(
        smtp_store,
        ledger,
        people(20),
        clock,
        rate_per_second=per_second,
        rate_per_hour=per_hour,
        domain_rate_per_second=domains,
        connections=1,
    )
    assert report.sent == 20
    assert sum(clock.slept) == pytest.approx(expected_slept, abs=0.01)
    assert report.elapsed == pytest.approx(sum(clock.slept))


def test_dry_run_builds_everything_and_writes_nothing(ledger: Ledger) -> None:
    factory = SimpleFactory(ISSUE)
    subs = people(7) + [Subscriber("asleep@example.com", active=False)]
    settings = settings_for()

    def refuse() -> Transport:
        raise AssertionError("a dry run opens no transport")

    report = deliver(factory, subs, ledger, refuse, settings.delivery, FakeClock(), issue_id=ISSUE, dry_run=True)
    assert (report.dry_run, report.sent, report.skipped, factory.built) == (True, 7, 1, 7)
    assert ledger.deliveries(ISSUE) == []

    # a suppressed address is skipped, not built; progress counts what is built out of what will be
    Suppressions(ledger.store).add(subs[2].email.upper(), START_AT, "one-click")
    steps: list[tuple[int, int]] = []
    again = deliver(
        factory, subs, ledger, refuse, settings.delivery, FakeClock(), issue_id=ISSUE, dry_run=True,
        progress=lambda done, total: steps.append((done, total)),
    )  # fmt: skip
    assert (again.sent, again.skipped, factory.built) == (6, 2, 13)
    assert steps == [(n, 6) for n in range(1, 7)]
    assert ledger.deliveries(ISSUE) == []


def test_maildir_delivery_parses_with_mailbox_and_email(tmp_path: Path, ledger: Ledger) -> None:
    box = tmp_path / "outbox"
    subs = people(5)
    report = deliver(
        SimpleFactory(ISSUE), subs, ledger, lambda: MaildirTransport(box), DeliveryPolicy(), FakeClock(), issue_id=ISSUE
    )
    assert report.sent == 5
    parsed = [email.message_from_bytes(m.as_bytes(), policy=email.policy.default) for m in mailbox.Maildir(box)]
    assert sorted(str(m["To"]).split("<")[-1].rstrip(">") for m in parsed) == [s.email for s in subs]
    assert all("이번 주 소식" in m.get_content() for m in parsed)  # type: ignore[attr-defined]


@pytest.mark.slow
# "after-lease": each rerun's clock is past the previous run's lease; "immediately": the rerun comes at
# once and finds the killed process's rows through its dead pid (Ledger.release_dead).
@pytest.mark.parametrize("lease", [11 * 60, 0], ids=["after-lease", "immediately"])
def test_sigkill_at_random_moments_then_rerun_misses_nobody(smtp_store: Store, tmp_path: Path, lease: int) -> None:
    if not isinstance(smtp_store, AiosmtpdStore):
        pytest.skip("the crash test counts copies in the in-process server")
    count, bound = 400, crash_driver.CONNECTIONS  # one message in flight per connection
    url = f"sqlite:///{tmp_path / 'crash.sqlite3'}"
    Ledger(url).close()
    rng = random.Random(7)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def start(step: int) -> subprocess.Popen[bytes]:
        args = [sys.executable, "-m", "tests.crash_driver", url, str(smtp_store.port), str(count), str(step * lease)]
        return subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    kills = 0
    for step in range(3):
        before = len(smtp_store.messages())
        proc = start(step)
        deadline = time.monotonic() + 10
        # kill after a random number of new messages arrived, i.e. in the middle of sending
        target = before + rng.randint(20, 90)
        while len(smtp_store.messages()) < target and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 0.05))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=10)
    final = start(3)
    out, err = final.communicate(timeout=60)
    assert final.returncode == 0, err.decode()
    got = copies(smtp_store)
    assert [p for p in (f"p{i:04}@example.com" for i in range(count)) if p not in got] == []
    duplicates = sum(n - 1 for n in got.values())
    assert kills >= 1
    assert duplicates <= kills * bound, (duplicates, kills)


def test_rows_of_a_sender_on_a_machine_that_died_are_sent_after_its_lease(smtp_store: Store, ledger: Ledger) -> None:
    subs = people(30)
    clock = FakeClock()
    ledger.plan(ISSUE, [s.email for s in subs], {}, clock())
    # a sender on another machine claimed ten rows, then its machine died (nobody renews the claim)
    held = ledger.claim(ISSUE, "elsewhere:4242:abcdef/0", 10, clock())
    report = run(smtp_store, ledger, subs, clock)
    assert report.sent == 30 and report.exit_code == 0  # it waited for the lease and sent those too
    assert copies(smtp_store) == {s.email: 1 for s in subs}
    assert 600 <= sum(clock.slept) < 600 + 6  # the default lease, polled every few seconds
    assert {d.recipient for d in ledger.deliveries(ISSUE) if d.state == "sent"} >= set(held)


def test_a_live_sender_elsewhere_is_waited_for_not_doubled(smtp_store: Store, ledger: Ledger) -> None:
    subs = people(12)
    clock = FakeClock()
    ledger.plan(ISSUE, [s.email for s in subs], {}, clock())
    held = ledger.claim(ISSUE, "elsewhere:4242:abcdef/0", 4, clock())
    polls = []

    def other_sender_finishes(seconds: float) -> None:  # the other machine sends its four meanwhile
        clock.sleep(seconds)
        polls.append(seconds)
        if len(polls) == 3:
            ledger.record_many(ISSUE, [(r, SendResult("sent", 250, "250 ok", "<x@y>")) for r in held], clock())

    report = deliver(
        SimpleFactory(ISSUE),
        subs,
        ledger,
        lambda: SmtpTransport(settings_for(smtp_store.host, smtp_store.port).smtp, local_hostname="localhost"),
        DeliveryPolicy(),
        clock,
        issue_id=ISSUE,
        sleep=other_sender_finishes,
    )
    assert report.sent == 8 and len(polls) == 3 and report.exit_code == 0
    assert set(copies(smtp_store)) == {s.email for s in subs} - set(held)


@pytest.mark.parametrize(
    ("subscribers", "connections", "first", "last", "claims"), [(200, 2, 50, 10, 20), (5000, 4, 500, 10, 50)]
)
def test_claims_shrink_as_the_issue_nears_its_end(
    tmp_path: Path, ledger: Ledger, subscribers: int, connections: int, first: int, last: int, claims: int
) -> None:
    """Up to 500 rows a claim (fewer claims, each a transaction), a share of what is left for each of twice
    the connections, and no fewer than 10: the last workers are not left with long tails."""
    asked: list[int] = []
    claim = ledger.claim

    def recording_claim(issue_id: str, worker: str, limit: int, now_at: datetime) -> list[str]:
        asked.append(limit)
        return claim(issue_id, worker, limit, now_at)

    ledger.claim = recording_claim  # type: ignore[method-assign]
    subs = people(subscribers)
    policy = DeliveryPolicy(connections=connections)
    clock = FakeClock()
    report = deliver(SimpleFactory(ISSUE), subs, ledger, lambda: MaildirTransport(tmp_path / "box"), policy, clock,
                     issue_id=ISSUE, sleep=clock.sleep)  # fmt: skip
    assert report.sent == subscribers
    assert max(asked) == first and min(asked) == last
    assert len(asked) < claims  # claims of 100 each would have taken `claims` (5000) or more


class _Takeover(MemoryHandler):
    """At the `at`-th message the sender stalls past its lease (a paused machine: its clock jumps) and
    another sender takes the rows it claimed and sends them."""

    def __init__(self, at: int, takeover: Callable[[], None], *, pipelining: bool) -> None:
        super().__init__(pipelining=pipelining)
        self.at, self.takeover = at, takeover

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        reply = await super().handle_DATA(server, session, envelope)
        if len(self.received) == self.at:
            self.takeover()
        return reply


@pytest.mark.parametrize("pipelining", [False, True], ids=["lockstep", "pipelining"])
def test_a_sender_stalled_past_its_lease_leaves_the_rows_another_took(ledger_url: str, pipelining: bool) -> None:
    subs = people(40)
    clock = FakeClock()
    ledger = Ledger(ledger_url)
    other = Ledger(ledger_url)
    taken: list[str] = []

    def takeover() -> None:
        clock.now_at += ledger.lease + timedelta(minutes=1)
        taken.extend(other.claim(ISSUE, "elsewhere:1:abc/0", 1000, clock()))
        other.record_many(ISSUE, [(r, SendResult(State.SENT, 250, "250 ok", f"<{r}>")) for r in taken], clock())

    store = AiosmtpdStore(_Takeover(10, takeover, pipelining=pipelining)).start()
    try:
        report = run(store, ledger, subs, clock, connections=1)
    finally:
        store.stop()
        ledger.close()
        other.close()
    got = copies(store)
    # the other sender took every row this one had not recorded: the 30 unsent and the one in flight
    assert len(taken) == len(subs) - 10 + 1
    # this one sent none of them after the stall: both have only the message in flight (1 connection)
    assert len([r for r in got if r in taken]) == 1
    assert sum(got.values()) == 10 and report.sent == 10
