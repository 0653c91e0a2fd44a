"""The readers' side: the pages of `digest serve` (subscribe, confirm, preferences, results), the short
mails of double opt-in (confirm, already subscribed, change of address) and the welcome email. Every text
comes from the labels of the reader's language; every page is a template a user's folder can replace."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from digest.config import Settings
from digest.models import Issue, RenderedIssue, Week
from digest.templater.context import output_url
from digest.templater.email import render_email
from digest.templater.env import render
from digest.templater.feeds import ATOM, RSS, feed_links
from digest.templater.labels import labels_for, reader_labels_for, reader_languages
from digest.text import issue_language


def page_language(settings: Settings, language: str) -> str:
    return language or settings.site.language


def _context(settings: Settings, language: str) -> dict[str, Any]:
    key = issue_language(language, settings.site.language)
    language = page_language(settings, language)
    # the archive and feeds of the reader's language once it has any (a language the site has not written in
    # yet has no folder: its link would be a 404), else the site's own
    published = bool(key) and (settings.output.dir / key / "index.html").is_file()
    out = output_url(settings, key if published else "")
    return {
        "site": settings.site,
        "language": language,
        "t": labels_for(language),
        "r": reader_labels_for(language),
        "archive_url": out,
        "feeds": feed_links(out),
    }


def render_page(settings: Settings, name: str, language: str, context: Mapping[str, Any]) -> str:
    """A page of the readers' side (`reader_*.html.j2`) in the reader's language."""
    return render(settings.output.templates, name, _context(settings, language) | dict(context))


def texts(language: str) -> Any:
    """The reader labels of a language (the server words its answers with them)."""
    return reader_labels_for(language)


def languages() -> dict[str, str]:
    return reader_languages()


@dataclass(frozen=True)
class Notice:
    subject: str
    text: str
    html: str


def render_notice(settings: Settings, kind: str, language: str, link: str, *, old: str = "") -> Notice:
    """The short mails: "confirm" (double opt-in), "notice" (already subscribed) and "change" (a new
    address to confirm). `link` is the signed page the reader opens."""
    r = reader_labels_for(page_language(settings, language))
    site = settings.site.title
    if kind == "confirm":
        subject, intro, action, button = (
            r.confirm_mail_subject, r.confirm_mail_intro, r.confirm_mail_action, r.confirm_button,
        )  # fmt: skip
        ignore = r.confirm_mail_ignore
    elif kind == "change":
        subject, intro, action, button = (
            r.change_mail_subject, r.change_mail_intro, r.change_mail_action, r.change_button,
        )  # fmt: skip
        ignore = r.confirm_mail_ignore
    else:
        subject, intro, action, button, ignore = r.notice_mail_subject, r.notice_mail_intro, "", r.preferences_title, ""
    context = {
        "subject": subject.format(site=site),
        "intro": intro.format(site=site, old=old),
        "action_text": action,
        "button": button,
        "link": link,
        "ignore": ignore,
    }
    folder = settings.output.templates
    base = _context(settings, language)
    return Notice(
        subject=context["subject"],
        text=render(folder, "reader_mail.txt.j2", base | context),
        html=render(folder, "reader_mail.html.j2", base | context),
    )


def render_welcome(issue: Issue | None, week: Week, settings: Settings, language: str) -> RenderedIssue:
    """The welcome email: the latest issue with a welcome paragraph on top, or only the paragraph when
    there is no issue yet. Rendered with the same templates as the weekly email (and its unsubscribe and
    preference links), so a reader sees at once what they subscribed to."""
    r = reader_labels_for(page_language(settings, language))
    site = settings.site.title
    if issue is not None:
        extra = {"welcome": r.welcome_intro.format(site=site), "welcome_no_issue": r.welcome_no_issue}
        return render_email(issue, settings, subject=r.welcome_subject.format(site=site), extra_context=extra)
    # no issue in the reader's language yet: the words around it are still theirs, and so is the preheader;
    # the links lead to the archive and feeds of their language once it has any, else to the site's own
    shown = Issue(settings.site, week, (), language=issue_language(language, settings.site.language))
    alone = r.welcome_alone.format(site=site)
    out = _context(settings, language)["archive_url"]
    links = {"issue_url": out, "archive_url": out, "atom_url": out + ATOM.file, "rss_url": out + RSS.file}
    links["feeds"] = feed_links(out)
    extra = {"welcome": alone, "welcome_no_issue": r.welcome_no_issue, "preheader": alone, **links}
    rendered = render_email(shown, settings, subject=r.welcome_subject.format(site=site), extra_context=extra)
    return replace(rendered, archive_url=out)
