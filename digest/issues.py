"""Which entries go into which issue: per language, the entries dated in the issue's week, the late
arrivals, and the history of weekly issues that the feeds and the archive list. Pure functions over
entries and what the ledger says about earlier issues (models.Carried); nothing here reads a file.

Late arrivals: an entry that became visible after the issue of its week was planned (written late and
backdated, a draft made public, a site deployed after the send) is carried by the next issue planned in its
language, in a section of its own. The bound that keeps a first run from mailing the whole back catalogue:
only entries dated on or after the start of the first issue planned in that language are late arrivals.
An entry carried by one issue never appears in another issue of the same language, and an issue that was
planned once keeps exactly the entries it carried (a rerun after a crash sends the same issue).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from difflib import SequenceMatcher
from urllib.parse import urlsplit

from digest.models import Carried, Entry, Site, Week
from digest.text import issue_language
from digest.weeks import week_of


def _hashed(kind: str, value: str) -> str:
    return hashlib.sha256(f"{kind}\x00{value}".encode()).hexdigest()[:40]


def entry_keys(entry: Entry) -> frozenset[str]:
    """Every name an entry is known by, so an edited post is still the post that was mailed: its id, its
    file (and item, for a running log), and its date with its title (a renamed file)."""
    fragment = urlsplit(entry.url).fragment
    return frozenset(
        (
            _hashed("id", entry.id),
            _hashed("source", f"{entry.source}#{fragment}"),
            _hashed("dated", f"{entry.published_at.timestamp():.0f}\x00{entry.title}"),
        )
    )


def by_language(entries: Iterable[Entry], site: Site) -> dict[str, tuple[Entry, ...]]:
    """{language key ("" = the site's): its entries, in the order given}."""
    found: dict[str, list[Entry]] = {}
    for entry in entries:
        found.setdefault(issue_language(entry.language, site.language), []).append(entry)
    return {language: tuple(group) for language, group in found.items()}


_SIMILAR = 0.6  # how alike an item's title must stay to be the item mailed before (difflib's ratio)


def mailed_as(pool: Iterable[Entry], carried: Carried) -> dict[str, str]:
    """{entry id: the issue that mailed it} for the entries of `pool` an issue carried: found by any of
    their keys; or a running log's item whose title was edited since (a typo fixed), which changes every
    key: an item mailed before from the same log, dated the same day, that no entry of the pool is any
    more, with a title still alike (the one most alike; each mailed item stands for one entry)."""
    found: dict[str, str] = {}
    unmatched: list[Entry] = []
    mailed = carried.entries
    for entry in pool:
        issue_id = next((i for k in entry_keys(entry) if (i := mailed.get(k)) is not None), None)
        if issue_id is not None:
            found[entry.id] = issue_id
        elif "#" in entry.id:
            unmatched.append(entry)
    if unmatched and carried.items:
        present = {e.id for e in pool}
        gone: dict[str, list[str]] = {}  # "source and day" -> the mailed item ids no entry is now
        for item_id in carried.items:
            if item_id not in present:
                gone.setdefault(item_id.partition("#")[0], []).append(item_id)
        for entry in unmatched:
            candidates = gone.get(entry.id.partition("#")[0], [])
            title = _item_title(entry.id)
            scored = [(SequenceMatcher(None, _item_title(c), title).ratio(), c) for c in candidates]
            best = max(scored, default=(0.0, ""))
            if best[0] >= _SIMILAR:
                found[entry.id] = carried.items[best[1]]
                candidates.remove(best[1])
    return found


def _item_title(item_id: str) -> str:
    """The title part of an item's anchor ("2024-01-10-python-notes" -> "python-notes")."""
    return re.sub(r"^\d{4}(?:-\d{2}){0,2}-?", "", item_id.partition("#")[2])


def select(
    pool: Sequence[Entry], week: Week, issue_id: str, carried: Carried
) -> tuple[tuple[Entry, ...], tuple[Entry, ...]]:
    """(the entries dated in `week`, the late arrivals) of issue `issue_id`, from `pool` (every entry of
    its language, newest first)."""
    frozen = carried.planned.get(issue_id)
    mailed = mailed_as(pool, carried) if carried.entries else {}
    if frozen is not None:
        # what it carried, as first planned; a late arrival is dated before the week (a post moved to a later
        # date since is still one of the week's own)
        chosen = [e for e in pool if entry_keys(e) & frozen or mailed.get(e.id) == issue_id]
        start = week.start_at.timestamp()
        return tuple(e for e in chosen if e.published_at.timestamp() >= start), tuple(
            e for e in chosen if e.published_at.timestamp() < start
        )
    fresh = [e for e in pool if e.id not in mailed]
    own = tuple(e for e in fresh if week.contains(e.published_at))
    bound = carried.first_start_at
    if bound is None:  # the first issue of this language: nothing before it is news to anyone
        return own, ()
    low, high = bound.timestamp(), week.start_at.timestamp()
    return own, tuple(e for e in fresh if low <= e.published_at.timestamp() < high)


# The label of a weekly issue (an ISO week, or the start date of a week that starts on another day); a
# --since/--until window's is "start--end".
WEEKLY_LABEL = re.compile(r"\d{4}-W\d{2}|\d{4}-\d{2}-\d{2}")


def carrier_weeks(carried: Carried, site: Site) -> dict[str, Week]:
    """{issue id: its week} for the weekly issues the ledger planned, each with the window it was planned
    with: a week of the site's timezone and `week_start` of the time, which may not be today's. An issue
    mailed before the site changed its timezone (or its week_start) keeps its posts, its page and its feed
    entry as mailed. A window of `--since`/`--until` is never one."""
    found = {}
    tz = site.tz
    for issue_id, (start_at, end_at) in carried.windows.items():
        week = week_of(start_at, site)
        if week.start_at == start_at and week.end_at == end_at:
            found[issue_id] = week
            continue
        label = issue_id.rpartition("/")[2]
        hours = (end_at - start_at).total_seconds() / 3600
        if WEEKLY_LABEL.fullmatch(label) and 166 <= hours <= 170:  # a week of another timezone or start
            found[issue_id] = Week(start_at.astimezone(tz), end_at.astimezone(tz), label)
    return found


def history(
    pool: Iterable[Entry], site: Site, horizon_at: datetime, count: int, carried: Carried | None = None
) -> list[tuple[Week, tuple[Entry, ...]]]:
    """The last `count` weeks with entries that ended by `horizon_at`, newest first, each with its entries
    (newest first). Weeks without entries have no issue: a quiet blog keeps its last issues.

    An entry a weekly issue mailed (`carried`, from the ledger) is listed under that issue's week, as it was
    mailed: a late arrival with the issue that carried it, a post whose date was moved since with the issue
    it went out in. Any other entry is under the week it is dated in, unless that week's issue went out
    without it (sent early, before the post): then it waits, like its mail, for the next issue, and an
    issue's page and feed entry only ever list what it mailed."""
    by_week: dict[str, tuple[Week, list[Entry]]] = {}
    limit = horizon_at.timestamp()
    carriers = carrier_weeks(carried, site) if carried is not None and carried.entries else {}
    # the weeks whose issue the ledger planned (not the one this run is about to plan: `carried` may hold
    # its late entries already, see pipeline.build)
    planned = {week.label for issue_id, week in carriers.items() if carried is not None and issue_id in carried.planned}
    pool = list(pool)
    mailed = mailed_as(pool, carried) if carried is not None and carriers else {}
    for entry in pool:
        week = None
        if carriers:
            issue_id = mailed.get(entry.id)
            week = carriers.get(issue_id) if issue_id is not None else None
        if week is not None:
            if week.start_at.timestamp() < limit:
                by_week.setdefault(week.label, (week, []))[1].append(entry)
        elif entry.published_at.timestamp() < limit:
            week = week_of(entry.published_at, site)
            if week.label not in planned:
                by_week.setdefault(week.label, (week, []))[1].append(entry)
    ordered = sorted(by_week.values(), key=lambda item: item[0].start_at, reverse=True)[:count]
    return [(week, tuple(entries)) for week, entries in ordered]


def weeks_missing(pools: Mapping[str, Sequence[Entry]], site: Site, horizon_at: datetime, count: int) -> int:
    """How many more weeks with entries the language furthest from `count` needs before `horizon_at` (0: the
    feeds have what they need); `count` while nothing was found at all. Languages found with no entry are
    not waited for."""
    if not any(pools.values()):
        return count
    limit = horizon_at.timestamp()
    missing = 0
    for pool in pools.values():
        if pool:
            labels = {week_of(e.published_at, site).label for e in pool if e.published_at.timestamp() < limit}
            missing = max(missing, count - len(labels))
    return missing
