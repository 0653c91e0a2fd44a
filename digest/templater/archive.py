"""The static archive: `<label>/index.html` per issue and `index.html` listing every issue.

Links between archive pages are relative and name index.html, so the folder works on any static
host and straight from disk; canonical and feed links are absolute.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from digest.config import Settings
from digest.models import Issue, Memo, Renderer
from digest.templater.context import base_context, issue_url, output_url, with_bodies
from digest.templater.email import make_preheader, subject_of
from digest.templater.env import fmt_date, last_day, render
from digest.templater.feeds import ATOM, RSS, feed_links
from digest.templater.keys import issue_key, settings_key
from digest.templater.labels import labels_for
from digest.text import fingerprint


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


def _link(issue: Issue, settings: Settings, bodies: Renderer | None = None) -> IssueLink:
    tz = issue.site.tz
    return IssueLink(
        label=issue.week.label,
        title=subject_of(issue, settings, bodies),
        href=f"{issue.week.label}/index.html",
        url=issue_url(issue, settings),
        week_start=fmt_date(issue.week.start_at, tz),
        week_end=last_day(issue.week.end_at, tz),
        count=len(issue.entries),
        teaser=make_preheader(issue),
    )


def _links(
    ordered: Sequence[Issue], settings: Settings, bodies: Renderer | None, memo: Memo | None, context: str, name: str
) -> list[IssueLink]:
    """The index's link of each issue; with `memo`, kept in one row per index while the issue and the settings
    are unchanged (each is a rendered subject: a weekly publish of a 500-issue archive made 500 of them)."""
    if memo is None:
        return [_link(i, settings, bodies) for i in ordered]
    kept = memo.get("links", name)
    known: dict[str, tuple[str, IssueLink]] = {}
    if isinstance(kept, tuple) and len(kept) == 2 and kept[0] == context and isinstance(kept[1], dict):
        # a row written by other code counts as missing, entry by entry
        known = {
            k: v for k, v in kept[1].items() if isinstance(v, tuple) and len(v) == 2 and isinstance(v[1], IssueLink)
        }
    links, fresh = [], {}
    for issue in ordered:
        key = issue_key(issue)
        found = known.get(issue.id)
        link = found[1] if found is not None and found[0] == key else _link(issue, settings, bodies)
        links.append(link)
        fresh[issue.id] = (key, link)
    if fresh != known:
        memo.put("links", name, (context, fresh))
    return links


def render_archive(
    issues: Sequence[Issue],
    settings: Settings,
    *,
    language: str = "",
    memo: Memo | None = None,
    bodies: Renderer | None = None,
) -> dict[str, bytes]:
    """{"index.html": …, "<week label>/index.html": …}, paths relative to settings.output.dir; another
    language's pages are under "<language>/". With `memo`, a page whose issue, neighbours, settings and
    templates are unchanged comes from the cache (a weekly publish renders the new page and its neighbour);
    `bodies` renders the bodies of the issues whose pages are not (pipeline.build's history_bodies)."""
    ordered = sorted(issues, key=lambda i: i.week.start_at, reverse=True)
    folder = settings.output.templates
    prefix = f"{language}/" if language else ""
    lang = language or settings.site.language
    context_key = settings_key(settings) if memo is not None else ""
    links = _links(ordered, settings, bodies, memo, context_key, f"{prefix}index.html")
    files: dict[str, bytes] = {}
    prefetch = getattr(memo, "prefetch", None)  # digest.cache.Cache reads many rows at once
    if prefetch is not None:
        prefetch("page", [f"{prefix}{issue.week.label}/index.html" for issue in ordered])
    for n, issue in enumerate(ordered):
        newer = links[n - 1] if n > 0 else None
        older = links[n + 1] if n + 1 < len(links) else None
        name = f"{prefix}{issue.week.label}/index.html"
        if memo is not None:
            key = fingerprint(context_key, lang, issue_key(issue), links[n], newer, older)
            kept = memo.get("page", name)
            if isinstance(kept, tuple) and len(kept) == 2 and kept[0] == key and isinstance(kept[1], bytes):
                files[name] = kept[1]
                continue
        context = base_context(with_bodies(issue, bodies), settings) | {
            "title": links[n].title,
            "root": "../",
            "newer": newer,
            "older": older,
        }
        files[name] = render(folder, "archive_issue.html.j2", context, language=lang).encode("utf-8")
        if memo is not None:
            memo.put("page", name, (key, files[name]))
    index = f"{prefix}index.html"
    index_key = fingerprint(context_key, lang, links) if memo is not None else ""
    if memo is not None:
        kept = memo.get("page", index)
        if isinstance(kept, tuple) and len(kept) == 2 and kept[0] == index_key and isinstance(kept[1], bytes):
            files[index] = kept[1]
            return files
    out = output_url(settings, language)
    index_context = {
        "site": settings.site.in_language(language),
        "home_url": settings.site.home_in(language),
        "lang": lang,
        "issues": links,
        "archive_url": out,
        "atom_url": out + ATOM.file,
        "rss_url": out + RSS.file,
        "feeds": feed_links(out),
        "root": "",
        "t": labels_for(lang),
    }
    files[index] = render(folder, "archive_index.html.j2", index_context, language=lang).encode("utf-8")
    if memo is not None:
        memo.put("page", index, (index_key, files[index]))
    return files
