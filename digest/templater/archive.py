"""The static archive: `<label>/index.html` per issue and `index.html` listing every issue.

Links between archive pages are relative and name index.html, so the folder works on any static
host and straight from disk; canonical and feed links are absolute.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from digest.config import Settings
from digest.models import Issue
from digest.templater.context import base_context, issue_url
from digest.templater.email import make_preheader, render_subject
from digest.templater.env import fmt_date, last_day, render
from digest.templater.feeds import ATOM, RSS, feed_links
from digest.templater.labels import labels_for


@dataclass(frozen=True)
class IssueLink:
    label: str
    title: str
    href: str  # relative to the index page
    url: str  # absolute
    week_start: str
    week_end: str
    count: int
    teaser: str


def _link(issue: Issue, settings: Settings) -> IssueLink:
    tz = issue.site.tz
    return IssueLink(
        label=issue.week.label,
        title=render_subject(issue, settings),
        href=f"{issue.week.label}/index.html",
        url=issue_url(issue, settings),
        week_start=fmt_date(issue.week.start_at, tz),
        week_end=last_day(issue.week.end_at, tz),
        count=len(issue.entries),
        teaser=make_preheader(issue),
    )


def render_archive(issues: Sequence[Issue], settings: Settings) -> dict[str, bytes]:
    """{"index.html": …, "<week label>/index.html": …}, paths relative to settings.output.dir."""
    ordered = sorted(issues, key=lambda i: i.week.start_at, reverse=True)
    links = [_link(i, settings) for i in ordered]
    folder = settings.output.templates
    files: dict[str, bytes] = {}
    for n, issue in enumerate(ordered):
        context = base_context(issue, settings) | {
            "title": links[n].title,
            "root": "../",
            "newer": links[n - 1] if n > 0 else None,
            "older": links[n + 1] if n + 1 < len(links) else None,
        }
        files[f"{issue.week.label}/index.html"] = render(folder, "archive_issue.html.j2", context).encode("utf-8")
    out = settings.output.url
    index_context = {
        "site": settings.site,
        "issues": links,
        "archive_url": out,
        "atom_url": out + ATOM.file,
        "rss_url": out + RSS.file,
        "feeds": feed_links(out),
        "root": "",
        "t": labels_for(settings.site.language),
    }
    files["index.html"] = render(folder, "archive_index.html.j2", index_context).encode("utf-8")
    return files
