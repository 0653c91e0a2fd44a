"""The site's topics and languages: every tag and category its posts use, and every language they are
written in (the preference page offers them)."""

from __future__ import annotations

from datetime import datetime

from digest.collector.meta import terms
from digest.collector.reader import scan
from digest.models import Site
from digest.text import language_tag


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


def languages(site: Site, now_at: datetime) -> tuple[str, ...]:
    """The languages the site is written in: its own, those its config lists and those its published posts
    name in their front matter (`lang`, `language`), as normalised tags, in that order."""
    found = [language_tag(site.language), *site.generator.languages]
    for post in scan(site, now_at).posts:
        for key in ("lang", "language"):
            found.append(language_tag(post.meta.get(key)))
    return tuple(tag for tag in dict.fromkeys(found) if tag)
