"""deliver(): every planned recipient of an issue gets one message, recorded in the ledger.

Workers (`policy.connections` threads, each with its own transport connection) claim batches of rows,
build each message, send it and hand its outcome to the recorder, which commits the outcomes of all
workers a group at a time (recorder.py).

The in-flight bound: a message is "in flight" from the moment the server may have accepted it (SMTP's
final dot, the Maildir rename) until its outcome is committed. A worker passes that point for the next
message only once its previous outcome is committed (the transport calls the worker's gate just before
it), so each connection has at most one message in flight: a SIGKILL leaves at most `connections`
recipients (4 with the defaults) who got the message while the ledger still says `sending`; a later run
reclaims those rows (at once on the same machine, after the lease elsewhere) and sends them again: those
are the only possible duplicates. Rows claimed but not yet sent are never duplicates. A clean stop (stop
flag, error budget) commits every outcome and hands unsent claims back as pending, so it leaves nothing
in flight.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from digest.config import DeliveryPolicy
from digest.errors import DeliverabilityError, DeliveryError, DigestError, LedgerError
from digest.models import OutgoingMessage, State, Subscriber
from digest.records import DeliveryReport
from digest.sender.journal import Journal
from digest.sender.ledger import Ledger
from digest.sender.outcome import DEFERRED, FAILED, SENT, SendResult
from digest.sender.ratelimit import RateLimiter
from digest.sender.recorder import Recorder
from digest.sender.transports import Transport
from digest.text import address_key

LOG = logging.getLogger("digest.sender")
STOP_REQUESTED = "stop requested"
SMALLEST_CLAIM = 10
RECHECK_SECONDS = 1.0  # how often a worker asks whether a claimed reader left meanwhile
INACTIVE = "inactive"


class MessageBuilder(Protocol):
    def build(self, subscriber: Subscriber) -> OutgoingMessage: ...


Clock = Callable[[], datetime]
Progress = Callable[[int, int], None]  # (messages handled so far, messages to handle in this run)


@dataclass
class _Run:
    issue_id: str
    factory: MessageBuilder
    ledger: Ledger
    transports: Callable[[], Transport]
    by_key: Mapping[str, Subscriber]
    clock: Clock
    limiter: RateLimiter
    stop: threading.Event
    progress: Progress | None
    total: int
    batch: int  # the most rows one claim takes
    connections: int
    error_budget: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    counts: dict[str, int] = field(default_factory=lambda: {SENT: 0, DEFERRED: 0, FAILED: 0})
    consecutive: int = 0
    stopped: str = ""
    errors: list[BaseException] = field(default_factory=list)
    opened: int = 0
    fatal: BaseException | None = None  # what stopped the run (a transport that refuses, a failing database)
    recorder: Recorder = field(init=False)  # each round of workers has its own
    halted: threading.Event = field(default_factory=threading.Event)  # set by halt(): this run only

    def halt(self, reason: str) -> None:
        """Stop this run's workers. Never the caller's `stop`: the weekly service passes its own, and a
        run that ends on an error (the database gone, the error budget) must leave the service running."""
        with self.lock:
            if not self.stopped:
                self.stopped = reason
        self.halted.set()

    def stopping(self) -> bool:
        return self.halted.is_set() or self.stop.is_set()

    def fail(self, error: BaseException) -> None:
        """A worker cannot go on: keep the error (reported once, not per thread) and stop the others; the
        run then ends with it (the ledger keeps what was done, a rerun resumes)."""
        with self.lock:
            self.errors.append(error)
            if self.fatal is None:
                self.fatal = error
        self.halt(str(error) if isinstance(error, DigestError) else f"internal error: {error!r}")

    def claim_size(self) -> int:
        """Rows a worker claims next: up to `batch`, shrinking with the work left (a share of it for each
        of twice the connections), so the last claims are small and no worker is left with a long tail
        while the others (here or on other hosts) have nothing. A claim is a transaction: a claim of
        500 cost 15 µs of CPU a row on SQLite, one of 100 35 µs."""
        with self.lock:
            left = self.total - sum(self.counts.values())
        return min(self.batch, max(SMALLEST_CLAIM, math.ceil(left / (2 * self.connections))))

    def count(self, result: SendResult) -> None:
        with self.lock:
            self.counts[result.status] += 1
            done = sum(self.counts.values())
            self.consecutive = 0 if result.ok else self.consecutive + 1
            over = self.consecutive >= self.error_budget
        if over:
            self.halt(f"error budget: {self.error_budget} messages in a row not sent (last: {result.reply})")
        if self.progress is not None:
            self.progress(done, self.total)


class _Worker:
    """One thread: one transport connection, one claimed batch at a time; each outcome goes to the
    recorder, and the next message passes the gate (its predecessor committed) before its point of no
    return."""

    def __init__(self, run: _Run, name: str) -> None:
        self.run = run
        self.name = name
        self.queue: deque[str] = deque()
        self.gate = run.recorder.gate(name)
        self.renewed_at = datetime.min.replace(tzinfo=UTC)
        self.checked_at = time.monotonic()  # a claim checks the suppressions itself

    def __call__(self) -> None:
        run = self.run
        transport = run.transports()
        try:
            transport.open()
        except DeliveryError as exc:
            with run.lock:
                run.errors.append(exc)
            return
        with run.lock:
            run.opened += 1
        try:
            self.renewed_at = run.clock()
            while not run.stopping():
                self._flush()  # before claiming: a claim may take back stale rows, never our unrecorded ones
                self.queue.extend(run.ledger.claim(run.issue_id, self.name, run.claim_size(), run.clock()))
                self.checked_at = time.monotonic()
                if not self.queue:
                    break
                self._drain(transport)
        except DigestError as exc:  # the transport or the ledger failed: stop every worker, one error
            run.fail(exc)
        except BaseException as exc:
            run.fail(exc)
        finally:
            try:
                self._flush()
                if self.queue:
                    run.ledger.release(run.issue_id, self.name, list(self.queue), run.clock())
            except DigestError as exc:  # the database went away: the lease hands the rows back later
                run.fail(exc)
            finally:
                transport.close()

    def _drain(self, transport: Transport) -> None:
        run = self.run
        upcoming: OutgoingMessage | None = None  # built for self.queue[0] and handed to the transport as `then`
        upcoming_for = ""  # the row it was built for (a renewal may drop that row from the queue)
        while self.queue and not run.stopping():
            self._renew()  # before the pick: a renewal may drop rows from the queue
            self._recheck()  # so may an unsubscribe since the claim
            # the first claimed recipient whose limits allow a start now (another domain's, when one
            # domain's window is full)
            index = run.limiter.pick(self.queue, run.stopping, self._renew)
            if index is None:
                continue  # stopping, or every row went to another sender while waiting
            recipient = self.queue[index]
            subscriber = run.by_key.get(recipient)
            if subscriber is None:
                # claimed from a plan made with another list (a concurrent run): not ours to send
                run.ledger.skip(run.issue_id, [recipient], "not in this run's subscriber list", run.clock())
                del self.queue[index]
                continue
            msg = upcoming if upcoming is not None and upcoming_for == recipient else run.factory.build(subscriber)
            # Without rate limits the next message is the next claimed row: the transport may start on it
            # with this one (SMTP pipelining). Limits pick it only when it may start, so not now.
            upcoming_for = self.queue[1] if index == 0 and len(self.queue) > 1 else ""
            following = run.by_key.get(upcoming_for) if upcoming_for else None
            upcoming = run.factory.build(following) if following is not None and not run.limiter.limited else None
            result = transport.send(msg, self.gate, upcoming)
            if result.halt:  # refused, so not delivered: the row goes back as pending with the rest
                run.fail(
                    DeliverabilityError(
                        f"{result.halt}; the run stopped",
                        "fix SPF, DKIM and DMARC of the From domain (`digest doctor` shows what is wrong); "
                        "nothing was marked failed, the next run sends the rest",
                    )
                )
                return
            del self.queue[index]
            run.recorder.submit(self.name, recipient, result)
            run.count(result)

    def _flush(self) -> None:
        """Wait until every outcome of this worker is committed."""
        self.run.recorder.wait(self.name)

    def _recheck(self) -> None:
        """At most every RECHECK_SECONDS: drop the claimed rows of readers who unsubscribed (or bounced)
        since they were claimed. One query a second per connection, whatever the rate; without it a reader
        who leaves during a slow send still gets that week's issue."""
        started = time.monotonic()
        if started - self.checked_at < RECHECK_SECONDS:
            return
        self.checked_at = started
        gone = self.run.ledger.drop_suppressed(self.run.issue_id, self.name, list(self.queue), self.run.clock())
        if gone:
            kept = [r for r in self.queue if r not in gone]
            self.queue.clear()
            self.queue.extend(kept)

    def _renew(self) -> None:
        # a rate-limited worker may hold its claims longer than the lease: keep them; one that stalled past
        # it (a paused machine) drops the rows another sender took meanwhile, and sends only its own
        now_at = self.run.clock()
        if now_at - self.renewed_at >= self.run.ledger.lease / 4:
            self._flush()
            held = self.run.ledger.renew(self.run.issue_id, self.name, now_at)
            if any(r not in held for r in self.queue):
                kept = [r for r in self.queue if r in held]
                self.queue.clear()
                self.queue.extend(kept)
            self.renewed_at = now_at


def _round(run: _Run, connections: int) -> None:
    """One set of worker threads until nothing is due; one error at the end, not one per thread."""
    prefix = worker_prefix()
    journal = _journal(run.ledger.journal, prefix) if run.ledger.journal is not None else None
    try:
        writer = run.ledger.writer()
    except BaseException:
        if journal is not None:
            journal.close(committed=True)
        raise
    run.recorder = Recorder(writer, run.issue_id, run.clock, eager=not run.ledger.is_postgres, journal=journal)
    threads = [
        threading.Thread(target=_Worker(run, f"{prefix}/{n}"), name=f"digest-send-{n}") for n in range(connections)
    ]
    _RUNNING.add(prefix)
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        _RUNNING.discard(prefix)
        try:
            run.recorder.close()
        except DigestError as exc:
            run.fail(exc)
    bugs = [e for e in run.errors if not isinstance(e, DigestError)]
    if bugs:
        raise bugs[0]
    ledger_errors = [e for e in run.errors if isinstance(e, LedgerError)]
    if ledger_errors:  # what was committed stands; the report cannot be read
        raise ledger_errors[0]
    if run.fatal is not None:  # e.g. the provider refuses the sender: one line that says what to fix
        raise run.fatal
    if not run.opened and run.errors:
        raise run.errors[0]
    refused = [e for e in run.errors if isinstance(e, DeliverabilityError)]
    if refused:  # what was sent stands; the rest waits for the fix
        raise refused[0]


def _journal(folder: Path, owner: str) -> Journal | None:
    """The run's outcome journal; without one (a state folder that cannot be written) the run still sends,
    each outcome committed before the worker's next message, as on SQLite: slower, never less safe."""
    try:
        return Journal(folder, owner)
    except LedgerError as exc:
        LOG.warning("%s; this send records each message in the database before the next one (slower)", exc.message)
        return None


def _split(
    subscribers: Sequence[Subscriber], skipped: Mapping[str, str]
) -> tuple[dict[str, Subscriber], dict[str, str]]:
    """Subscribers to send to (by lower-cased address) and the reasons for everyone else."""
    reasons = {address_key(k): v for k, v in skipped.items()}
    wanted: dict[str, Subscriber] = {}
    for sub in subscribers:
        key = sub.key
        if key in reasons or key in wanted:
            continue
        if not sub.active:
            reasons[key] = INACTIVE
        else:
            wanted[key] = sub
    return wanted, reasons


def _issue_of(factory: MessageBuilder, wanted: Mapping[str, Subscriber]) -> str:
    known = getattr(factory, "issue_id", None)
    if isinstance(known, str) and known:
        return known
    if not wanted:
        raise DeliveryError("no subscriber to send to and no issue id", "pass issue_id to deliver()")
    return factory.build(next(iter(wanted.values()))).issue_id


def worker_prefix() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


# Worker-id prefixes of the deliver() runs going on in this process: an id of this process that is not
# among them belongs to a run that ended without releasing its rows (its database went away).
_RUNNING: set[str] = set()


def is_dead_worker(worker: str) -> bool:
    """A worker id of this host whose process is gone (SIGKILL, crash), or of an earlier run in this
    process that is over. Other hosts' workers are never judged here: their rows come back when the
    lease runs out."""
    host, _, rest = worker.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return worker.partition("/")[0] not in _RUNNING
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def deliver(
    factory: MessageBuilder,
    subscribers: Sequence[Subscriber],
    ledger: Ledger,
    transport_factory: Callable[[], Transport],
    policy: DeliveryPolicy,
    clock: Clock,
    *,
    issue_id: str | None = None,
    skipped: Mapping[str, str] | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    sleep: Callable[[float], None] = time.sleep,
    batch: int = 500,
) -> DeliveryReport:
    """Plan the issue in the ledger and send every due row; see the module docstring for guarantees.

    `skipped` maps addresses to the reason they get nothing (e.g. their filter leaves no entries);
    inactive and suppressed subscribers and people no longer in `subscribers` are skipped too.
    `stop` (set it from a SIGTERM handler) makes each worker finish and record its message in flight.
    `issue_id` defaults to the factory's `issue_id` attribute, else to that of a message it builds.
    """
    started_at = clock()
    wanted, reasons = _split(subscribers, skipped or {})
    issue_id = issue_id or _issue_of(factory, wanted)
    if dry_run:
        return _dry_run(factory, wanted, reasons, ledger, issue_id, progress, clock, started_at)
    ledger.plan(issue_id, list(wanted), reasons, started_at)
    ledger.release_dead(issue_id, is_dead_worker, started_at)
    total = ledger.due(issue_id, started_at)
    stop = stop or threading.Event()
    limiter = RateLimiter(
        policy.rate_per_second,
        policy.rate_per_hour,
        lambda: clock().timestamp(),
        sleep,
        domains_per_second=policy.domain_rate_per_second,
        domains_per_hour=policy.domain_rate_per_hour,
    )
    size = max(1, min(batch, math.ceil(total / max(1, policy.connections))))
    if limiter.limited and policy.rate_per_second:
        size = max(1, min(size, math.ceil(policy.rate_per_second * 10)))
    run = _Run(
        issue_id, factory, ledger, transport_factory, wanted, clock, limiter, stop, progress, total,
        size, max(1, policy.connections), policy.error_budget,
    )  # fmt: skip
    # Rounds: send what is due; then, while another sender (another process or machine) holds rows of the
    # issue, wait: its rows are sent by it, or come back when its lease runs out (it died) and are sent by
    # a next round. So the command returns when the issue is done, whoever did it.
    poll = min(5.0, ledger.lease.total_seconds() / 10)
    due = total
    while True:
        if due:
            _round(run, max(1, min(policy.connections, due)))
        if stop.is_set() or run.stopped:
            break
        if not ledger.held(issue_id):
            break
        sleep(poll)
        ledger.release_dead(issue_id, is_dead_worker, clock())
        due = ledger.due(issue_id, clock())
        with run.lock:
            run.total = sum(run.counts.values()) + due
    if stop.is_set() and not run.stopped:
        run.stopped = STOP_REQUESTED
    status = ledger.status(issue_id)
    return DeliveryReport(
        issue_id=issue_id,
        sent=run.counts[SENT],
        deferred=run.counts[DEFERRED],
        failed=run.counts[FAILED],
        skipped=status.counts["skipped"],
        elapsed=(clock() - started_at).total_seconds(),
        stopped=run.stopped,
        outstanding=status.unfinished,
        failures=status.failures,
        status=status,
    )


def _dry_run(
    factory: MessageBuilder,
    wanted: Mapping[str, Subscriber],
    reasons: Mapping[str, str],
    ledger: Ledger,
    issue_id: str,
    progress: Progress | None,
    clock: Clock,
    started_at: datetime,
) -> DeliveryReport:
    """What a real send would do now, with every message it would send built and none sent: the ledger is
    only read, never written. Subscribers who had the issue already count as such, as in a real send."""
    to_send, status = ledger.forecast(issue_id, wanted.keys(), reasons, started_at, is_dead_worker)
    for built, key in enumerate(to_send, 1):
        factory.build(wanted[key])  # every message is made, to show that it can be; none goes anywhere
        if progress is not None:
            progress(built, len(to_send))
    return DeliveryReport(
        issue_id=issue_id,
        sent=len(to_send),
        skipped=status.counts[State.SKIPPED],
        elapsed=(clock() - started_at).total_seconds(),
        dry_run=True,
        outstanding=status.unfinished,
        status=status,
    )
