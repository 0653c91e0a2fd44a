"""The HTTP side against the real server (uvicorn on 127.0.0.1): unsubscribe, feeds, archive, health."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from digest import scheduler
from digest.sender.ledger import Ledger
from digest.sender.suppressions import Suppressions
from digest.sender.tokens import make_token
from tests.support_service import (
    SECRET,
    HttpServer,
    Post,
    http_server_factory,
    maildir_messages,
    settings_for,
    write,
    write_site,
)

__all__ = ["http_server_factory"]

NOW_AT = datetime(2024, 4, 1, 0, 30, tzinfo=UTC)
READER = "reader@example.com"
ONE_CLICK = {"content": b"List-Unsubscribe=One-Click", "headers": {"Content-Type": "application/x-www-form-urlencoded"}}


@pytest.fixture
def server(tmp_path: Path, http_server_factory: Any) -> HttpServer:
    settings = settings_for(write_site(tmp_path, [], [READER, "other@example.com"]))
    out = settings.output.dir
    write(out / "index.html", "<!doctype html><title>archive</title><p>지난 호 모음</p>")
    write(out / "2024-W13" / "index.html", "<!doctype html><title>2024-W13</title>")
    write(out / "atom.xml", '<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"/>')
    write(out / "rss.xml", '<?xml version="1.0"?><rss version="2.0"/>')
    write(out / "feed.json", '{"version": "https://jsonfeed.org/version/1.1", "items": []}')
    write(out / "tags" / "rust" / "atom.xml", '<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"/>')
    write(out / "notes.json", '{"private": true}')
    write(out / "email.eml", "From: preview\n\nnot for the web\n")
    write(out / "preview" / "index.html", "<!doctype html><title>preview</title>")
    write(out / "preview" / "email.html", "<!doctype html><title>preview</title>")
    write(out / "outbox" / "new" / "1.eml", "To: reader@example.com\n\nprivate\n")
    write(out / ".tmp-half", "half written")
    ledger = Ledger(settings.db_url)
    return http_server_factory(settings, ledger, lambda: NOW_AT)


def url_for(server: HttpServer, token: str) -> str:
    return f"{server.url}/unsubscribe?token={token}"


def test_one_click_post_records_the_unsubscribe(server: HttpServer) -> None:
    token = make_token(SECRET, READER, NOW_AT - timedelta(days=3))
    response = httpx.post(url_for(server, token), **ONE_CLICK)
    assert response.status_code == 200
    assert "unsubscribed" in response.text
    assert "set-cookie" not in response.headers and "location" not in response.headers
    assert Suppressions(server.ledger.store).all() == {READER}


def test_get_shows_a_confirmation_form_and_changes_nothing(server: HttpServer) -> None:
    token = make_token(SECRET, READER, NOW_AT)
    response = httpx.get(url_for(server, token))
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert '<form method="post" action="unsubscribe?token=' + token + '"' in response.text
    assert READER in response.text
    assert Suppressions(server.ledger.store).all() == set()


def test_the_confirmation_form_posts_to_the_same_url(server: HttpServer) -> None:
    token = make_token(SECRET, READER, NOW_AT)
    page = httpx.get(url_for(server, token)).text
    action = page.split('action="', 1)[1].split('"', 1)[0]
    response = httpx.post(f"{server.url}/{action}", data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    assert Suppressions(server.ledger.store).all() == {READER}


def _tampered(token: str) -> str:
    middle = len(token) // 2
    return token[:middle] + ("A" if token[middle] != "A" else "B") + token[middle + 1 :]


BAD_TOKENS = [
    ("forged", lambda: make_token("someone else's secret", READER, NOW_AT)),
    ("tampered", lambda: _tampered(make_token(SECRET, READER, NOW_AT))),
    ("malformed", lambda: "not*a*token"),
    ("truncated", lambda: make_token(SECRET, READER, NOW_AT)[:12]),
    ("empty", lambda: ""),
]


@pytest.mark.parametrize(("kind", "make"), BAD_TOKENS, ids=[k for k, _ in BAD_TOKENS])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_bad_tokens_get_400_and_change_nothing(server: HttpServer, kind: str, make: Any, method: str) -> None:
    response = httpx.request(method, url_for(server, make()), **(ONE_CLICK if method == "POST" else {}))
    assert response.status_code == 400, kind
    assert "Nothing was changed" in response.text
    assert Suppressions(server.ledger.store).all() == set()


def test_an_unsubscribe_link_from_an_email_years_old_still_unsubscribes(server: HttpServer) -> None:
    token = make_token(SECRET, READER, NOW_AT - timedelta(days=4 * 365))
    page = httpx.get(url_for(server, token))
    assert page.status_code == 200 and READER in page.text
    assert Suppressions(server.ledger.store).all() == set()  # GET only asks
    assert httpx.post(url_for(server, token), **ONE_CLICK).status_code == 200
    assert Suppressions(server.ledger.store).all() == {READER}


def test_unsubscribing_twice_is_fine(server: HttpServer) -> None:
    token = make_token(SECRET, READER, NOW_AT)
    first = httpx.post(url_for(server, token), **ONE_CLICK)
    second = httpx.post(url_for(server, token), **ONE_CLICK)
    assert (first.status_code, second.status_code) == (200, 200)
    assert Suppressions(server.ledger.store).all() == {READER}


def test_without_a_secret_unsubscribe_answers_503(server: HttpServer, http_server_factory: Any) -> None:
    bare = http_server_factory(replace(server.settings, secret=""), server.ledger, lambda: NOW_AT)
    token = make_token(SECRET, READER, NOW_AT)
    for method in ("GET", "POST"):
        response = httpx.request(method, url_for(bare, token))
        assert response.status_code == 503
        assert "DIGEST_SECRET" in response.text
    assert Suppressions(server.ledger.store).all() == set()


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/atom.xml", "application/atom+xml; charset=utf-8"),
        ("/rss.xml", "application/rss+xml; charset=utf-8"),
        ("/feed.json", "application/feed+json; charset=utf-8"),
        ("/tags/rust/atom.xml", "application/atom+xml; charset=utf-8"),
        ("/", "text/html; charset=utf-8"),
        ("/2024-W13/", "text/html; charset=utf-8"),
    ],
)
def test_output_files_have_content_types_and_validators(server: HttpServer, path: str, content_type: str) -> None:
    response = httpx.get(server.url + path)
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.headers["cache-control"].startswith("public, max-age=")
    assert response.headers["etag"] and response.headers["last-modified"]
    again = httpx.get(server.url + path, headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    since = httpx.get(server.url + path, headers={"If-Modified-Since": response.headers["last-modified"]})
    assert since.status_code == 304


def test_a_changed_file_gets_a_new_etag(server: HttpServer) -> None:
    first = httpx.get(server.url + "/atom.xml").headers["etag"]
    write(
        server.settings.output.dir / "atom.xml",
        '<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom">x</feed>',
    )
    response = httpx.get(server.url + "/atom.xml", headers={"If-None-Match": first})
    assert response.status_code == 200 and response.headers["etag"] != first


def test_archive_folder_without_slash_redirects_to_the_slash(server: HttpServer) -> None:
    response = httpx.get(server.url + "/2024-W13")
    assert response.status_code == 301 and response.headers["location"] == "/2024-W13/"


@pytest.mark.parametrize(
    "path",
    [
        "/email.eml",
        "/outbox/new/1.eml",
        "/preview/",
        "/preview/email.html",
        "/.tmp-half",
        "/notes.json",
        "/../digest.toml",
        "/%2e%2e/digest.toml",
        "/missing.html",
        "/" + "a" * 300,  # longer than a file name may be: the file system refuses it (it was a 500)
        "/2024-W13/" + "b" * 300 + "/index.html",
    ],
)
def test_private_and_missing_files_are_404(server: HttpServer, path: str) -> None:
    response = httpx.get(server.url + path)
    assert response.status_code == 404


def test_bodies_over_the_limit_are_refused_before_any_route(server: HttpServer) -> None:
    """A body is read whole, up to a megabyte, before any route: a bigger one gets 413 whether it says its
    length or not (a 300 MB JSON signup was parsed into 750 MB), a JSON nesting too deep for the parser 400."""
    big = b'{"email": "zed@example.com", "name": "' + b"a" * 2_000_000 + b'"}'
    json_type = {"Content-Type": "application/json"}
    assert httpx.post(server.url + "/subscribe", content=big, headers=json_type).status_code == 413

    def chunks() -> Any:  # no Content-Length: chunked transfer
        for _ in range(40):
            yield b"a" * 50_000

    assert httpx.post(server.url + "/subscribe", content=chunks(), headers=json_type).status_code == 413
    nested = b"[" * 100_000 + b"]" * 100_000
    assert httpx.post(server.url + "/subscribe", content=nested, headers=json_type).status_code == 400
    assert httpx.post(url_for(server, make_token(SECRET, READER, NOW_AT)), **ONE_CLICK).status_code == 200
    assert httpx.get(server.url + "/healthz").status_code == 200


def test_a_client_gone_in_the_middle_of_its_body_leaves_no_error(
    server: HttpServer, caplog: pytest.LogCaptureFixture
) -> None:
    import socket
    import time

    caplog.set_level("INFO")
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        head = "POST /subscribe HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        sock.sendall(head.encode() + b'{"email": ')
        time.sleep(0.3)
    time.sleep(0.5)
    assert httpx.get(server.url + "/healthz").status_code == 200
    errors = [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
    assert errors == [], [r.getMessage() for r in errors]
    assert any(r.getMessage() == "POST /subscribe 0" for r in caplog.records)


def test_healthz(server: HttpServer) -> None:
    response = httpx.get(server.url + "/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_tokens_never_reach_the_log(server: HttpServer, caplog: pytest.LogCaptureFixture) -> None:
    token = make_token(SECRET, READER, NOW_AT)
    caplog.set_level("DEBUG")
    httpx.get(url_for(server, token))
    httpx.post(url_for(server, token), **ONE_CLICK)
    httpx.post(url_for(server, _tampered(token)), **ONE_CLICK)
    # the client's own log (httpx) prints the URL it requested; only the server's lines count
    text = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore")))
    assert "POST /unsubscribe 200" in text and "r***@example.com" in text
    assert token[:16] not in text and READER not in text


def test_the_next_send_skips_an_address_unsubscribed_by_link(tmp_path: Path, http_server_factory: Any) -> None:
    now_at = datetime(2024, 4, 1, 9, 0, tzinfo=ZoneInfo("Asia/Seoul"))
    readers = [READER, "stays@example.com"]
    posts = [Post("spring", "봄 소식 · spring news", now_at - timedelta(days=3))]
    settings = settings_for(write_site(tmp_path, posts, readers))
    ledger = Ledger(settings.db_url)
    server = http_server_factory(settings, ledger, lambda: now_at)
    # the link a subscriber finds in last week's message
    token = make_token(SECRET, READER.upper(), now_at - timedelta(days=7))
    assert httpx.post(url_for(server, token), **ONE_CLICK).status_code == 200

    result = scheduler.run_week(settings, now_at, store=ledger.store)
    assert (result.delivery.sent, result.delivery.skipped) == (1, 1)
    assert [m["To"] for m in maildir_messages(settings.outbox)] == ["stays@example.com"]
    row = {d.recipient: d for d in ledger.deliveries(result.week.label)}[READER]
    assert row.state == "skipped" and "unsubscribed" in row.reply


def test_a_key_can_be_rotated_without_breaking_sent_links(server: HttpServer, http_server_factory: Any) -> None:
    retired = SECRET
    new_key = "a brand new key for signing links, 40 bytes"
    rotated = http_server_factory(
        replace(server.settings, secret=new_key, old_secrets=(retired,)), server.ledger, lambda: NOW_AT
    )
    old_link = make_token(retired, READER, NOW_AT - timedelta(days=30))  # in a newsletter sent last month
    assert httpx.post(url_for(rotated, old_link), **ONE_CLICK).status_code == 200
    forged = make_token("change-me-to-a-long-random-string", "other@example.com", NOW_AT)
    assert httpx.post(url_for(rotated, forged), **ONE_CLICK).status_code == 400
    assert Suppressions(server.ledger.store).all() == {READER}
