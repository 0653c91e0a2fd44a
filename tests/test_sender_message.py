from __future__ import annotations

import base64
import html
import random
import re
import string
from dataclasses import replace
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import compat32, default
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import dkim
import pytest

from digest.config import BouncesSettings, Settings
from digest.errors import ConfigError, DeliveryError
from digest.models import RECIPIENT_EMAIL_MARK, UNSUBSCRIBE_URL_MARK, Subscriber
from digest.sender.message import MessageFactory, message_id_for
from digest.sender.mimebits import clean, display_name, qp, qp_value
from digest.sender.tokens import link_url, make_token, unsubscribe_url, verify_token
from tests.support_message import KOREAN_SUBJECT, NOW_AT, SECRET, make_issue, make_rendered, make_settings, rsa_key_pair

KIM = Subscriber(email="minji@example.com", name="김민지")
HTML, TEXT = ((), "html"), ((), "text")


def parse(data: bytes) -> EmailMessage:
    message = BytesParser(policy=default).parsebytes(data)
    assert isinstance(message, EmailMessage)
    assert not message.defects
    return message


def factory(tmp_path: Path, rendered_changes: dict[str, Any] | None = None, **email: Any) -> MessageFactory:
    rendered = make_rendered(tmp_path, **(rendered_changes or {}))
    return MessageFactory({HTML: rendered, TEXT: rendered}, make_settings(tmp_path, **email), NOW_AT)


def body(message: EmailMessage, subtype: str) -> str:
    """The decoded part with line ends as a reader sees them (the wire has CRLF)."""
    part = message.get_body((subtype,))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def unsubscribe_links(message: EmailMessage) -> list[str]:
    return re.findall(r"<([^>]+)>", str(message["List-Unsubscribe"]))


def assert_wire_format(data: bytes) -> None:
    assert data.isascii()  # quoted-printable bodies, RFC 2047 headers: 7-bit clean
    assert data.count(b"\n") == data.count(b"\r\n") and data.count(b"\r") == data.count(b"\r\n")
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    head, _, body = data.partition(b"\r\n\r\n")
    assert max(len(line) for line in body.split(b"\r\n")) <= 76
    for placeholder in (UNSUBSCRIBE_URL_MARK, RECIPIENT_EMAIL_MARK, "DIGESTBODY"):
        assert placeholder.encode() not in data


def test_html_message(tmp_path: Path) -> None:
    out = factory(tmp_path).build(KIM)
    assert_wire_format(out.data)
    message = parse(out.data)
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in parts)
    assert message["Subject"] == KOREAN_SUBJECT
    assert b"=?utf-8?" in out.data.split(b"\r\nSubject: ")[1][:20]
    assert message["From"].addresses[0].display_name == "테스트 블로그"
    assert message["From"].addresses[0].addr_spec == "digest@blog.example.com"
    assert str(message["Reply-To"]) == "Editor <editor@example.org>"
    assert message["To"].addresses[0].display_name == "김민지"
    assert message["To"].addresses[0].addr_spec == "minji@example.com"
    assert parsedate_to_datetime(str(message["Date"])) == NOW_AT
    assert message["List-Id"] == "<digest.blog.example.com>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["Message-ID"] == out.message_id == message_id_for("2024-W10", KIM.email, "blog.example.com")
    assert (out.issue_id, out.recipient) == ("2024-W10", KIM.email)


def test_unsubscribe_links_carry_a_valid_token(tmp_path: Path) -> None:
    message = parse(factory(tmp_path).build(KIM).data)
    mailto, https = unsubscribe_links(message)
    assert mailto == "mailto:digest@blog.example.com?subject=unsubscribe"
    assert https.startswith("https://news.example.com/unsubscribe?token=")
    token = parse_qs(urlsplit(https).query)["token"][0]
    assert verify_token(SECRET, token, NOW_AT) == KIM.email
    text = body(message, "plain")
    html = body(message, "html")
    assert f"Unsubscribe: {https}\n" in text and f"Sent to {KIM.email}." in text
    assert f'href="{https}"' in html and f"Sent to {KIM.email}." in html


def test_without_public_url_the_mailto_link_is_used(tmp_path: Path) -> None:
    build = factory(tmp_path, public_url="", unsubscribe_mailto="mailto:leave@example.org")
    message = parse(build.build(KIM).data)
    assert unsubscribe_links(message) == ["mailto:leave@example.org?subject=unsubscribe"]
    assert "List-Unsubscribe-Post" not in message
    assert "Unsubscribe: mailto:leave@example.org?subject=unsubscribe\n" in body(message, "plain")


def test_public_url_needs_a_secret(tmp_path: Path) -> None:
    rendered = make_rendered(tmp_path)
    with pytest.raises(ConfigError, match="secret") as caught:
        MessageFactory({HTML: rendered}, make_settings(tmp_path, secret=""), NOW_AT)
    assert "DIGEST_SECRET" in caught.value.hint
    no_https = MessageFactory({HTML: rendered}, make_settings(tmp_path, secret="", public_url=""), NOW_AT)
    assert no_https.build(KIM).data


def test_text_format_is_plain_text_only(tmp_path: Path) -> None:
    out = factory(tmp_path).build(replace(KIM, format="text"))
    assert_wire_format(out.data)
    message = parse(out.data)
    assert message.get_content_type() == "text/plain"
    assert not message.is_multipart()
    assert message["Subject"] == KOREAN_SUBJECT
    assert str(message.get_content()).replace("\r\n", "\n").startswith("주간 소식 2024-W10\n")


def test_missing_format_falls_back_to_the_same_rendering(tmp_path: Path) -> None:
    build = MessageFactory({HTML: make_rendered(tmp_path)}, make_settings(tmp_path), NOW_AT)
    assert parse(build.build(replace(KIM, format="text")).data).get_content_type() == "text/plain"
    with pytest.raises(DeliveryError, match="no rendered issue"):
        build.build(replace(KIM, tags=("travel",)))


def test_tag_variants_use_their_own_rendering(tmp_path: Path) -> None:
    travel = make_rendered(tmp_path, subject="Travel only", text=f"travel {UNSUBSCRIBE_URL_MARK}\n")
    variants = {HTML: make_rendered(tmp_path), (("travel",), "html"): travel}
    build = MessageFactory(variants, make_settings(tmp_path), NOW_AT)
    message = parse(build.build(replace(KIM, tags=("Travel",))).data)
    assert message["Subject"] == "Travel only"
    assert body(message, "plain").startswith("travel https://news.example.com/unsubscribe?token=")


def test_message_id_and_bytes_are_stable_across_factories(tmp_path: Path) -> None:
    first, second = factory(tmp_path), factory(tmp_path)
    assert first.build(KIM).data == second.build(KIM).data
    upper = replace(KIM, email="MINJI@example.com")
    assert first.build(upper).message_id == first.build(KIM).message_id
    assert first.build(Subscriber("other@example.com")).message_id != first.build(KIM).message_id
    assert message_id_for("2024-W11", KIM.email, "blog.example.com") != first.build(KIM).message_id
    assert re.fullmatch(r"<[0-9a-f]{32}@blog\.example\.com>", first.build(KIM).message_id)


@pytest.mark.parametrize(
    "name",
    [
        "Eve\r\nBcc: x@evil.example",
        "Eve\nBcc: x@evil.example",
        "김\rBcc: x@evil.example",
        "Eve\u2028Bcc: x@evil.example",
        'Eve" <x@evil.example>, "y',
        "Eve\x00\x1b\x7f",
    ],
)
def test_names_cannot_inject_headers(tmp_path: Path, name: str) -> None:
    out = factory(tmp_path).build(Subscriber("eve@example.com", name))
    assert_wire_format(out.data)
    message = parse(out.data)
    assert "Bcc" not in message
    assert [a.addr_spec for a in message["To"].addresses] == ["eve@example.com"]
    assert not re.search(r"[\x00-\x1f\x7f\u2028]", message["To"].addresses[0].display_name)


def test_subject_cannot_inject_headers(tmp_path: Path) -> None:
    build = factory(tmp_path, rendered_changes={"subject": "주간\r\nBcc: x@evil.example\n소식"})
    message = parse(build.build(KIM).data)
    assert "Bcc" not in message
    assert message["Subject"] == "주간 Bcc: x@evil.example 소식"


@pytest.mark.parametrize(
    "email",
    [
        "a@example.com\r\nBcc: x@evil.example",
        "a b@example.com",
        "<a@example.com>",
        "a@example.com, b@example.com",
        "nobody",
    ],
)
def test_bad_addresses_are_refused(tmp_path: Path, email: str) -> None:
    with pytest.raises(DeliveryError):
        factory(tmp_path).build(Subscriber(email))


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("sender", "Blog <digest@example.com>\r\nBcc: x@evil.example", "control character"),
        ("sender", "not an address", "not one email address"),
        ("reply_to", "a@example.com, b@example.com", "not one email address"),
        ("list_id", "bad list id!", "not a list id"),
        ("unsubscribe_mailto", "nobody", "not an address"),
    ],
)
def test_bad_settings_are_config_errors(tmp_path: Path, setting: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        changes: dict[str, Any] = {setting: value}
        factory(tmp_path, **changes)


LONG_LOCAL = "a" * 64 + "@" + "sub." * 40 + "example.com"


@pytest.mark.parametrize(
    ("text", "email"),
    [
        (f"{UNSUBSCRIBE_URL_MARK}", KIM.email),
        (f"{RECIPIENT_EMAIL_MARK}{UNSUBSCRIBE_URL_MARK}{RECIPIENT_EMAIL_MARK}\n\nend", KIM.email),
        (f"a line ending in spaces   {UNSUBSCRIBE_URL_MARK}   \n.\n", KIM.email),
        ("x" * 75 + RECIPIENT_EMAIL_MARK + "y" * 200 + "\n" + UNSUBSCRIBE_URL_MARK + "\n", LONG_LOCAL),
        (f"=3D tricky = signs and tabs\t\n{RECIPIENT_EMAIL_MARK}=\n한글 " * 3, "o'neil&co=x@example.com"),
        ("no placeholders at all\r\nwith CRLF\rand CR\n", KIM.email),
    ],
)
def test_bodies_decode_to_the_substituted_text(tmp_path: Path, text: str, email: str) -> None:
    rendered_html = f"<p>{text}</p>"
    build = factory(tmp_path, rendered_changes={"text": text, "html": rendered_html})
    out = build.build(Subscriber(email, "이름 " * 40))
    assert_wire_format(out.data)
    message = parse(out.data)
    url = unsubscribe_links(message)[1]
    expected = text.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n") + "\n"
    plain = expected.replace(UNSUBSCRIBE_URL_MARK, url).replace(RECIPIENT_EMAIL_MARK, email)
    assert body(message, "plain") == plain
    escaped = email.replace("&", "&amp;").replace("'", "&#x27;")
    html = rendered_html.replace(UNSUBSCRIBE_URL_MARK, url).replace(RECIPIENT_EMAIL_MARK, escaped)
    assert body(message, "html") == html.replace("\r\n", "\n").replace("\r", "\n") + "\n"
    assert rfc2047_to(out.data) == " ".join(["이름"] * 40) + f" <{email}>"


@pytest.mark.parametrize("fmt", ["html", "text"])
@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize(
    ("text", "email"),
    [
        (f".{UNSUBSCRIBE_URL_MARK}\n..\n.{RECIPIENT_EMAIL_MARK}.\n.", KIM.email),
        (f"a line ending in spaces   {UNSUBSCRIBE_URL_MARK}   \n.\n", ".dot.first@example.com"),
        ("x" * 75 + RECIPIENT_EMAIL_MARK + "." * 200 + "\n" + UNSUBSCRIBE_URL_MARK + "\n", LONG_LOCAL),
        ("no placeholders at all\r\nwith CRLF\rand CR\n.", KIM.email),
    ],
)
def test_messages_go_to_smtp_as_they_are(tmp_path: Path, fmt: str, signed: bool, text: str, email: str) -> None:
    """A built message is marked wire-ready, and it is: SMTP's CRLF and dot-stuffing change no byte of it."""
    from digest.sender.transports.smtp import _stuffed, crlf

    keys: dict[str, Any] = {}
    if signed:
        keys = {"dkim_key": rsa_key_pair(tmp_path)[0], "dkim_selector": "news", "dkim_domain": "blog.example.com"}
    build = factory(tmp_path, rendered_changes={"text": text, "html": f"<p>{text}</p>"}, **keys)
    out = build.build(Subscriber(email, "김민지 " * 30 if signed else ".Dot Name", format=fmt))
    assert out.wire_ready
    assert _stuffed(crlf(out.data)) == out.data


def rfc2047_to(data: bytes) -> str:
    """The To header decoded by the RFC 2047 rules: the email package's own address parser keeps the
    whitespace between encoded words of a phrase, which the RFC (and mail clients) drop."""
    raw = BytesParser(policy=compat32).parsebytes(data)["To"]
    return str(make_header(decode_header(re.sub(r"\r?\n[ \t]", " ", str(raw)))))


def test_naive_now_is_a_bug(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        MessageFactory({HTML: make_rendered(tmp_path)}, make_settings(tmp_path), NOW_AT.replace(tzinfo=None))


def test_dkim_signature_verifies(tmp_path: Path) -> None:
    key, public = rsa_key_pair(tmp_path)
    build = factory(tmp_path, dkim_key=key, dkim_selector="news", dkim_domain="blog.example.com")
    data = build.build(KIM).data
    assert data.startswith(b"DKIM-Signature:")
    records = {b"news._domainkey.blog.example.com.": b"v=DKIM1; k=rsa; p=" + public}

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes | None:
        return records.get(name)

    assert dkim.verify(data, dnsfunc=dnsfunc)
    signed = parse(data)["DKIM-Signature"]
    signed_list = re.search(r"h=([^;]+)", re.sub(r"\s", "", str(signed)))
    assert signed_list is not None
    headers = {h.lower() for h in signed_list.group(1).split(":")}
    assert {"from", "subject", "date", "message-id", "list-unsubscribe", "list-unsubscribe-post"} <= headers
    tampered = data.replace(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click", b"List-Unsubscribe-Post: nope")
    assert not dkim.verify(tampered, dnsfunc=dnsfunc)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"dkim_selector": ""}, "selector"),
        ({"dkim_key": Path("missing.pem")}, "cannot read"),
    ],
)
def test_bad_dkim_settings(tmp_path: Path, changes: dict, message: str) -> None:
    base: dict[str, Any] = {"dkim_key": tmp_path / "bad.pem", "dkim_selector": "s", "dkim_domain": "example.com"}
    (tmp_path / "bad.pem").write_text("not a key")
    with pytest.raises(ConfigError, match="not a PEM"):
        factory(tmp_path, **base)
    base.update(changes)
    if isinstance(base["dkim_key"], Path) and not base["dkim_key"].is_absolute():
        base["dkim_key"] = tmp_path / base["dkim_key"]
    with pytest.raises(ConfigError, match=message):
        factory(tmp_path, **base)


def test_quoted_printable_never_starts_a_line_with_a_dot() -> None:
    """SMTP dot-stuffing then has nothing to do; decoding gives the same bytes, lines get no longer."""
    import binascii
    import random

    from digest.sender.mimebits import qp

    rng = random.Random(1)
    pieces = ["가", ".", "..", "a b", "\n", ".\n", " ", "=", "é"]
    for _ in range(2000):
        text = "".join(rng.choice([*pieces, "x" * rng.randint(1, 90)]) for _ in range(rng.randint(0, 60)))
        data = text.encode()
        encoded = qp(data)
        assert binascii.a2b_qp(encoded) == data
        assert not encoded.startswith(b".") and b"\n." not in encoded
        plain = binascii.b2a_qp(data)
        assert max(map(len, encoded.split(b"\n"))) <= max(76, max(map(len, plain.split(b"\n"))))


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("List-Archive", "<https://blog.example.com/newsletter/>"),
        ("List-Help", "<https://blog.example.com/newsletter/>, <mailto:editor@example.org?subject=help>"),
        ("Precedence", "bulk"),
        ("Auto-Submitted", "auto-generated"),
        ("X-Auto-Response-Suppress", "OOF, AutoReply"),
        ("Feedback-ID", "2024-W10:digest.blog.example.com:blog.example.com:digest"),
    ],
)
def test_bulk_sender_headers(tmp_path: Path, header: str, expected: str) -> None:
    build = factory(tmp_path)
    for subscriber in (KIM, Subscriber(email="other@example.net", format="text")):
        message = parse(build.build(subscriber).data)
        assert message.get_all(header) == [expected]


def test_an_issue_in_another_language_points_at_its_own_archive(tmp_path: Path) -> None:
    """A Korean issue of an English site lives under ko/: its List-Archive and List-Help say so, not the
    site language's archive a Korean reader cannot read."""
    issue = replace(make_issue(tmp_path), language="ko")
    message = parse(factory(tmp_path, {"issue": issue}).build(KIM).data)
    assert message["List-Archive"] == "<https://blog.example.com/newsletter/ko/>"
    assert message["List-Help"] == "<https://blog.example.com/newsletter/ko/>, <mailto:editor@example.org?subject=help>"


def test_list_help_without_reply_to_uses_the_from_address(tmp_path: Path) -> None:
    message = parse(factory(tmp_path, reply_to="").build(KIM).data)
    expected = "<https://blog.example.com/newsletter/>, <mailto:digest@blog.example.com?subject=help>"
    assert message["List-Help"] == expected


@pytest.mark.parametrize("list_id", ["digest.blog.example.com", "digest.notes.a-rather-long-blog-hostname.example.org"])
def test_a_long_feedback_id_stays_one_plain_line(tmp_path: Path, list_id: str) -> None:
    """Gmail reads the Feedback-ID as written: a long one (a long site host) is not folded into RFC 2047
    encoded words, which the email package makes of a token it cannot fold."""
    data = factory(tmp_path, list_id=list_id).build(KIM).data
    expected = f"2024-W10:{list_id}:blog.example.com:digest"
    assert f"\r\nFeedback-ID: {expected}\r\n".encode() in data
    assert b"=?utf-8?q?2024" not in data.lower() and parse(data)["Feedback-ID"] == expected
    assert_wire_format(data)


@pytest.mark.parametrize(
    ("issue_id", "campaign"),
    [
        ("welcome-078fdd68b335c8700624b93e", "welcome"),
        ("confirm-078fdd68b335c8700624b93e", "confirm"),
        ("ko/2024-W10", "ko/2024-W10"),
    ],
)
def test_a_feedback_id_is_never_per_reader(issue_id: str, campaign: str) -> None:
    from digest.sender.message import feedback_id

    assert (
        feedback_id(issue_id, "l.example.com", "https://example.com/") == f"{campaign}:l.example.com:example.com:digest"
    )


def test_feedback_id_fields_have_no_colon_of_their_own() -> None:
    from digest.sender.message import feedback_id

    assert feedback_id("2024-07-01:2024-07-08", "news.example.com", "https://example.com:8443/blog/") == (
        "2024-07-01-2024-07-08:news.example.com:example.com-8443:digest"
    )


# -- build() against the plain way of filling a skeleton --------------------------------------------------------


def plain_display_name(name: str) -> str:
    """mimebits.display_name as first written: encoded words made a character at a time."""
    name = clean(name)
    if not name:
        return ""
    if name.isascii() and len(name) <= 60:
        if re.fullmatch(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]+", name):
            return name
        return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    words: list[str] = []
    chunk = b""
    for char in name:
        encoded = char.encode("utf-8")
        if len(chunk) + len(encoded) > 45:
            words.append(chunk.decode("utf-8"))
            chunk = b""
        chunk += encoded
    words.append(chunk.decode("utf-8"))
    return "\r\n ".join("=?utf-8?b?" + base64.b64encode(w.encode("utf-8")).decode("ascii") + "?=" for w in words)


def plain_qp(value: str) -> bytes:
    return qp(value.encode("utf-8")).replace(b"\n", b"\r\n")


def plain_build(factory: MessageFactory, settings: Settings, sub: Subscriber) -> bytes:
    """One message made the plain way: each value by the general function, each token by make_token, the
    skeleton's pieces walked one by one."""
    skeleton = factory._skeleton(sub.variant)
    email = sub.email.strip()
    message_id = message_id_for(skeleton.issue_id, email, "blog.example.com")
    public_url = settings.email.public_url
    if public_url:
        token = make_token(settings.secret, email, NOW_AT)
        url = unsubscribe_url(public_url, token, skeleton.language)
        list_unsubscribe = f"<mailto:digest@blog.example.com?subject=unsubscribe>,\r\n <{url}>"
        prefs = link_url(public_url, "preferences", make_token(settings.secret, email, NOW_AT, "preferences"))
    else:
        url = "mailto:digest@blog.example.com?subject=unsubscribe"
        list_unsubscribe, prefs = f"<{url}>", ""
    phrase = plain_display_name(sub.name)
    to = f"{phrase}{chr(13) + chr(10) + ' ' if len(phrase) + len(email) > 70 else ' '}<{email}>" if phrase else email
    head = f"To: {to}\r\nMessage-ID: {message_id}\r\nList-Unsubscribe: {list_unsubscribe}\r\n"
    values = (head.encode(), plain_qp(url), plain_qp(email), plain_qp(html.escape(email)), plain_qp(prefs))
    data = b"".join(values[p] if isinstance(p, int) else p for p in skeleton.pieces)
    return data if skeleton.dkim is None else skeleton.dkim.sign(values) + data


PEOPLE = [
    Subscriber("ana@example.com", "Ana Reader"),
    Subscriber("Bob.Smith@Example.ORG", 'Bob "the" Smith', format="text"),
    Subscriber("minji@example.com", "김민지", tags=("python",)),
    Subscriber("long.korean@example.com", "김민지 박서준 이하은 최지우 정도윤", tags=("Python", "여행")),
    Subscriber("o'neil+news=1@example.com", "", format="text", tags=("여행",)),
    Subscriber("a&b@example.com", "x" * 70, tag="abcdefghijklm"),
    Subscriber(".dot@example.com", "Dot\ttab"),
    Subscriber("l" * 70 + "@example.com", "Long Local Part", language="ko"),
    Subscriber("  spaced@example.com  ", "  Spaced  "),
]


@pytest.mark.parametrize("language", ["", "ko"])
@pytest.mark.parametrize("public_url", ["https://news.example.com/", ""])
@pytest.mark.parametrize("signed", [False, True])
def test_build_gives_the_bytes_of_the_plain_way(tmp_path: Path, language: str, public_url: str, signed: bool) -> None:
    email: dict[str, Any] = {"public_url": public_url}
    if signed:
        key, _ = rsa_key_pair(tmp_path)
        email.update(dkim_key=key, dkim_selector="news", dkim_domain="blog.example.com")
    settings = replace(make_settings(tmp_path, **email), bounces=BouncesSettings(return_path="bounces@example.org"))
    rendered = make_rendered(tmp_path)
    rendered = replace(rendered, issue=replace(rendered.issue, language=language))
    python = replace(rendered, html=rendered.html.replace("<table", "<p>python only</p><table", 1))
    variants = {HTML: rendered, TEXT: rendered, (("python",), "html"): python, (("python", "여행"), "html"): python}
    variants[(("여행",), "text")] = replace(python, text="여행 " + python.text)
    build = MessageFactory(variants, settings, NOW_AT)
    try:
        for sub in PEOPLE * 2:  # the second time through the variants and skeletons already made
            made = build.build(sub)
            assert made.data == plain_build(build, settings, sub), sub
            assert made.envelope_from == ("bounces+abcdefghijklm@example.org" if sub.tag else "bounces@example.org")
            assert made.issue_id == (f"{language}/2024-W10" if language else "2024-W10")
    finally:
        build.close()


@pytest.mark.parametrize("seed", range(4))
def test_values_left_as_they_are_read_back_as_quoted_printable(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(2000):
        value = "".join(rng.choice(string.printable[:95] + "é") for _ in range(rng.randint(0, 80)))
        assert qp_value(value) == plain_qp(value), value


@pytest.mark.parametrize("length", range(1, 30))
def test_names_in_one_encoded_word_or_several(length: int) -> None:
    for name in ("김" * length, "a" + "민" * length, "é" * (length * 2), "😀" * length):
        assert display_name(name) == plain_display_name(name)
