"""Reading the source folders' Markdown files (found by layout.walk): which are posts, which are skipped
and why.

Excluded without a warning (each with a reason in ``Scan.excluded``): files matching ``site.ignore``,
files under ``_drafts/``, ``drafts/`` or ``draft/``, Hugo list pages (``_index.md``), a bundle's
resources, Pelican pages, ``draft: true``, ``published: false``, ``digest: false``, pages without any date
(not posts) and posts dated after ``now_at``. Skipped with a Problem: larger than 5 MB, empty, not UTF-8,
malformed front matter, an unparseable or impossible date (front matter or file name), a folder that
cannot be read. Jekyll's front matter ``defaults`` are merged under each file's own front matter.

Speed: when a window start (``since_at``) is given, a file whose date line shows it is older than the window
and that cannot be a running log is not parsed any further, so problems are reported only for files that
could belong to the window. Parsed files are cached by their stamp (size, times, inode) for long-running
processes.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import os
import re
import stat
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from digest.dates import ImpossibleDate, date_from_file_name, date_from_path, parse_date
from digest.models import Problem, Site
from digest.text import LANGUAGE_HINT, FileStamp, is_valid_language, language_tag, stat_stamp, xml_safe

from . import meta as m
from .frontmatter import Document, FrontMatterError, Split, load, split
from .layout import MARKDOWN_SUFFIXES, Found, walk
from .runlog import split_items

MAX_BYTES = 5 * 1024 * 1024
__all__ = ["MARKDOWN_SUFFIXES", "Post", "Scan", "front_matter", "quick_date", "read_file", "read_post", "scan"]
DRAFT_FOLDERS = {"_drafts", "drafts", "draft"}
# A line that starts like a running log's dated item, `- 2020.07.04 ...`: the multi-line pattern
# ^[*+-]\s+\d{4} as two, 4x faster. A pattern that starts with "\n" is looked for with a literal scan, one
# with a multi-line "^" is tried at every character (0.065 s against 0.015 s on the bodies of 5,000 posts,
# a tenth of reading them).
_LOG_LINE = re.compile(r"\n[*+-]\s+\d{4}")
_LOG_FIRST = re.compile(r"[*+-]\s+\d{4}")
# What xml_safe removes, as UTF-8 bytes: the C0 controls other than tab, LF and CR (a byte of their own in
# UTF-8, never part of another character), U+FFFE and U+FFFF. Looked for in the file's bytes (0.02 s for
# 5,000 posts) so that the regex on the text (0.06 s) runs only for a file that holds one.
_CONTROL_BYTES = bytes(sorted(set(range(32)) - {9, 10, 13}))
QUOTES = "'\""
_DATE_LINE = re.compile(r"^(date|published|pubdate|publishdate|created)[ \t]*[:=][ \t]*(.*?)[ \t]*$", re.M | re.I)


@dataclass
class _File:
    """What is known about one file; the front matter is parsed only when needed."""

    part: Split
    date_text: str | None  # the raw value of the first date-like line, if any
    maybe_log: bool
    doc: Document | Problem | None = None
    # the site it was read for, and the post or why it is skipped (a Problem or an exclusion reason)
    outcome: tuple[Site, Post | Problem | str] | None = None


# Files by path, reused while their stamp (size, times, inode) is unchanged: the warm path of a long-running process
# (scheduler, `preview --serve`) re-reads only what changed.
_CACHE: dict[str, tuple[FileStamp, _File | Problem]] = {}


@dataclass(frozen=True)
class Post:
    source: str  # relative to site.root
    content_path: str  # what its URL is built from (see layout.Place)
    meta: dict[str, Any]  # front matter, lower-case keys, over the site's front matter defaults
    body: str
    published_at: datetime  # in the site timezone
    updated_at: datetime | None
    language: str = ""  # front matter, else its place; "" when neither says
    categories: tuple[str, ...] = ()  # from its place (folders), before the front matter's
    warning: Problem | None = None  # read all the same, with something worth a line (a bad `lang`)
    live_at: datetime | None = None  # Hugo's publishDate, when after its date: the post is on the site from then
    expires_at: datetime | None = None  # Hugo's expiryDate: from then on the post is not on the site

    @property
    def shown_at(self) -> datetime:
        """When the post is on the site: the week whose issue carries it, and the date the issue shows."""
        return self.live_at or self.published_at


@dataclass
class Scan:
    posts: list[Post] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    excluded: list[tuple[str, str]] = field(default_factory=list)  # (source, reason)
    scanned: int = 0
    files: list[Found] = field(default_factory=list)  # every Markdown file seen, for links between posts


def scan(site: Site, now_at: datetime, since_at: datetime | None = None) -> Scan:
    tz = ZoneInfo(site.timezone)
    found = walk(site)
    result = Scan(problems=list(found.problems), files=found.files)
    ignore = [re.compile(p) for p in site.ignore]
    low = since_at.timestamp() if since_at is not None else None
    for file in found.files:
        result.scanned += 1
        source = file.source
        reason = file.place.not_a_post or _path_exclusion(source, file.in_folder, ignore)
        if reason:
            result.excluded.append((source, reason))
            continue
        info = _read(file.path, source)
        if isinstance(info, Problem):
            result.problems.append(info)
            continue
        if low is not None and not info.maybe_log and _older(info, source, tz, low):
            result.excluded.append((source, "before the window"))
            continue
        post = read_post(site, file, info)
        if isinstance(post, Problem):
            result.problems.append(post)
            continue
        if isinstance(post, str):
            result.excluded.append((source, post))
            continue
        if post.shown_at.timestamp() > now_at.timestamp():
            result.excluded.append((source, f"dated in the future ({post.shown_at.isoformat()})"))
            continue
        if post.expires_at is not None and post.expires_at <= now_at:
            result.excluded.append((source, f"expired ({post.expires_at.isoformat()})"))
            continue
        result.posts.append(post)
        if post.warning is not None:
            result.problems.append(post.warning)
    return result


def read_post(site: Site, file: Found, info: _File | None = None) -> Post | Problem | str:
    """The post in ``file`` (parsed once per (site, file) while the file is unchanged), a Problem, or why
    it is no post."""
    if info is None:
        read = _read(file.path, file.source)
        if isinstance(read, Problem):
            return read
        info = read
    if info.doc is None:
        info.doc = _load(info.part, file.source)
    if isinstance(info.doc, Problem):
        return info.doc
    # Compared by identity first: hashing the Site for every file costs more than reading the cache.
    if info.outcome is not None and (info.outcome[0] is site or info.outcome[0] == site):
        return info.outcome[1]
    post = _post(site, info.doc, file)
    info.outcome = (site, post)
    return post


def front_matter(file: Found) -> dict[str, Any]:
    """The front matter of any file (a page too); {} when it cannot be read."""
    info = _read(file.path, file.source)
    if isinstance(info, Problem):
        return {}
    if info.doc is None:
        info.doc = _load(info.part, file.source)
    return info.doc.meta if not isinstance(info.doc, Problem) else {}


def _older(info: _File, source: str, tz: tzinfo, low: float) -> bool:
    """True when the date line (or, without one, the file name) puts the post before the window."""
    when = quick_date(info, source, tz)
    return when is not None and when < low


def quick_date(info: _File, source: str, tz: tzinfo) -> float | None:
    """The timestamp the date line (or, without one, the file name) gives, before any parsing; None when
    neither gives one that can be read (the full parse decides)."""
    try:
        when = parse_date(info.date_text.strip(QUOTES), tz) if info.date_text else date_from_path(source, tz)
    except (ValueError, OverflowError):
        return None
    return when.timestamp() if when is not None else None


def _path_exclusion(source: str, in_folder: str, ignore: list[re.Pattern[str]]) -> str | None:
    for pattern in ignore:
        if pattern.search(source):
            return f"ignored by the site config ({pattern.pattern})"
    parts = in_folder.split("/")
    if DRAFT_FOLDERS.intersection(parts[:-1]):
        return "draft (in a drafts folder)"
    if parts[-1].split(".", 1)[0] == "_index":  # `_index.md`, and a translation of it, `_index.ko.md`
        return "list page (_index)"
    return None


Stamp = FileStamp  # a file as last seen (digest.text.stat_stamp)


def read_file(path: str, source: str, stamp: Stamp | None = None) -> _File | Problem:
    """The file cut into front matter and body (not parsed yet), or why it cannot be read. ``stamp``:
    its stamp when the caller has just looked (one stat less per file)."""
    return _read(path, source, stamp)


def is_kept(path: str, stamp: Stamp) -> bool:
    """True when the file at ``path`` was read here at this stamp."""
    cached = _CACHE.get(path)
    return cached is not None and cached[0] == stamp


Kept = tuple[Stamp, "_File | Problem"]  # the file's stamp and what it gave


def read_kept(path: str) -> Kept | None:
    """What is kept of the file at ``path`` (for a helper process to hand back), or None."""
    return _CACHE.get(path)


def keep_read(path: str, kept: Kept) -> None:
    """Keep what a helper process read of the file at ``path``, as if it had been read here."""
    _CACHE[path] = kept


def _read(path: str, source: str, stamp: Stamp | None = None) -> _File | Problem:
    if stamp is None:
        try:
            stamp = stat_stamp(os.stat(path))
        except OSError as exc:
            return Problem(source, f"cannot read the file: {exc.strerror}")
    cached = _CACHE.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    outcome = _split_file(path, source, stamp[0])
    _CACHE[path] = (stamp, outcome)
    return outcome


def _split_file(path: str, source: str, size: int) -> _File | Problem:
    if size > MAX_BYTES:
        return Problem(source, f"larger than 5 MB ({size / 1024 / 1024:.1f} MB)")
    try:
        # not blocking: a named pipe (mkfifo) opened for reading would wait for a writer, and every command
        # (the weekly service too) with it; fstat then leaves out whatever is not a regular file
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with open(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return Problem(source, "not a regular file (a named pipe, a socket or a device): left out")
            data = handle.read()
    except OSError as exc:
        return Problem(source, f"cannot read the file: {exc.strerror}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return Problem(source, f"not UTF-8 (byte {exc.start}); save the file as UTF-8", line)
    text = text.replace("\r\n", "\n")
    if _xml_unsafe(data):
        text = xml_safe(text)
    if not text.strip():
        return Problem(source, "empty file")
    try:
        part = split(text)
    except FrontMatterError as exc:
        return Problem(source, str(exc), exc.line)
    # Pelican headers end at the first blank line; a "Date:" line further down is prose.
    dates = {v for _, v in _DATE_LINE.findall(part.header if part.kind != "other" else part.body.split("\n\n", 1)[0])}
    # Two different date lines (a date and a later publishDate): the full parse decides which one counts.
    return _File(part, next(iter(dates)) if len(dates) == 1 else None, maybe_log(part.body))


def maybe_log(text: str) -> bool:
    """A line of ``text`` starts like a running log's dated item (a list marker and four digits)."""
    return _LOG_LINE.search(text) is not None or _LOG_FIRST.match(text) is not None


def _xml_unsafe(data: bytes) -> bool:
    """The UTF-8 ``data`` holds a character xml_safe removes."""
    return len(data.translate(None, _CONTROL_BYTES)) != len(data) or b"\xef\xbf\xbe" in data or b"\xef\xbf\xbf" in data


def _load(part: Split, source: str) -> Document | Problem:
    try:
        return load(part)
    except FrontMatterError as exc:
        return Problem(source, str(exc), exc.line)


def _post(site: Site, doc: Document, file: Found) -> Post | Problem | str:
    """The post in ``doc``, a Problem, or the reason it is excluded."""
    source = file.source
    tz = ZoneInfo(site.timezone)
    meta = with_defaults(site, source, doc.meta)
    reason = m.exclusion(meta)
    if reason:
        return reason
    hugo = site.generator.kind == "hugo"
    if hugo and (reason := m.hugo_unrendered(meta)):
        return reason
    found = m.date_value(meta, m.DATE_KEYS)
    if found is None and hugo:
        found = m.date_value(meta, m.HUGO_LAST_DATE_KEYS)  # Hugo dates a page by its lastmod when nothing else
    if found is None:
        try:
            published_at = date_from_path(source, tz)
            if published_at is None and site.generator.filename_date:  # Pelican's FILENAME_METADATA
                published_at = date_from_file_name(source, site.generator.filename_date, tz)
        except ImpossibleDate as exc:
            return Problem(source, f"impossible date in the file name: {exc}; rename the file or add a date key")
        if published_at is None:
            # A running log with no date of its own is dated by its oldest item: its items keep their own
            # dates, and the log's URL (a pattern with the date in it) stays the same as items are added
            items = split_items(doc.body, None, tz) if maybe_log(doc.body) else []
            if not items:
                return "not a post (no date in the front matter or the file name)"
            published_at = min(item.published_at for item in items)
    else:
        try:
            published_at = parse_date(found[1], tz)
        except ImpossibleDate as exc:
            return Problem(source, f"impossible date in '{found[0]}': {exc}", _line(doc, found[0]))
        except (ValueError, OverflowError):
            return Problem(source, f"unparseable date in '{found[0]}': {str(found[1])[:40]!r}", _line(doc, found[0]))
    try:
        published_at = published_at.astimezone(tz)
        published_at.timestamp()
    except (OverflowError, ValueError):
        return Problem(source, f"date out of range: {published_at.isoformat()}")
    live_at = expires_at = None
    if hugo:
        # Hugo builds a page from its publishDate, and removes it at its expiryDate: the issue that carries
        # it is that of the week it goes live in, and once expired it is in no feed or page (a 404 there).
        # Its URL and id keep the page's date.
        try:
            live = _hugo_date(meta, m.HUGO_PUBLISH_KEYS, tz)
            expires_at = _hugo_date(meta, m.HUGO_EXPIRY_KEYS, tz)
        except _Unreadable as exc:  # `publishDate: soon`: Hugo's build stops on it; read as none, the post
            # meant to wait would go out now
            return Problem(source, f"unparseable date in '{exc.key}': {exc.value!r}", _line(doc, exc.key))
        live_at = live if live is not None and live > published_at else None
    updated = m.date_value(meta, m.UPDATED_KEYS)
    updated_at = None
    if updated is not None:
        try:
            updated_at = parse_date(updated[1], tz).astimezone(tz)
        except (ValueError, OverflowError):
            updated_at = None  # a broken "last modified" is not worth losing the post for
    place = file.place
    key = "lang" if meta.get("lang") not in (None, "") else "language"
    written = meta.get(key)
    warning = None
    if written in (None, ""):
        language = place.language
    elif isinstance(written, str) and is_valid_language(written.strip()):
        language = language_tag(written)
    else:
        language = place.language
        warning = Problem(
            source,
            f"{key}: {str(written)[:40]!r} is not a language tag ({LANGUAGE_HINT}); the post is read in the "
            "site's language",
            _line(doc, key),
        )
    return Post(
        source,
        place.content_path,
        meta,
        doc.body,
        published_at,
        updated_at,
        language,
        place.categories,
        warning,
        live_at,
        expires_at,
    )


class _Unreadable(Exception):
    def __init__(self, key: str, value: Any) -> None:
        super().__init__(key)
        self.key, self.value = key, str(value)[:40]


def _hugo_date(meta: dict[str, Any], keys: tuple[str, ...], tz: ZoneInfo) -> datetime | None:
    """The first of `keys` that holds a date, None when none does; _Unreadable for a value that is no date
    (Hugo's build stops on it)."""
    found = m.date_value(meta, keys)
    if found is None:
        return None
    try:
        return parse_date(found[1], tz).astimezone(tz)
    except (ValueError, OverflowError) as exc:
        raise _Unreadable(found[0], found[1]) from exc


def _line(doc: Document, key: str) -> int | None:
    """The line of the first ``key`` in the front matter."""
    return dict(reversed(doc.key_lines)).get(key)


@functools.lru_cache(maxsize=16)
def _defaults(rules: str) -> list[tuple[str, str, dict[str, Any]]]:
    parsed = [(str(p), str(t), v) for p, t, v in json.loads(rules)] if rules else []
    # Jekyll: the more specific scope wins (a longer path, then one naming the type); later ones win ties.
    return sorted(parsed, key=lambda rule: (len(rule[0]), bool(rule[1])))


def with_defaults(site: Site, source: str, meta: dict[str, Any]) -> dict[str, Any]:
    """Jekyll's front matter `defaults` whose scope covers ``source``, under the file's own front matter."""
    rules = _defaults(site.generator.defaults)
    if not rules:
        return meta
    prefix = site.generator.collections_dir
    paths = [source] + ([source[len(prefix) + 1 :]] if prefix and source.startswith(prefix + "/") else [])
    merged: dict[str, Any] = {}
    for scope, _, values in rules:
        if not scope or any(_in_scope(path, scope) for path in paths):
            merged.update(values)
    return {**merged, **meta} if merged else meta


def _in_scope(path: str, scope: str) -> bool:
    if "*" in scope:
        return fnmatch.fnmatchcase(path, scope) or fnmatch.fnmatchcase(path, scope.rstrip("/") + "/*")
    # Jekyll compares folder by folder: `_posts/2024` covers `_posts/2024/01/x.md`, not `_posts/2024-01-x.md`
    scope = scope.strip("/")
    return not scope or path == scope or path.startswith(scope + "/")
