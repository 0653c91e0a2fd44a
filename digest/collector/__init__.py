"""Collector: Markdown posts on disk -> entries of one week (stage 1).

``collect`` reads the site's source folders; ``week_of``, ``parse_week`` and ``window`` pick the week.
"""

from .entries import collect
from .week import parse_week, week_of, window

__all__ = ["collect", "parse_week", "week_of", "window"]
