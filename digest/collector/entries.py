"""From posts to entries: URLs, rendered bodies, running-log items, the window filter, the order."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urljoin, urlsplit
from zoneinfo import ZoneInfo

from digest.models import Collection, Entry, Site
from digest.text import same_language, xml_safe

from . import meta as m
from .attributes import strip_extensions
from .links import Linker
from .liquid import strip_templates
from .markdown import render
from .permalink import PostPath, build_url, file_slug
from .reader import MAYBE_LOG, Post, scan
from .runlog import LogItem, split_items


def collect(site: Site, now_at: datetime, since_at: datetime | None = None) -> Collection:
    """Every entry with since_at <= published_at <= now_at (since_at None: all), newest first."""
    found = scan(site, now_at, since_at)
    tz = ZoneInfo(site.timezone)
    low = since_at.timestamp() if since_at is not None else float("-inf")
    high = now_at.timestamp()
    entries: list[Entry] = []
    for post in found.posts:
        body = strip_extensions(strip_templates(post.body))
        items = split_items(body, post.published_at, tz) if "---" in body and MAYBE_LOG.search(body) else []
        if items:
            url = post_url(site, post)
            entries += [
                _memo(site, post, item.slug, _item_entry, url, item)
                for item in items
                if low <= item.published_at.timestamp() <= high
            ]
        elif low <= post.published_at.timestamp() <= high:
            entries.append(_memo(site, post, "", _post_entry, body))
    entries.sort(key=lambda e: (-e.published_at.timestamp(), e.source, e.id))
    return Collection(tuple(entries), tuple(found.problems), found.scanned)


# Rendered entries, reused while the parsed file is the very same object (the reader's cache hands out
# the same Document until the file's mtime or size changes): warm runs skip Markdown rendering.
_RENDERED: dict[tuple[Site, str, str], tuple[object, object, Entry]] = {}


def _memo(site: Site, post: Post, key: str, build: Callable[..., Entry], *args: Any) -> Entry:
    slot = (site, post.source, key)
    hit = _RENDERED.get(slot)
    if hit is not None and hit[0] is post.meta and hit[1] is post.body:
        return hit[2]
    entry = build(site, post, *args)
    _RENDERED[slot] = (post.meta, post.body, entry)
    return entry


def categories(site: Site, post: Post) -> tuple[str, ...]:
    """Jekyll: the folders above `_posts`, then the front matter's; Pelican: `Category` (one), else the
    folder or DEFAULT_CATEGORY; others: the front matter's."""
    kind = site.generator.kind
    own = m.terms(post.meta, "categories", "category", words=kind != "pelican")
    if kind == "jekyll":
        return tuple(dict.fromkeys(post.categories + own))
    if kind == "pelican":
        return own[:1] or post.categories
    return own


def tags(site: Site, post: Post) -> tuple[str, ...]:
    return m.terms(post.meta, "tags", "tag", words=site.generator.kind != "pelican")


def language_of(site: Site, post: Post) -> str:
    """The post's language as the generator sees it ("" = unknown: the site's default)."""
    return post.language or site.generator.default_language


def entry_language(site: Site, post: Post) -> str:
    """Entry.language: "" when the post is in the site's own language."""
    language = post.language
    if not language or same_language(language, site.language):
        return ""
    if site.generator.default_language and same_language(language, site.generator.default_language):
        return ""
    return language


def post_url(site: Site, post: Post) -> str:
    gen = site.generator
    language = language_of(site, post)
    override = _text(post.meta.get("permalink")) or _text(post.meta.get("url"))
    pattern = site.permalink
    if gen.kind == "hugo":
        section = post.content_path.split("/", 1)[0] if "/" in post.content_path else ""
        pattern = dict(gen.permalinks).get(section) or pattern
    elif gen.kind == "pelican" and gen.default_language and language and language != gen.default_language:
        pattern = gen.lang_permalink or pattern
    title = m.title(post.meta, "", file_slug(post.source))
    slug = _text(post.meta.get("slug"))
    if gen.kind == "pelican" and not slug and gen.slug_from_file:
        slug = file_slug(post.content_path)
    path = PostPath(
        rel_to_content=post.content_path,
        published_at=post.published_at,
        title=title,
        categories=categories(site, post),
        slug=slug,
        override=override,
        kind=gen.kind,
        language=language,
        author=(m.authors(post.meta) or (site.author,))[0],
        meta=post.meta,
    )
    base = site.base_url
    root = dict(gen.language_roots).get(language, "")
    if root and not (gen.kind == "hugo" and override.startswith("/")):
        # Hugo: a url with a leading slash is relative to baseURL itself, every other path to the language's root
        base = urljoin(site.base_url, root)
    url = build_url(base, pattern, path)
    if (
        root
        and gen.kind == "jekyll"
        and build_url(site.base_url, pattern, path).startswith(urljoin(site.base_url, root))
    ):
        url = build_url(site.base_url, pattern, path)  # the path already starts with /<lang>/
    return url


def _text(value: object) -> str:
    return str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""


def _page_base(post: Post, url: str) -> str:
    """Page bundles keep their images next to index.md, so relative links resolve inside the folder."""
    if post.source.rsplit("/", 1)[-1].rsplit(".", 1)[0] == "index" and not url.endswith("/"):
        return url + "/"
    return url


def _tag_id(site: Site, when: datetime, source: str, fragment: str = "") -> str:
    host = urlsplit(site.base_url).hostname or "localhost"
    return f"tag:{host},{when.date().isoformat()}:/{source}" + (f"#{fragment}" if fragment else "")


def _common(site: Site, post: Post) -> dict[str, object]:
    return {
        "source": post.source,
        "authors": _safe(m.authors(post.meta) or ((site.author,) if site.author else ())),
        "categories": _safe(categories(site, post)),
        "tags": _safe(tags(site, post)),
        "updated_at": post.updated_at,
        "language": entry_language(site, post),
    }


def _safe(values: tuple[str, ...]) -> tuple[str, ...]:
    # Escapes in quoted YAML ("\x01") produce characters the file text itself did not contain.
    return tuple(xml_safe(v) for v in values)


def _post_entry(site: Site, post: Post, body: str) -> Entry:
    url = post_url(site, post)
    rendered = render(body, url, post.meta, Linker(_page_base(post, url), site.base_url))
    return Entry(
        id=_tag_id(site, post.published_at, post.source),
        title=xml_safe(m.title(post.meta, body, file_slug(post.source))),
        published_at=post.published_at,
        url=url,
        body_html=rendered.html,
        summary_html=xml_safe(rendered.summary_html),
        outline=rendered.outline,
        **_common(site, post),  # type: ignore[arg-type]
    )


def _item_entry(site: Site, post: Post, post_url: str, item: LogItem) -> Entry:
    url = f"{post_url}#{item.slug}"
    rendered = render(item.markdown, url, links=Linker(_page_base(post, post_url), site.base_url))
    return Entry(
        id=_tag_id(site, item.published_at, post.source, item.slug),
        title=item.title,
        published_at=item.published_at,
        url=url,
        body_html=rendered.html,
        summary_html=rendered.summary_html,
        outline=rendered.outline,
        **_common(site, post),  # type: ignore[arg-type]
    )
