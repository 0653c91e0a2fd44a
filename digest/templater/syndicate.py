"""Issues -> feed files: every kind in FEEDS, for all issues or for a subset (the issues of one tag)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from urllib.parse import urlsplit

from digest.config import Settings
from digest.models import Issue, Memo, Renderer
from digest.templater.context import base_context, issue_url, labels_of, output_url, with_bodies
from digest.templater.email import make_preheader, render_subject
from digest.templater.env import render
from digest.templater.feeds import FEEDS, FeedInput, FeedItem, write_from_parts
from digest.templater.keys import issue_key, settings_key
from digest.templater.labels import labels_for
from digest.text import fingerprint as fingerprint_of
from digest.text import strip_controls, xml_safe


def issue_tag_uri(issue: Issue, settings: Settings) -> str:
    """tag:host,week-start-date:/path/label — the same for an issue on every rebuild (RFC 4151), and after a
    move to another address: host and path are those of the first publish (output.feed_id_url)."""
    parts = urlsplit(settings.output.feed_id_url or settings.output.url)
    day = issue.week.start_at.astimezone(issue.site.tz).strftime("%Y-%m-%d")
    return f"tag:{parts.hostname or 'localhost'},{day}:{parts.path or '/'}{issue.prefix}{issue.week.label}"


def latest_issues(issues: Sequence[Issue], settings: Settings) -> list[Issue]:
    return sorted(issues, key=lambda i: i.week.start_at, reverse=True)[: settings.output.feed_issues]


def categories_of(issues: Sequence[Issue]) -> tuple[str, ...]:
    seen: dict[str, str] = {}
    for issue in issues:
        for entry in issue.entries:
            for label in labels_of(entry):
                seen.setdefault(label.casefold(), strip_controls(label))
    return tuple(seen[k] for k in sorted(seen))


def _item(issue: Issue, settings: Settings) -> FeedItem:
    body = render(settings.output.templates, "issue_body.html.j2", base_context(issue, settings), language=issue.lang)
    return FeedItem(
        id=issue_tag_uri(issue, settings),
        url=issue_url(issue, settings),
        title=render_subject(issue, settings),
        summary=strip_controls(make_preheader(issue)),
        content_html=xml_safe(body.strip()),
        updated_at=issue.updated_at,
        categories=categories_of([issue]),
        published_at=issue.published_at,
    )


def _prefetch(memo: Memo, kind: str, keys: list[str]) -> None:
    """Ask the cache for many rows at once, when it can (digest.cache.Cache.prefetch)."""
    prefetch = getattr(memo, "prefetch", None)
    if prefetch is not None:
        prefetch(kind, keys)


Parts = dict[tuple[str, FeedItem], str]  # (feed kind, item) -> the item's text in that kind's file


def _cached_item(issue: Issue, memo: Memo, context: str, parts: Parts) -> FeedItem | None:
    """An issue's feed entry, and its Atom and RSS texts added to `parts`, from the cache while the issue,
    the settings and the templates are unchanged (a weekly publish of a 500-issue feed renders one); None
    when it is not kept."""
    key = fingerprint_of(context, issue_key(issue))
    kept = memo.get("item", issue.id)
    if isinstance(kept, tuple) and len(kept) == 3 and kept[0] == key and isinstance(kept[1], FeedItem):
        item: FeedItem = kept[1]
        if isinstance(kept[2], dict):
            parts.update({(kind, item): text for kind, text in kept[2].items() if isinstance(text, str)})
        return item
    return None


def render_feeds(
    issues: Sequence[Issue],
    settings: Settings,
    *,
    language: str = "",
    path: str = "",
    title: str | None = None,
    memo: Memo | None = None,
    bodies: Renderer | None = None,
    floor_at: datetime | None = None,
) -> dict[str, bytes]:
    """{path + file: bytes} for every feed kind, of the latest `output.feed_issues` issues, newest first,
    dated no earlier than `floor_at` (the date the feeds had: an issue that lost its only post is gone).
    `path` ("tags/python/") puts the feeds of a subset of the issues in a folder of their own; another
    `language` puts them all under "<language>/". With `memo`, the items and their texts of the issues that
    are unchanged come from the cache; `bodies` renders the bodies of the others (pipeline.build's
    history_bodies)."""
    site = settings.site.in_language(language)
    latest = latest_issues(issues, settings)
    # A tag's feed holds the issues narrowed to that tag: their items are not the issues' own.
    cache = memo if memo is not None and not path else None
    context = settings_key(settings) if cache is not None else ""
    parts: Parts = {}
    if cache is not None:
        _prefetch(cache, "item", [issue.id for issue in latest])
        kept = [_cached_item(issue, cache, context, parts) for issue in latest]
        if bodies is not None:
            # The bodies of every entry not kept, in one call: a first run's hundreds go to helper processes.
            bodies([e for issue, item in zip(latest, kept, strict=True) if item is None for e in issue.all_entries])
        items = tuple(
            item or _item(with_bodies(issue, bodies), settings) for issue, item in zip(latest, kept, strict=True)
        )
    else:
        items = tuple(_item(with_bodies(issue, bodies), settings) for issue in latest)
    known = dict(parts)
    out = output_url(settings, language)
    lang = language or site.language
    prefix = f"{language}/" if language else ""
    files: dict[str, bytes] = {}
    categories = categories_of(latest)  # once for the three kinds (500 issues' entries)
    for kind in FEEDS:
        feed = FeedInput(
            id=out + path,
            url=out + path + kind.file,
            home_url=out,
            title=strip_controls(title or site.title),
            description=strip_controls(site.description or labels_for(lang).weekly_digest.format(site=site.title)),
            language=lang,
            author=strip_controls(site.author or site.title),
            items=items,
            categories=categories,
            floor_at=floor_at,
        )
        files[prefix + path + kind.file] = (
            write_from_parts(kind, feed, parts, cache) if cache is not None else kind.write(feed)
        )
    if cache is not None:
        for issue, item in zip(latest, items, strict=True):
            own = {k.name: parts[(k.name, item)] for k in FEEDS if (k.name, item) in parts}
            if own != {k: known[(k, item)] for k in own if (k, item) in known} or not own:
                cache.put("item", issue.id, (fingerprint_of(context, issue_key(issue)), item, own))
    return files
