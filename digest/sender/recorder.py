"""Committing the outcomes of every worker of a run, a group at a time, with no thread of its own.

Workers hand each outcome over and go on at once to the next message; before the point of no return of
that next message (SMTP's final dot, the Maildir rename) the transport calls the worker's gate, which
returns once every earlier outcome of that worker is committed. The first worker to need a commit makes
it, for every outcome handed over so far by all workers (group commit); the others find theirs done.
(A recorder thread of its own was slower: it waited for the interpreter lock behind busy workers.)

So the commit of one message overlaps the building and most of the sending of the next, and at any
moment each connection has at most one message the server may have accepted without the ledger saying
so: the crash bound is one message per connection. A failing database makes every gate raise the same
LedgerError.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

from digest.errors import DigestError, LedgerError
from digest.sender.ledger import OutcomeWriter
from digest.sender.outcome import SendResult


class Recorder:
    def __init__(self, writer: OutcomeWriter, issue_id: str, clock: Callable[[], datetime]) -> None:
        self.writer = writer
        self.issue_id = issue_id
        self.clock = clock
        self._lock = threading.Lock()  # the queue and the counters
        self._commit = threading.Lock()  # one group commit at a time
        self._queue: list[tuple[str, str, SendResult]] = []  # (worker, recipient, outcome)
        self._submitted: dict[str, int] = {}
        self._committed: dict[str, int] = {}
        self._error: DigestError | None = None

    def submit(self, worker: str, recipient: str, outcome: SendResult) -> None:
        with self._lock:
            if self._error is not None:
                raise self._error
            self._queue.append((worker, recipient, outcome))
            self._submitted[worker] = self._submitted.get(worker, 0) + 1

    def _behind(self, worker: str) -> bool:
        with self._lock:
            if self._error is not None:
                raise self._error
            return self._committed.get(worker, 0) < self._submitted.get(worker, 0)

    def wait(self, worker: str) -> None:
        """Return once every outcome `worker` handed over is committed (the gate)."""
        while self._behind(worker):
            with self._commit:
                if not self._behind(worker):  # a commit made while we waited for the lock took ours
                    return
                with self._lock:
                    group, self._queue = self._queue, []
                try:
                    self.writer.write(self.issue_id, [(r, o) for _, r, o in group], self.clock())
                except BaseException as exc:
                    failed = exc if isinstance(exc, DigestError) else LedgerError(f"recording outcomes: {exc!r}")
                    with self._lock:
                        self._error = failed
                    raise failed from exc
                with self._lock:
                    for who, _, _ in group:
                        self._committed[who] = self._committed.get(who, 0) + 1

    def gate(self, worker: str) -> Callable[[], None]:
        return lambda: self.wait(worker)

    def close(self) -> None:
        """Commit whatever is left (a failed database leaves it uncommitted) and free the connection."""
        try:
            with self._lock:
                workers = list(self._submitted)
            for worker in workers:
                if self._error is None:
                    self.wait(worker)
        finally:
            self.writer.close()
