"""Collector: Markdown posts on disk -> entries (stage 1). Weeks are picked with digest.weeks."""

from .entries import collect, render_entries
from .markdown import note_html
from .topics import topics

__all__ = ["collect", "note_html", "render_entries", "topics"]
