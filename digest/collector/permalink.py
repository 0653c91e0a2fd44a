"""Post URLs from a Jekyll-style pattern, like Jekyll and Hugo build them.

Tokens: :year :short_year :month :i_month :day :i_day :hour :minute :second :y_day :week :short_day
:title (file-name slug without the date) :slug (front-matter ``slug``, else the slugified title)
:categories :section :path (path under the content root, no extension, ``index`` dropped) :filename.
A front-matter ``permalink`` or ``url`` replaces the pattern (its tokens are expanded too); a ``slug``
replaces :title/:slug, or the last path segment when the pattern has neither. The result is joined to the
site's base URL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from digest.text import slugify

_TOKEN = re.compile(r":([a-z_]+)")
_NAME_DATE = re.compile(r"^\d{4}-\d{1,2}-\d{1,2}-")


@dataclass(frozen=True)
class PostPath:
    """Where a post lives: ``rel_to_content`` is the path under the content root (Hugo's ``content/``,
    or the site root for Jekyll), POSIX separators, with extension."""

    rel_to_content: str
    published_at: datetime  # already in the site timezone
    title: str
    categories: tuple[str, ...] = ()
    slug: str = ""  # front-matter slug
    override: str = ""  # front-matter permalink/url


def file_slug(rel_path: str) -> str:
    """``_posts/2021-05-10-infos.md`` -> ``infos``; ``blog/2019/03/2019-03-01-x/index.md`` -> ``x``."""
    parts = rel_path.split("/")
    name = parts[-1].rsplit(".", 1)[0]
    if name == "index" and len(parts) > 1:
        name = parts[-2]
    return _NAME_DATE.sub("", name)


def build_path(pattern: str, post: PostPath) -> str:
    """The site-relative URL path, starting with "/"."""
    template = post.override or pattern
    parts = post.rel_to_content.rsplit(".", 1)[0].split("/")
    if parts[-1] == "index":
        parts = parts[:-1]
    path_value = "/".join(parts)
    if post.slug and not re.search(r":(title|slug)\b", template) and not post.override:
        path_value = "/".join([*parts[:-1], post.slug])
    when = post.published_at
    values = {
        "year": f"{when.year:04d}",
        "short_year": f"{when.year % 100:02d}",
        "month": f"{when.month:02d}",
        "i_month": str(when.month),
        "day": f"{when.day:02d}",
        "i_day": str(when.day),
        "hour": f"{when.hour:02d}",
        "minute": f"{when.minute:02d}",
        "second": f"{when.second:02d}",
        "y_day": f"{when.timetuple().tm_yday:03d}",
        "week": f"{when.isocalendar()[1]:02d}",
        "short_day": when.strftime("%a"),
        "title": post.slug or file_slug(post.rel_to_content),
        "slug": post.slug or slugify(post.title) or file_slug(post.rel_to_content),
        "categories": "/".join(slugify(c) for c in post.categories),
        "section": parts[0] if len(parts) > 1 else "",
        "path": path_value,
        "filename": parts[-1] if parts else "",
    }
    path = _TOKEN.sub(lambda m: values.get(m.group(1), m.group(0)), template)
    path = "/" + re.sub(r"/{2,}", "/", path).lstrip("/")
    return quote(path, safe="/:@!$&'()*+,;=-._~%")


def build_url(base_url: str, pattern: str, post: PostPath) -> str:
    return base_url.rstrip("/") + build_path(pattern, post)
