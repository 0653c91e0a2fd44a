"""Walking the source folders: which Markdown files are posts, which are skipped and why.

Excluded without a warning (each with a reason in ``Scan.excluded``): files matching ``site.ignore``,
files under ``_drafts/``, ``drafts/`` or ``draft/``, Hugo list pages (``_index.md``), ``draft: true``,
``published: false``, ``digest: false``, pages without any date (not posts) and posts dated after ``now_at``.
Skipped with a Problem: larger than 5 MB, empty, not UTF-8, malformed front matter, unparseable date.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from digest.models import Problem, Site

from . import meta as m
from .dates import date_from_path, parse_date
from .frontmatter import Document, FrontMatterError, parse
from .text import xml_safe

MAX_BYTES = 5 * 1024 * 1024
MARKDOWN_SUFFIXES = (".md", ".markdown", ".mdown", ".mkd", ".mkdn", ".mdwn")
DRAFT_FOLDERS = {"_drafts", "drafts", "draft"}

# Parsed files by path, reused while (mtime, size) are unchanged: the warm path of a long-running
# process (scheduler, `preview --serve`) re-reads only what changed.
_CACHE: dict[str, tuple[tuple[int, int], Document | Problem]] = {}


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


def markdown_files(site: Site) -> list[tuple[Path, Path]]:
    """(source folder, file) for every Markdown file below the source folders, sorted, hidden ones left out."""
    found: list[tuple[Path, Path]] = []
    for folder in site.source_dirs:
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            found += [
                (folder, Path(dirpath, n))
                for n in sorted(filenames)
                if n.lower().endswith(MARKDOWN_SUFFIXES) and n[0] != "."
            ]
    return found


def scan(site: Site, now_at: datetime) -> Scan:
    result = Scan()
    tz = ZoneInfo(site.timezone)
    ignore = [re.compile(p) for p in site.ignore]
    for folder, path in markdown_files(site):
        result.scanned += 1
        source = _relative(path, site.root)
        reason = _path_exclusion(source, path, folder, ignore)
        if reason:
            result.excluded.append((source, reason))
            continue
        read = _read(path, source)
        if isinstance(read, Problem):
            result.problems.append(read)
            continue
        post = _post(read, source, _relative(path, folder.parent), tz, result)
        if post is None:
            continue
        if post.published_at.timestamp() > now_at.timestamp():
            result.excluded.append((source, f"dated in the future ({post.published_at.isoformat()})"))
            continue
        result.posts.append(post)
    return result


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return Path(os.path.relpath(path, root)).as_posix()


def _path_exclusion(source: str, path: Path, folder: Path, ignore: list[re.Pattern[str]]) -> str | None:
    for pattern in ignore:
        if pattern.search(source):
            return f"ignored by the site config ({pattern.pattern})"
    if DRAFT_FOLDERS & set(path.relative_to(folder).parts[:-1]):
        return "draft (in a drafts folder)"
    if path.stem == "_index":
        return "list page (_index)"
    return None


def _read(path: Path, source: str) -> Document | Problem:
    try:
        stat = path.stat()
    except OSError as exc:
        return Problem(source, f"cannot read the file: {exc.strerror}")
    stamp = (stat.st_mtime_ns, stat.st_size)
    cached = _CACHE.get(str(path))
    if cached is not None and cached[0] == stamp:
        return cached[1]
    outcome = _parse_file(path, source, stat.st_size)
    _CACHE[str(path)] = (stamp, outcome)
    return outcome


def _parse_file(path: Path, source: str, size: int) -> Document | Problem:
    if size > MAX_BYTES:
        return Problem(source, f"larger than 5 MB ({size / 1024 / 1024:.1f} MB); skipped")
    try:
        data = path.read_bytes()
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
        return parse(text)
    except FrontMatterError as exc:
        return Problem(source, str(exc), exc.line)


def _post(doc: Document, source: str, content_path: str, tz: ZoneInfo, result: Scan) -> Post | None:
    reason = m.exclusion(doc.meta)
    if reason:
        result.excluded.append((source, reason))
        return None
    lines = dict(reversed(doc.key_lines))
    found = m.date_value(doc.meta, m.DATE_KEYS)
    if found is None:
        published_at = date_from_path(source, tz)
        if published_at is None:
            result.excluded.append((source, "not a post (no date in the front matter or the file name)"))
            return None
    else:
        try:
            published_at = parse_date(found[1], tz)
        except (ValueError, OverflowError):
            result.problems.append(
                Problem(source, f"unparseable date in '{found[0]}': {str(found[1])[:40]!r}", lines.get(found[0]))
            )
            return None
    updated = m.date_value(doc.meta, m.UPDATED_KEYS)
    updated_at = None
    if updated is not None:
        try:
            updated_at = parse_date(updated[1], tz).astimezone(tz)
        except (ValueError, OverflowError):
            updated_at = None  # a broken "last modified" is not worth losing the post for
    return Post(source, content_path, doc.meta, doc.body, published_at.astimezone(tz), updated_at)
