"""Post URLs from the site's pattern, like Jekyll, Hugo and Pelican build them.

Jekyll and Hugo tokens (digest.text.PERMALINK_TOKENS): :year :short_year :month :i_month :day :i_day :hour
:minute :second :y_day :week :w_year :w_day :short_day :long_day :output_ext (".html") :title :slug
:categories :slugified_categories :section :sections :path (path under the content root, no extension,
``index`` dropped) :filename :slugorfilename :contentbasename :slugorcontentbasename :lang, and Hugo's
:monthname :weekday (Sunday 0) :weekdayname :yearday. What :title and :slug mean follows the generator:
Jekyll's :title is its slug (front matter, else file name) slugified "pretty", cased, and its :slug the
same slugified in the default mode (jekyll_slugify); Hugo's :title is the
title, urlized, and its :slug the front matter's slug, else that. Jekyll's :categories are lower-cased, not
slugified (`This Week` -> `this%20week`). A front-matter ``permalink`` or ``url`` replaces the pattern (its
tokens are expanded too); a ``slug`` replaces :title/:slug, or the last path segment when the pattern has
neither. Hugo's URLs end with "/" unless the last segment has an extension, and are lower-case (Hugo's
default, unless `disablePathToLower`) except a front-matter ``url``.

Pelican patterns are Python format strings (``{slug}.html``, ``{date:%Y}/{slug}/``, ``{category}``,
``{lang}``, ``{author}`` and any metadata key), filled the way Pelican fills them.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote, unquote_plus

from digest.text import PERMALINK_TOKEN, slugify

_TOKEN = PERMALINK_TOKEN
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
    lower: bool = False  # Hugo: the path a pattern gives is lower-cased; a front-matter url is kept as written
    sections: tuple[str, ...] | None = None  # Hugo: the folders that are sections (None: every folder)


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
    # Only the tokens the pattern names are worked out: a pattern names a few of the 25, and some
    # (slugs, week numbers, day names) cost more than the rest of a post's URL.
    values: dict[str, str] = {}

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            token = _TOKENS.get(name)
            if name == "path":
                values[name] = _path(post, parts, template)
            elif token is not None:
                values[name] = token(post, parts)
            else:
                values[name] = match.group(0)  # not a token: left as written
        return values[name]

    path = _TOKEN.sub(value, template)
    path = "/" + re.sub(r"/{2,}", "/", path).lstrip("/")
    if post.kind == "hugo" and not post.override:
        path = hugo_urlize(path, unescape=True)  # Hugo sanitizes the whole path again: "Step Two.md" -> step-two
    if post.lower and not post.override:
        path = path.lower()
    if post.kind == "hugo" and not path.endswith("/") and "." not in path.rsplit("/", 1)[-1]:
        path += "/"  # Hugo writes slug/index.html: the URL is the folder
    return quote(path, safe="/:@!$&'()*+,;=-._~%")


def _path(post: PostPath, parts: list[str], template: str) -> str:
    """The path under the content root; a front-matter slug replaces its last segment unless the pattern
    puts the slug elsewhere."""
    if post.slug and not post.override and not re.search(r":(title|slug)\b", template):
        return "/".join([*parts[:-1], post.slug])
    return "/".join(parts)


_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_HEX2 = re.compile(r"[0-9A-Fa-f]{2}")
_HUGO_KEPT = "./\\_#+~-@"


def hugo_urlize(text: str, unescape: bool = False) -> str:
    """Hugo's sanitizing of a title, slug or file name (`unescape` False) and then of the whole path
    (`unescape` True), as `hugo` 0.111 writes them (no Python library has it; tests/test_hugo_real.py holds
    both passes against the real one). The path's pass first unescapes it as a query is, when every `%`
    starts an escape (`+` and `%20` are spaces). Each pass keeps letters, digits, marks, `. / \\ _ # + ~ - @`
    and an escape like `%41`; a run of spaces between kept characters is one hyphen, none next to a hyphen;
    anything else is dropped. So `x + y` is `x-+-y` after the title's pass and `x--y` after the path's. The
    case is kept: the whole path is lower-cased afterwards unless the site turns that off."""
    if unescape and ("%" in text or "+" in text) and not _BAD_ESCAPE.search(text):
        text = unquote_plus(text)
    out: list[str] = []
    pending = False
    for i, c in enumerate(text):
        kind = unicodedata.category(c)
        if (
            c in _HUGO_KEPT
            or kind[0] in "LM"
            or kind == "Nd"
            or (c == "%" and _HEX2.fullmatch(text, i + 1, i + 3) is not None)
        ):
            if pending and c != "-" and out[-1] != "-":
                out.append("-")
            pending = False
            out.append(c)
        elif out and c.isspace():
            pending = True
    return "".join(out)


_JEKYLL_PRETTY = frozenset("._~!$&'()+,;=@")


def jekyll_slugify(text: str, *, pretty: bool = False, cased: bool = False) -> str:
    """Jekyll's Utils.slugify in its "default" and "pretty" modes: each run of characters other than
    letters, marks and decimal digits (and, pretty, ``._~!$&'()+,;=@``) becomes one "-", one "-" at each
    end is dropped, and the result is lower-cased unless `cased`. ``Hello World`` -> ``Hello-World``
    (pretty, cased), ``Q*bert says @!`` -> ``q-bert-says``."""
    out: list[str] = []
    replacing = False
    for c in text:
        kind = unicodedata.category(c)
        if kind[0] in "LM" or kind == "Nd" or (pretty and c in _JEKYLL_PRETTY):
            out.append(c)
            replacing = False
        elif not replacing:
            out.append("-")
            replacing = True
    slug = "".join(out)
    slug = slug[1:] if slug.startswith("-") else slug
    slug = slug[:-1] if slug.endswith("-") else slug
    return slug if cased else slug.lower()


def _jekyll_slug(post: PostPath) -> str:
    """The slug Jekyll gives a post: the front matter's, else the file name's without date and ending dots."""
    return post.slug or file_slug(post.rel_to_content).rstrip(".")


def _title(post: PostPath, parts: list[str]) -> str:
    if post.kind == "hugo":  # Hugo: the title, urlized
        return hugo_urlize(post.title) if post.title else file_slug(post.rel_to_content)
    if post.kind == "jekyll":  # Jekyll: its slug, pretty and cased
        return jekyll_slugify(_jekyll_slug(post), pretty=True, cased=True)
    return post.slug or file_slug(post.rel_to_content)  # the file-name slug, as written


def _slug(post: PostPath, parts: list[str]) -> str:
    if post.kind == "jekyll":
        return jekyll_slugify(_jekyll_slug(post))
    if post.slug:
        return hugo_urlize(post.slug) if post.kind == "hugo" else post.slug
    name = file_slug(post.rel_to_content)
    if post.kind == "hugo":
        return _title(post, parts)
    return slugify(post.title) or name


def _filename(post: PostPath, parts: list[str]) -> str:
    """The file's name without extension; a bundle's folder name."""
    name = parts[-1] if parts else ""
    return hugo_urlize(name) if post.kind == "hugo" else name


def _categories(post: PostPath, parts: list[str]) -> str:
    if post.kind == "jekyll":  # lower-cased, not slugified
        return "/".join(c.lower() for c in post.categories)
    return "/".join(slugify(c) for c in post.categories)


_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")  # fmt: skip
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

_TOKENS: dict[str, Callable[[PostPath, list[str]], str]] = {
    "year": lambda post, parts: f"{post.published_at.year:04d}",
    "short_year": lambda post, parts: f"{post.published_at.year % 100:02d}",
    "month": lambda post, parts: f"{post.published_at.month:02d}",
    "i_month": lambda post, parts: str(post.published_at.month),
    "day": lambda post, parts: f"{post.published_at.day:02d}",
    "i_day": lambda post, parts: str(post.published_at.day),
    "hour": lambda post, parts: f"{post.published_at.hour:02d}",
    "minute": lambda post, parts: f"{post.published_at.minute:02d}",
    "second": lambda post, parts: f"{post.published_at.second:02d}",
    "y_day": lambda post, parts: f"{post.published_at.timetuple().tm_yday:03d}",
    "week": lambda post, parts: f"{post.published_at.isocalendar()[1]:02d}",
    "w_year": lambda post, parts: f"{post.published_at.isocalendar()[0]:04d}",
    "w_day": lambda post, parts: str(post.published_at.isoweekday()),
    "short_day": lambda post, parts: post.published_at.strftime("%a"),
    "long_day": lambda post, parts: post.published_at.strftime("%A"),
    "output_ext": lambda post, parts: ".html",
    "title": _title,
    "slug": _slug,
    "categories": _categories,
    "slugified_categories": lambda post, parts: "/".join(
        jekyll_slugify(c) if post.kind == "jekyll" else slugify(c) for c in post.categories
    ),
    "section": lambda post, parts: parts[0] if len(parts) > 1 else "",
    "sections": lambda post, parts: "/".join(parts[:-1] if post.sections is None else post.sections),
    "filename": _filename,
    "contentbasename": _filename,
    "slugorfilename": lambda post, parts: _slug(post, parts) if post.slug else _filename(post, parts),
    "slugorcontentbasename": lambda post, parts: _slug(post, parts) if post.slug else _filename(post, parts),
    "lang": lambda post, parts: post.language,
    # Hugo's own date tokens (English names, as Go's time package writes them)
    "monthname": lambda post, parts: _MONTHS[post.published_at.month - 1],
    "weekday": lambda post, parts: str(post.published_at.isoweekday() % 7),  # Sunday is 0
    "weekdayname": lambda post, parts: _WEEKDAYS[post.published_at.weekday()],
    "yearday": lambda post, parts: str(post.published_at.timetuple().tm_yday),
}


def build_url(base_url: str, pattern: str, post: PostPath) -> str:
    return base_url.rstrip("/") + build_path(pattern, post)
