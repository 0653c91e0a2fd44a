"""Post URLs from the site's pattern, like Jekyll, Hugo and Pelican build them.

Jekyll and Hugo tokens: :year :short_year :month :i_month :day :i_day :hour :minute :second :y_day :week
:short_day :title :slug :categories :section :sections :path (path under the content root, no extension,
``index`` dropped) :filename :slugorfilename :contentbasename :slugorcontentbasename :lang. What :title and
:slug mean follows the generator: Jekyll's :title is the file-name slug (cased) and its :slug the same,
slugified; Hugo's :title is the title, urlized, and its :slug the front matter's slug, else that.
Jekyll's :categories are lower-cased, not slugified (`This Week` -> `this%20week`). A front-matter
``permalink`` or ``url`` replaces the pattern (its tokens are expanded too); a ``slug`` replaces
:title/:slug, or the last path segment when the pattern has neither. Hugo's URLs end with "/" unless the
last segment has an extension.

Pelican patterns are Python format strings (``{slug}.html``, ``{date:%Y}/{slug}/``, ``{category}``,
``{lang}``, ``{author}`` and any metadata key), filled the way Pelican fills them.
"""

from __future__ import annotations

import re
import string
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
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
    kind: str = "plain"  # the generator whose rules apply: "jekyll" | "hugo" | "pelican" | "plain"
    language: str = ""
    author: str = ""
    meta: dict[str, Any] = field(default_factory=dict, compare=False)  # Pelican: every metadata key


def file_slug(rel_path: str) -> str:
    """``_posts/2021-05-10-infos.md`` -> ``infos``; ``blog/2019/03/2019-03-01-x/index.md`` -> ``x``."""
    parts = rel_path.split("/")
    name = parts[-1].rsplit(".", 1)[0]
    if name == "index" and len(parts) > 1:
        name = parts[-2]
    return _NAME_DATE.sub("", name)


def pelican_slug(text: str) -> str:
    """Pelican's slugify with its default substitutions. Pelican transliterates other scripts with
    unidecode (GPL); here letters without an ASCII form are dropped, as Pelican did before: give such posts
    a `Slug:`."""
    value = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    value = re.sub(r"[^\w\s-]", "", value).strip()
    return re.sub(r"[-\s]+", "-", value).lower()


class _Format(string.Formatter):
    def get_value(self, key: int | str, args: Any, kwargs: Any) -> Any:
        value = kwargs.get(key, "") if isinstance(key, str) else ""
        return value if value is not None else ""


def _pelican_path(pattern: str, post: PostPath) -> str:
    fields: dict[str, Any] = {k: v for k, v in post.meta.items() if isinstance(k, str)}
    fields.update(
        slug=post.slug or pelican_slug(post.title),
        lang=post.language,
        date=post.published_at,
        author=pelican_slug(post.author),
        category=pelican_slug(post.categories[0]) if post.categories else "",
    )
    try:
        return _Format().format(pattern, **fields)
    except (ValueError, TypeError, IndexError, AttributeError):
        return f"{fields['slug']}.html"  # a pattern Pelican would refuse too


def build_path(pattern: str, post: PostPath) -> str:
    """The site-relative URL path, starting with "/"."""
    if post.kind == "pelican" and not post.override:
        path = "/" + _pelican_path(pattern, post).lstrip("/")
        return quote(re.sub(r"/{2,}", "/", path), safe="/:@!$&'()*+,;=-._~%")
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
        "sections": "/".join(parts[:-1]),
        "path": path_value,
        "filename": parts[-1] if parts else "",
        "contentbasename": parts[-1] if parts else "",
        "lang": post.language,
    }
    name = file_slug(post.rel_to_content)
    if post.kind == "jekyll":
        values["slug"] = post.slug or slugify(name) or name
        values["categories"] = "/".join(c.lower() for c in post.categories)
    elif post.kind == "hugo":
        values["title"] = slugify(post.title) if post.title else name
        values["slug"] = post.slug or values["title"]
    values["slugorfilename"] = values["slugorcontentbasename"] = post.slug or values["filename"]
    path = _TOKEN.sub(lambda m: values.get(m.group(1), m.group(0)), template)
    path = "/" + re.sub(r"/{2,}", "/", path).lstrip("/")
    if post.kind == "hugo" and not path.endswith("/") and "." not in path.rsplit("/", 1)[-1]:
        path += "/"  # Hugo writes slug/index.html: the URL is the folder
    return quote(path, safe="/:@!$&'()*+,;=-._~%")


def build_url(base_url: str, pattern: str, post: PostPath) -> str:
    return base_url.rstrip("/") + build_path(pattern, post)
