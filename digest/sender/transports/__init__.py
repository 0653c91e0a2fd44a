"""Where finished messages go. Every transport has open() / send(msg) -> SendResult / close(); deliver()
gives each worker thread its own instance from a factory, so an instance is used by one thread at a time.

A transport is one module in this package plus one row in REGISTRY: its name (the value of
`delivery.transport`), whether `auto` picks it for these settings, and how to make one.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from digest.config import Settings, line_in_config
from digest.errors import ConfigError
from digest.models import OutgoingMessage
from digest.sender.outcome import SendResult

if TYPE_CHECKING:
    from .maildir import MaildirTransport
    from .null import NullTransport
    from .smtp import SmtpTransport

# Each transport's module (smtplib and ssl, mailbox) is imported when one is made: the command line checks
# `delivery.transport` on every command, and a preview or a publish sends nothing.
_MODULES = {"MaildirTransport": ".maildir", "NullTransport": ".null", "SmtpTransport": ".smtp"}


def __getattr__(name: str) -> Any:
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_MODULES[name], __name__), name)
    globals()[name] = value
    return value


Gate = Callable[[], None]


def no_gate() -> None:
    pass


class Transport(Protocol):
    """open() / send() / close(). send() calls `gate()` right before the message's point of no return
    (SMTP's final dot, the Maildir rename): the ledger has then recorded every earlier message of this
    connection, so a crash leaves at most one message per connection delivered but unrecorded. An
    exception from the gate aborts the message (it is not delivered) and propagates.

    `then` is the message the caller will send next on this instance, when it knows it: a transport may
    start on it early (SMTP writes its envelope together with this message's final dot), never past its
    own point of no return. A transport that started on a message and is then given another starts over;
    close() then drops what it started."""

    def open(self) -> None: ...

    def send(self, msg: OutgoingMessage, gate: Gate = no_gate, then: OutgoingMessage | None = None) -> SendResult: ...

    def close(self) -> None: ...


TransportFactory = Callable[[], Transport]


def _smtp(settings: Settings) -> TransportFactory:
    # the envelope sender is the From address: parsed once here, not from every message's bytes (and the
    # email package imported here, not by every command that checks which transport the config names)
    from email.utils import parseaddr

    envelope_from = parseaddr(settings.email.sender)[1]
    from .smtp import SmtpTransport

    return lambda: SmtpTransport(settings.smtp, envelope_from=envelope_from)


def _ses(settings: Settings) -> TransportFactory:
    from .ses import SesTransport  # boto3 is imported only when SES is used

    return lambda: SesTransport(settings)


def _maildir(settings: Settings) -> TransportFactory:
    from .maildir import MaildirTransport

    return lambda: MaildirTransport(settings.outbox)


@dataclass(frozen=True)
class TransportKind:
    name: str
    chosen_by_auto: Callable[[Settings], bool]  # `delivery.transport = "auto"` takes the first that says yes
    make: Callable[[Settings], TransportFactory]
    where: Callable[[Settings], str]  # for reports: "SMTP host:port", "Maildir /path"


REGISTRY: tuple[TransportKind, ...] = (
    TransportKind("smtp", lambda s: bool(s.smtp.host), _smtp, lambda s: f"SMTP {s.smtp.host}:{s.smtp.port}"),
    TransportKind("ses", lambda s: bool(s.ses.region), _ses, lambda s: f"Amazon SES {s.ses.region}"),
    TransportKind("maildir", lambda s: True, _maildir, lambda s: f"Maildir {s.outbox}"),
)


def transport_kind(settings: Settings) -> TransportKind:
    name = settings.delivery.transport
    if name == "auto":
        return next(kind for kind in REGISTRY if kind.chosen_by_auto(settings))
    for kind in REGISTRY:
        if kind.name == name:
            return kind
    raise ConfigError(
        f"delivery.transport = {name!r} is not a transport",
        "use auto, " + ", ".join(kind.name for kind in REGISTRY),
        source=str(settings.config_file or ""),
        line=line_in_config(settings.config_file, "delivery", "transport"),
    )


def transport_for(settings: Settings, *, dry_run: bool = False) -> TransportFactory:
    """A factory of the configured transport (a new instance per worker thread)."""
    if dry_run:
        from .null import NullTransport

        return NullTransport
    return transport_kind(settings).make(settings)


def describe(settings: Settings) -> str:
    return transport_kind(settings).where(settings)


def send_test_copy(msg: OutgoingMessage, transport: Transport) -> SendResult:
    """--to ADDRESS: one copy through the transport; the ledger is not involved."""
    transport.open()
    try:
        return transport.send(msg)
    finally:
        transport.close()


__all__ = [
    "REGISTRY",
    "Gate",
    "no_gate",
    "MaildirTransport",
    "NullTransport",
    "SmtpTransport",
    "Transport",
    "TransportFactory",
    "TransportKind",
    "describe",
    "send_test_copy",
    "transport_for",
    "transport_kind",
]
