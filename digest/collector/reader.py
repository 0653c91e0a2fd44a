"""Walking the source folders: which Markdown files are posts, which are skipped and why.

Excluded without a warning (each with a reason in ``Scan.excluded``): files matching ``site.ignore``,
files under ``_drafts/``, ``drafts/`` or ``draft/``, Hugo list pages (``_index.md``), ``draft: true``,
``published: false``, ``digest: false``, pages without any date (not posts) and posts dated after ``now_at``.
Skipped with a Problem: larger than 5 MB, empty, not UTF-8, malformed front matter, unparseable date.

Speed: when a window start (``since_at``) is given, a file whose date line shows it is older than the window
and that cannot be a running log is not parsed any further, so problems are reported only for files that
could belong to the window. Parsed files are cached by (mtime, size) for long-running processes.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from digest.dates import ImpossibleDate, date_from_path, parse_date
from digest.models import Problem, Site
from digest.text import xml_safe

from . import meta as m
from .frontmatter import Document, FrontMatterError, Split, load, split

MAX_BYTES = 5 * 1024 * 1024
MARKDOWN_SUFFIXES = (".md", ".markdown", ".mdown", ".mkd", ".mkdn", ".mdwn")
DRAFT_FOLDERS = {"_drafts", "drafts", "draft"}
MAYBE_LOG = re.compile(r"^[*+-]\s+\d{4}", re.M)
_DATE_LINE = re.compile(r"^(date|published|pubdate|publishdate|created)[ \t]*[:=][ \t]*(.*?)[ \t]*$", re.M | re.I)


@dataclass
class _File:
    """What is known about one file; the front matter is parsed only when needed."""

    part: Split
    date_text: str | None  # the raw value of the first date-like line, if any
    maybe_log: bool
    doc: Document | Problem | None = None
    # (timezone, source, content path) -> the post, or why it is skipped (a Problem or an exclusion reason)
    outcomes: dict[tuple[str, str, str], Post | Problem | str] = field(default_factory=dict)


# Files by path, reused while (mtime, size) are unchanged: the warm path of a long-running process
# (scheduler, `preview --serve`) re-reads only what changed.
_CACHE: dict[str, tuple[tuple[int, int], _File | Problem]] = {}


@dataclass(frozen=True)
class Post:
    source: str  # relative to site.root
    content_path: str  # relative to the content root (the source folder's parent)
    meta: dict[str, Any]
    body: str
    published_at: datetime  # in the site timezone
    updated_at: datetime | None


@dataclass
class Scan:
    posts: list[Post] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    excluded: list[tuple[str, str]] = field(default_factory=list)  # (source, reason)
    scanned: int = 0


def markdown_files(site: Site, unreadable: list[tuple[str, str]] | None = None) -> list[tuple[str, str, str]]:
    """(absolute path, path relative to the source folder, path relative to its parent), sorted;
    hidden files and folders are left out. Folders that cannot be listed go to ``unreadable``."""
    found: list[tuple[str, str, str]] = []
    for folder in site.source_dirs:
        top = str(folder)
        prefix = folder.name + "/" if folder.parent != folder else ""

        def failed(exc: OSError) -> None:
            if unreadable is not None:
                unreadable.append((str(exc.filename), exc.strerror or str(exc)))

        for dirpath, dirnames, filenames in os.walk(top, onerror=failed):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            sub = dirpath[len(top) + 1 :].replace(os.sep, "/")
            for name in sorted(filenames):
                if name[0] != "." and name.lower().endswith(MARKDOWN_SUFFIXES):
                    rel = f"{sub}/{name}" if sub else name
                    found.append((os.path.join(dirpath, name), rel, prefix + rel))
    return found


def scan(site: Site, now_at: datetime, since_at: datetime | None = None) -> Scan:
    result = Scan()
    tz = ZoneInfo(site.timezone)
    root = str(site.root.resolve()) + os.sep
    ignore = [re.compile(p) for p in site.ignore]
    low = since_at.timestamp() if since_at is not None else None
    unreadable: list[tuple[str, str]] = []
    files = markdown_files(site, unreadable)
    for path, why in unreadable:
        folder = _relative(path, root) + "/"
        result.problems.append(Problem(folder, f"cannot read the folder ({why}): its posts are left out"))
    for path, in_folder, content_path in files:
        result.scanned += 1
        source = _relative(path, root)
        reason = _path_exclusion(source, in_folder, ignore)
        if reason:
            result.excluded.append((source, reason))
            continue
        info = _read(path, source)
        if isinstance(info, Problem):
            result.problems.append(info)
            continue
        if low is not None and not info.maybe_log and _older(info, source, tz, low):
            result.excluded.append((source, "before the window"))
            continue
        if info.doc is None:
            info.doc = _load(info.part, source)
        if isinstance(info.doc, Problem):
            result.problems.append(info.doc)
            continue
        key = (site.timezone, source, content_path)
        post = info.outcomes.get(key)
        if post is None:
            post = info.outcomes[key] = _post(info.doc, source, content_path, tz)
        if isinstance(post, Problem):
            result.problems.append(post)
            continue
        if isinstance(post, str):
            result.excluded.append((source, post))
            continue
        if post.published_at.timestamp() > now_at.timestamp():
            result.excluded.append((source, f"dated in the future ({post.published_at.isoformat()})"))
            continue
        result.posts.append(post)
    return result


def _older(info: _File, source: str, tz: tzinfo, low: float) -> bool:
    """True when the date line (or, without one, the file name) puts the post before the window."""
    try:
        when = parse_date(info.date_text.strip("'\""), tz) if info.date_text else date_from_path(source, tz)
    except (ValueError, OverflowError):
        return False  # let the full parse report it
    return when is not None and when.timestamp() < low


def _relative(path: str, root: str) -> str:
    if path.startswith(root):
        return path[len(root) :].replace(os.sep, "/")
    return Path(os.path.relpath(path, root)).as_posix()


def _path_exclusion(source: str, in_folder: str, ignore: list[re.Pattern[str]]) -> str | None:
    for pattern in ignore:
        if pattern.search(source):
            return f"ignored by the site config ({pattern.pattern})"
    parts = in_folder.split("/")
    if DRAFT_FOLDERS.intersection(parts[:-1]):
        return "draft (in a drafts folder)"
    if parts[-1].rsplit(".", 1)[0] == "_index":
        return "list page (_index)"
    return None


def _read(path: str, source: str) -> _File | Problem:
    try:
        stat = os.stat(path)
    except OSError as exc:
        return Problem(source, f"cannot read the file: {exc.strerror}")
    stamp = (stat.st_mtime_ns, stat.st_size)
    cached = _CACHE.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    outcome = _split_file(path, source, stat.st_size)
    _CACHE[path] = (stamp, outcome)
    return outcome


def _split_file(path: str, source: str, size: int) -> _File | Problem:
    if size > MAX_BYTES:
        return Problem(source, f"larger than 5 MB ({size / 1024 / 1024:.1f} MB)")
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        return Problem(source, f"cannot read the file: {exc.strerror}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return Problem(source, f"not UTF-8 (byte {exc.start}); save the file as UTF-8", line)
    text = xml_safe(text.replace("\r\n", "\n"))
    if not text.strip():
        return Problem(source, "empty file")
    try:
        part = split(text)
    except FrontMatterError as exc:
        return Problem(source, str(exc), exc.line)
    # Pelican headers end at the first blank line; a "Date:" line further down is prose.
    date_line = _DATE_LINE.search(part.header if part.kind != "other" else part.body.split("\n\n", 1)[0])
    return _File(part, date_line.group(2) if date_line else None, bool(MAYBE_LOG.search(part.body)))


def _load(part: Split, source: str) -> Document | Problem:
    try:
        return load(part)
    except FrontMatterError as exc:
        return Problem(source, str(exc), exc.line)


def _post(doc: Document, source: str, content_path: str, tz: ZoneInfo) -> Post | Problem | str:
    """The post in ``doc``, a Problem, or the reason it is excluded."""
    reason = m.exclusion(doc.meta)
    if reason:
        return reason
    found = m.date_value(doc.meta, m.DATE_KEYS)
    if found is None:
        try:
            published_at = date_from_path(source, tz)
        except ImpossibleDate as exc:
            return Problem(source, f"impossible date in the file name: {exc}; rename the file or add a date key")
        if published_at is None:
            return "not a post (no date in the front matter or the file name)"
    else:
        line = dict(reversed(doc.key_lines)).get(found[0])
        try:
            published_at = parse_date(found[1], tz)
        except ImpossibleDate as exc:
            return Problem(source, f"impossible date in '{found[0]}': {exc}", line)
        except (ValueError, OverflowError):
            return Problem(source, f"unparseable date in '{found[0]}': {str(found[1])[:40]!r}", line)
    try:
        published_at = published_at.astimezone(tz)
        published_at.timestamp()
    except (OverflowError, ValueError):
        return Problem(source, f"date out of range: {published_at.isoformat()}")
    updated = m.date_value(doc.meta, m.UPDATED_KEYS)
    updated_at = None
    if updated is not None:
        try:
            updated_at = parse_date(updated[1], tz).astimezone(tz)
        except (ValueError, OverflowError):
            updated_at = None  # a broken "last modified" is not worth losing the post for
    return Post(source, content_path, doc.meta, doc.body, published_at, updated_at)
