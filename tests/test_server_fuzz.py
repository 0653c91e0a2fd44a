"""Fuzzing `digest serve`'s application with hypothesis: any path, query and body, GET or POST, gets an
answer below 500, and the access log never gets a forged line. The requests go to the real ASGI app as
uvicorn would hand them over (the path percent-decoded, the query string raw)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_to_bytes

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digest import pipeline
from digest.server import create_app
from tests.support_service import settings_for, write, write_site

NOW_AT = datetime(2024, 4, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("fuzz")
    settings = settings_for(write_site(root, [], ["reader@example.com"]))
    write(settings.output.dir / "index.html", "<!doctype html><title>archive</title>")
    write(settings.output.dir / "atom.xml", '<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"/>')
    return create_app(settings, pipeline.open_store(settings), lambda: NOW_AT)


def call(app: Any, method: str, raw_path: bytes, query: bytes, body: bytes) -> int:
    """One request through the ASGI app; returns the status."""
    path = unquote_to_bytes(raw_path).decode("utf-8", "replace")  # what uvicorn puts in scope["path"]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": raw_path,
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/x-www-form-urlencoded")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8080),
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    asyncio.run(app(scope, receive, send))
    return statuses[0]


SEGMENT = st.one_of(
    st.text(min_size=0, max_size=12),
    st.sampled_from(["unsubscribe", "healthz", "atom.xml", "..", ".", "%00", "%0A", "%2e%2e", "index.html", "/"]),
)
PATHS = st.lists(SEGMENT, max_size=5).map(lambda parts: "/" + "/".join(parts))
QUERIES = st.one_of(
    st.binary(max_size=80),
    st.text(max_size=80).map(lambda t: ("token=" + t).encode("utf-8", "surrogatepass")),
    st.sampled_from([b"token=", b"token=%00", b"token=%0Aforged", b"token=" + b"A" * 5000]),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=st.sampled_from(["GET", "POST", "HEAD", "PUT"]), path=PATHS, query=QUERIES, body=st.binary(max_size=200))
def test_no_request_gets_a_500(app: Any, method: str, path: str, query: bytes, body: bytes) -> None:
    raw = path.encode("utf-8", "surrogatepass")
    status = call(app, method, raw, query, body)
    assert status < 500, (method, raw, query)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(b"/index.html%00", 400), (b"/%00", 400), (b"/a%0Ab", 400), (b"/atom.xml%0D%0AGET /forged", 400)],
)
def test_control_characters_in_a_path_are_400_and_never_a_log_line(
    app: Any, raw: bytes, expected: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="digest.server")
    assert call(app, "GET", raw, b"", b"") == expected
    [line] = [r.getMessage() for r in caplog.records if r.name == "digest.server"]
    assert "\n" not in line and "\r" not in line and "\x00" not in line
    assert line.startswith("GET /") and line.endswith(f" {expected}")


def test_the_log_never_holds_a_token(app: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="digest.server")
    call(app, "POST", b"/unsubscribe", b"token=SECRETTOKENVALUE", b"List-Unsubscribe=One-Click")
    assert not any("SECRETTOKENVALUE" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(("raw", "expected"), [(b"/atom.xml", 200), (b"/healthz", 200), (b"/", 200)])
def test_the_app_under_fuzz_serves_real_files(app: Any, raw: bytes, expected: int) -> None:
    assert call(app, "GET", raw, b"", b"") == expected
