"""What a rendering is made from, as one digest: the key under which the pipeline's cache (digest.cache)
keeps a rendered email, feed item, feed file or archive page. Equal keys render byte-identical output, so
a second run with nothing changed renders nothing; any change to an entry (its revision: the file, the
site config, what it links to), to the settings the templater reads, or to a template file gives a new key.
"""

from __future__ import annotations

import functools
import hashlib
import os
import weakref
from pathlib import Path

from digest.config import Settings
from digest.models import Entry, Issue
from digest.templater.env import builtin_templates
from digest.text import FileStamp, fingerprint, stat_stamp


def entry_key(entry: Entry) -> tuple[object, ...]:
    """Everything of an entry a template can show; the body by its revision when the collector gave one
    (the body itself otherwise: entries made elsewhere)."""
    body: object = entry.revision or (entry.body_html, entry.summary_html, entry.outline)
    return (entry.id, entry.title, entry.published_at, entry.url, entry.source, entry.authors, entry.categories,
            entry.tags, entry.updated_at, entry.language, body)  # fmt: skip


# The key of each issue object alive in this process, by identity: a publish asks for every issue's key for
# its feed item and again for its archive page, and the repr behind a key costs about 0.1 ms an issue. Held
# by a weak reference, so an issue no longer used (the weekly service runs for years) takes its key along.
_ISSUE_KEYS: dict[int, tuple[weakref.ref[Issue], str]] = {}


def issue_key(issue: Issue) -> str:
    slot = id(issue)
    kept = _ISSUE_KEYS.get(slot)
    if kept is not None and kept[0]() is issue:
        return kept[1]
    key = fingerprint(
        issue.site,
        issue.week,
        issue.language,
        issue.note_html,
        issue.updated_at if issue.updated_at != issue.derived_at else None,  # only a floor that dates it
        [entry_key(e) for e in issue.entries],
        [entry_key(e) for e in issue.late],
    )
    _ISSUE_KEYS[slot] = (weakref.ref(issue, functools.partial(_forget, slot)), key)
    return key


def _forget(slot: int, _gone: object) -> None:
    kept = _ISSUE_KEYS.get(slot)
    if kept is not None and kept[0]() is None:  # not a newer issue that came to have the same id
        del _ISSUE_KEYS[slot]


# A template file's digest by its path and stamp (size, modification and change time, inode): read again
# only when the file may have changed, in the weekly service too.
_DIGESTS: dict[str, tuple[FileStamp, str]] = {}


def _digest(path: str, st: os.stat_result) -> str:
    stamp = stat_stamp(st)
    kept = _DIGESTS.get(path)
    if kept is not None and kept[0] == stamp:
        return kept[1]
    with open(path, "rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    _DIGESTS[path] = (stamp, digest)
    return digest


def _stamps(
    folder: Path, depth: int | None = None, seen: frozenset[tuple[int, int]] = frozenset()
) -> list[tuple[str, str]]:
    """Every file under `folder` (`depth` levels of subfolders; None: all) by name and by what it holds: an
    edit that keeps the size and time (`cp -p`, `rsync -t`, a backup put back) is seen, and a fresh checkout
    of the same files keeps what was rendered. A folder that links back to one above it is entered once."""
    found: list[tuple[str, str]] = []
    try:
        here = os.stat(folder)
        listing = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return found
    seen = seen | {(here.st_dev, here.st_ino)}
    for item in listing:
        try:
            if item.is_dir():
                if depth is not None and depth <= 0:
                    continue
                inner = os.stat(item.path)
                if (inner.st_dev, inner.st_ino) in seen:
                    continue
                below = _stamps(Path(item.path), None if depth is None else depth - 1, seen)
                found += [(f"{item.name}/{name}", digest) for name, digest in below]
            elif item.is_file():
                found.append((item.name, _digest(item.path, item.stat())))
        except OSError:
            continue
    return found


def settings_key(settings: Settings) -> str:
    """The settings and the template files a rendering can read: the built-in templates and every file
    under the user's folder (language subfolders, folders of included parts), by name and content."""
    folder = settings.output.templates
    user = _stamps(folder) if folder is not None else []
    return fingerprint(
        settings.site, settings.output, settings.email, settings.config_file, _stamps(builtin_templates(), 0), user
    )
