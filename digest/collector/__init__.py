"""Collector: Markdown posts on disk -> entries (stage 1). Weeks are picked with digest.weeks."""

from .entries import collect

__all__ = ["collect"]
