"""Collector: Markdown posts on disk -> entries (stage 1). Weeks are picked with digest.weeks."""

from typing import TYPE_CHECKING, Any

from .entries import collect, render_entries
from .topics import languages, topics

if TYPE_CHECKING:
    from .markdown import note_html

__all__ = ["collect", "languages", "note_html", "render_entries", "topics"]


def __getattr__(name: str) -> Any:
    # markdown-it is imported by what renders, not by a run that finds its entries in the cache
    if name == "note_html":
        from .markdown import note_html

        return note_html
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
