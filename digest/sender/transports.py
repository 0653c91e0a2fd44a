"""Where finished messages go: an SMTP server, a Maildir folder, or nowhere (--dry-run).

Every transport has open() / send(msg) -> SendResult / close(); deliver() gives each worker thread
its own instance from a factory, so an instance is used by one thread at a time.
"""

from __future__ import annotations

import mailbox
import threading
from pathlib import Path
from typing import Protocol

from digest.errors import DeliveryError
from digest.models import OutgoingMessage
from digest.sender.outcome import DEFERRED, FAILED, SENT, SendResult, classify
from digest.sender.smtp import SmtpTransport

__all__ = [
    "DEFERRED",
    "FAILED",
    "SENT",
    "MaildirTransport",
    "NullTransport",
    "SendResult",
    "SmtpTransport",
    "Transport",
    "classify",
    "send_test_copy",
]


class Transport(Protocol):
    def open(self) -> None: ...

    def send(self, msg: OutgoingMessage) -> SendResult: ...

    def close(self) -> None: ...


class NullTransport:
    """--dry-run: the message was built; it goes nowhere."""

    def __init__(self) -> None:
        self.count = 0
        self.bytes = 0

    def open(self) -> None:
        pass

    def send(self, msg: OutgoingMessage) -> SendResult:
        self.count += 1
        self.bytes += len(msg.data)
        return SendResult(SENT, 250, "dry run: not sent", msg.message_id)

    def close(self) -> None:
        pass


_MAILDIR_LOCKS: dict[Path, threading.Lock] = {}
_LOCKS_LOCK = threading.Lock()


def _lock_for(path: Path) -> threading.Lock:
    with _LOCKS_LOCK:
        return _MAILDIR_LOCKS.setdefault(path, threading.Lock())


class MaildirTransport:
    """One file per message in a Maildir (tmp/new/cur created as needed), readable by mutt or Thunderbird.

    Instances for the same folder share a lock: mailbox.Maildir keeps an in-memory table of contents.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path).resolve()
        self._box: mailbox.Maildir | None = None
        self._lock = _lock_for(self.path)

    def open(self) -> None:
        if self._box is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._box = mailbox.Maildir(self.path, factory=None, create=True)
            except OSError as exc:
                raise DeliveryError(
                    f"cannot create the Maildir outbox {self.path}: {exc.strerror}", "check [outbox] maildir"
                ) from exc

    def send(self, msg: OutgoingMessage) -> SendResult:
        self.open()
        assert self._box is not None
        # Maildir files use the local line ending; SMTP's CRLF would show up as ^M in mutt
        data = msg.data.replace(b"\r\n", b"\n")
        try:
            with self._lock:
                key = self._box.add(data)
        except OSError as exc:
            return SendResult(DEFERRED, 0, f"cannot write to {self.path}: {exc.strerror}", msg.message_id)
        return SendResult(SENT, 250, f"stored as {key}", msg.message_id)

    def close(self) -> None:
        if self._box is not None:
            self._box.close()
            self._box = None


def send_test_copy(msg: OutgoingMessage, transport: Transport) -> SendResult:
    """--to ADDRESS: one copy through the transport; the ledger is not involved."""
    transport.open()
    try:
        return transport.send(msg)
    finally:
        transport.close()
