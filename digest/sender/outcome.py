"""What a transport says about one message, shared by the transports, the ledger and deliver()."""

from __future__ import annotations

import re
from dataclasses import dataclass

from digest.models import State

SENT = State.SENT
DEFERRED = State.DEFERRED
FAILED = State.FAILED

# Relays such as SES answer 454 when a rate is exceeded: all of these mean "later", not "never".
BACK_OFF_CODES = frozenset({421, 450, 451, 452, 454})
# Permanent refusals of mail the receiver cannot authenticate (the enhanced status code, RFC 3463): every
# other message of the run would get the same, so the run stops at the first (nothing is marked failed)
# and says what to fix. Their 4.7.x cousins are deferrals like any 4xx.
UNAUTHENTICATED = {
    "5.7.26": "Gmail refuses mail it cannot authenticate",
    "5.7.515": "Outlook.com refuses mail that does not meet its authentication level",
}
_UNAUTHENTICATED = re.compile(r"(?<![\d.])(" + "|".join(re.escape(c) for c in UNAUTHENTICATED) + r")(?![\d.])")


@dataclass(frozen=True)
class SendResult:
    status: State  # SENT | DEFERRED | FAILED
    code: int = 0  # the SMTP reply code; 0 when there was no reply (connection lost, timeout)
    reply: str = ""  # the server's reply text, or what went wrong
    message_id: str = ""
    halt: str = ""  # why the whole run must stop now (the receiver refuses the sender's authentication)

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
    reply_text = f"{code} {text}" if code else text
    found = _UNAUTHENTICATED.search(text) if status == FAILED else None
    halt = f"{UNAUTHENTICATED[found.group(1)]}: {reply_text[:200]}" if found else ""
    return SendResult(status, code, reply_text, message_id, halt)


def connection_lost(error: BaseException, message_id: str = "") -> SendResult:
    reason = str(error) or type(error).__name__
    return SendResult(DEFERRED, 0, f"connection error: {reason}"[:1000], message_id)
