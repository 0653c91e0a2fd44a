from __future__ import annotations

import base64
import itertools
import random
from datetime import UTC, datetime, timedelta

import pytest

from digest.errors import DigestError, TokenError
from digest.sender.tokens import (
    PURPOSES,
    TAG_RE,
    LinkTokens,
    bounce_tag_of,
    make_token,
    new_bounce_tag,
    new_bounce_tags,
    unsubscribe_url,
    verify_token,
)

SECRET = "s3cret-for-tests-and-long-enough-to-be-a-key"
ISSUED_AT = datetime(2024, 3, 11, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize("email", ["ana@example.com", "Mixed.Case+tag@Example.ORG", "o'brien@example.com"])
def test_round_trip(email: str) -> None:
    token = make_token(SECRET, email, ISSUED_AT)
    assert verify_token(SECRET, token, ISSUED_AT + timedelta(days=30)) == email


def test_token_is_url_safe_and_compact() -> None:
    token = make_token(SECRET, "ana@example.com", ISSUED_AT)
    assert all(c.isalnum() or c in "-_" for c in token)
    assert len(token) < 60


def test_token_is_stable_for_the_same_day() -> None:
    later_at = ISSUED_AT + timedelta(hours=5)
    assert make_token(SECRET, "a@example.com", ISSUED_AT) == make_token(SECRET, "a@example.com", later_at)


def _flip(token: str, index: int) -> str:
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[index] ^= 1
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


GOOD = make_token(SECRET, "ana@example.com", ISSUED_AT)


@pytest.mark.parametrize(
    ("secret", "token", "now_at", "message"),
    [
        ("another secret", GOOD, ISSUED_AT, "not valid"),
        (SECRET, _flip(GOOD, 5), ISSUED_AT, "not valid"),  # address changed
        (SECRET, _flip(GOOD, 2), ISSUED_AT, "not valid"),  # issue day changed
        (SECRET, _flip(GOOD, -1), ISSUED_AT, "not valid"),  # MAC changed
        (SECRET, GOOD[:-4], ISSUED_AT, "not valid"),  # truncated: the MAC no longer matches
        (SECRET, GOOD[:12], ISSUED_AT, "damaged"),  # too short to hold a MAC
        (SECRET, "", ISSUED_AT, "damaged"),
        (SECRET, "not*base64!", ISSUED_AT, "damaged"),
        (SECRET, "QUJD", ISSUED_AT, "damaged"),  # too short
        (SECRET, "x" * 2000, ISSUED_AT, "damaged"),
        (SECRET, GOOD, ISSUED_AT - timedelta(days=3), "not valid yet"),
    ],
)
def test_bad_tokens_are_refused(secret: str, token: str, now_at: datetime, message: str) -> None:
    with pytest.raises(TokenError, match=message) as caught:
        verify_token(secret, token, now_at)
    assert isinstance(caught.value, DigestError)
    assert caught.value.hint


def test_an_unsubscribe_link_years_old_still_works_and_the_others_expire() -> None:
    later = ISSUED_AT + timedelta(days=5 * 365)
    assert verify_token(SECRET, GOOD, later) == "ana@example.com"
    for purpose, days in (("preferences", 366), ("confirm", 8), ("change", 8)):
        token = make_token(SECRET, "ana@example.com", ISSUED_AT, purpose=purpose)
        assert verify_token(SECRET, token, ISSUED_AT + timedelta(days=days - 1), purpose=purpose)
        with pytest.raises(TokenError, match="expired"):
            verify_token(SECRET, token, ISSUED_AT + timedelta(days=days), purpose=purpose)


def test_max_age_is_an_argument() -> None:
    assert verify_token(SECRET, GOOD, ISSUED_AT + timedelta(days=10), max_age_days=10) == "ana@example.com"
    with pytest.raises(TokenError, match="expired"):
        verify_token(SECRET, GOOD, ISSUED_AT + timedelta(days=11), max_age_days=10)


@pytest.mark.parametrize(
    "call", [lambda: make_token("", "a@example.com", ISSUED_AT), lambda: verify_token("", GOOD, ISSUED_AT)]
)
def test_empty_secret_is_refused(call: object) -> None:
    with pytest.raises(TokenError, match="secret") as caught:
        call()  # type: ignore[operator]
    assert "DIGEST_SECRET" in caught.value.hint


def test_naive_datetime_is_a_bug() -> None:
    with pytest.raises(ValueError):
        make_token(SECRET, "a@example.com", datetime(2024, 1, 1))


@pytest.mark.parametrize("public_url", ["https://news.example.com/", "https://news.example.com"])
def test_unsubscribe_url(public_url: str) -> None:
    assert unsubscribe_url(public_url, "abc") == "https://news.example.com/unsubscribe?token=abc"


@pytest.mark.parametrize(
    "raw",
    [bytes(8), b"\xff" * 8, bytes(range(8)), b"\x80\x00\x00\x00\x00\x00\x00\x01", b"digest!!"]
    + [random.Random(n).randbytes(8) for n in range(20)],
)
def test_bounce_tag_is_base32_of_its_64_bits(raw: bytes) -> None:
    expected = base64.b32encode(raw).decode("ascii").rstrip("=").lower()
    assert bounce_tag_of(int.from_bytes(raw, "big")) == expected


@pytest.mark.parametrize("count", [200, 2000])  # 2,000: more than one read of random bits
def test_new_bounce_tags_differ_and_match_their_pattern(count: int) -> None:
    for tags in ({new_bounce_tag() for _ in range(count)}, set(itertools.islice(new_bounce_tags(), count))):
        assert len(tags) == count
        assert all(TAG_RE.fullmatch(tag) for tag in tags)


@pytest.mark.parametrize("purpose", list(PURPOSES))
@pytest.mark.parametrize("secret", [SECRET, "k" * 64, "k" * 65, "비밀 열쇠 " * 20])
def test_link_tokens_are_make_tokens(purpose: str, secret: str) -> None:
    rng = random.Random(purpose + secret)
    for day in range(3):
        issued_at = ISSUED_AT + timedelta(days=day * 400, hours=rng.randint(0, 23))
        tokens = LinkTokens(secret, issued_at, purpose)
        for email in ["a@example.com", "김민지@example.com", "x" * 200 + "@example.com"] + [
            f"{rng.randbytes(6).hex()}@example.org" for _ in range(30)
        ]:
            token = tokens(email)
            assert token == make_token(secret, email, issued_at, purpose)
            assert verify_token(secret, token, issued_at, purpose=purpose) == email
