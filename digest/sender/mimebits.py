"""Byte-level pieces of a message that are filled in per subscriber without the email package.

Bodies are quoted-printable, encoded segment by segment: every placeholder gets a line of its own
(soft line breaks on both sides), so a value of any length can be put in later without re-encoding
the 40 KB around it, and the result stays 7-bit with lines of at most 76 characters.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence

from digest.text import CONTROL

ATEXT_PHRASE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]+")
ENCODED_WORD_BYTES = 45  # 45 bytes -> 60 base64 chars + "=?utf-8?b??=" = 72 <= 75

Piece = bytes | int  # literal bytes, or the number of a slot filled in per subscriber


def clean(text: str) -> str:
    """One line of text with every control character turned into a space (no header injection)."""
    return " ".join(CONTROL.sub(" ", text).split())


def qp(data: bytes) -> bytes:
    """Quoted-printable with no line starting with a dot: "=2E" decodes the same, and SMTP's
    dot-stuffing (a regex over every 40 KB message, for every subscriber) then has nothing to do."""
    # "=2E" plus a soft break keeps every line within 76 characters.
    encoded = binascii.b2a_qp(data)
    if encoded.startswith(b"."):
        encoded = b"=2E=\n" + encoded[1:]
    while b"\n." in encoded:  # each pass consumes one leading dot per line: ".." takes two
        encoded = encoded.replace(b"\n.", b"\n=2E=\n")
    return encoded


def wire_safe(data: bytes) -> bool:
    """7-bit, every line ending in CRLF, no line starting with a dot: what SMTP's DATA sends as it is."""
    crlfs = data.count(b"\r\n")
    return (
        data.isascii()
        and not data.startswith(b".")
        and b"\n." not in data
        and data.count(b"\n") == crlfs
        and data.count(b"\r") == crlfs
    )


def qp_segments(text: str, marks: Mapping[str, int]) -> list[Piece]:
    """Quoted-printable body split at the marks; each mark becomes its slot number."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n")
    parts = re.split("(" + "|".join(re.escape(m) for m in marks) + ")", text) if marks else [text]
    out: list[Piece] = []
    for i, part in enumerate(parts):
        if i % 2:
            out.append(marks[part])
            following = parts[i + 1]
            if (following and not following.startswith("\n")) or (not following and i + 2 < len(parts)):
                out.append(b"=\r\n")
            continue
        encoded = qp(part.encode("utf-8"))
        if encoded and not encoded.endswith(b"\n") and i + 1 < len(parts):
            encoded += b"=\n"  # the value that follows starts on a line of its own
        if encoded:
            out.append(encoded.replace(b"\n", b"\r\n"))
    return merge(out)


def qp_value(value: str) -> bytes:
    # An address, most often: the check costs a fifth of encoding it, for two addresses per message.
    if len(value) <= QP_LINE and QP_AS_IS.fullmatch(value):
        return value.encode("ascii")
    return qp(value.encode("utf-8")).replace(b"\n", b"\r\n")


# What quoted-printable leaves as it is (binascii.b2a_qp, then qp's leading dot): printable ASCII but "=" and
# space, on one line of at most 76 characters, not starting with a dot.
QP_LINE = 76
QP_AS_IS = re.compile(r"[!-\-/-<>-~][!-<>-~]*")


def merge(pieces: Sequence[Piece]) -> list[Piece]:
    """Join neighbouring literal pieces so the per-subscriber join touches as few objects as possible."""
    out: list[Piece] = []
    for piece in pieces:
        if isinstance(piece, bytes) and out and isinstance(out[-1], bytes):
            out[-1] += piece
        else:
            out.append(piece)
    return out


def display_name(name: str) -> str:
    """A display name ready for a header: as is, quoted, or as RFC 2047 encoded words."""
    name = clean(name)
    if not name:
        return ""
    if name.isascii() and len(name) <= 60:
        if ATEXT_PHRASE.fullmatch(name):
            return name
        return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    whole = name.encode("utf-8")
    if len(whole) <= ENCODED_WORD_BYTES:  # one word: what the loop below gives, without its step per character
        return "=?utf-8?b?" + base64.b64encode(whole).decode("ascii") + "?="
    words: list[str] = []
    chunk = b""
    for char in name:
        encoded = char.encode("utf-8")
        if len(chunk) + len(encoded) > ENCODED_WORD_BYTES:
            words.append(chunk.decode("utf-8"))
            chunk = b""
        chunk += encoded
    words.append(chunk.decode("utf-8"))
    return "\r\n ".join("=?utf-8?b?" + base64.b64encode(w.encode("utf-8")).decode("ascii") + "?=" for w in words)


def mailbox(name: str, address: str) -> str:
    """`Name <address>` for a header; folded before the address when the line would be long."""
    phrase = display_name(name)
    if not phrase:
        return address
    separator = "\r\n " if len(phrase) + len(address) > 70 else " "
    return f"{phrase}{separator}<{address}>"
