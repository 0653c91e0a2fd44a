"""From posts to entries: URLs, rendered bodies, running-log items, the window filter, the order."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from digest.models import Collection, Entry, Site
from digest.text import xml_safe

from . import meta as m
from .attributes import strip_extensions
from .crossrefs import PostLinks, Resolver
from .links import Linker
from .liquid import strip_templates
from .markdown import render
from .permalink import file_slug
from .reader import MAYBE_LOG, Post, scan
from .runlog import LogItem, split_items
from .urls import categories, entry_language, post_url, tags


def collect(site: Site, now_at: datetime, since_at: datetime | None = None) -> Collection:
    """Every entry with since_at <= published_at <= now_at (since_at None: all), newest first."""
    found = scan(site, now_at, since_at)
    resolver = Resolver(site, found.files)
    pelican = site.generator.kind == "pelican"  # its {filename} links are in plain Markdown links
    tz = ZoneInfo(site.timezone)
    low = since_at.timestamp() if since_at is not None else float("-inf")
    high = now_at.timestamp()
    entries: list[Entry] = []
    for post in found.posts:
        links = resolver.for_post(post) if pelican or "{" in post.body else None
        body = strip_extensions(strip_templates(post.body, site.generator.kind, links)) if links else post.body
        items = split_items(body, post.published_at, tz) if "---" in body and MAYBE_LOG.search(body) else []
        if items:
            url = post_url(site, post)
            entries += [
                _memo(site, post, item.slug, body, _item_entry, url, item, links)
                for item in items
                if low <= item.published_at.timestamp() <= high
            ]
        elif low <= post.published_at.timestamp() <= high:
            entries.append(_memo(site, post, "", body, _post_entry, body, links))
    entries.sort(key=lambda e: (-e.published_at.timestamp(), e.source, e.id))
    return Collection(tuple(entries), tuple(found.problems), found.scanned)


# Rendered entries, reused while the parsed file is the very same object (the reader's cache hands out
# the same Document until the file's mtime or size changes) and the body with its links resolved is the
# same text (a linked post may have moved): warm runs skip Markdown rendering.
_RENDERED: dict[tuple[str, str, str], tuple[Site, object, str, Entry]] = {}


def _memo(site: Site, post: Post, key: str, body: str, build: Callable[..., Entry], *args: Any) -> Entry:
    slot = (str(site.root), post.source, key)
    hit = _RENDERED.get(slot)
    if hit is not None and hit[1] is post.meta and hit[2] == body and (hit[0] is site or hit[0] == site):
        return hit[3]
    entry = build(site, post, *args)
    _RENDERED[slot] = (site, post.meta, body, entry)
    return entry


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


def _linker(site: Site, post: Post, url: str, links: PostLinks | None) -> Linker:
    special = links.pelican if links is not None and site.generator.kind == "pelican" else None
    return Linker(_page_base(post, url), site.base_url, special)


def _post_entry(site: Site, post: Post, body: str, links: PostLinks | None) -> Entry:
    url = post_url(site, post)
    rendered = render(body, url, post.meta, _linker(site, post, url, links))
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


def _item_entry(site: Site, post: Post, post_url: str, item: LogItem, links: PostLinks | None) -> Entry:
    url = f"{post_url}#{item.slug}"
    rendered = render(item.markdown, url, links=_linker(site, post, post_url, links))
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
