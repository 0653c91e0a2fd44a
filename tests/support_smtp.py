"""SMTP servers for the delivery tests.

- `smtp_store`: a real aiosmtpd server on 127.0.0.1 (free port, with and without PIPELINING) keeping
  every message (envelope and bytes) in memory; parametrized with a "mailpit" case that talks to Mailpit
  instead when MAILPIT_URL (its HTTP API) and MAILPIT_SMTP (host:port) are set, and is skipped, visibly,
  otherwise.
- `fault_server`: aiosmtpd with a handler whose answers depend on the recipient's local part:
  `reject…` 550 at RCPT, `busy…` 451 and `closing…` 421 after DATA, `unauth…` Gmail's 550 5.7.26 and
  `msunauth…` Outlook.com's 550 5.7.515 after DATA, `drop…` the connection closed in the middle of DATA
  (nothing stored); each fault happens on the first `times` tries only. Each test runs twice: with the
  server advertising PIPELINING (RFC 2920: the client writes commands in groups) and without.
- Simple messages (`make_message`, `SimpleFactory`) so these tests need no templater.
"""

from __future__ import annotations

import email
import email.policy
import os
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Protocol

import pytest
from aiosmtpd.controller import Controller

from digest.config import DeliveryPolicy, Settings, SmtpSettings
from digest.models import OutgoingMessage, Subscriber


@dataclass(frozen=True)
class Received:
    mail_from: str
    recipients: tuple[str, ...]
    data: bytes = field(repr=False)

    def parse(self) -> EmailMessage:
        msg = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        return msg


class Store(Protocol):
    host: str
    port: int

    def messages(self) -> list[Received]: ...

    def clear(self) -> None: ...


def copies(store: Store) -> Counter[str]:
    """How many messages each (lower-cased) recipient got."""
    return Counter(r.lower() for m in store.messages() for r in m.recipients)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- messages ---------------------------------------------------------------------------------------


def make_message(issue_id: str, recipient: str, *, size: int = 0, name: str = "") -> OutgoingMessage:
    """An RFC 5322 message with a deterministic Message-ID; `size` pads the body to about that many bytes."""
    mid = f"<{issue_id}.{recipient.lower().replace('@', '.')}@digest.test>"
    to = f"{name} <{recipient}>" if name else recipient
    head = (
        f"From: Digest <digest@example.com>\r\nTo: {to}\r\nSubject: {issue_id}\r\nMessage-ID: {mid}\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    )
    body = f"이번 주 소식 for {recipient}\r\n.a line starting with a dot\r\n"
    line = "line of padding text for a message of a realistic size, written for these tests\r\n"
    body += line * max(0, (size - len(head) - len(body)) // len(line))
    return OutgoingMessage(issue_id, recipient, mid, (head + body).encode("utf-8"))


class Builder(Protocol):
    """Anything with build(subscriber) -> OutgoingMessage: the shape deliver() needs from MessageFactory."""

    def build(self, subscriber: Subscriber) -> OutgoingMessage: ...


class SimpleFactory:
    def __init__(self, issue_id: str, size: int = 0) -> None:
        self.issue_id = issue_id
        self.size = size
        self.built = 0

    def build(self, subscriber: Subscriber) -> OutgoingMessage:
        self.built += 1
        return make_message(self.issue_id, subscriber.email, size=self.size, name=subscriber.name)


def smtp_settings(settings: Settings, host: str, port: int, **changes: Any) -> Settings:
    from dataclasses import replace

    policy = {k: changes.pop(k) for k in list(changes) if k in DeliveryPolicy.__dataclass_fields__}
    smtp = SmtpSettings(host=host, port=port, mode="plain", timeout=10.0, **changes)
    return replace(settings, smtp=smtp, delivery=replace(settings.delivery, **policy))


# -- aiosmtpd ---------------------------------------------------------------------------------------


class MemoryHandler:
    def __init__(self, *, pipelining: bool = False) -> None:
        self.received: list[Received] = []
        self.lock = threading.Lock()
        # aiosmtpd reads pipelined commands in order but does not say so; with this it does (RFC 2920)
        self.pipelining = pipelining

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    def keep(self, envelope: Any) -> None:
        data = envelope.original_content or envelope.content
        with self.lock:
            self.received.append(Received(envelope.mail_from, tuple(envelope.rcpt_tos), bytes(data)))

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.keep(envelope)
        return "250 2.0.0 Ok: queued"


class FaultHandler(MemoryHandler):
    def __init__(self, times: int = 1, *, pipelining: bool = False) -> None:
        super().__init__(pipelining=pipelining)
        self.times = times
        self.tries: Counter[str] = Counter()

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address.lower().startswith("reject"):
            return f"550 5.1.1 <{address}>: mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        rcpt = envelope.rcpt_tos[0].lower()
        with self.lock:
            self.tries[rcpt] += 1
            faulty = self.tries[rcpt] <= self.times
        if faulty and rcpt.startswith("busy"):
            return "451 4.3.0 try again later"
        if faulty and rcpt.startswith("unauth"):
            # Gmail answers over several lines
            return "550-5.7.26 This mail has been blocked because the sender is\r\n550 5.7.26 unauthenticated."
        if faulty and rcpt.startswith("msunauth"):
            return "550 5.7.515 Access denied, sending domain does not meet the required authentication level."
        if faulty and rcpt.startswith("closing"):
            return "421 4.4.2 closing connection"
        if faulty and rcpt.startswith("drop"):
            server.transport.close()  # the client sees the connection end before any reply to DATA
            return "451 4.4.2 dropped"
        self.keep(envelope)
        return "250 2.0.0 Ok: queued"


class AiosmtpdStore:
    def __init__(self, handler: MemoryHandler) -> None:
        self.handler = handler
        self.host = "127.0.0.1"
        self.port = free_port()
        self.controller = Controller(handler, hostname=self.host, port=self.port, data_size_limit=0)
        self.running = False

    def start(self) -> AiosmtpdStore:
        self.controller.start()
        self.running = True
        return self

    def stop(self) -> None:
        if self.running:
            self.running = False
            self.controller.stop()

    def messages(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.received)

    def clear(self) -> None:
        with self.handler.lock:
            self.handler.received.clear()


@pytest.fixture
def aiosmtpd_store() -> Iterator[AiosmtpdStore]:
    store = AiosmtpdStore(MemoryHandler()).start()
    yield store
    store.stop()


@pytest.fixture(params=["lockstep", "pipelining"])
def fault_server(request: pytest.FixtureRequest) -> Iterator[AiosmtpdStore]:
    store = AiosmtpdStore(FaultHandler(times=1, pipelining=request.param == "pipelining")).start()
    yield store
    store.stop()


# -- Mailpit ----------------------------------------------------------------------------------------


class MailpitStore:
    """Mailpit's SMTP port for sending; its HTTP API to read back what arrived."""

    def __init__(self, url: str, smtp: str) -> None:
        import httpx

        host, _, port = smtp.rpartition(":")
        self.host, self.port = host or "127.0.0.1", int(port)
        self.http = httpx.Client(base_url=url.rstrip("/"), timeout=10)

    def messages(self) -> list[Received]:
        found: list[Received] = []
        start = 0
        while True:
            page = self.http.get("/api/v1/messages", params={"start": start, "limit": 500}).json()
            for summary in page.get("messages", []):
                raw = self.http.get(f"/api/v1/message/{summary['ID']}/raw").content
                people = [*(summary.get("To") or []), *(summary.get("Cc") or []), *(summary.get("Bcc") or [])]
                sender = (summary.get("From") or {}).get("Address", "")
                found.append(Received(sender, tuple(p["Address"] for p in people), raw))
            start += len(page.get("messages", []))
            if not page.get("messages") or start >= int(page.get("messages_count", page.get("total", 0))):
                return found

    def clear(self) -> None:
        self.http.delete("/api/v1/messages")

    def close(self) -> None:
        self.http.close()


@pytest.fixture(params=["aiosmtpd", "aiosmtpd-pipelining", "mailpit"])
def smtp_store(request: pytest.FixtureRequest) -> Iterator[Store]:
    """Every message the server received, from aiosmtpd in this process (with and without PIPELINING) or
    from Mailpit's API."""
    if request.param.startswith("aiosmtpd"):
        memory = AiosmtpdStore(MemoryHandler(pipelining=request.param.endswith("pipelining"))).start()
        yield memory
        memory.stop()
        return
    url, smtp = os.environ.get("MAILPIT_URL"), os.environ.get("MAILPIT_SMTP")
    if not (url and smtp):
        pytest.skip("Mailpit not configured: set MAILPIT_URL (http://host:8025) and MAILPIT_SMTP (host:1025)")
    mailpit = MailpitStore(url, smtp)
    mailpit.clear()
    yield mailpit
    mailpit.clear()
    mailpit.close()
