"""Unsubscribe tokens: the subscriber's address and the day it was issued, signed with HMAC-SHA256.

Layout (then unpadded URL-safe base64, so it fits in a query string without escaping):
    version (1 byte) | issued day since 1970-01-01, UTC (3 bytes) | address (UTF-8) | MAC (16 bytes)
The MAC is HMAC-SHA256 truncated to 128 bits, which is still far beyond guessing over HTTP.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence
from datetime import UTC, datetime

from digest.errors import TokenError

VERSION = 1
MAC_BYTES = 16
# Keeps a token made for unsubscribing from being valid for any other use of the same secret.
DOMAIN = b"digest-unsubscribe\x00"
_EPOCH_DAY = datetime(1970, 1, 1, tzinfo=UTC).toordinal()


def _key(secret: str) -> bytes:
    if not secret:
        raise TokenError("no secret for unsubscribe tokens", "set the DIGEST_SECRET environment variable")
    return secret.encode("utf-8")


def _day(moment_at: datetime) -> int:
    if moment_at.tzinfo is None:
        raise ValueError("a timezone-aware datetime is required")
    return moment_at.astimezone(UTC).toordinal() - _EPOCH_DAY


def _mac(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, DOMAIN + payload, hashlib.sha256).digest()[:MAC_BYTES]


def make_token(secret: str, email: str, issued_at: datetime) -> str:
    payload = bytes((VERSION,)) + _day(issued_at).to_bytes(3, "big") + email.encode("utf-8")
    raw = payload + _mac(_key(secret), payload)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def verify_token(
    secret: str, token: str, now_at: datetime, max_age_days: int = 365, *, old_secrets: Sequence[str] = ()
) -> str:
    """Return the address the token was made for; raise TokenError for anything else. A token signed with
    a retired key (`old_secrets`) still verifies, so keys can be rotated without breaking sent links."""
    keys = [_key(secret)] + [_key(old) for old in old_secrets if old]
    hint = "use the link from a recent newsletter"
    if not token or len(token) > 1024:
        raise TokenError("the unsubscribe link is damaged", hint)
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError) as exc:
        raise TokenError("the unsubscribe link is damaged", hint) from exc
    if len(raw) < 1 + 3 + 3 + MAC_BYTES or raw[0] != VERSION:
        raise TokenError("the unsubscribe link is damaged", hint)
    payload, mac = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
    if not any(hmac.compare_digest(mac, _mac(key, payload)) for key in keys):
        raise TokenError("the unsubscribe link is not valid", hint)
    issued_day = int.from_bytes(payload[1:4], "big")
    today = _day(now_at)
    if today - issued_day > max_age_days:
        raise TokenError("the unsubscribe link has expired", hint)
    if issued_day > today + 1:  # a day of slack for clocks in other timezones
        raise TokenError("the unsubscribe link is not valid yet", "check the server's clock")
    try:
        email = payload[4:].decode("utf-8")
    except UnicodeDecodeError as exc:  # only reachable with the secret, but never crash on it
        raise TokenError("the unsubscribe link is damaged", hint) from exc
    if "@" not in email:
        raise TokenError("the unsubscribe link is damaged", hint)
    return email


def unsubscribe_url(public_url: str, token: str) -> str:
    return public_url.rstrip("/") + "/unsubscribe?token=" + token
