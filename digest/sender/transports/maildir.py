"""The Maildir outbox: one file per message (tmp/new/cur created as needed), readable by mutt or Thunderbird."""

from __future__ import annotations

import itertools
import mailbox
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from digest.config import private_folder
from digest.errors import DeliveryError
from digest.models import OutgoingMessage
from digest.sender.outcome import DEFERRED, SENT, SendResult

_COUNTER = itertools.count()  # unique names within one process (next() on a count is atomic in CPython)
_MAILDIR_LOCKS: dict[Path, threading.Lock] = {}
_LOCKS_LOCK = threading.Lock()


def _lock_for(path: Path) -> threading.Lock:
    with _LOCKS_LOCK:
        return _MAILDIR_LOCKS.setdefault(path, threading.Lock())


class MaildirTransport:
    """Instances for the same folder share a lock: mailbox.Maildir keeps an in-memory table of contents."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path).resolve()
        self._box: mailbox.Maildir | None = None
        self._lock = _lock_for(self.path)

    @property
    def where(self) -> str:
        return f"Maildir {self.path}"

    def open(self) -> None:
        if self._box is None:
            try:
                # mailbox.Maildir(create=True) makes tmp/new/cur only when the folder itself is new: an
                # existing empty folder, or one a concurrent worker has just made, would lack them
                with self._lock:
                    if not self.path.exists():
                        # every subscriber's address: private, and never picked up by `git add -A`
                        private_folder(self.path)
                    for part in ("tmp", "new", "cur"):
                        (self.path / part).mkdir(parents=True, exist_ok=True)
                    self._box = mailbox.Maildir(self.path, factory=None, create=False)
            except OSError as exc:
                raise DeliveryError(
                    f"cannot create the Maildir outbox {self.path}: {exc.strerror}", "check [outbox] maildir"
                ) from exc

    def send(
        self, msg: OutgoingMessage, gate: Callable[[], None] = lambda: None, then: OutgoingMessage | None = None
    ) -> SendResult:
        self.open()
        # Maildir files use the local line ending; SMTP's CRLF would show up as ^M in mutt
        data = msg.data.replace(b"\r\n", b"\n")
        if msg.envelope_from:  # what a delivering MTA would add: shows the VERP return path in the outbox
            data = b"Return-Path: <" + msg.envelope_from.encode("ascii") + b">\n" + data
        # the Maildir way (as mailbox.Maildir.add): write into tmp/, then rename into new/; the gate sits
        # between the two, so a message is in the outbox only once the earlier ones are recorded
        name = f"{time.time():.6f}.{os.getpid()}_{next(_COUNTER)}.{socket.gethostname()}"
        tmp, final = self.path / "tmp" / name, self.path / "new" / name
        try:
            with open(tmp, "xb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            return SendResult(DEFERRED, 0, f"cannot write to {self.path}: {exc.strerror}", msg.message_id)
        try:
            gate()
            os.rename(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return SendResult(SENT, 250, f"stored as {name}", msg.message_id)

    def close(self) -> None:
        if self._box is not None:
            self._box.close()
            self._box = None
