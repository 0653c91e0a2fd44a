"""Text rules every stage shares, written once: XML-safe text, slugs, address keys, table-of-contents names."""

from __future__ import annotations

import re
import unicodedata

# XML 1.0 forbids these even as character references; feeds and some mail clients choke on them.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_SLUG_DROP = re.compile(r"[^\w\- ]", re.UNICODE)
# C0/C1 controls, DEL and the Unicode line/paragraph separators: none belongs in a header or a name.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# The only addresses email-validator lets through from the subscribers file (no quoted local parts,
# no address literals, ASCII only): anything else in a header is refused.
ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")

# Headings that are a post's own table of contents: an outline listing them says nothing, and the
# issue shows its own outline instead.
TOC_NAMES = frozenset({"목차", "차례", "contents", "table of contents", "toc", "in this post", "index"})


def xml_safe(text: str) -> str:
    return _XML_ILLEGAL.sub("", text)


def slugify(text: str, limit: int = 80) -> str:
    """GitHub/kramdown-style anchor: lower case, punctuation dropped, spaces to hyphens.

    "CoreML & Pytorch" -> "coreml--pytorch", "Transformers v3.0" -> "transformers-v30"; Hangul is kept.
    """
    text = unicodedata.normalize("NFC", text).strip().lower()
    text = _SLUG_DROP.sub("", text).replace(" ", "-")
    return text[:limit].strip("-") or "section"


def address_key(address: str) -> str:
    """The key an address is known by everywhere (ledger, suppressions, duplicates): lower case.

    Returns the very same object when nothing changes, so 100,000 keys of lower-case addresses cost no copies.
    """
    address = address.strip()
    low = address.lower()
    return address if low == address else low


def is_toc_heading(text: str) -> bool:
    return text.strip().lower().rstrip(":") in TOC_NAMES


def escape_controls(text: str) -> str:
    """`text` for a log line: control characters (a forged line break, a NUL) written as escapes."""
    return CONTROL.sub(
        lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}", text
    )
