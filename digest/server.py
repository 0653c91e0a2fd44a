"""`digest serve`: one-click unsubscribe (RFC 8058), the archive and the feeds, and /healthz.

The unsubscribe URL carries the signed token in its query string. GET only shows a confirmation
form, because mail scanners and link previews follow every link; POST records the suppression.
Neither answers with a redirect, a cookie or a login (RFC 8058 section 3.2).
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from digest import pipeline
from digest.config import Settings
from digest.errors import DigestError, TokenError, TokenExpired
from digest.text import CONTROL, escape_controls, is_valid_language

if TYPE_CHECKING:
    from digest.pipeline.readers import Preferences

LOG = logging.getLogger("digest.server")

# Only what the archive and the feeds are made of; anything else in the output folder (an outbox
# configured there, the preview folder, temporary files) is never served.
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
HIDDEN_PARTS = {"outbox", "preview", "email.eml", "email.html", "email.txt"}


def mask_email(email: str) -> str:
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


def _page(settings: Settings, lang: str, title: str, body: str) -> str:
    site = html.escape(settings.site.title)
    return (
        f'<!doctype html><html lang="{html.escape(lang)}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f"<title>{html.escape(title)} · {site}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;"
        "line-height:1.5;word-break:keep-all;overflow-wrap:break-word}"
        "button{font-size:1rem;padding:.6rem 1.2rem;cursor:pointer}</style></head>"
        f"<body><p>{site}</p><h1>{html.escape(title)}</h1>{body}</body></html>"
    )


def _html(settings: Settings, lang: str, status: int, title: str, body: str) -> Response:
    page = _page(settings, lang, title, body)
    return Response(page, status_code=status, media_type="text/html", headers=NO_STORE)


class Unsubscribe:
    """The pages are the readers' templates (so a user's folder can replace them, and they look like the
    archive), worded in the language of the issue the link came in (`lang=ko`), else the subscriber's own,
    else the site's."""

    def __init__(self, settings: Settings, store: pipeline.Store, clock: Callable[[], datetime], readers: Readers):
        self.settings = settings
        self.store = store
        self.clock = clock
        self.readers = readers

    def _language(self, request: Request) -> tuple[str, str]:
        """(language key for links, language for the words): the subscriber's issue language that the
        link carries (`lang=ko`), else the site's."""
        key = pipeline.select_language(self.settings, request.query_params.get("lang", "")[:35])
        return key, key or self.settings.site.language

    async def _words_language(self, request: Request, email: str) -> str:
        key, lang = self._language(request)
        return lang if key else (await self.readers.language_of(email) or lang)

    def _check(self, request: Request) -> tuple[str, str] | Response:
        """(email, token) for a valid token, else the error page to answer with."""
        _, lang = self._language(request)
        t = pipeline.labels_for(lang)
        if not self.settings.secret:
            # the variable's name is for the site's owner, who reads this page when testing
            return self.readers.message(
                503, lang, t.unavailable_title, t.unavailable_body, "(DIGEST_SECRET is not set.)"
            )
        token = request.query_params.get("token", "")
        try:
            email = pipeline.address_of_token(self.settings, token, self.clock())
        except TokenError as exc:
            LOG.info("unsubscribe refused: %s", exc.message)
            return self.readers.message(400, lang, t.broken_link_title, t.broken_link_body)
        return email, token

    async def get(self, request: Request) -> Response:
        checked = self._check(request)
        if isinstance(checked, Response):
            return checked
        email, token = checked
        key, _ = self._language(request)
        lang = await self._words_language(request, email)
        t = pipeline.labels_for(lang)
        return self.readers.page(
            200,
            lang,
            "reader_message.html.j2",
            t.unsubscribe,
            paragraphs=[t.unsubscribe_question.format(email=email)],
            button=t.unsubscribe,
            action="unsubscribe?token=" + token + (f"&lang={key}" if key else ""),
            hidden={"List-Unsubscribe": "One-Click"},
            link=None,
        )

    async def post(self, request: Request) -> Response:
        # The body (List-Unsubscribe=One-Click) is not checked: the signed token is what
        # authorises the request, and a client that posts an odd body still meant to leave.
        checked = self._check(request)
        if isinstance(checked, Response):
            return checked
        email, _ = checked
        if pipeline.is_probe(email):  # `digest doctor`'s probe: the same answer as any POST, nothing recorded
            LOG.info("unsubscribe probe answered; nothing recorded")
        else:
            now_at = self.clock()
            added = await run_in_threadpool(
                pipeline.unsubscribe, self.settings, email, now_at, "unsubscribe link", self.store
            )
            LOG.info("unsubscribed %s%s", mask_email(email), "" if added else " (already)")
        lang = await self._words_language(request, email)
        t = pipeline.labels_for(lang)
        return self.readers.message(200, lang, t.unsubscribed_title, t.unsubscribed_body.format(email=email))


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
        try:
            return self._get(request)
        except OSError:  # a name longer than the file system takes, a folder it may not read: not served
            return Response("not found\n", status_code=404, media_type="text/plain")

    def _get(self, request: Request) -> Response:
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
    before any route sees it, a body over MAX_BODY 413, and one log line per request is written without the
    query string (tokens never reach the logs) and with control characters escaped (no forged lines)."""

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
            with contextlib.suppress(_ClientGone):  # nothing to answer, no traceback: the log line says 0
                body = await _read_body(scope, receive)
                if body is None:
                    await Response("too large\n", status_code=413, media_type="text/plain")(scope, receive, capture)
                else:
                    await self.app(scope, _replay(body, receive), capture)
        LOG.info("%s %s %d", escape_controls(str(scope.get("method", ""))), escape_controls(path), status[0])


# The most a request body may weigh: every form and JSON object digest takes is a few kilobytes (a provider's
# event post at most 256 KB). Read whole, up to this, before any route: a 300 MB JSON signup took 750 MB.
MAX_BODY = 1_000_000
GONE = ("unsubscribed", "bounced", "complained", "unconfirmed")  # statuses whose preference page is closed


class _ClientGone(Exception):
    """The client disconnected before its body was all sent."""


async def _read_body(scope: Scope, receive: Any) -> bytes | None:
    """The request's body, None when it is over MAX_BODY (by its Content-Length or as it arrives);
    _ClientGone when the client left before sending all of it."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length" and value.isdigit() and int(value) > MAX_BODY:
            return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Any) -> Any:
    """A receive() that gives the body read by the Guard once, then waits on the client as before."""
    sent = False

    async def replay() -> MutableMapping[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        message: MutableMapping[str, Any] = await receive()
        return message

    return replay


class ProviderEvents:
    """`POST /events/ses?token=…`: Amazon SNS posts SES bounce and complaint events here (subscribe the
    topic to the URL `digest check` prints). Always 200 once the URL is valid, so SNS stops retrying a post
    it delivered; the log says what was applied."""

    def __init__(self, settings: Settings, store: pipeline.Store, clock: Callable[[], datetime]):
        self.settings = settings
        self.store = store
        self.clock = clock

    async def post(self, request: Request) -> Response:
        if not self.settings.secret:
            return JSONResponse({"error": "no DIGEST_SECRET"}, status_code=503, headers=NO_STORE)
        body = await request.body()
        if len(body) > 256_000:
            return JSONResponse({"error": "too large"}, status_code=413, headers=NO_STORE)
        token = request.query_params.get("token", "")
        try:
            post, findings = await run_in_threadpool(
                pipeline.provider_events, self.settings, token, body, self.clock(), self.store
            )
        except TokenError as exc:
            LOG.info("provider event refused: %s", exc.message)
            return JSONResponse({"error": exc.message}, status_code=400, headers=NO_STORE)
        except OSError as exc:  # confirming the subscription failed: SNS sends the confirmation again
            LOG.warning("SNS subscription not confirmed: %s", escape_controls(str(exc)))
            return JSONResponse({"error": "confirmation failed"}, status_code=502, headers=NO_STORE)
        for found in findings:
            LOG.info("SES %s for %s%s", found.kind, mask_email(found.email) if found.email else "an unknown address",
                     f": now {found.status}" if found.status else "")  # fmt: skip
        if post.kind != "events" or not findings:
            LOG.info("SNS post: %s", escape_controls(post.kind + (f" ({post.reason})" if post.reason else "")))
        return JSONResponse({"ok": True, "kind": post.kind, "applied": len(findings)}, headers=NO_STORE)


class OwnerReview:
    """`/review?token=…`: the owner approves or holds a week's issue before the service sends it. GET shows
    the two buttons and changes nothing (mail scanners follow links); POST records the answer."""

    def __init__(self, settings: Settings, store: pipeline.Store, clock: Callable[[], datetime]):
        self.settings = settings
        self.store = store
        self.clock = clock

    def _week(self, request: Request) -> str | Response:
        lang = self.settings.site.language
        if not self.settings.secret:
            return _html(self.settings, lang, 503, "Review", "<p>DIGEST_SECRET is not set.</p>")
        try:
            return pipeline.review_of_token(self.settings, request.query_params.get("token", ""), self.clock())
        except TokenError as exc:
            LOG.info("review link refused: %s", exc.message)
            body = f"<p>{html.escape(str(exc))}.</p><p>Nothing was changed.</p>"
            return _html(self.settings, lang, 400, "This review link does not work", body)

    async def get(self, request: Request) -> Response:
        week = self._week(request)
        if isinstance(week, Response):
            return week
        token = html.escape(request.query_params.get("token", ""))
        review = await run_in_threadpool(pipeline.review_of, self.settings, week, self.store)
        if review is None or review.state == "pending" or review.decided_at is None:
            now = "Not answered yet."
        else:
            when = review.decided_at.astimezone(self.settings.site.tz).isoformat(timespec="minutes")
            now = f"Now {html.escape(review.state)} (by {html.escape(review.decided_by)}, {when})."
        note = html.escape(review.note if review is not None else "")
        body = (
            f"<p>The issue of <strong>{html.escape(week)}</strong>: send it at its time, or hold it? {now}</p>"
            f'<form method="post" action="review?token={token}">'
            "<p><label>Editor's note (Markdown, shown above the posts; empty it to have none)<br>"
            f'<textarea name="note" rows="4" cols="50">{note}</textarea></label></p>'
            '<button type="submit" name="action" value="approve">Approve</button> '
            '<button type="submit" name="action" value="hold">Hold</button></form>'
        )
        return _html(self.settings, self.settings.site.language, 200, f"Review {week}", body)

    async def post(self, request: Request) -> Response:
        week = self._week(request)
        if isinstance(week, Response):
            return week
        form = await request.form()
        action = str(form.get("action", ""))
        if action not in ("approve", "hold"):
            return _html(self.settings, self.settings.site.language, 400, "Review", "<p>Approve or hold?</p>")
        written = form.get("note")  # the page shows the note kept: an emptied box removes it; none sent keeps it
        note = None if written is None else str(written).strip()
        review = await run_in_threadpool(
            lambda: pipeline.decide_review(
                self.settings, week, action, self.clock(), by="link", note=note, store=self.store
            )  # fmt: skip
        )
        LOG.info("review of %s: %s by link", escape_controls(week), review.state)
        said = "will go out at its time" if review.state == "approved" else "will not go out"
        return _html(self.settings, self.settings.site.language, 200, f"Review {week}", f"<p>The issue {said}.</p>")


def create_app(settings: Settings, store: pipeline.Store, clock: Callable[[], datetime]) -> Starlette:
    readers = Readers(settings, store, clock)
    unsubscribe = Unsubscribe(settings, store, clock, readers)
    files = OutputFiles(settings)
    events = ProviderEvents(settings, store, clock)
    review = OwnerReview(settings, store, clock)
    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route(f"/{pipeline.REVIEW_PATH}", review.get, methods=["GET"]),
            Route(f"/{pipeline.REVIEW_PATH}", review.post, methods=["POST"]),
            Route(f"/{pipeline.EVENTS_PATH}", events.post, methods=["POST"]),
            Route("/unsubscribe", unsubscribe.get, methods=["GET"]),
            Route("/unsubscribe", unsubscribe.post, methods=["POST"]),
            *readers.routes(),
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


def serve(settings: Settings, clock: Callable[[], datetime] | None = None) -> int:
    """Serve until stopped; `clock` is the CLI's (DIGEST_NOW pins it), the real clock by default."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    store = pipeline.open_store(settings)
    app = create_app(settings, store, clock or (lambda: datetime.now(UTC)))
    if not settings.secret:
        LOG.warning("DIGEST_SECRET is not set: /unsubscribe answers 503")
    LOG.info("serving %s on http://%s:%d/", settings.output.dir, settings.server.host, settings.server.port)
    server = uvicorn.Server(uvicorn_config(settings, app))
    server.run()
    return 0


# -- readers: subscribe, confirm, preferences, change of address ----------------------------------------
#
# Every answer to POST /subscribe is the same whether the address is new, waiting, subscribed or gone (no
# list enumeration), and the mail it leads to goes out after the answer, so timing tells nothing either.
# Links in mails only ever show a page on GET; the change happens on the page's button (POST), because
# mail scanners and link previews GET every link.


def _origin(url: str) -> str:
    parts = url.split("/")
    return "/".join(parts[:3]) if len(parts) >= 3 else url


def _page_of(request: Request) -> str:
    """The page the form was on (for the consent record), without its query string."""
    referer = request.headers.get("referer", "")
    return referer.split("?", 1)[0].split("#", 1)[0][:500]


class Readers:
    def __init__(self, settings: Settings, store: pipeline.Store, clock: Callable[[], datetime]):
        self.settings = settings
        self.store = store
        self.clock = clock
        self.cors = {"Access-Control-Allow-Origin": _origin(settings.site.base_url), "Vary": "Origin"}

    # -- rendering

    def page(self, status: int, language: str, name: str, title: str, **context: Any) -> Response:
        text = pipeline.render_reader_page(self.settings, name, language, {"title": title, **context})
        return Response(text, status_code=status, media_type="text/html", headers=NO_STORE)

    def message(
        self,
        status: int,
        language: str,
        title: str,
        *paragraphs: str,
        button: str = "",
        action: str = "",
        link: dict[str, str] | None = None,
    ) -> Response:
        return self.page(
            status,
            language,
            "reader_message.html.j2",
            title,
            paragraphs=[p for p in paragraphs if p],
            button=button,
            action=action,
            hidden={},
            link=link,
        )

    def words(self, language: str = "") -> Any:
        return pipeline.reader_words(language or self.settings.site.language)

    async def language_of(self, email: str) -> str:
        """The language a subscriber chose ("" for the site's, or for an address the store does not know)."""
        return await run_in_threadpool(pipeline.reader_language, self.settings, email, self.store)

    def unavailable(self) -> Response | None:
        if self.settings.secret:
            return None
        r = self.words()
        return self.message(503, "", r.not_available_title, r.not_available)

    async def reader(self, request: Request, purpose: str) -> tuple[str, str] | Response:
        """(payload, token) of a valid signed link, else the page to answer with: in the language of the
        reader an authentic but expired link was made for, else the site's."""
        token = request.query_params.get("token", "")
        try:
            return pipeline.reader_of_token(self.settings, token, self.clock(), purpose), token
        except TokenError as exc:
            LOG.info("%s link refused: %s", purpose, exc.message)
            if not isinstance(exc, TokenExpired):
                r = self.words()
                return self.message(400, "", r.bad_link_title, r.bad_link, r.nothing_changed)
            address = exc.address.partition("\n")[0]  # a change of address: "old\nnew"
            language = await self.language_of(address) if "@" in address else ""
            r = self.words(language)
            if purpose == "confirm":
                return self.message(400, language, r.expired_title, r.expired, r.nothing_changed)
            return self.message(400, language, r.expired_title, r.old_link, r.nothing_changed)

    # -- POST /subscribe

    async def subscribe_form(self, request: Request) -> Response:
        # `?lang=ko`: the form in that language, and the readers it signs up get their mail in it
        asked = request.query_params.get("lang", "").strip()[:35]
        language = asked if asked and is_valid_language(asked) else ""
        r = self.words(language)
        widget = ""
        if self.settings.subscribe.captcha == "turnstile":
            widget = '<div class="cf-turnstile" data-sitekey="YOUR-SITE-KEY"></div>'
        elif self.settings.subscribe.captcha == "hcaptcha":
            widget = '<div class="h-captcha" data-sitekey="YOUR-SITE-KEY"></div>'
        return self.page(
            200, language, "reader_subscribe.html.j2", r.subscribe, action="subscribe", captcha_widget=widget,
            form_language=language,
        )  # fmt: skip

    async def preflight(self, request: Request) -> Response:
        headers = self.cors | {"Access-Control-Allow-Methods": "POST", "Access-Control-Allow-Headers": "Content-Type"}
        return Response(status_code=204, headers=headers)

    async def subscribe(self, request: Request) -> Response:
        wants_json = request.headers.get("content-type", "").startswith("application/json")
        if (answer := self.unavailable()) is not None:
            return answer
        try:
            fields = await _fields(request, wants_json)
        except ValueError:
            return self.answer(wants_json, 400, "", "bad request", "send a form or a JSON object")
        language = fields.get("language", "")[:35]
        r = self.words(language)
        client = request.client.host if request.client else ""
        now_at = self.clock()
        allowed = await run_in_threadpool(pipeline.client_allowed, self.settings, client, now_at, self.store)
        if not allowed:
            LOG.info("subscribe: client over the limit")
            return self.answer(wants_json, 429, language, r.too_many_title, r.too_many)
        ok = self.answer(
            wants_json, 200, language, r.check_inbox_title, r.check_inbox.format(site=self.settings.site.title)
        )
        if fields.get("website"):  # the honeypot: only robots fill a field people cannot see
            LOG.info("subscribe: honeypot filled, nothing sent")
            return ok
        captcha_field = pipeline.CAPTCHA_FIELDS.get(self.settings.subscribe.captcha, "")
        if captcha_field:
            check = await run_in_threadpool(
                pipeline.verify_captcha, self.settings, fields.get(captcha_field, ""), client
            )
            if not check.reachable:  # fail closed: while the provider is down, nothing gets through
                LOG.warning("subscribe refused: the CAPTCHA provider cannot be asked (%s)", check.detail)
                return self.answer(wants_json, 503, language, r.captcha_down_title, r.captcha_down, r.nothing_changed)
            if not check.passed:
                LOG.info("subscribe refused: CAPTCHA not passed (%s)", check.detail or "no reason given")
                return self.answer(
                    wants_json, 400, language, r.captcha_failed_title, r.captcha_failed, r.nothing_changed
                )
        try:
            asked = await run_in_threadpool(
                lambda: pipeline.subscribe(
                    self.settings,
                    now_at,
                    fields.get("email", ""),
                    name=fields.get("name", ""),
                    language=language,
                    page=fields.get("page", "") or _page_of(request),
                    ip=client,
                    store=self.store,
                )
            )
        except DigestError:
            return self.answer(wants_json, 400, language, r.invalid_address, r.invalid_address, r.nothing_changed)
        LOG.info("subscribe %s: %s", mask_email(asked.email), asked.mail or "no mail (sent recently)")
        if asked.mail:
            ok.background = BackgroundTask(self._mail, asked, now_at)
        return ok

    def _mail(self, asked: pipeline.Request, now_at: datetime) -> None:
        try:
            result = pipeline.send_reader_mail(self.settings, asked, now_at, clock=self.clock, store=self.store)
            if result is not None and not result.ok:
                LOG.warning("%s mail to %s not sent: %s", asked.mail, mask_email(asked.email), result.reply)
        except DigestError as exc:
            LOG.error("%s mail to %s not sent: %s", asked.mail, mask_email(asked.email), exc)

    def answer(self, wants_json: bool, status: int, language: str, title: str, *paragraphs: str) -> Response:
        if wants_json:
            body = {"ok": status == 200, "title": title, "message": " ".join(paragraphs)}
            return JSONResponse(body, status_code=status, headers=self.cors | {"Cache-Control": "no-store"})
        return self.message(status, language, title, *paragraphs)

    # -- /confirm

    async def confirm_page(self, request: Request) -> Response:
        if (answer := self.unavailable()) is not None:
            return answer
        checked = await self.reader(request, "confirm")
        if isinstance(checked, Response):
            return checked
        email, token = checked
        language = await self.language_of(email)  # the form's `language` field, kept with the request
        r = self.words(language)
        text = r.confirm_text.format(email=email, site=self.settings.site.title)
        action = "confirm?token=" + token
        return self.message(200, language, r.confirm_title, text, button=r.confirm_button, action=action)

    async def confirm(self, request: Request) -> Response:
        if (answer := self.unavailable()) is not None:
            return answer
        checked = await self.reader(request, "confirm")
        if isinstance(checked, Response):
            return checked
        email, _ = checked
        now_at = self.clock()
        outcome = await run_in_threadpool(pipeline.confirm, self.settings, email, now_at, self.store)
        LOG.info("confirm %s: %s", mask_email(email), outcome)
        language = await self.language_of(email)
        r = self.words(language)
        site = self.settings.site.title
        if outcome == "expired":
            return self.message(400, language, r.expired_title, r.expired)
        link = {"url": self.preferences_link(email, now_at), "label": r.preferences_title}
        if outcome == "already":
            return self.message(200, language, r.confirmed_title, r.already_confirmed.format(site=site), link=link)
        if not self.settings.subscribe.welcome:
            return self.message(200, language, r.confirmed_title, r.confirmed_quiet.format(site=site), link=link)
        # the welcome says itself whether the latest issue is in it (there may be none in their language yet)
        response = self.message(200, language, r.confirmed_title, r.confirmed.format(site=site), link=link)
        response.background = BackgroundTask(self._welcome, email, now_at)
        return response

    def _welcome(self, email: str, now_at: datetime) -> None:
        try:
            pipeline.send_welcome(self.settings, email, now_at, clock=self.clock, store=self.store)
        except DigestError as exc:
            LOG.error("welcome mail to %s not sent: %s", mask_email(email), exc)

    def preferences_link(self, email: str, now_at: datetime) -> str:
        return pipeline.reader_link(self.settings, "preferences", email, now_at)

    # -- /preferences

    async def preferences_page(self, request: Request, notice: str = "") -> Response:
        if (answer := self.unavailable()) is not None:
            return answer
        checked = await self.reader(request, "preferences")
        if isinstance(checked, Response):
            return checked
        email, token = checked
        found = await run_in_threadpool(pipeline.preferences, self.settings, email, self.clock(), self.store)
        if found is None or found.record.status.value in GONE:
            return self.not_subscribed(email, found)
        record = found.record
        r = self.words(record.language)
        paused = record.paused_until
        return self.page(
            200,
            record.language,
            "reader_preferences.html.j2",
            r.preferences_title,
            email=record.email,
            current=record,
            topics=found.topics,
            chosen={t.casefold() for t in record.tags},
            languages=found.languages,
            pause_choices=pipeline.PAUSE_CHOICES,
            paused_until=paused.astimezone(self.settings.site.tz).date().isoformat()
            if paused and paused > self.clock()
            else "",
            notice=notice,
            action="preferences?token=" + token,
            unsubscribe_action="unsubscribe?token=" + pipeline.reader_token(self.settings, email, self.clock()),
        )

    def not_subscribed(self, email: str, found: Preferences | None) -> Response:
        language = found.record.language if found is not None else ""
        r = self.words(language)
        return self.message(404, language, r.preferences_title, r.unsubscribed.format(email=email))

    async def preferences(self, request: Request) -> Response:
        if (answer := self.unavailable()) is not None:
            return answer
        checked = await self.reader(request, "preferences")
        if isinstance(checked, Response):
            return checked
        email, _ = checked
        form = await request.form()
        now_at = self.clock()
        record = await run_in_threadpool(pipeline.preferences, self.settings, email, now_at, self.store)
        if record is None or record.record.status.value in GONE:  # an old link of someone who left: no change
            return self.not_subscribed(email, record)
        r = self.words(record.record.language)
        if form.get("action") == "change":
            new = str(form.get("new_email", ""))
            try:
                sent = await run_in_threadpool(
                    pipeline.request_address_change, self.settings, email, new, now_at, self.store
                )
            except DigestError:
                return await self.preferences_page(request, r.invalid_address)
            said = {"sent": r.change_sent.format(email=new), "taken": r.taken}.get(sent, r.change_wait)
            return await self.preferences_page(request, said)
        try:
            pause = int(str(form.get("pause", "-1")))
        except ValueError:
            pause = None
        if pause not in (-1, 0, *pipeline.PAUSE_CHOICES):  # not one the page offers (a hand-made form)
            return await self.preferences_page(request, r.pause_invalid)
        await run_in_threadpool(
            lambda: pipeline.save_preferences(
                self.settings,
                email,
                now_at,
                language=str(form.get("language", "")),
                topics=[str(t) for t in form.getlist("topic")],
                fmt=str(form.get("format", "html")),
                pause_weeks=pause,
                store=self.store,
            )
        )
        LOG.info("preferences of %s saved", mask_email(email))
        return await self.preferences_page(request, self.words(str(form.get("language", ""))).saved)

    # -- /change (a new address, confirmed by a button on the page its mail links to)

    async def change_page(self, request: Request) -> Response:
        if (answer := self.unavailable()) is not None:
            return answer
        checked = await self.reader(request, "change")
        if isinstance(checked, Response):
            return checked
        payload, token = checked
        old, _, new = payload.partition("\n")
        language = await self.language_of(old)  # the reader's, as their mail was
        r = self.words(language)
        text = r.change_mail_intro.format(site=self.settings.site.title, old=old)
        return self.message(
            200, language, r.change_address, text, new, button=r.change_button, action="change?token=" + token
        )

    async def change(self, request: Request) -> Response:
        if (answer := self.unavailable()) is not None:
            return answer
        checked = await self.reader(request, "change")
        if isinstance(checked, Response):
            return checked
        payload, _ = checked
        old, _, new = payload.partition("\n")
        language = await self.language_of(old)  # asked before the change moves the reader to `new`
        outcome = await run_in_threadpool(pipeline.change_address, self.settings, payload, self.clock(), self.store)
        language = language or await self.language_of(new)
        r = self.words(language)
        if outcome == "changed":
            link = {"url": self.preferences_link(new, self.clock()), "label": r.preferences_title}
            return self.message(200, language, r.changed_title, r.changed.format(email=new), link=link)
        if outcome == "taken":
            return self.message(409, language, r.change_address, r.taken)
        return self.message(400, language, r.expired_title, r.expired)

    def routes(self) -> list[Route]:
        return [
            Route("/subscribe", self.subscribe_form, methods=["GET"]),
            Route("/subscribe", self.subscribe, methods=["POST"]),
            Route("/subscribe", self.preflight, methods=["OPTIONS"]),
            Route("/confirm", self.confirm_page, methods=["GET"]),
            Route("/confirm", self.confirm, methods=["POST"]),
            Route("/preferences", self.preferences_page, methods=["GET"]),
            Route("/preferences", self.preferences, methods=["POST"]),
            Route("/change", self.change_page, methods=["GET"]),
            Route("/change", self.change, methods=["POST"]),
        ]


async def _fields(request: Request, wants_json: bool) -> dict[str, str]:
    if wants_json:
        try:
            body = await request.json()
        except RecursionError as exc:  # [[[[…]]]] nested deeper than Python's parser goes
            raise ValueError("nested too deep") from exc
        if not isinstance(body, dict):
            raise ValueError("not an object")
        return {str(k): str(v) for k, v in body.items() if isinstance(v, str | int)}
    form = await request.form()
    return {k: str(v) for k, v in form.items() if isinstance(v, str)}
