"""The site's topics: every tag and category its posts use (the preference page offers them)."""

from __future__ import annotations

from datetime import datetime

from digest.collector.meta import terms
from digest.collector.reader import scan
from digest.models import Site


def topics(site: Site, now_at: datetime) -> tuple[str, ...]:
    """Tags and categories of every published post, most used first, each spelled as first written."""
    counts: dict[str, int] = {}
    shown: dict[str, str] = {}
    for post in scan(site, now_at).posts:
        for label in dict.fromkeys(terms(post.meta, "categories", "category", "tags", "tag")):
            key = label.casefold()
            shown.setdefault(key, label)
            counts[key] = counts.get(key, 0) + 1
    return tuple(shown[k] for k in sorted(counts, key=lambda k: (-counts[k], k)))
