"""`digest serve`: one-click unsubscribe (RFC 8058), the archive and the feeds, and /healthz.

The unsubscribe URL carries the signed token in its query string. GET only shows a confirmation
form, because mail scanners and link previews follow every link; POST records the suppression.
Neither answers with a redirect, a cookie or a login (RFC 8058 section 3.2).
"""

from __future__ import annotations

import hashlib
import html
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from digest import pipeline
from digest.config import Settings
from digest.errors import TokenError
from digest.text import CONTROL, escape_controls

LOG = logging.getLogger("digest.server")

# Only what the archive and the feeds are made of; anything else in the output folder (the
# Maildir outbox, preview .eml files, temporary files) is never served.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".xml": "application/xml; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".svg": "image/svg+xml",
    ".webp": "image/webp",
}
# The feeds, wherever they are in the output folder (the per-tag feeds live in tags/<tag>/).
FEED_TYPES = {kind.file: f"{kind.media_type}; charset=utf-8" for kind in pipeline.FEEDS}
# Pages change once a week; a short max-age plus validators keeps feed readers cheap and fresh.
CACHE_TEXT = "public, max-age=600"
CACHE_MEDIA = "public, max-age=86400"
NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"}
HIDDEN_PARTS = {"outbox", "email.eml", "email.html", "email.txt"}


def mask_email(email: str) -> str:
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


def _page(settings: Settings, title: str, body: str) -> str:
    site = html.escape(settings.site.title)
    return (
        f'<!doctype html><html lang="{html.escape(settings.site.language)}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f"<title>{html.escape(title)} · {site}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;"
        "line-height:1.5}button{font-size:1rem;padding:.6rem 1.2rem;cursor:pointer}</style></head>"
        f"<body><p>{site}</p><h1>{html.escape(title)}</h1>{body}</body></html>"
    )


def _html(settings: Settings, status: int, title: str, body: str) -> Response:
    return Response(_page(settings, title, body), status_code=status, media_type="text/html", headers=NO_STORE)


class Unsubscribe:
    def __init__(self, settings: Settings, store: pipeline.Store, clock: Callable[[], datetime]):
        self.settings = settings
        self.store = store
        self.clock = clock

    def _check(self, request: Request) -> tuple[str, str] | Response:
        """(email, token) for a valid token, else the error page to answer with."""
        if not self.settings.secret:
            return _html(
                self.settings,
                503,
                "Unsubscribing is not available",
                "<p>This server has no secret to check unsubscribe links (DIGEST_SECRET is not set). "
                "Please reply to the newsletter to unsubscribe.</p>",
            )
        token = request.query_params.get("token", "")
        try:
            email = pipeline.address_of_token(self.settings, token, self.clock())
        except TokenError as exc:
            LOG.info("unsubscribe refused: %s", exc.message)
            body = f"<p>{html.escape(str(exc))}.</p><p>Nothing was changed.</p>"
            return _html(self.settings, 400, "This unsubscribe link does not work", body)
        return email, token

    async def get(self, request: Request) -> Response:
        checked = self._check(request)
        if isinstance(checked, Response):
            return checked
        email, token = checked
        action = "unsubscribe?token=" + html.escape(token)
        body = (
            f"<p>Stop sending the newsletter to <strong>{html.escape(email)}</strong>?</p>"
            f'<form method="post" action="{action}">'
            '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
            "<button type=submit>Unsubscribe</button></form>"
        )
        return _html(self.settings, 200, "Unsubscribe", body)

    async def post(self, request: Request) -> Response:
        # The body (List-Unsubscribe=One-Click) is not checked: the signed token is what
        # authorises the request, and a client that posts an odd body still meant to leave.
        checked = self._check(request)
        if isinstance(checked, Response):
            return checked
        email, _ = checked
        now_at = self.clock()
        added = await run_in_threadpool(
            pipeline.unsubscribe, self.settings, email, now_at, "unsubscribe link", self.store
        )
        LOG.info("unsubscribed %s%s", mask_email(email), "" if added else " (already)")
        body = f"<p><strong>{html.escape(email)}</strong> will not receive the newsletter any more.</p>"
        return _html(self.settings, 200, "You are unsubscribed", body)


class OutputFiles:
    """The archive and the feeds from the output folder, with validators for conditional GETs."""

    def __init__(self, settings: Settings):
        self.root = settings.output.dir
        outbox = settings.outbox
        self.outbox = outbox.resolve() if outbox.is_absolute() else None

    def _locate(self, rel: str) -> Path | None:
        parts = [p for p in rel.split("/") if p]
        if any(p.startswith(".") or p in HIDDEN_PARTS for p in parts):
            return None
        root = self.root.resolve()
        target = (root / "/".join(parts)).resolve()
        if not target.is_relative_to(root) or (self.outbox and target.is_relative_to(self.outbox)):
            return None
        return target

    def get(self, request: Request) -> Response:
        rel = request.path_params.get("path", "")
        target = self._locate(rel)
        if target is not None and target.is_dir():
            if rel and not rel.endswith("/"):
                # Relative links in the archive pages need the trailing slash.
                return Response(status_code=301, headers={"Location": "/" + rel + "/"})
            target = target / "index.html"
        known = target is not None and (target.name in FEED_TYPES or target.suffix.lower() in CONTENT_TYPES)
        if target is None or not known or not target.is_file():
            return Response("not found\n", status_code=404, media_type="text/plain")
        stat = target.stat()
        etag = '"' + hashlib.sha1(f"{stat.st_mtime_ns}-{stat.st_size}".encode()).hexdigest()[:20] + '"'
        modified_at = datetime.fromtimestamp(int(stat.st_mtime), UTC)
        media = FEED_TYPES.get(target.name) or CONTENT_TYPES[target.suffix.lower()]
        headers = {
            "ETag": etag,
            "Last-Modified": format_datetime(modified_at, usegmt=True),
            "Cache-Control": CACHE_TEXT if media.startswith(("text/", "application/")) else CACHE_MEDIA,
            "X-Content-Type-Options": "nosniff",
        }
        if _not_modified(request, etag, modified_at):
            return Response(status_code=304, headers=headers)
        return Response(target.read_bytes(), media_type=media, headers=headers)


def _not_modified(request: Request, etag: str, modified_at: datetime) -> bool:
    match = request.headers.get("if-none-match")
    if match is not None:
        return match.strip() == "*" or etag in [t.strip().removeprefix("W/") for t in match.split(",")]
    since = request.headers.get("if-modified-since")
    if since:
        try:
            return modified_at <= parsedate_to_datetime(since)
        except (TypeError, ValueError):
            return False
    return False


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})


Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]


class Guard:
    """In front of every route: a path with control characters (a NUL, a line break) is answered 400
    before any route sees it, and one log line per request is written without the query string (tokens
    never reach the logs) and with control characters escaped (no forged lines)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        status = [0]

        async def capture(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        if CONTROL.search(path):
            await Response("bad request\n", status_code=400, media_type="text/plain")(scope, receive, capture)
        else:
            await self.app(scope, receive, capture)
        LOG.info("%s %s %d", escape_controls(str(scope.get("method", ""))), escape_controls(path), status[0])


def create_app(settings: Settings, store: pipeline.Store, clock: Callable[[], datetime]) -> Starlette:
    unsubscribe = Unsubscribe(settings, store, clock)
    files = OutputFiles(settings)
    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/unsubscribe", unsubscribe.get, methods=["GET"]),
            Route("/unsubscribe", unsubscribe.post, methods=["POST"]),
            Route("/{path:path}", files.get, methods=["GET"]),
        ]
    )
    app.add_middleware(Guard)
    return app


def uvicorn_config(
    settings: Settings, app: Starlette, *, host: str | None = None, port: int | None = None
) -> uvicorn.Config:
    # uvicorn's access log prints the full URL, token included; AccessLog replaces it. Disabled on the
    # logger too, because a handler attached to it later (by a logging setup) would bring it back.
    logging.getLogger("uvicorn.access").disabled = True
    return uvicorn.Config(
        app,
        host=host or settings.server.host,
        port=settings.server.port if port is None else port,
        access_log=False,
        log_config=None,
        proxy_headers=True,
        server_header=False,
    )


def serve(settings: Settings) -> int:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    store = pipeline.open_store(settings)
    app = create_app(settings, store, lambda: datetime.now(UTC))
    if not settings.secret:
        LOG.warning("DIGEST_SECRET is not set: /unsubscribe answers 503")
    LOG.info("serving %s on http://%s:%d/", settings.output.dir, settings.server.host, settings.server.port)
    server = uvicorn.Server(uvicorn_config(settings, app))
    server.run()
    return 0
