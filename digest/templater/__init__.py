"""Stage 2: an Issue becomes the HTML email, its text part, the feeds and the static archive."""

from digest.templater.archive import render_archive
from digest.templater.context import issue_url
from digest.templater.email import render_email, render_subject
from digest.templater.env import check_templates
from digest.templater.feeds import FEEDS, FeedKind, feed_links
from digest.templater.labels import Labels, labels_for
from digest.templater.lint import lint
from digest.templater.pages import Notice, languages, render_notice, render_page, render_welcome, texts
from digest.templater.syndicate import render_feeds

__all__ = [
    "FEEDS",
    "check_templates",
    "FeedKind",
    "Notice",
    "languages",
    "render_notice",
    "render_page",
    "render_welcome",
    "texts",
    "feed_links",
    "issue_url",
    "Labels",
    "labels_for",
    "lint",
    "render_archive",
    "render_email",
    "render_feeds",
    "render_subject",
]
