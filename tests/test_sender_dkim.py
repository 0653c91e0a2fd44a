"""DKIM signing (dkimsign.py, signing.py, signpool.py): every signature verifies with dkimpy and with
authheaders, covers the list and bulk headers, breaks when any of them or the body changes; the skeleton
shortcut gives the very bytes of signing the whole message; helper processes sign the same."""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import authheaders
import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from dkim.canonicalization import Relaxed
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.config import DeliveryPolicy, Settings, load_settings
from digest.errors import ConfigError
from digest.models import Subscriber
from digest.sender.dkimsign import ED25519, RSA, Signer, load_key, relaxed_body, relaxed_header
from digest.sender.message import MessageFactory
from digest.sender.signing import SIGNED_HEADERS
from digest.sender.signpool import SigningPool
from tests.conftest import state_env
from tests.support_message import NOW_AT, make_rendered, make_settings

KIM = Subscriber(email="minji@example.com", name="김민지")
HTML = ((), "html")
DOMAIN = "blog.example.com"
BULK = ("list-archive", "list-help", "precedence", "auto-submitted", "x-auto-response-suppress", "feedback-id")


def pem(key: Any) -> bytes:
    return bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("keys")
    ed = ed25519.Ed25519PrivateKey.generate()
    files = {
        "rsa": pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        "other-rsa": pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        "ed25519": pem(ed),
        # dkimpy's dknewkey writes the 32-byte seed in base64
        "ed25519-seed": base64.b64encode(
            ed.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
        ),
    }
    for name, data in files.items():
        (folder / f"{name}.key").write_bytes(data)
    return {name: folder / f"{name}.key" for name in files}


def signed_settings(tmp: Path, keys: dict[str, Path], ed: str | None = None, processes: int = 0) -> Settings:
    changes: dict[str, Any] = {"dkim_key": keys["rsa"], "dkim_selector": "news", "dkim_domain": DOMAIN}
    if ed:
        changes.update(dkim_ed25519_key=keys[ed], dkim_ed25519_selector="news-ed")
    settings = make_settings(tmp, **changes)
    return replace(settings, delivery=DeliveryPolicy(signing_processes=processes))


def dns_of(settings: Settings, dmarc: str = "v=DMARC1; p=reject") -> Callable[..., Any]:
    """A dnsfunc for dkimpy and authheaders serving the configured keys and a DMARC record."""
    email = settings.email
    records = {f"_dmarc.{DOMAIN}": dmarc}
    for path, selector, algorithm in (
        (email.dkim_key, email.dkim_selector, RSA),
        (email.dkim_ed25519_key, email.dkim_ed25519_selector, ED25519),
    ):
        if path is not None:
            key = load_key(path, selector, DOMAIN, algorithm)
            records[key.record_name] = key.record

    def dnsfunc(name: Any, timeout: int = 5) -> Any:
        # dkimpy asks in bytes and wants bytes; authheaders' DMARC lookup asks and wants str
        found = records.get((name.decode() if isinstance(name, bytes) else name).rstrip("."))
        return found.encode() if found is not None and isinstance(name, bytes) else found

    return dnsfunc


def build(settings: Settings, subscriber: Subscriber = KIM, tmp: Path | None = None) -> bytes:
    factory = MessageFactory({HTML: make_rendered(tmp or settings.site.root)}, settings, NOW_AT)
    try:
        return factory.build(subscriber).data
    finally:
        factory.close()


def signatures(data: bytes) -> list[bytes]:
    head = data.split(b"\r\n\r\n", 1)[0]
    return re.findall(rb"^DKIM-Signature:.*?(?=^\S)", head + b"\r\nX:", re.S | re.M)


def without_signature(data: bytes, index: int) -> bytes:
    return data.replace(signatures(data)[index], b"", 1)


def verified(data: bytes, dnsfunc: Callable[..., Any]) -> list[bool]:
    """dkimpy's verdict on each signature (it raises for some mismatches, returns False for others)."""

    def one(index: int) -> bool:
        try:
            return bool(dkim.DKIM(data).verify(idx=index, dnsfunc=dnsfunc))
        except dkim.DKIMException:
            return False

    return [one(i) for i in range(len(signatures(data)))]


@pytest.mark.parametrize("ed", [None, "ed25519", "ed25519-seed"], ids=["rsa", "rsa+ed25519", "rsa+ed25519-seed"])
def test_every_signature_verifies_with_dkimpy_and_authheaders(tmp_path: Path, keys: dict[str, Path], ed: str | None):
    settings = signed_settings(tmp_path, keys, ed)
    data = build(settings)
    dnsfunc = dns_of(settings)
    tags = [dict(re.findall(rb"(\w+)=([^;]*)", re.sub(rb"\s", b"", s.split(b":", 1)[1]))) for s in signatures(data)]
    assert [t[b"a"] for t in tags] == [b"rsa-sha256"] + ([b"ed25519-sha256"] if ed else [])
    assert all(t[b"c"] == b"relaxed/relaxed" and t[b"d"] == DOMAIN.encode() for t in tags)
    assert verified(data, dnsfunc) == [True] * len(tags)
    # authheaders checks the first signature and DMARC: each signature in turn comes first
    for index in range(len(tags)):
        alone = without_signature(data, 1 - index) if len(tags) == 2 else data
        result = authheaders.authenticate_message(alone, "mx.test", spf=False, dkim=True, dmarc=True, dnsfunc=dnsfunc)
        assert "dkim=pass" in result and f"header.d={DOMAIN}" in result and "dmarc=pass" in result, result


def test_the_signature_covers_the_list_and_bulk_headers(tmp_path: Path, keys: dict[str, Path]) -> None:
    data = build(signed_settings(tmp_path, keys, "ed25519"))
    for signature in signatures(data):
        listed = re.search(rb"h=([^;]+)", re.sub(rb"\s", b"", signature))
        assert listed is not None
        names = listed.group(1).decode().split(":")
        assert {"from", "to", "subject", "date", "message-id", "list-unsubscribe", "list-unsubscribe-post"} <= set(
            names
        )
        assert set(BULK) <= set(names)
        assert names == [h.lower() for h in SIGNED_HEADERS if h.lower() in names]  # each once, in order


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("List-Unsubscribe", "<mailto:attacker@example.net>"),
        ("List-Unsubscribe-Post", "List-Unsubscribe=Nothing"),
        ("List-Archive", "<https://elsewhere.example/>"),
        ("List-Help", "<https://elsewhere.example/help>"),
        ("Precedence", "list"),
        ("Auto-Submitted", "no"),
        ("X-Auto-Response-Suppress", "All"),
        ("Feedback-ID", "x:y:z:digest"),
        ("Subject", "changed"),
        ("To", "someone@example.net"),
    ],
)
def test_changing_a_signed_header_breaks_every_signature(
    tmp_path: Path, keys: dict[str, Path], header: str, value: str
) -> None:
    settings = signed_settings(tmp_path, keys, "ed25519")
    data = build(settings)
    pattern = re.compile(rb"^" + header.encode() + rb":.*?\r\n(?=\S)", re.S | re.M)
    assert pattern.search(data) is not None
    tampered = pattern.sub(header.encode() + b": " + value.encode() + b"\r\n", data, count=1)
    assert verified(tampered, dns_of(settings)) == [False, False]


def test_changing_the_body_breaks_the_signature(tmp_path: Path, keys: dict[str, Path]) -> None:
    settings = signed_settings(tmp_path, keys, "ed25519")
    data = build(settings)
    assert verified(data.replace(b"walk by the river", b"walk by the rover", 1), dns_of(settings)) == [False, False]
    # relaxed canonicalisation forgives what mail servers do to whitespace at line ends
    head, body = data.split(b"\r\n\r\n", 1)
    assert verified(head + b"\r\n\r\n" + body.replace(b"\r\n", b"  \r\n") + b"\r\n\r\n", dns_of(settings)) == [
        True,
        True,
    ]


def test_a_record_of_another_key_fails(tmp_path: Path, keys: dict[str, Path]) -> None:
    settings = signed_settings(tmp_path, keys)
    data = build(settings)
    other = load_key(keys["other-rsa"], "news", DOMAIN)
    assert verified(data, lambda name, timeout=5: other.record.encode()) == [False]


# -- the skeleton shortcut against signing the whole message ----------------------------------------

LITERAL = st.lists(st.sampled_from(["a", "b c", "  ", "\t", "x  \t y", "é", "=", "."]), max_size=6).map("".join)
LINES = st.lists(LITERAL, min_size=1, max_size=5).map(lambda lines: "\r\n".join(lines) + "\r\n")
VALUE = st.sampled_from(["user@example.com", "https://x.example/u?t=abc", "a=\r\nb", "with space", "tab\there", ""])


@pytest.fixture(scope="module")
def signer(keys: dict[str, Path]) -> Signer:
    rsa_key = load_key(keys["rsa"], "news", DOMAIN)
    ed_key = load_key(keys["ed25519"], "news-ed", DOMAIN, ED25519)
    return Signer([rsa_key, ed_key], SIGNED_HEADERS, 1_710_000_000)


@settings(max_examples=60, deadline=None)
@given(
    before=LINES,
    middle=st.lists(LINES, min_size=1, max_size=3),
    values=st.lists(VALUE, min_size=3, max_size=3),
    ending=st.sampled_from(["", "\r\n", "\r\n\r\n  \r\n"]),
)
def test_the_prepared_skeleton_signs_like_the_whole_message(
    signer: Signer, before: str, middle: list[str], values: list[str], ending: str
) -> None:
    """RSA PKCS#1 v1.5 and Ed25519 signatures are deterministic: the same input gives the same bytes."""
    head = "To: A <a@example.com>\r\nMessage-ID: <1@x>\r\nList-Unsubscribe: <mailto:u@x>\r\n"
    pieces: list[bytes | int] = [0, b"From: B <b@example.com>\r\nSubject:  two  spaces\r\n\r\n" + before.encode()]
    for i, part in enumerate(middle):
        pieces += [1 + i % 3, part.encode()]
    pieces.append(ending.encode())
    given_values = [head.encode()] + [v.encode() for v in values]
    whole = b"".join(given_values[p] if isinstance(p, int) else p for p in pieces)
    assert signer.prepare(pieces).sign(given_values) == signer.sign(whole)


BODY_LINES = st.lists(st.text(alphabet=" \tab=.", max_size=12), max_size=6)


@settings(max_examples=200, deadline=None)
@given(lines=BODY_LINES, blank=st.integers(0, 3))
def test_relaxed_body_is_dkimpys(lines: list[str], blank: int) -> None:
    body = ("".join(line + "\r\n" for line in lines) + "\r\n" * blank).encode()
    assert relaxed_body(body) == Relaxed.canonicalize_body(body)


@settings(max_examples=200, deadline=None)
@given(name=st.sampled_from(["Subject", "X-Odd"]), value=st.text(alphabet=" \tab:\r\n", max_size=20))
def test_relaxed_header_is_dkimpys(name: str, value: str) -> None:
    value = value.replace("\r", "").replace("\n", "\r\n ")  # folding: a line break is followed by whitespace
    ours = relaxed_header(name.encode(), value.encode())
    (theirs,) = Relaxed.canonicalize_headers([(name.encode(), value.encode())])
    assert ours == theirs[0] + b":" + theirs[1]


# -- helper processes -------------------------------------------------------------------------------


def test_helper_processes_sign_the_same(keys: dict[str, Path]) -> None:
    key = load_key(keys["rsa"], "news", DOMAIN)
    pool = SigningPool(processes=2, start_after=1)
    digests = [bytes([i]) * 32 for i in range(40)]
    out: dict[int, bytes] = {}

    def sign(indexes: range) -> None:
        for i in indexes:
            out[i] = pool(key, digests[i])

    try:
        sign(range(0, 4))  # the first starts the children; the next ones sign here until one is ready
        for _ in range(200):
            if pool.ready == 2:
                break
            threading.Event().wait(0.05)
        assert pool.ready == 2
        threads = [threading.Thread(target=sign, args=(range(4 + n, 40, 4),)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        children = list(pool._children)
        assert all(child.process.poll() is None for child in children)
        children[0].process.kill()  # a dead child: its signature is made here, the other child goes on
        children[0].process.wait()
        sign(range(0, 10))
    finally:
        pool.close()
    assert out == {i: key.sign_digest(d) for i, d in enumerate(digests)}
    assert all(child.process.poll() is not None for child in children)


def test_small_sends_start_no_helper(tmp_path: Path, keys: dict[str, Path]) -> None:
    settings = signed_settings(tmp_path, keys, processes=2)
    factory = MessageFactory({HTML: make_rendered(tmp_path)}, settings, NOW_AT)
    for n in range(10):
        factory.build(Subscriber(email=f"reader{n}@example.com"))
    assert factory._signer is not None and not factory._signer.pool._children
    factory.close()


# -- configuration ----------------------------------------------------------------------------------


def write_config(tmp: Path, email: str, delivery: str = "") -> Path:
    (tmp / "posts").mkdir(exist_ok=True)
    config = tmp / "digest.toml"
    config.write_text(
        '[site]\ntitle = "T"\nurl = "https://blog.example.com/"\n\n[email]\nfrom = "T <digest@blog.example.com>"\n'
        + email
        + ("\n[delivery]\n" + delivery if delivery else ""),
        "utf-8",
    )
    return config


@pytest.mark.parametrize(
    ("email", "delivery", "problem"),
    [
        ('dkim_ed25519_key = "{ed25519}"\ndkim_ed25519_selector = "e"\n', "", "next to the RSA one"),
        ('dkim_key = "{rsa}"\ndkim_selector = "s"\ndkim_ed25519_key = "{ed25519}"\n', "", "dkim_ed25519_selector"),
        ('dkim_key = "{rsa}"\ndkim_selector = "s"\ndkim_ed25519_key = "{rsa}"\ndkim_ed25519_selector = "e"\n', "",
         "not a PEM Ed25519"),
        ('dkim_key = "{ed25519}"\ndkim_selector = "s"\n', "", "not a PEM RSA"),
        ("", 'signing_processes = "many"', '"auto" or a whole number'),
        ("", "signing_processes = -2", '"auto" or a whole number'),
    ],
)  # fmt: skip
def test_bad_dkim_config(tmp_path: Path, keys: dict[str, Path], email: str, delivery: str, problem: str) -> None:
    config = write_config(tmp_path, email.format(**{k: str(v) for k, v in keys.items()}), delivery)
    with pytest.raises(ConfigError, match=re.escape(problem)):
        load_settings(config, env=state_env())


@pytest.mark.parametrize(
    ("written", "stored"),
    [("", -1), ('signing_processes = "auto"', -1), ("signing_processes = 0", 0), ("signing_processes = 3", 3)],
)
def test_signing_processes(tmp_path: Path, written: str, stored: int) -> None:
    assert load_settings(write_config(tmp_path, "", written), env=state_env()).delivery.signing_processes == stored
