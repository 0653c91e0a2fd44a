"""Shared pieces for the service tests: a small invented site, a real HTTP server, a real SMTP server."""

from __future__ import annotations

import asyncio
import email
import mailbox
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from aiosmtpd.controller import Controller

from digest.config import Settings, load_settings
from digest.sender.ledger import Ledger
from digest.server import create_app, uvicorn_config
from tests.conftest import state_env

SECRET = "service tests secret, long enough to be a key"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, "utf-8")
    return path


@dataclass(frozen=True)
class Post:
    slug: str
    title: str
    published_at: datetime
    body: str = "짧은 글입니다. A short note written for the service tests."
    tags: tuple[str, ...] = ()


def write_site(
    root: Path,
    posts: Sequence[Post],
    subscribers: Sequence[str],
    *,
    timezone: str = "Asia/Seoul",
    smtp_port: int | None = None,
    extra: str = "",
) -> Path:
    """A site folder with digest.toml, subscribers.yaml and posts; returns the config file."""
    for post in posts:
        tags = ", ".join(post.tags)
        write(
            root / "posts" / f"{post.published_at:%Y-%m-%d}-{post.slug}.md",
            f'---\ntitle: "{post.title}"\ndate: {post.published_at.isoformat(sep=" ")}\ntags: [{tags}]\n---\n\n'
            f"{post.body}\n",
        )
    (root / "posts").mkdir(parents=True, exist_ok=True)
    lines = ["subscribers:"] + [f"  - email: {address}" for address in subscribers]
    write(root / "subscribers.yaml", "\n".join(lines) + "\n")
    # one connection: the order of sends (and so where a stop lands) is predictable
    smtp = "[delivery]\nconnections = 1\n"
    if smtp_port:
        smtp += f'\n[smtp]\nhost = "127.0.0.1"\nport = {smtp_port}\nmode = "plain"\n'
    return write(
        root / "digest.toml",
        f"""[site]
title = "서비스 시험 블로그"
url = "https://service.example.org/"
source = ["posts"]
timezone = "{timezone}"

[output]
dir = "out"

[email]
from = "Service Test <digest@service.example.org>"
public_url = "https://service.example.org/newsletter/"

[subscribers]
file = "subscribers.yaml"

[state]
dir = "state"

{smtp}
{extra}
""",
    )


def maildir_messages(folder: Path) -> list[email.message.Message]:
    """Every message a Maildir outbox holds (the built-in transport when smtp.host is empty)."""
    box = mailbox.Maildir(folder, create=False) if folder.is_dir() else None
    return [email.message_from_bytes(m.as_bytes()) for m in box] if box is not None else []


def text_of(message: email.message.Message) -> str:
    parts = [p for p in message.walk() if p.get_content_type() == "text/plain"]
    payload = parts[0].get_payload(decode=True) if parts else b""
    return payload.decode(parts[0].get_content_charset() or "utf-8") if isinstance(payload, bytes) else ""


def settings_for(config: Path, secret: str = SECRET) -> Settings:
    return load_settings(config, env={**state_env(), **({"DIGEST_SECRET": secret} if secret else {})})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class HttpServer:
    url: str
    ledger: Ledger
    settings: Settings


@pytest.fixture
def http_server_factory() -> Iterator[Any]:
    """Start the project's own server (uvicorn in a thread) on 127.0.0.1 and a free port."""
    started: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(settings: Settings, ledger: Ledger, clock: Any) -> HttpServer:
        port = free_port()
        server = uvicorn.Server(
            uvicorn_config(settings, create_app(settings, ledger.store, clock), host="127.0.0.1", port=port)
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the HTTP server did not start")
            time.sleep(0.01)
        started.append((server, thread))
        return HttpServer(f"http://127.0.0.1:{port}", ledger, settings)

    yield start
    for server, thread in started:
        server.should_exit = True
        thread.join(10)


@dataclass
class Mailbox:
    """What a real SMTP server on 127.0.0.1 received: one parsed message per recipient."""

    host: str
    port: int
    delay: float = 0.0
    defer_rate: float = 0.0  # while set, this share of messages gets 451 (a deterministic spread)
    accept_login: bool = True  # False: every AUTH gets 535
    reject: bool = False  # True: every message gets 550
    refusal: str = ""  # when set, every message gets this reply (e.g. Gmail's "550 5.7.26 …")
    received: list[tuple[str, email.message.Message]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    deferred: int = 0
    seen: int = 0

    def recipients(self) -> list[str]:
        with self.lock:
            return [rcpt for rcpt, _ in self.received]

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.reject:
            return "550 5.1.1 no such user here"
        if self.refusal:
            return self.refusal
        with self.lock:
            self.seen += 1
            if self.defer_rate and (self.seen * self.defer_rate) % 1 + self.defer_rate >= 1:
                self.deferred += 1
                return "451 4.3.0 try again later"
        message = email.message_from_bytes(envelope.content)
        with self.lock:
            self.received.extend((rcpt.lower(), message) for rcpt in envelope.rcpt_tos)
        return "250 OK stored"


def authenticate(box: Mailbox) -> Any:
    from aiosmtpd.smtp import AuthResult

    def check(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        # handled=False lets aiosmtpd answer 535 itself
        return AuthResult(success=box.accept_login, handled=False)

    return check


@pytest.fixture
def smtp_box() -> Iterator[Mailbox]:
    box = Mailbox("127.0.0.1", free_port())
    controller = Controller(
        box, hostname=box.host, port=box.port, authenticator=authenticate(box), auth_require_tls=False
    )
    controller.start()
    try:
        yield box
    finally:
        controller.stop()
