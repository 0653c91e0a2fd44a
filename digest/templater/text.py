"""The plain-text part: readable on its own, links as numbered references listed at the end."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup

from digest.config import Settings
from digest.models import Issue
from digest.templater.context import base_context
from digest.templater.env import render


def render_text(issue: Issue, settings: Settings, *, summarize: bool, extra: dict[str, Any] | None = None) -> str:
    # html.parser only for a text part that is rendered, not for one that comes from the cache
    from digest.templater.htmltext import References, html_to_text

    refs = References()

    def totext(fragment: str | Markup) -> str:
        return html_to_text(str(fragment), refs)

    context = base_context(issue, settings, summarize=summarize, email=True) | {"refs": refs, "totext": totext}
    context |= extra or {}
    return render(settings.output.templates, "email.txt.j2", context, language=issue.lang)
