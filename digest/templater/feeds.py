"""Atom (RFC 4287) and RSS 2.0 feeds of the latest issues, one entry per issue with its full HTML.

Nothing here reads the clock: feedgen stamps `updated` with now() unless told otherwise, so every
date is set from Issue.updated_at (the newest entry), and an empty feed gets the Unix epoch.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from urllib.parse import urlsplit

from feedgen.feed import FeedGenerator

from digest.config import Settings
from digest.models import Issue
from digest.templater.context import base_context, issue_url, labels_of
from digest.templater.email import make_preheader, render_subject
from digest.templater.env import render
from digest.templater.labels import labels_for
from digest.text import xml_safe

FEED_FILES = {"atom": "atom.xml", "rss": "rss.xml"}
_EPOCH_AT = datetime(1970, 1, 1, tzinfo=UTC)


def issue_tag_uri(issue: Issue, settings: Settings) -> str:
    """tag:host,week-start-date:/path/label — the same for an issue on every rebuild (RFC 4151)."""
    parts = urlsplit(settings.output.url)
    day = issue.week.start_at.astimezone(issue.site.tz).strftime("%Y-%m-%d")
    return f"tag:{parts.hostname or 'localhost'},{day}:{parts.path or '/'}{issue.week.label}"


def latest_issues(issues: Sequence[Issue], settings: Settings) -> list[Issue]:
    return sorted(issues, key=lambda i: i.week.start_at, reverse=True)[: settings.output.feed_issues]


def categories_of(issues: Sequence[Issue]) -> list[str]:
    seen: dict[str, str] = {}
    for issue in issues:
        for entry in issue.entries:
            for label in labels_of(entry):
                seen.setdefault(label.casefold(), xml_safe(label))
    return [seen[k] for k in sorted(seen)]


def _generator(issues: list[Issue], settings: Settings, fmt: str, contents: dict[str, str]) -> FeedGenerator:
    site = settings.site
    out = settings.output.url
    author = {"name": site.author or site.title}
    updated_at = max((i.updated_at for i in issues), default=_EPOCH_AT).astimezone(UTC)
    fg = FeedGenerator()
    fg.id(out)
    fg.title(xml_safe(site.title))
    # description() and subtitle() are one field in feedgen: set it once.
    fg.description(site.description or labels_for(site.language).weekly_digest.format(site=site.title))
    fg.author(author)
    # RSS <link> is the last link added, so the self link goes first and the page last.
    fg.link(
        href=out + FEED_FILES[fmt], rel="self", type="application/atom+xml" if fmt == "atom" else "application/rss+xml"
    )
    fg.link(href=out, rel="alternate", type="text/html")
    fg.language(site.language)
    fg.generator("digest")
    fg.updated(updated_at)
    fg.pubDate(updated_at)
    for label in categories_of(issues):
        fg.category(term=label)
    for issue in issues:  # newest first, kept in that order (add_entry prepends by default)
        fe = fg.add_entry(order="append")
        fe.id(issue_tag_uri(issue, settings))
        fe.guid(issue_tag_uri(issue, settings), permalink=False)
        fe.title(xml_safe(render_subject(issue, settings)))
        fe.link(href=issue_url(issue, settings), rel="alternate", type="text/html")
        fe.author(author)
        fe.content(contents[issue.week.label], type="html")  # RSS: content:encoded
        fe.summary(xml_safe(make_preheader(issue)))  # RSS: description
        fe.updated(issue.updated_at.astimezone(UTC))
        fe.published(issue.updated_at.astimezone(UTC))
        for label in categories_of([issue]):
            fe.category(term=label)
    return fg


def render_feeds(issues: Sequence[Issue], settings: Settings) -> dict[str, bytes]:
    """{"atom.xml": …, "rss.xml": …} of the latest settings.output.feed_issues issues, newest first."""
    latest = latest_issues(issues, settings)
    contents = {
        i.week.label: xml_safe(
            render(settings.output.templates, "issue_body.html.j2", base_context(i, settings)).strip()
        )
        for i in latest
    }
    atom = _generator(latest, settings, "atom", contents).atom_str(pretty=True, encoding="UTF-8", xml_declaration=True)
    rss = _generator(latest, settings, "rss", contents).rss_str(pretty=True, encoding="UTF-8", xml_declaration=True)
    return {FEED_FILES["atom"]: bytes(atom), FEED_FILES["rss"]: bytes(rss)}
