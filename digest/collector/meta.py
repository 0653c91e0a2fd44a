"""Reading typed values out of front matter: flags, people, terms, titles. Keys are already lower case."""

from __future__ import annotations

import re
from typing import Any

DATE_KEYS = ("date", "published", "pubdate", "publishdate", "created")
UPDATED_KEYS = ("lastmod", "last_modified_at", "updated", "modified")
# Hugo's own date rules (its [frontmatter] defaults and their aliases): a page with no date is dated by its
# lastmod; it is built from its publishDate and removed at its expiryDate.
HUGO_LAST_DATE_KEYS = ("lastmod", "modified")
HUGO_PUBLISH_KEYS = ("publishdate", "pubdate", "published")
HUGO_EXPIRY_KEYS = ("expirydate", "unpublishdate")
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def flag(meta: dict[str, Any], key: str) -> bool | None:
    """True/False for booleans and their usual spellings, None when absent or something else."""
    value = meta.get(key)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    return None


def exclusion(meta: dict[str, Any]) -> str | None:
    """Why a post must not be collected, from its front matter alone."""
    if flag(meta, "draft") is True:
        return "draft (draft: true)"
    if flag(meta, "published") is False:
        return "unpublished (published: false)"
    status = meta.get("status")
    if isinstance(status, str) and status.strip().lower() in ("draft", "hidden"):
        return f"draft (status: {status.strip().lower()})"
    if flag(meta, "digest") is False:
        return "left out of the digest (digest: false)"
    return None


def hugo_unrendered(meta: dict[str, Any]) -> str | None:
    """Why Hugo writes no page for it (a link to it would be a 404): `headless: true`, or `build` options
    `render: never` (`false` before Hugo 0.76)."""
    if flag(meta, "headless") is True:
        return "no page of its own (headless: true)"
    build = meta.get("build") or meta.get("_build")
    if isinstance(build, dict):
        render = {str(k).lower(): v for k, v in build.items()}.get("render")
        if render is False or (isinstance(render, str) and render.strip().lower() in ("never", "false")):
            return "no page of its own (build.render: never)"
    return None


def date_value(meta: dict[str, Any], keys: tuple[str, ...]) -> tuple[str, Any] | None:
    for key in keys:
        value = meta.get(key)
        if value is not None and not isinstance(value, bool) and value != "":
            return key, value
    return None


def _split(value: str, words: bool) -> list[str]:
    # Jekyll separates words with spaces, Pelican (`;` or `,`) and most people with commas.
    separator = ";" if ";" in value and not words else "," if "," in value or not words else r"\s+"
    return [p.strip() for p in re.split(separator, value) if p.strip()]


SINGULAR = frozenset({"category", "tag"})  # `category: This Week in Rust` is one category, in every generator


def terms(meta: dict[str, Any], *keys: str, words: bool = True) -> tuple[str, ...]:
    """Categories or tags given as a string or a list, deduplicated in order. A string under a plural key is
    split on commas, else (``words``: Jekyll's way) on spaces; under a singular key it is one term."""
    found: list[str] = []
    for key in keys:
        value = meta.get(key)
        if isinstance(value, str):
            found += [value.strip()] if key in SINGULAR and value.strip() else _split(value, words)
        elif isinstance(value, list | tuple):
            found += [str(v).strip() for v in value if v is not None and str(v).strip()]
        elif value is not None and not isinstance(value, dict):
            found.append(str(value))
    return tuple(dict.fromkeys(found))


def _person(value: Any) -> str:
    if isinstance(value, dict):
        lowered = {str(k).lower(): v for k, v in value.items()}
        value = lowered.get("name") or lowered.get("display_name") or ""
    return str(value).strip() if value is not None else ""


def authors(meta: dict[str, Any]) -> tuple[str, ...]:
    found: list[str] = []
    for key in ("authors", "author"):
        value = meta.get(key)
        if isinstance(value, str):
            found += _split(value, False) if key == "authors" else [value.strip()]
        elif isinstance(value, list | tuple):
            found += [_person(v) for v in value]
        elif isinstance(value, dict):
            found.append(_person(value))
    return tuple(dict.fromkeys(a for a in found if a))


def title(meta: dict[str, Any], body: str, fallback: str) -> str:
    value = meta.get("title")
    if isinstance(value, list | tuple):  # `title: [Notes, week 3]`: YAML's list, not the Python text of one
        value = ", ".join(str(v) for v in value if v is not None)
    if value is not None and str(value).strip():
        return " ".join(str(value).split())
    m = re.search(r"^#\s+(.+?)\s*#*\s*$", body, re.M)
    return m.group(1) if m else fallback
