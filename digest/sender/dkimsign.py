"""DKIM signatures (RFC 6376, relaxed/relaxed, SHA-256) computed here, with the RSA (PKCS#1 v1.5) and
Ed25519 (RFC 8463) operations of `cryptography` (OpenSSL).

Why not dkimpy's sign(): it does the RSA operation in pure Python. For the ~43 KB issue of
bench/bench_dkim.py with a 2048-bit key on a shared 2-CPU machine, dkimpy signs about 90 messages/s;
OpenSSL's RSA is about 1,000 signatures/s on one core. dkimpy has no way to plug another RSA in, so the
canonicalisation and the hashes are done here too (dkimpy still verifies, in the tests and in
`digest doctor`).

The other cost is the body: relaxed canonicalisation is a regex pass over 43 KB (about 0.3 ms) and the
hash another 0.1 ms. Each variant's skeleton is canonicalised once (`Prepared`), with the per-subscriber
values standing in as sentinels; since those values (addresses, URLs, quoted-printable without any
space) never contain whitespace and sit on lines of their own, putting them into the canonical skeleton
gives the same bytes as canonicalising the finished body. The hash of the body up to the first
per-subscriber value (most of the text part) is computed once too, and copied per message.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from digest.config.checks import read_dkim_key

RSA = "rsa-sha256"
ED25519 = "ed25519-sha256"

_TRAILING_WSP = re.compile(rb"[ \t]+(?=\r\n|\Z)")
_WSP_RUN = re.compile(rb"[ \t]{2,}|\t")
_ANY_WSP = re.compile(rb"[ \t]+")
_SLOT = re.compile(rb"\x00(\d+)\x00")
_FIELD_START = re.compile(rb"(?m)^(?=[^ \t\r\n])")
_PKCS1 = padding.PKCS1v15()
_PREHASHED = Prehashed(hashes.SHA256())

Piece = bytes | int


# -- canonicalisation (RFC 6376 section 3.4) ----------------------------------------------------------


def relaxed_header(name: bytes, value: bytes) -> bytes:
    """`name:value` + CRLF, relaxed: name lower-cased, value unfolded, whitespace runs made one space."""
    value = value.replace(b"\r\n", b"").replace(b"\n", b"")
    return name.strip().lower() + b":" + _ANY_WSP.sub(b" ", value).strip(b" ") + b"\r\n"


def relaxed_body(body: bytes) -> bytes:
    """Whitespace at line ends dropped, runs made one space, empty lines at the end dropped, one CRLF at the
    end of a body that is not empty."""
    body = _WSP_RUN.sub(b" ", _TRAILING_WSP.sub(b"", body))
    end = len(body)
    while body.endswith(b"\r\n", 0, end):
        end -= 2
    return body[:end] + b"\r\n" if end else b""


def header_fields(block: bytes) -> list[tuple[bytes, bytes]]:
    """(name, raw value) of each field of a header block (folded lines stay in their field)."""
    fields = []
    for raw in _FIELD_START.split(block):
        if not raw.strip():
            continue
        name, colon, value = raw.partition(b":")
        if colon:
            fields.append((name, value.removesuffix(b"\r\n").removesuffix(b"\n")))
    return fields


# -- keys -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DkimKey:
    """One signing key: algorithm, selector, domain and the private key (PEM kept for signing processes)."""

    algorithm: str  # RSA | ED25519
    selector: str
    domain: str
    private: Any = field(repr=False)  # rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    pem: bytes = field(repr=False, default=b"")

    def sign_digest(self, digest: bytes) -> bytes:
        """The signature of a SHA-256 digest of the canonical header data."""
        if self.algorithm == RSA:
            signature: bytes = self.private.sign(digest, _PKCS1, _PREHASHED)
            return signature
        # RFC 8463 section 3: Ed25519 signs the SHA-256 hash itself (PureEdDSA over the 32 bytes)
        signed: bytes = self.private.sign(digest)
        return signed

    @property
    def public_key(self) -> str:
        """The p= value of this key's DNS record."""
        public = self.private.public_key()
        if self.algorithm == ED25519:
            raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        else:
            raw = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return base64.b64encode(raw).decode("ascii")

    @property
    def record_name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"

    @property
    def record(self) -> str:
        """The TXT record to publish at `record_name`."""
        kind = "ed25519" if self.algorithm == ED25519 else "rsa"
        return f"v=DKIM1; k={kind}; p={self.public_key}"

    @property
    def bits(self) -> int:
        return int(self.private.key_size) if self.algorithm == RSA else 256


def parse_key(data: bytes, algorithm: str) -> Any:
    """A private key from PEM (PKCS#1 or PKCS#8), or for Ed25519 also the base64 of the 32-byte seed
    (the format of dkimpy's dknewkey); ValueError when it is neither."""
    if algorithm == ED25519 and b"-----BEGIN" not in data:
        try:
            seed = base64.b64decode(data.strip(), validate=True)
        except ValueError as exc:
            raise ValueError("not base64") from exc
        if len(seed) != 32:
            raise ValueError("an Ed25519 key is 32 bytes")
        return ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ValueError(str(exc)) from exc
    wanted = ed25519.Ed25519PrivateKey if algorithm == ED25519 else rsa.RSAPrivateKey
    if not isinstance(key, wanted):
        raise ValueError(f"not an {'Ed25519' if algorithm == ED25519 else 'RSA'} key")
    return key


def load_key(path: Path, selector: str, domain: str, algorithm: str = RSA) -> DkimKey:
    """The key in `path`; a ConfigError naming the file when it cannot be read or is not a key (the same
    check, and the same message, as when the settings are loaded)."""
    data = read_dkim_key(path, selector, domain, "ed25519" if algorithm == ED25519 else "rsa")
    return DkimKey(algorithm, selector, domain.lower().rstrip("."), parse_key(data, algorithm), data)


# -- signing --------------------------------------------------------------------------------------


def _fold_list(names: Sequence[str]) -> bytes:
    """h= folded before it passes 70 characters (FWS is allowed around each colon)."""
    lines = [""]
    for name in names:
        item = (":" if lines[-1] or len(lines) > 1 else "") + name
        if len(lines[-1]) + len(item) > 70:
            lines.append(item)
        else:
            lines[-1] += item
    return "\r\n\t".join(lines).encode("ascii")


def _fold_b64(value: bytes) -> bytes:
    return b"\r\n\t".join(value[i : i + 72] for i in range(0, len(value), 72))


SignDigest = Callable[[DkimKey, bytes], bytes]


def _in_process(key: DkimKey, digest: bytes) -> bytes:
    return key.sign_digest(digest)


class Signer:
    """Signs finished messages with one or more keys (RSA and optionally Ed25519), over the header
    fields of `signed` that the message has. `sign_digest(key, digest)` does the private-key operation:
    in this process by default, or in signing processes (signpool.py)."""

    def __init__(
        self, keys: Sequence[DkimKey], signed: Sequence[str], timestamp: int, sign_digest: SignDigest = _in_process
    ):
        if not keys:
            raise ValueError("no DKIM key")
        self.keys = tuple(keys)
        self.signed = tuple(name.lower() for name in signed)
        self.timestamp = timestamp
        self.sign_digest = sign_digest
        self._templates: dict[tuple[str, ...], list[tuple[bytes, bytes, bytes, bytes]]] = {}

    def prepare(self, pieces: Sequence[Piece]) -> Prepared:
        """The per-variant work for a message made of `pieces` (literal bytes and slot numbers); slots in
        the header must be whole header fields, slots in the body values without whitespace."""
        return Prepared(self, pieces)

    def sign(self, data: bytes) -> bytes:
        """The DKIM-Signature header lines (CRLF-terminated) to put in front of `data`."""
        head, _, body = data.partition(b"\r\n\r\n")
        body_hash = hashlib.sha256(relaxed_body(body)).digest()
        return self.headers(canonical_fields(header_fields(head + b"\r\n")), body_hash)

    def headers(self, canonical: Mapping[str, bytes], body_hash: bytes) -> bytes:
        """The signatures over the canonical fields {lower-case name: relaxed field} and the body hash."""
        names = tuple(name for name in self.signed if name in canonical)
        signed_data = b"".join([canonical[name] for name in names])
        bh = base64.b64encode(body_hash)
        out = []
        for key, (head, tail, canonical_head, canonical_tail) in zip(
            self.keys, self._templates.get(names) or self._template(names), strict=True
        ):
            digest = hashlib.sha256(signed_data + canonical_head + bh + canonical_tail).digest()
            signature = base64.b64encode(self.sign_digest(key, digest))
            out.append(b"DKIM-Signature:" + head + bh + tail + _fold_b64(signature) + b"\r\n")
        return b"".join(out)

    def _template(self, names: tuple[str, ...]) -> list[tuple[bytes, bytes, bytes, bytes]]:
        """Per key, the DKIM-Signature value around bh= and its relaxed form (the same for every message
        with these header fields: only bh= and b= change, and base64 has no whitespace to canonicalise)."""
        found = []
        for key in self.keys:
            head = (
                f" v=1; a={key.algorithm}; c=relaxed/relaxed; d={key.domain}; s={key.selector};\r\n\t"
                f"t={self.timestamp}; h="
            ).encode("ascii")
            head += _fold_list(names) + b";\r\n\tbh="
            tail = b";\r\n\tb="
            canonical = relaxed_header(b"DKIM-Signature", head + b"\x00" + tail)[:-2]
            canonical_head, _, canonical_tail = canonical.partition(b"\x00")
            found.append((head, tail, canonical_head, canonical_tail))
        self._templates[names] = found
        return found


def canonical_fields(fields: Sequence[tuple[bytes, bytes]]) -> dict[str, bytes]:
    """{lower-case name: relaxed field}; of fields with the same name the last wins, as a verifier takes
    them bottom-up (our messages have each once)."""
    return {name.strip().lower().decode("ascii"): relaxed_header(name, value) for name, value in fields}


class Prepared:
    """A message skeleton canonicalised once: the fixed header fields and the body (with the hash of its
    fixed prefix); sign(values) then canonicalises only the per-subscriber header fields and hashes the
    rest of the body."""

    def __init__(self, signer: Signer, pieces: Sequence[Piece]):
        self.signer = signer
        template = b"".join(p if isinstance(p, bytes) else b"\x00%d\x00" % p for p in pieces)
        head, sep, body = template.partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("a message skeleton without a body")
        # the header: literal fields, and slots standing for whole fields given per message
        self.fixed: dict[str, bytes] = {}
        self.head_slots: list[int] = []
        for i, part in enumerate(_SLOT.split(head + b"\r\n")):
            if i % 2:
                self.head_slots.append(int(part))
            elif part.strip():
                self.fixed.update(canonical_fields(header_fields(part)))
        self.body = _pieces(body)
        canonical = _pieces(relaxed_body(body))
        first = canonical[0] if canonical and isinstance(canonical[0], bytes) else b""
        self.prefix = hashlib.sha256(first)
        self.rest = canonical[1:] if first else canonical
        self.slots = sorted({p for p in canonical if isinstance(p, int)})

    def sign(self, values: Sequence[bytes]) -> bytes:
        """The DKIM-Signature header lines for the message made of the skeleton and `values`."""
        fields = dict(self.fixed)
        for slot in self.head_slots:
            fields.update(canonical_fields(header_fields(values[slot])))
        if any(not values[s] or b" " in values[s] or b"\t" in values[s] for s in self.slots):
            # a value the sentinel cannot stand for: canonicalise this body in full
            body = b"".join(values[p] if isinstance(p, int) else p for p in self.body)
            return self.signer.headers(fields, hashlib.sha256(relaxed_body(body)).digest())
        digest = self.prefix.copy()
        for part in self.rest:
            digest.update(values[part] if isinstance(part, int) else part)
        return self.signer.headers(fields, digest.digest())


def _pieces(data: bytes) -> list[Piece]:
    parts = _SLOT.split(data)
    return [int(p) if i % 2 else p for i, p in enumerate(parts) if i % 2 or p]
