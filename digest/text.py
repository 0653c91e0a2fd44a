"""Text rules every stage shares, written once: XML-safe text, slugs, address keys, table-of-contents names."""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata

# XML 1.0 forbids these even as character references; feeds and some mail clients choke on them.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_SLUG_DROP = re.compile(r"[^\w\- ]", re.UNICODE)
# C0/C1 controls, DEL and the Unicode line/paragraph separators: none belongs in a header or a name.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# Unicode's explicit direction controls (embeddings, overrides, isolates): in a name shown in a header, a
# list or a page, a right-to-left override makes the text after it read backwards.
_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")


def plain_name(text: str, limit: int = 200) -> str:
    """A name as anyone may post it (a form, a CSV file), made one plain line: control and direction
    characters dropped, spaces collapsed, at most `limit` characters."""
    return " ".join(_BIDI_CONTROLS.sub("", CONTROL.sub(" ", text)).split())[:limit]


# The only addresses email-validator lets through from the subscribers file (no quoted local parts,
# no address literals, ASCII only): anything else in a header is refused.
ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")

# Headings that are a post's own table of contents: an outline listing them says nothing, and the
# issue shows its own outline instead.
TOC_NAMES = frozenset({"목차", "차례", "contents", "table of contents", "toc", "in this post", "index"})


# ISO 639-1: a folder named like one of these above `_posts` (`ja/news/_posts/`) may hold one language's posts.
_ISO_639_1 = (
    "aa ab ae af ak am an ar as av ay az ba be bg bi bm bn bo br bs ca ce ch co cr cs cu cv cy da de dv dz ee el "
    "en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu hy hz ia id ie ig ii ik io is it "
    "iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt "
    "my na nb nd ne ng nl nn no nr nv ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl "
    "sm sn so sq sr ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi yo "
    "za zh zu"
)
LANGUAGE_CODES = frozenset(_ISO_639_1.split())
_LANGUAGE_TAG = re.compile(r"^[a-z]{2,3}(?:-[a-z0-9]{2,8})*$")


def language_tag(value: object) -> str:
    """A BCP 47 tag as written in configs, folders and front matter, normalised: ``pt_BR`` -> ``pt-br``;
    "" when ``value`` is not shaped like one."""
    if not isinstance(value, str):
        return ""
    tag = value.strip().replace("_", "-").lower()
    return tag if _LANGUAGE_TAG.match(tag) else ""


LANGUAGE_HINT = 'a BCP 47 language tag is expected, such as "ko", "en-US" or "zh-Hant"'
# The shapes nearly every site writes ("ko", "en-US", "pt_BR"): a known ISO 639-1 language, maybe a region.
_COMMON_TAG = re.compile(r"([a-z]{2})(?:[-_](?:[A-Za-z]{2}|\d{3}))?")


def is_valid_language(value: str) -> bool:
    """True for a well-formed BCP 47 tag whose subtags are registered ("ko", "en-US", "zh-Hant", "en_US"
    as Jekyll themes write it); False for "korean!", "english" (well-formed but no language) or "xx".

    langcodes checks the tag against the IANA registry, but importing it costs 40 to 100 ms here (its data
    tables), paid by every command of a site whose config names a language: the common shapes are
    answered from the ISO 639-1 table above instead, and langcodes sees the rest (scripts, variants,
    three-letter languages, private use)."""
    common = _COMMON_TAG.fullmatch(value)
    if common:
        return common.group(1) in LANGUAGE_CODES
    import langcodes

    return bool(value) and langcodes.tag_is_valid(value.replace("_", "-"))


def is_language_code(name: str) -> bool:
    """True for a folder name that is an ISO 639-1 code, with or without a region (``ko``, ``zh-cn``, ``pt_BR``)."""
    tag = language_tag(name)
    return bool(tag) and tag.split("-", 1)[0] in LANGUAGE_CODES and len(tag.split("-", 1)[0]) == 2


def same_language(a: str, b: str) -> bool:
    """``en`` and ``en-us`` are the same language for choosing an issue; ``zh-cn`` and ``zh-tw`` are not."""
    a, b = language_tag(a), language_tag(b)
    if not a or not b:
        return False
    if a == b:
        return True
    return a.split("-", 1)[0] == b.split("-", 1)[0] and ("-" not in a or "-" not in b)


# The tokens of a Jekyll/Hugo-style permalink pattern digest can fill in (digest.collector.permalink fills
# them; the config checks a pattern against this list when it is loaded, before any stage runs).
PERMALINK_TOKENS = (
    "year", "short_year", "month", "i_month", "day", "i_day", "hour", "minute", "second", "y_day", "week",
    "w_year", "w_day", "short_day", "long_day", "title", "slug", "categories", "slugified_categories",
    "section", "sections", "path", "filename", "contentbasename", "slugorfilename", "slugorcontentbasename",
    "lang", "output_ext", "monthname", "weekday", "weekdayname", "yearday",
)  # fmt: skip
PERMALINK_TOKEN = re.compile(r":([a-z_]+)")


def unknown_permalink_token(pattern: str) -> str:
    """The first `:token` of `pattern` that digest cannot fill in ("" when there is none). A token is
    the longest run of letters and underscores after a colon, as the URL builder reads it."""
    return next((m.group(1) for m in PERMALINK_TOKEN.finditer(pattern) if m.group(1) not in PERMALINK_TOKENS), "")


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


# Chinese written without a script subtag: the region says which script (CLDR's likely subtags).
_ZH_SCRIPT = {"tw": "hant", "hk": "hant", "mo": "hant", "cn": "hans", "sg": "hans", "my": "hans"}
_LANGUAGE_TAG = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]{1,8})*")
_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffe\uffff]")


def language_key(tag: str) -> str:
    """The language an issue is made for, from a BCP 47 tag: lower case, the region dropped ("ko-KR" and
    "ko" are one audience), the script kept ("zh-Hant" and "zh-Hans" are not); "" stays "".

    "en_US" -> "en", "zh-TW" -> "zh-hant", "sr-Latn-RS" -> "sr-latn"; what is not a language tag
    ("English", "<x>") -> "".
    """
    parts = tag.strip().replace("_", "-").lower().split("-")
    if not _LANGUAGE_TAG.fullmatch("-".join(parts)):
        return ""
    script = next((p for p in parts[1:] if len(p) == 4 and p.isalpha()), "")
    if parts[0] == "zh" and not script:
        script = next((_ZH_SCRIPT[p] for p in parts[1:] if p in _ZH_SCRIPT), "")
    return parts[0] + (f"-{script}" if script else "")


def issue_language(tag: str, site_language: str) -> str:
    """The issue a post or subscriber of language `tag` belongs to: "" for the site's own language
    (no tag, or the same language key), else the language key."""
    key = language_key(tag)
    return "" if not key or key == language_key(site_language) else key


def strip_controls(text: str) -> str:
    """Drop raw control characters (C0 but tab and line breaks, DEL, C1) and the two non-characters:
    none of them is text, XML 1.0 forbids the C0 ones, and mail clients show the rest as boxes."""
    return _CONTROLS.sub("", text)


def is_toc_heading(text: str) -> bool:
    return text.strip().lower().rstrip(":") in TOC_NAMES


def escape_controls(text: str) -> str:
    """`text` for a log line: control characters (a forged line break, a NUL) written as escapes."""
    return CONTROL.sub(
        lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}", text
    )


def fingerprint(*parts: object) -> str:
    """A short stable digest of `parts`, through their repr (plain data and frozen dataclasses of plain
    data, whose repr is the same in every process): the cache's keys and revisions."""
    return hashlib.sha256(repr(parts).encode("utf-8", "surrogatepass")).hexdigest()[:32]


FileStamp = tuple[int, int, int, int]  # size, modification and change time in ns, inode


def stat_stamp(info: os.stat_result) -> FileStamp:
    """A file as it was when looked at: an edit that keeps the size and puts the old modification time
    back (`cp -p`, `rsync -t`, `touch -r`) still gives a new change time, a copy a new inode."""
    return (info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino)


def file_stamp(path: str | os.PathLike[str]) -> FileStamp | None:
    """stat_stamp of the file at `path`; None when it cannot be looked at."""
    try:
        return stat_stamp(os.stat(path))
    except OSError:
        return None
