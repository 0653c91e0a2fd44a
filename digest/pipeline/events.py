"""Provider events (SES through SNS)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from digest.config import Settings
from digest.errors import TokenError
from digest.pipeline.readers import _link
from digest.pipeline.state import open_store
from digest.records import BounceFinding

if TYPE_CHECKING:
    from digest import sender
else:
    from digest.pipeline._shared import sender


# -- provider events (SES through SNS) -------------------------------------------------------------

EVENTS_PATH = "events/ses"


def _events_payload(settings: Settings) -> str:
    return "events@" + (urlsplit(settings.site.base_url).hostname or "localhost")


def provider_events_url(settings: Settings, now_at: datetime) -> str:
    """The URL to subscribe an SNS topic to (HTTPS), for SES bounce and complaint events; signed, so only
    whoever knows it can post."""
    return _link(settings, EVENTS_PATH, _events_payload(settings), now_at, "events")


def provider_events(
    settings: Settings, token: str, body: bytes, now_at: datetime, store: sender.Store | None = None
) -> tuple[sender.SnsPost, list[BounceFinding]]:
    """One SNS post: a subscription to confirm (opened if it is AWS's, or the configured SES endpoint's), or
    SES bounce and complaint events, applied with the same policy as the bounce mailbox."""
    payload = sender.verify_token(settings.secret, token, now_at, purpose="events", old_secrets=settings.old_secrets)
    if payload != _events_payload(settings):
        raise TokenError("the events URL is not this site's", "subscribe the topic to the URL digest check prints")
    post = sender.read_sns(body)
    findings: list[BounceFinding] = []
    if post.kind == "confirm":
        if not sender.trusted_confirm_url(post.subscribe_url, settings.ses.endpoint_url):
            return replace(post, kind="ignored", reason="a SubscribeURL that is not AWS's"), findings
        import urllib.request

        with urllib.request.urlopen(post.subscribe_url, timeout=10) as answer:  # noqa: S310 - host checked above
            answer.read()
        return post, findings
    if post.kind != "events":
        return post, findings
    own = store is None
    store = store or open_store(settings)
    try:
        book = sender.Roster(store)
        config = settings.bounces
        for found in post.findings:
            address = found.addresses[0]
            status = book.record_bounce(
                address, found.kind, found.reason, now_at, soft_limit=config.soft_limit, soft_days=config.soft_days
            )
            findings.append(BounceFinding(found.kind, address if book.known(address) else "", found.reason, status))
    finally:
        if own:
            store.close()
    return post, findings
