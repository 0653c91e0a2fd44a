"""Small text helpers shared by the collector modules: XML-safe text and slugs."""

from __future__ import annotations

import re
import unicodedata

# XML 1.0 forbids these even as character references; feeds and some mail clients choke on them.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_SLUG_DROP = re.compile(r"[^\w\- ]", re.UNICODE)


def xml_safe(text: str) -> str:
    return _XML_ILLEGAL.sub("", text)


def slugify(text: str, limit: int = 80) -> str:
    """GitHub/kramdown-style anchor: lower case, punctuation dropped, spaces to hyphens.

    "CoreML & Pytorch" -> "coreml--pytorch", "Transformers v3.0" -> "transformers-v30"; Hangul is kept.
    """
    text = unicodedata.normalize("NFC", text).strip().lower()
    text = _SLUG_DROP.sub("", text).replace(" ", "-")
    return text[:limit].strip("-") or "section"
