"""What every template sees: the issue, its entries prepared for display, and the public URLs."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from markupsafe import Markup

from digest.config import Settings
from digest.models import (
    PREFERENCES_URL_MARK,
    RECIPIENT_EMAIL_MARK,
    UNSUBSCRIBE_URL_MARK,
    Entry,
    Heading,
    Issue,
    Renderer,
    Site,
)
from digest.templater.env import fmt_date, last_day
from digest.templater.feeds import ATOM, RSS, feed_links
from digest.templater.labels import labels_for
from digest.text import is_toc_heading


def output_url(settings: Settings, language: str = "") -> str:
    """The public URL of a language's feeds and archive: the output URL, plus "ko/" for another language."""
    return settings.output.url + (f"{language}/" if language else "")


def issue_url(issue: Issue, settings: Settings) -> str:
    """The archive page of an issue: its language's output URL + week label + "/". Every issue that carried
    a post has one (an issue of late arrivals only too: the archive lists each post with the issue that
    mailed it); the "no new posts" note and a --since/--until window link to the archive index instead."""
    base = output_url(settings, issue.language)
    return f"{base}{issue.week.label}/" if issue.all_entries and not issue.week.custom else base


@dataclass(frozen=True)
class OutlineItem:
    text: str
    url: str
    level: int  # 0 = top, 1 = nested under the previous top item


def outline_items(outline: tuple[Heading, ...]) -> tuple[OutlineItem, ...]:
    """The headings worth listing: `##`/`###` without a table-of-contents heading; the shallowest level is 0."""
    kept = [h for h in outline if h.level in (2, 3) and not is_toc_heading(h.text)]
    if not kept:
        return ()
    top = min(h.level for h in kept)
    return tuple(OutlineItem(h.text, h.anchor, min(h.level - top, 1)) for h in kept)


@dataclass(frozen=True)
class EntryView:
    entry: Entry
    title: str
    url: str
    date: str  # YYYY-MM-DD in the site's timezone
    iso: str
    labels: tuple[str, ...]  # categories then tags, without duplicates
    outline: tuple[OutlineItem, ...]
    body: Markup  # full body or summary, as chosen for this render
    summary: Markup
    summarized: bool


def labels_of(entry: Entry) -> tuple[str, ...]:
    seen: dict[str, str] = {}
    for label in (*entry.categories, *entry.tags):
        seen.setdefault(label.casefold(), label)
    return tuple(seen.values())


def entry_view(entry: Entry, site: Site, *, summarize: bool, email: bool = False) -> EntryView:
    outline = outline_items(entry.outline)

    def ready(fragment: str) -> Markup:
        # lxml (bodies) is imported by the runs that prepare a body, not by one served from the cache.
        from digest.templater.bodies import prepare

        # Bodies come from the collector's Markdown renderer: HTML made safe for its output, never escaped again.
        html = prepare(
            fragment, entry.url, entry.title, drop_toc=bool(outline), email=email, site=site, source=entry.source
        )
        return Markup(html)

    summary = ready(entry.summary_html)
    body = summary if summarize else ready(entry.body_html)
    tz = site.tz
    return EntryView(
        entry=entry,
        title=entry.title,
        url=entry.url,
        date=fmt_date(entry.published_at, tz),
        iso=entry.published_at.isoformat(),
        labels=labels_of(entry),
        outline=outline,
        body=body,
        summary=summary,
        summarized=summarize,
    )


def with_bodies(issue: Issue, render: Renderer | None) -> Issue:
    """`issue` with its entries' bodies rendered (see pipeline.build: the history of a publish or a preview
    is handed out unrendered, and only what the cache does not hold is rendered)."""
    if render is None:
        return issue
    return replace(issue, entries=render(issue.entries), late=render(issue.late))


def _note(issue: Issue, settings: Settings, email: bool) -> Markup:
    """The editor's note (Markdown rendered by the collector, HTML made safe for its output); in an email
    made ready for mail clients as the posts are: no script, form, `javascript:` link or event attribute."""
    if not email or not issue.note_html.strip():
        return Markup(issue.note_html)
    from digest.templater.bodies import prepare

    url = issue_url(issue, settings)
    return Markup(prepare(issue.note_html, url, "", drop_toc=False, email=True, site=issue.site, source=""))


def base_context(issue: Issue, settings: Settings, *, summarize: bool = False, email: bool = False) -> dict[str, Any]:
    """What every template sees; `email` prepares the bodies for mail clients (see bodies.py)."""
    tz = issue.site.tz
    out = output_url(settings, issue.language)
    return {
        "site": issue.site,
        "home_url": issue.site.home_in(issue.language),
        "lang": issue.lang,
        "week": issue.week,
        "issue": issue,
        "entries": [entry_view(e, issue.site, summarize=summarize, email=email) for e in issue.entries],
        "late": [entry_view(e, issue.site, summarize=summarize, email=email) for e in issue.late],
        "summarized": summarize,
        "issue_url": issue_url(issue, settings),
        "archive_url": out,
        "atom_url": out + ATOM.file,
        "rss_url": out + RSS.file,
        "feeds": feed_links(out),
        "week_start": fmt_date(issue.week.start_at, tz),
        "week_end": last_day(issue.week.end_at, tz),
        "unsubscribe_url": UNSUBSCRIBE_URL_MARK,
        "recipient": RECIPIENT_EMAIL_MARK,
        "t": labels_for(issue.lang),
        # the preference page exists only where `digest serve` is reachable
        "preferences_url": PREFERENCES_URL_MARK if settings.email.public_url else "",
        "note": _note(issue, settings, email),
        "welcome": "",  # the welcome email's opening paragraph (templater.render_welcome)
        "welcome_no_issue": "",
        "omitted": 0,  # entries a long email leaves to the archive (render_email sets it)
        "more_url": "",
    }
