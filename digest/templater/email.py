"""The HTML email: rendered once per variant, CSS inlined once, summaries when Gmail would clip it."""

from __future__ import annotations

import logging
import re
from typing import Any

from markupsafe import Markup

from digest.config import Settings
from digest.errors import TemplateError
from digest.models import RECIPIENT_EMAIL_MARK, UNSUBSCRIBE_URL_MARK, Issue, RenderedIssue
from digest.templater.context import base_context, issue_url
from digest.templater.env import render, render_string
from digest.templater.labels import labels_for
from digest.templater.text import render_text

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


def _sized(html: str) -> int:
    marks = html.count(UNSUBSCRIBE_URL_MARK) + html.count(RECIPIENT_EMAIL_MARK)
    return len(html.encode("utf-8")) + marks * MARK_ALLOWANCE


def _render_html(issue: Issue, settings: Settings, extra: dict[str, Any], *, summarize: bool) -> str:
    context = base_context(issue, settings, summarize=summarize) | extra
    return inline_css(render(settings.output.templates, "email.html.j2", context, language=issue.lang))


def render_email(
    issue: Issue,
    settings: Settings,
    *,
    summarize: bool | None = None,
    subject: str = "",
    extra_context: dict[str, Any] | None = None,
) -> RenderedIssue:
    """HTML (CSS inlined) and text of one issue, with the sender's placeholders left in.

    summarize=None chooses: full bodies, or summaries when the HTML would exceed output.max_html_bytes.
    `subject` and `extra_context` are for the welcome email (see pages.render_welcome).
    """
    subject = subject or render_subject(issue, settings)
    preheader = make_preheader(issue)
    extra = {"subject": subject, "preheader": preheader, "preheader_padding": PREHEADER_PADDING}
    extra |= extra_context or {}
    if summarize is None:
        html = _render_html(issue, settings, extra, summarize=False)
        summarize = _sized(html) > settings.output.max_html_bytes
        if summarize:
            html = _render_html(issue, settings, extra, summarize=True)
    else:
        html = _render_html(issue, settings, extra, summarize=summarize)
    text = render_text(issue, settings, summarize=summarize, extra=extra)
    for name, part in (("email.html.j2", html), ("email.txt.j2", text)):
        if UNSUBSCRIBE_URL_MARK not in part:
            # Delivery would send mail without a way out; an overriding template must keep the link.
            raise TemplateError(
                "the template has no unsubscribe link", "put {{ unsubscribe_url }} into it", source=name
            )
    return RenderedIssue(
        issue=issue,
        subject=subject,
        html=html,
        text=text,
        preheader=preheader,
        archive_url=issue_url(issue, settings),
        summarized=summarize,
        html_size=len(html.encode("utf-8")),
    )
