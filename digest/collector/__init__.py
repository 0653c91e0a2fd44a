"""Collector: Markdown posts on disk -> entries (stage 1). Weeks are picked with digest.weeks."""

from .entries import collect
from .topics import topics

__all__ = ["collect", "topics"]
