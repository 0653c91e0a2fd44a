"""--dry-run: every message is built and goes nowhere."""

from __future__ import annotations

from collections.abc import Callable

from digest.models import OutgoingMessage
from digest.sender.outcome import SENT, SendResult


class NullTransport:
    def __init__(self) -> None:
        self.count = 0
        self.bytes = 0

    def open(self) -> None:
        pass

    def send(
        self, msg: OutgoingMessage, gate: Callable[[], None] = lambda: None, then: OutgoingMessage | None = None
    ) -> SendResult:
        gate()
        self.count += 1
        self.bytes += len(msg.data)
        return SendResult(SENT, 250, "dry run: not sent", msg.message_id)

    def close(self) -> None:
        pass
