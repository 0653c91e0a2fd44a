"""The subscribe form's CAPTCHA hook against a siteverify server on 127.0.0.1 (the shape Turnstile and hCaptcha
answer in): a good answer passes, a bad one is refused, and a provider that is down, broken or garbled fails
closed with a clear answer and a log line. Through the project's own HTTP server and a real SMTP server."""

from __future__ import annotations

import http.server
import json
import logging
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from digest.sender.ledger import Ledger
from digest.sender.roster import Roster
from tests.support_service import Mailbox, free_port, http_server_factory, settings_for, smtp_box, write_site
from tests.test_readers_server import NOW_AT, POSTS

__all__ = ["http_server_factory", "smtp_box"]

PROVIDER_SECRET = "0x-provider-secret-for-tests"
GOOD = "good-answer-from-the-widget"


@dataclass
class Provider:
    """What the siteverify server was asked, and how it answers: "ok" (the real shape), "500", "garbled"."""

    url: str
    mode: str = "ok"
    asked: list[dict[str, str]] = field(default_factory=list)


@pytest.fixture
def provider() -> Iterator[Provider]:
    state = Provider("")

    class Siteverify(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            length = int(self.headers.get("content-length", "0"))
            form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
            state.asked.append(form)
            if state.mode == "500":
                self.send_response(500)
                self.end_headers()
                return
            if state.mode == "garbled":
                body = b"<html>maintenance</html>"
            elif form.get("secret") != PROVIDER_SECRET:
                body = json.dumps({"success": False, "error-codes": ["invalid-input-secret"]}).encode()
            elif form.get("response") == GOOD:
                body = json.dumps({"success": True, "hostname": "127.0.0.1", "error-codes": []}).encode()
            else:
                body = json.dumps({"success": False, "error-codes": ["invalid-input-response"]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Siteverify)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/siteverify"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def start(tmp_path: Path, box: Mailbox, factory: Any, verify_url: str, kind: str = "turnstile") -> Any:
    settings = settings_for(write_site(tmp_path, POSTS, ["author@example.org"], smtp_port=box.port))
    subscribe = replace(settings.subscribe, captcha=kind, captcha_secret=PROVIDER_SECRET, captcha_verify_url=verify_url)
    settings = replace(settings, subscribe=subscribe)
    return factory(settings, Ledger(settings.db_url), lambda: NOW_AT)


def mails_after(box: Mailbox, seconds: float = 1.0) -> list[str]:
    time.sleep(seconds)
    return [rcpt for rcpt, _ in box.received]


@pytest.mark.parametrize(
    ("kind", "field_name"), [("turnstile", "cf-turnstile-response"), ("hcaptcha", "h-captcha-response")]
)
def test_a_good_answer_passes_and_is_checked_with_the_secret(
    tmp_path: Path, smtp_box: Mailbox, http_server_factory: Any, provider: Provider, kind: str, field_name: str
) -> None:
    server = start(tmp_path, smtp_box, http_server_factory, provider.url, kind)
    answer = httpx.post(server.url + "/subscribe", data={"email": "ana@example.net", field_name: GOOD})
    assert answer.status_code == 200
    assert provider.asked == [{"secret": PROVIDER_SECRET, "response": GOOD, "remoteip": "127.0.0.1"}]
    assert mails_after(smtp_box) == ["ana@example.net"]


@pytest.mark.parametrize(
    ("fields", "asked"),
    [
        ({"cf-turnstile-response": "a-forged-answer"}, 1),  # the provider says no
        ({"cf-turnstile-response": ""}, 0),  # no answer at all: nothing to ask
        ({}, 0),  # a robot posting without the widget
        ({"h-captcha-response": GOOD}, 0),  # the other provider's field does not count
    ],
)
def test_a_bad_answer_is_refused_and_nothing_happens(
    tmp_path: Path,
    smtp_box: Mailbox,
    http_server_factory: Any,
    provider: Provider,
    fields: dict[str, str],
    asked: int,
) -> None:
    server = start(tmp_path, smtp_box, http_server_factory, provider.url)
    answer = httpx.post(server.url + "/subscribe", json={"email": "bot@example.net", **fields})
    assert answer.status_code == 400
    assert answer.json()["ok"] is False and "person" in answer.json()["message"]
    assert len(provider.asked) == asked
    assert mails_after(smtp_box) == []
    assert not Roster(server.settings.db_url).known("bot@example.net")


@pytest.mark.parametrize("down", ["refused", "500", "garbled"])
def test_a_provider_that_is_down_fails_closed_with_a_clear_answer_and_a_log_line(
    tmp_path: Path,
    smtp_box: Mailbox,
    http_server_factory: Any,
    provider: Provider,
    down: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    provider.mode = down
    url = f"http://127.0.0.1:{free_port()}/siteverify" if down == "refused" else provider.url
    server = start(tmp_path, smtp_box, http_server_factory, url)
    with caplog.at_level(logging.INFO, logger="digest.server"):
        form = httpx.post(server.url + "/subscribe", data={"email": "ana@example.net", "cf-turnstile-response": GOOD})
        api = httpx.post(server.url + "/subscribe", json={"email": "ana@example.net", "cf-turnstile-response": GOOD})
    assert (form.status_code, api.status_code) == (503, 503)
    assert "try again" in form.text and "nothing was sent" in api.json()["message"]
    lines = [r.getMessage() for r in caplog.records if r.name == "digest.server" and r.levelno == logging.WARNING]
    assert len(lines) == 2 and all("CAPTCHA provider cannot be asked" in line and "127.0.0.1" in line for line in lines)
    assert mails_after(smtp_box) == []
    assert not Roster(server.settings.db_url).known("ana@example.net")
