"""The feed kinds, one table: FEEDS. Each row is a kind's name, file, media type and writer; the archive's
autodiscovery links, the server's content types and `render_feeds` (syndicate.py) all read it, so a new
kind is one row and one writer.

Writers get everything prepared (FeedInput) and read no clock: feedgen stamps `updated` with now() unless
told otherwise, so every date is set from the issues (the newest entry), and an empty feed gets the epoch.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from digest.models import Memo
from digest.text import fingerprint, xml_safe

if TYPE_CHECKING:
    from feedgen.feed import FeedGenerator

EPOCH_AT = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class FeedItem:
    """One issue as a feed entry."""

    id: str  # a tag URI that never changes
    url: str  # the archive page
    title: str
    summary: str
    content_html: str
    updated_at: datetime
    categories: tuple[str, ...]
    published_at: datetime | None = None  # None: updated_at; an edit moves updated_at only

    @property
    def first_at(self) -> datetime:
        return (self.published_at or self.updated_at).astimezone(UTC)


@dataclass(frozen=True)
class FeedInput:
    """What every writer gets."""

    id: str
    url: str  # the feed's own absolute URL
    home_url: str  # the archive index
    title: str
    description: str
    language: str
    author: str
    items: tuple[FeedItem, ...]  # newest first
    categories: tuple[str, ...]
    floor_at: datetime | None = None  # the feed's own date never goes back before this

    @property
    def updated_at(self) -> datetime:
        newest = max((i.updated_at for i in self.items), default=EPOCH_AT)
        return max(newest, self.floor_at or newest).astimezone(UTC)


@dataclass(frozen=True)
class FeedKind:
    name: str  # "atom"
    file: str  # "atom.xml"
    media_type: str  # what the server answers with, and the autodiscovery link's type
    label: str  # "Atom", "RSS", "JSON Feed": autodiscovery link titles
    write: Callable[[FeedInput], bytes]


def _generator(feed: FeedInput, media_type: str, items: tuple[FeedItem, ...] | None = None) -> FeedGenerator:
    """feedgen's feed of `feed`, with `items` in place of its own (dated from its own, whatever the items)."""
    # feedgen (and dateutil under it) only when a feed is written: a preview whose feeds' frames and
    # entries all come from the cache never imports it.
    from feedgen.feed import FeedGenerator

    author = {"name": feed.author}
    fg = FeedGenerator()
    fg.id(feed.id)
    fg.title(xml_safe(feed.title))
    # description() and subtitle() are one field in feedgen: set it once.
    fg.description(feed.description)
    fg.author(author)
    # RSS <link> is the last link added, so the self link goes first and the page last.
    fg.link(href=feed.url, rel="self", type=media_type)
    fg.link(href=feed.home_url, rel="alternate", type="text/html")
    fg.language(feed.language)
    fg.generator("digest")
    fg.updated(feed.updated_at)
    fg.pubDate(feed.updated_at)
    for label in feed.categories:
        fg.category(term=label)
    for item in (
        feed.items if items is None else items
    ):  # newest first, kept in that order (add_entry prepends by default)
        fe = fg.add_entry(order="append")
        fe.id(item.id)
        fe.guid(item.id, permalink=False)
        fe.title(xml_safe(item.title))
        fe.link(href=item.url, rel="alternate", type="text/html")
        fe.author(author)
        fe.content(item.content_html, type="html")  # RSS: content:encoded
        fe.summary(xml_safe(item.summary))  # RSS: description
        fe.updated(item.updated_at.astimezone(UTC))
        fe.published(item.first_at)
        for label in item.categories:
            fe.category(term=label)
    return fg


def write_atom(feed: FeedInput) -> bytes:
    return bytes(_generator(feed, ATOM.media_type).atom_str(pretty=True, encoding="UTF-8", xml_declaration=True))


def write_rss(feed: FeedInput) -> bytes:
    return bytes(_generator(feed, RSS.media_type).rss_str(pretty=True, encoding="UTF-8", xml_declaration=True))


# What follows the last entry in feedgen's pretty-printed Atom and RSS documents, and what starts each entry
# (at the start of a line; entries' contents are escaped or in CDATA sections, so no other line starts so).
_TAILS = {"atom": "</feed>", "rss": "  </channel>"}
_STARTS = {"atom": re.compile(r"(?m)^(?=  <entry>)"), "rss": re.compile(r"(?m)^(?=    <item>)")}


def _xml(kind: FeedKind, feed: FeedInput, items: tuple[FeedItem, ...]) -> str:
    fg = _generator(feed, kind.media_type, items)
    write = fg.atom_str if kind.name == "atom" else fg.rss_str
    return bytes(write(pretty=True, encoding="UTF-8", xml_declaration=True)).decode("utf-8")


def _frame(kind: FeedKind, feed: FeedInput, tail: str, memo: Memo | None) -> tuple[str, str] | None:
    """The feed document without entries, cut before `tail`: (head, end); None when it does not cut. Kept in
    the cache by the feed's own fields and date (everything feedgen writes outside the entries)."""
    key = fingerprint(kind.name, replace(feed, items=()), feed.updated_at) if memo is not None else ""
    if memo is not None:
        kept = memo.get("frame", f"{kind.name} {feed.url}")
        if isinstance(kept, tuple) and len(kept) == 3 and kept[0] == key:
            return str(kept[1]), str(kept[2])
    frame = _xml(kind, feed, ())
    cut = frame.rfind(tail)
    if cut < 0:
        return None
    if memo is not None:
        memo.put("frame", f"{kind.name} {feed.url}", (key, frame[:cut], frame[cut:]))
    return frame[:cut], frame[cut:]


def write_from_parts(
    kind: FeedKind, feed: FeedInput, parts: MutableMapping[tuple[str, FeedItem], str], memo: Memo | None = None
) -> bytes:
    """The same bytes as `kind.write(feed)`, with each entry's text taken from `parts` when an earlier run
    wrote it, and the new ones added there: the feed document without entries, then the entries' texts as
    feedgen wrote them. Measured on a 500-issue feed with full HTML: feedgen builds and writes Atom and RSS
    whole in about 0.45 s; from kept texts with one new entry (the weekly publish) it takes 0.03 s. With more
    than one new entry the whole feed is written and cut into its entries; a kind without a known shape, or
    a document that does not cut as expected, is written whole. With `memo` the frame (the document without
    entries) comes from the cache too while the feed's fields and date are unchanged."""
    if kind.name == JSON_FEED.name:
        return _json_from_parts(feed, parts)
    tail = _TAILS.get(kind.name)
    if tail is None:
        return kind.write(feed)
    framed = _frame(kind, feed, tail, memo)
    if framed is None:
        return kind.write(feed)
    head, end = framed
    missing = [item for item in feed.items if (kind.name, item) not in parts]
    if len(missing) > 1:
        whole = _xml(kind, feed, feed.items)
        pieces = _STARTS[kind.name].split(whole[len(head) : len(whole) - len(end)])
        pieces = pieces[1:] if pieces and not pieces[0] else pieces
        if whole.startswith(head) and whole.endswith(end) and len(pieces) == len(feed.items):
            parts.update({(kind.name, item): piece for item, piece in zip(feed.items, pieces, strict=True)})
        return whole.encode("utf-8")
    texts = []
    for item in feed.items:
        text = parts.get((kind.name, item))
        if text is None:
            one = _xml(kind, feed, (item,))
            if not (one.startswith(head) and one.endswith(end)) or len(one) < len(head) + len(end):
                return kind.write(feed)
            text = one[len(head) : len(one) - len(end)]
            parts[(kind.name, item)] = text
        texts.append(text)
    return (head + "".join(texts) + end).encode("utf-8")


def _json_head(feed: FeedInput) -> dict[str, object]:
    return {
        "version": "https://jsonfeed.org/version/1.1",
        "title": feed.title,
        "home_page_url": feed.home_url,
        "feed_url": feed.url,
        "description": feed.description,
        "language": feed.language,
        "authors": [{"name": feed.author}],
    }


def _json_item(item: FeedItem, author: str) -> dict[str, object]:
    return {
        "id": item.id,
        "url": item.url,
        "title": item.title,
        "summary": item.summary,
        "content_html": item.content_html,
        "date_published": item.first_at.isoformat(),
        "date_modified": item.updated_at.astimezone(UTC).isoformat(),
        "authors": [{"name": author}],
        "tags": list(item.categories),
    }


def write_json_feed(feed: FeedInput) -> bytes:
    """JSON Feed 1.1 (https://www.jsonfeed.org/version/1.1/). feedgen writes no JSON, and the format is a
    plain JSON document: json.dumps of the same ids, titles and dates as the Atom feed."""
    document = _json_head(feed) | {"items": [_json_item(item, feed.author) for item in feed.items]}
    return (json.dumps(document, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


# json.dumps with an indent runs its pure-Python encoder (0.1 s for 500 items with their HTML): the kept
# texts of the items are joined instead, each as json.dumps writes it two levels down (JSON strings
# hold no raw line break, so indenting every line after the first is exact).
_JSON_EMPTY = '"items": []\n}'


def _json_from_parts(feed: FeedInput, parts: MutableMapping[tuple[str, FeedItem], str]) -> bytes:
    head = json.dumps(_json_head(feed) | {"items": []}, ensure_ascii=False, indent=2)
    if not feed.items or not head.endswith(_JSON_EMPTY):
        return write_json_feed(feed)
    texts = []
    for item in feed.items:
        text = parts.get((JSON_FEED.name, item))
        if text is None:
            text = json.dumps(_json_item(item, feed.author), ensure_ascii=False, indent=2).replace("\n", "\n    ")
            parts[(JSON_FEED.name, item)] = text
        texts.append(text)
    start = head[: len(head) - len(_JSON_EMPTY)]
    return (start + '"items": [\n    ' + ",\n    ".join(texts) + "\n  ]\n}\n").encode("utf-8")


ATOM = FeedKind("atom", "atom.xml", "application/atom+xml", "Atom", write_atom)
RSS = FeedKind("rss", "rss.xml", "application/rss+xml", "RSS", write_rss)
JSON_FEED = FeedKind("json", "feed.json", "application/feed+json", "JSON Feed", write_json_feed)
FEEDS: tuple[FeedKind, ...] = (ATOM, RSS, JSON_FEED)


def feed_links(output_url: str, path: str = "") -> list[dict[str, str]]:
    """Autodiscovery links of the feeds under `path` (for the archive pages' <head>)."""
    return [{"url": output_url + path + k.file, "type": k.media_type, "label": k.label} for k in FEEDS]
