"""The HTML email: rendered once per variant, CSS inlined once, summaries when Gmail would clip it."""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from typing import Any

from markupsafe import Markup

from digest.config import Settings
from digest.errors import TemplateError
from digest.models import (
    PREFERENCES_URL_MARK,
    RECIPIENT_EMAIL_MARK,
    UNSUBSCRIBE_URL_MARK,
    Issue,
    Memo,
    RenderedIssue,
    Renderer,
)
from digest.templater.context import base_context, issue_url, output_url, with_bodies
from digest.templater.env import names_in, render, render_string, template_path
from digest.templater.images import images_key
from digest.templater.keys import issue_key, settings_key
from digest.templater.labels import labels_for
from digest.templater.text import render_text
from digest.text import fingerprint

PREHEADER_CHARS = 140
# Invisible characters after the preheader keep clients from filling the preview with body text.
PREHEADER_PADDING = Markup("&#847;&zwnj;&nbsp;" * 40)
# Room for what the sender puts in place of each placeholder (a token URL, an address up to 254 bytes).
MARK_ALLOWANCE = 256
_WS = re.compile(r"\s+")


def render_subject(issue: Issue, settings: Settings) -> str:
    """settings.email.subject rendered with site, week, issue and entries; one line, never empty."""
    context = {"site": issue.site, "week": issue.week, "issue": issue, "entries": issue.all_entries, "lang": issue.lang}
    subject = _WS.sub(" ", render_string(settings.email.subject, context, origin="email.subject")).strip()
    if not subject:
        raise TemplateError(
            "the subject template gives an empty subject", "fix email.subject", source=str(settings.config_file or "")
        )
    return subject


def subject_of(issue: Issue, settings: Settings, bodies: Renderer | None) -> str:
    """render_subject of an issue whose bodies may not be rendered yet: rendered first only when the
    subject template reads the entries or the issue (the default reads the site and the week)."""
    if bodies is not None and names_in(settings.email.subject) & {"entries", "issue"}:
        issue = with_bodies(issue, bodies)
    return render_subject(issue, settings)


def make_preheader(issue: Issue) -> str:
    """The preview line inboxes show after the subject: the titles of the week."""
    titles = [_WS.sub(" ", e.title).strip() for e in issue.all_entries]
    text = " · ".join(titles) if titles else (issue.site.description or labels_for(issue.lang).no_posts)
    if len(text) > PREHEADER_CHARS:
        text = text[: PREHEADER_CHARS - 1].rstrip() + "…"
    return text


def inline_css(html: str) -> str:
    """premailer with its network and cssutils chatter off; media queries stay in a <style> block."""
    from premailer import Premailer  # 0.1 s to import: only commands that render mail pay for it

    try:
        inliner = Premailer(
            html,
            base_url=None,
            strip_important=False,  # dark-mode and mobile overrides need !important to beat inline styles
            cssutils_logging_level=logging.CRITICAL,
            disable_validation=True,
            disable_basic_attributes=["height"],  # height="auto" from `height: auto` is not valid HTML
            allow_network=False,
            allow_loading_external_files=False,
        )
        return str(inliner.transform())
    except Exception as exc:  # cssutils, cssselect and lxml each raise their own errors on CSS they cannot use
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TemplateError(f"the email CSS cannot be inlined: {first}", "check email.css", source="email.css") from exc


_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
UNSUBSCRIBE_HINT = 'put {{ unsubscribe_url }} into it as a link: <a href="{{ unsubscribe_url }}">'


def _links_out(html: str) -> bool:
    """The HTML has the unsubscribe URL as a link, outside comments (a URL in a comment is no way out)."""
    shown = _COMMENT.sub("", html)
    return re.search(r"href\s*=\s*[\"']?" + re.escape(UNSUBSCRIBE_URL_MARK), shown) is not None


def _sized(html: str) -> int:
    """The HTML's size as delivered: each placeholder counted at the most its substitute can take."""
    marks = sum(html.count(mark) for mark in (UNSUBSCRIBE_URL_MARK, RECIPIENT_EMAIL_MARK, PREFERENCES_URL_MARK))
    return len(html.encode("utf-8")) + marks * MARK_ALLOWANCE


# Words that break inside a script's lines: Korean keeps its words whole (it has spaces between them);
# Japanese and Chinese break between characters but not before closing punctuation (line-break: strict).
# word-wrap, the old name of overflow-wrap, is the one mail clients know; it breaks a long URL.
_SCRIPT_RULES = {
    "ko": "word-break: keep-all; word-wrap: break-word;",
    "ja": "word-break: normal; line-break: strict; word-wrap: break-word;",
    "zh": "word-break: normal; line-break: strict; word-wrap: break-word;",
}


def script_css(lang: str) -> str:
    """The line-breaking rules of the issue's script, for the email's <style> (inlined by premailer)."""
    rules = _SCRIPT_RULES.get(lang.lower().replace("_", "-").split("-")[0], "word-wrap: break-word;")
    return f"body, td {{ {rules} }}"  # both inherit it; td, because some clients reset table cells


def _render_html(issue: Issue, settings: Settings, extra: dict[str, Any], *, summarize: bool) -> str:
    context = base_context(issue, settings, summarize=summarize, email=True) | extra
    return inline_css(render(settings.output.templates, "email.html.j2", context, language=issue.lang))


def _first(issue: Issue, count: int) -> Issue:
    """The issue cut to its first `count` entries (its own first, then the late arrivals)."""
    own = issue.entries[:count]
    return replace(issue, entries=own, late=issue.late[: max(0, count - len(own))])


def render_email(
    issue: Issue,
    settings: Settings,
    *,
    summarize: bool | None = None,
    subject: str = "",
    extra_context: dict[str, Any] | None = None,
    memo: Memo | None = None,
) -> RenderedIssue:
    """HTML (CSS inlined) and text of one issue, with the sender's placeholders left in.

    summarize=None chooses, so the HTML as delivered stays within output.max_html_kb (Gmail clips larger
    messages): full posts; else summaries; else summaries of the first entries and a link to the archive
    for the rest (as many as fit). The result is measured, never estimated. `subject` and `extra_context`
    are for the welcome email (see pages.render_welcome). With `memo`, an email whose issue, settings and
    templates are unchanged comes from the cache (CSS inlining is most of the cost of rendering one).
    """
    if memo is None:
        return _render_email(issue, settings, summarize, subject, extra_context)
    key = fingerprint(settings_key(settings), issue_key(issue), images_key(issue), summarize, subject, extra_context)
    slot = fingerprint(issue.id, [e.id for e in issue.all_entries], summarize, subject, extra_context)
    kept = memo.get("email", slot)
    if isinstance(kept, tuple) and len(kept) == 2 and kept[0] == key and isinstance(kept[1], RenderedIssue):
        # the very entries of this run (equal but for what the key leaves out, such as the skipped files)
        return replace(kept[1], issue=_first(issue, len(kept[1].issue.all_entries)))
    rendered = _render_email(issue, settings, summarize, subject, extra_context)
    memo.put("email", slot, (key, rendered))
    return rendered


def _render_email(
    issue: Issue,
    settings: Settings,
    summarize: bool | None,
    subject: str,
    extra_context: dict[str, Any] | None,
) -> RenderedIssue:
    limit = settings.output.max_html_bytes
    subject = subject or render_subject(issue, settings)
    extra: dict[str, Any] = {
        "subject": subject,
        "preheader": make_preheader(issue),
        "preheader_padding": PREHEADER_PADDING,
        "script_css": script_css(issue.lang),
        "omitted": 0,
        "more_url": "",
    }
    extra |= extra_context or {}
    shown = issue
    if summarize is not None:
        html = _render_html(issue, settings, extra, summarize=summarize)
    else:
        html = _render_html(issue, settings, extra, summarize=False)
        summarize = _sized(html) > limit
        if summarize:
            html = _render_html(issue, settings, extra, summarize=True)
        if _sized(html) > limit:
            shown, html, extra = _fewer(issue, settings, extra, limit)
    text = render_text(shown, settings, summarize=summarize, extra=extra)
    for name, linked in (("email.html.j2", _links_out(html)), ("email.txt.j2", UNSUBSCRIBE_URL_MARK in text)):
        if not linked:
            # Delivery would send mail without a way out; an overriding template must keep the link.
            raise TemplateError(
                "the template has no unsubscribe link",
                UNSUBSCRIBE_HINT if name == "email.html.j2" else "put {{ unsubscribe_url }} into it",
                source=str(template_path(settings.output.templates, name, issue.lang)),
            )
    return RenderedIssue(
        issue=shown,
        subject=subject,
        html=html,
        text=text,
        preheader=extra["preheader"],
        archive_url=issue_url(issue, settings),
        summarized=summarize,
        html_size=_sized(html),
        omitted=len(issue.all_entries) - len(shown.all_entries),
    )


def _fewer(issue: Issue, settings: Settings, extra: dict[str, Any], limit: int) -> tuple[Issue, str, dict[str, Any]]:
    """The most entries (summarised) that fit, found by bisection over the rendered size; the rest are
    named by a link to the archive: the issue's page when only its own entries are cut, else the index."""
    total = len(issue.all_entries)

    def attempt(count: int) -> tuple[Issue, str, dict[str, Any]]:
        cut = _first(issue, count)
        cut_late = len(cut.late) < len(issue.late)
        more_url = output_url(settings, issue.language) if cut_late or not issue.entries else issue_url(issue, settings)
        more = extra | {"omitted": total - count, "more_url": more_url}
        return cut, _render_html(cut, settings, more, summarize=True), more

    best = attempt(0)
    if _sized(best[1]) > limit:
        template = template_path(settings.output.templates, "email.html.j2", issue.lang)
        raise TemplateError(
            f"an email without any entry is {_sized(best[1]) / 1000:.1f} KB, more than output.max_html_kb = "
            f"{limit // 1000}",
            "make the email template smaller (or the editor's note shorter), or raise output.max_html_kb "
            "(Gmail clips messages over 102 KB)",
            source=str(template),
        )
    low, high = 0, total - 1  # `low` fits; summaries of all `total` did not
    while low < high:
        middle = (low + high + 1) // 2
        candidate = attempt(middle)
        if _sized(candidate[1]) <= limit:
            low, best = middle, candidate
        else:
            high = middle - 1
    return best
