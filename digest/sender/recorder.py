"""Committing the outcomes of every worker of a run, a group at a time.

Workers hand each outcome over and go on at once to the next message; before the point of no return of
that next message (SMTP's final dot, the Maildir rename) the transport calls the worker's gate, which
returns once every earlier outcome of that worker is committed (or, with a journal, written to it). So at
any moment each connection has at most one message the server may have accepted without the ledger or the
journal saying so: the crash bound is one message per connection.

A commit takes everything handed over so far (group commit). With `eager` (the SQLite ledger) a committer
thread makes it as soon as there is something, so the commit of one message overlaps the building and the
sending of the next (23 to 30 % more messages/s in paired runs of 10,000); a worker at its gate whose
outcome is still queued commits the group itself rather than wait for that thread to be scheduled. On
PostgreSQL without a journal the same thread made no run faster and some slower (its wake-ups, and its
round trip's interpreter lock, compete with the workers'), so there the first worker at its gate commits.

With a journal (the PostgreSQL ledger, journal.py) each sent outcome is appended to the run's file on
this host as it is handed over, and the committer thread writes the database behind the workers: a gate
lets its worker on while it has at most UNRECORDED outcomes not yet in the database. A SIGKILL then leaves
the same one message per connection unrecorded anywhere (the journal is replayed before a rerun takes the
killed run's rows back); only a host that never comes back leaves up to UNRECORDED more per connection to
be sent again by the others. `digest send` of 10,000 messages of 45 KB, PostgreSQL on 127.0.0.1, 4
connections, in turns with SQLite: 0.59 and 0.61 of SQLite's rate without the journal, about 1.0 with it and
the committer gathering outcomes for GATHER (below).

A failing database makes every gate raise the same LedgerError.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime

from digest.errors import DigestError, LedgerError
from digest.sender.journal import Journal
from digest.sender.ledger import OutcomeWriter
from digest.sender.outcome import SendResult

# With a journal the committer waits this long before it takes a group: every commit is a round trip and
# costs the server CPU that a 2-CPU machine shares with the sender. `digest send` of 10,000 messages, in
# turns with SQLite (its ratio, median of 2 or 3 pairs): no wait 0.73 to 0.80, 5 ms 0.93, 10 ms 0.91,
# 20 ms 1.02, 40 ms 1.02. The workers do not wait for it: at 500 messages/s a connection, 20 ms is 10
# outcomes, within what a gate lets a worker have unrecorded.
GATHER = 0.02  # seconds
UNRECORDED = 16  # outcomes of one worker in the journal but not yet in the database, at most


class Recorder:
    def __init__(
        self,
        writer: OutcomeWriter,
        issue_id: str,
        clock: Callable[[], datetime],
        *,
        eager: bool = True,
        journal: Journal | None = None,
    ) -> None:
        self.writer = writer
        self.journal = journal
        self.ahead = UNRECORDED if journal is not None else 0  # what a gate lets a worker have uncommitted
        self.issue_id = issue_id
        self.clock = clock
        self._lock = threading.Lock()  # the queue and the counters
        self._queued = threading.Condition(self._lock)  # an outcome was handed over, or the end
        self._commit = threading.Lock()  # one group commit at a time
        self._queue: list[tuple[str, str, SendResult]] = []  # (worker, recipient, outcome)
        self._submitted: dict[str, int] = {}
        self._committed: dict[str, int] = {}
        self._error: DigestError | None = None
        self._closing = False
        self._committer: threading.Thread | None = None
        if eager or journal is not None:
            self._committer = threading.Thread(target=self._run, name="digest-commit", daemon=True)
            self._committer.start()

    def submit(self, worker: str, recipient: str, outcome: SendResult) -> None:
        with self._lock:
            if self._error is not None:
                raise self._error
            if self.journal is not None:
                try:
                    self.journal.append(self.issue_id, recipient, outcome, self.clock())
                except DigestError as exc:
                    self._error = exc
                    self._queued.notify_all()
                    raise
            self._queue.append((worker, recipient, outcome))
            self._submitted[worker] = self._submitted.get(worker, 0) + 1
            self._queued.notify()

    def _behind(self, worker: str, allowed: int = 0) -> bool:
        # under self._lock
        if self._error is not None:
            raise self._error
        return self._submitted.get(worker, 0) - self._committed.get(worker, 0) > allowed

    def _run(self) -> None:
        """The committer: a group commit as soon as there is something to commit."""
        while True:
            with self._lock:
                while not self._queue and not self._closing and self._error is None:
                    self._queued.wait()
                if self._closing or self._error is not None:
                    return
            if self.journal is not None:
                time.sleep(GATHER)  # a commit is a round trip: let outcomes gather
            try:
                self._commit_group("")
            except DigestError:  # kept in self._error: every gate raises it
                return

    def _commit_group(self, worker: str, allowed: int = 0) -> None:
        """Commit every queued outcome; for a `worker` at its gate, only if the commit it may have waited
        for did not already take its own (all but `allowed` of them)."""
        with self._commit:
            with self._lock:
                if worker and not self._behind(worker, allowed):
                    return
                if self._error is not None:
                    raise self._error
                group, self._queue = self._queue, []
            if not group:
                return
            try:
                self.writer.write(self.issue_id, [(r, o) for _, r, o in group], self.clock())
            except BaseException as exc:
                failed = exc if isinstance(exc, DigestError) else LedgerError(f"recording outcomes: {exc!r}")
                with self._lock:
                    self._error = failed
                    self._queued.notify_all()
                raise failed from exc
            with self._lock:
                for who, _, _ in group:
                    self._committed[who] = self._committed.get(who, 0) + 1

    def wait(self, worker: str, allowed: int = 0) -> None:
        """Return once every outcome `worker` handed over, but `allowed` of them, is committed."""
        while True:
            with self._lock:
                if not self._behind(worker, allowed):
                    return
            self._commit_group(worker, allowed)

    def gate(self, worker: str) -> Callable[[], None]:
        """What a worker passes before its next point of no return."""
        return lambda: self.wait(worker, self.ahead)

    def close(self) -> None:
        """Commit whatever is left (a failed database leaves it uncommitted) and free the connection."""
        try:
            with self._lock:
                self._closing = True
                self._queued.notify_all()
            if self._committer is not None:
                self._committer.join()
            if self._error is None:
                self._commit_group("")
        finally:
            try:
                self.writer.close()
            finally:
                if self.journal is not None:
                    self.journal.close(committed=self._error is None)
