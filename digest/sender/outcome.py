"""What a transport says about one message, shared by the transports, the ledger and deliver()."""

from __future__ import annotations

from dataclasses import dataclass

from digest.models import State

SENT = State.SENT
DEFERRED = State.DEFERRED
FAILED = State.FAILED

# Relays such as SES answer 454 when a rate is exceeded: all of these mean "later", not "never".
BACK_OFF_CODES = frozenset({421, 450, 451, 452, 454})


@dataclass(frozen=True)
class SendResult:
    status: State  # SENT | DEFERRED | FAILED
    code: int = 0  # the SMTP reply code; 0 when there was no reply (connection lost, timeout)
    reply: str = ""  # the server's reply text, or what went wrong
    message_id: str = ""

    @property
    def ok(self) -> bool:
        return self.status == SENT


def classify(code: int, reply: str | bytes, message_id: str = "") -> SendResult:
    """2xx sent; 4xx (the back-off codes and any other transient reply) deferred; 5xx failed."""
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    text = " ".join(text.split())[:1000]
    if 200 <= code < 300:
        status = SENT
    elif code in BACK_OFF_CODES or 400 <= code < 500 or code == 0:
        status = DEFERRED
    else:
        status = FAILED
    return SendResult(status, code, f"{code} {text}" if code else text, message_id)


def connection_lost(error: BaseException, message_id: str = "") -> SendResult:
    reason = str(error) or type(error).__name__
    return SendResult(DEFERRED, 0, f"connection error: {reason}"[:1000], message_id)
