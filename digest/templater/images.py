"""The site's own image files behind an entry's `<img>`: an email gives each image its own width when
the file is on the site (bodies.py), so a rendering kept in the cache depends on those files too
(images_key, part of the email's key: replacing an image renders the email again).
"""

from __future__ import annotations

import functools
import html
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from digest.models import Issue, Site
from digest.text import FileStamp, file_stamp

# The src of each <img> of a body the collector rendered (markdown-it's own `<img src="...">` and the post's
# raw HTML): for a cache key, where finding an image the email leaves out costs one stat.
_IMG_SRC = re.compile(r"""<img\b[^>]*?\ssrc\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""", re.IGNORECASE)


def local_image(src: str, site: Site, source: str) -> Path | None:
    """The file behind an image URL of the site itself: in the site folder, Hugo's static/, or beside
    the post (page bundles)."""
    base = urlsplit(site.base_url)
    parts = urlsplit(src)
    if parts.netloc != base.netloc or not parts.path.startswith(base.path):
        return None
    rel = unquote(parts.path[len(base.path) :]).lstrip("/")
    if not rel or ".." in rel.split("/"):
        return None
    beside = (site.root / source).parent / rel.rsplit("/", 1)[-1]
    for candidate in (site.root / rel, site.root / "static" / rel, beside):
        if candidate.is_file():
            return candidate
    return None


def image_width(src: str, site: Site, source: str) -> int | None:
    """The width in pixels of the site's own image file behind `src`, or None (not on the site, unreadable).
    Read again when the file changes (the weekly service runs for years)."""
    path = local_image(src, site, source)
    if path is None:
        return None
    stamp = file_stamp(path)
    return _width(str(path), stamp) if stamp is not None else None


@functools.lru_cache(maxsize=512)
def _width(path: str, stamp: FileStamp) -> int | None:
    import imagesize  # on first use: it brings urllib.request and ssl, which a cached run never needs

    try:
        width, _ = imagesize.get(path)
    except (OSError, ValueError):
        return None
    return int(width) if width and width > 0 else None


def fragment_images(fragment: str, site: Site, source: str) -> tuple[tuple[str, FileStamp | None], ...]:
    """Each site image file `fragment` shows (an entry's body or summary, a note), by its stamp (size,
    times, inode): what an email's widths are read from."""
    found = []
    for match in _IMG_SRC.finditer(fragment):
        src = html.unescape(next(g for g in match.groups() if g is not None))
        path = local_image(src, site, source)
        if path is not None:
            found.append((src, file_stamp(path)))
    return tuple(found)


def images_key(issue: Issue) -> list[object]:
    """The site image files of the issue's bodies, summaries and note (see fragment_images)."""
    parts = [fragment_images(issue.note_html, issue.site, "")]
    for entry in issue.all_entries:
        parts.append(fragment_images(entry.body_html, issue.site, entry.source))
        parts.append(fragment_images(entry.summary_html, issue.site, entry.source))
    return [part for part in parts if part]
