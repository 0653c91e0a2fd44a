"""Which entries each planned issue carried, per language (tables `issues` and `issue_entries`), so that no
entry is mailed twice and a late one is mailed in the next issue (see digest.issues).

An issue is recorded once, when its delivery is first planned, before any message of it is sent; after
that its entries are fixed: a rerun (after a crash, or a second `digest send`) sends the same issue, and an
entry that shows up meanwhile waits for the next one.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from datetime import datetime

import sqlalchemy as sa

from digest.issues import entry_keys, mailed_as
from digest.models import Carried, Entry, Issue
from digest.sender.lite import FEED_ID_URL, carried_from_rows, later_dates
from digest.sender.store import Store, feed_dates, issue_entries, issues, meta

i = issues.c
e = issue_entries.c


def read_carried(store: Store, site_language: str = "") -> dict[str, Carried]:
    """{language: what its planned issues carried}, for every language planned in this ledger. The site's
    own language is "" (its issues have no prefix); `site_language` (the site's `language` now) brings the
    issues planned under its own key, before the site changed its language, to "": so a site that turns
    from English to Korean knows what the Korean issues carried (or mails its Korean back catalogue
    again, as late arrivals)."""
    with store.connect() as conn:
        return carried_from_rows(
            conn.execute(sa.select(i.language, i.start_at).order_by(i.planned_at.desc(), i.start_at.desc())),
            conn.execute(sa.select(i.language, i.issue_id, i.start_at, i.end_at, i.entries, i.late)),
            conn.execute(sa.select(e.language, e.entry_key, e.issue_id, e.entry_id)),
            site_language,
        )


def record_issue(store: Store, issue: Issue, now_at: datetime) -> frozenset[str]:
    """Record `issue` and the entries it carries, unless it was recorded before; return the keys of the
    entries it carries (as first recorded). Idempotent; two processes planning at once serialise here
    (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory lock per language)."""
    with store.begin() as conn:
        if store.is_postgres:
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": zlib.crc32(issue.language.encode())})
        known = conn.execute(sa.select(i.issue_id).where(i.issue_id == issue.id)).first()
        if known is None:
            conn.execute(
                issues.insert().values(
                    issue_id=issue.id,
                    language=issue.language,
                    start_at=issue.week.start_at,
                    end_at=issue.week.end_at,
                    planned_at=now_at,
                    entries=len(issue.entries),
                    late=len(issue.late),
                )
            )
            _insert_entries(store, conn, issue.language, issue.id, issue.all_entries)
        rows = conn.execute(sa.select(e.entry_key).where(e.issue_id == issue.id, e.language == issue.language))
        return frozenset(rows.scalars())


def _insert_entries(store: Store, conn: sa.Connection, language: str, issue_id: str, entries: Sequence[Entry]) -> None:
    rows = [
        {"language": language, "entry_key": key, "issue_id": issue_id, "entry_id": entry.id}
        for entry in entries
        for key in sorted(entry_keys(entry))
    ]
    if rows:
        # a key another issue took meanwhile stays with it: that entry is not carried twice
        conn.execute(store.insert(issue_entries).on_conflict_do_nothing(), rows)


def remember_names(store: Store, carried: Mapping[str, Carried], pools: Mapping[str, Sequence[Entry]]) -> int:
    """Add to each earlier issue the names its entries are known by now, and return how many were added.
    An entry is matched to the issue that mailed it by any one of its names (issues.entry_keys); a title
    fixed one week and the file renamed the next would leave none of the names first recorded, and the post
    would go out again as a late arrival. Run at each send, so each edit is matched through the names the
    entry had after the one before."""
    rows = []
    for language, pool in pools.items():
        known = carried.get(language)
        if known is None or not known.entries:
            continue
        by_id = {entry.id: entry for entry in pool}
        for entry_id, issue_id in mailed_as(pool, known).items():
            for key in sorted(entry_keys(by_id[entry_id])):
                if key not in known.entries:
                    rows.append({"language": language, "entry_key": key, "issue_id": issue_id, "entry_id": entry_id})
    if rows:
        with store.begin() as conn:
            # a name another issue holds stays with it (two entries cannot both be one issue's)
            conn.execute(store.insert(issue_entries).on_conflict_do_nothing(), rows)
    return len(rows)


def read_feed_dates(store: Store) -> dict[str, datetime]:
    """{issue id: the date its feed entry was last published with}: the floor of the next one."""
    with store.connect() as conn:
        return {
            issue_id: at for issue_id, at in conn.execute(sa.select(feed_dates.c.issue_id, feed_dates.c.updated_at))
        }


def read_feed_id_url(store: Store) -> str:
    """The output URL of the feeds' first publish ("" before one)."""
    with store.connect() as conn:
        found = conn.execute(sa.select(meta.c.value).where(meta.c.key == FEED_ID_URL)).scalar()
    return str(found or "")


def record_feed_dates(store: Store, dated: Mapping[str, datetime], id_url: str = "") -> int:
    """Keep, for each issue, the later of the date it was published with now and the one kept; how many
    changed. With `id_url`, keep it as the URL the ids are made from, unless one is kept already. One
    transaction: two publishes at once each keep the later date, and the first URL."""
    with store.begin() as conn:
        if id_url:
            conn.execute(store.insert(meta).on_conflict_do_nothing(), [{"key": FEED_ID_URL, "value": id_url}])
        kept = {
            issue_id: at
            for issue_id, at in conn.execute(
                sa.select(feed_dates.c.issue_id, feed_dates.c.updated_at).where(feed_dates.c.issue_id.in_(list(dated)))
            )
        }
        changed = later_dates(dated, kept)
        for issue_id, at in changed.items():
            if issue_id in kept:
                conn.execute(sa.update(feed_dates).where(feed_dates.c.issue_id == issue_id).values(updated_at=at))
            else:
                conn.execute(
                    store.insert(feed_dates).on_conflict_do_nothing(), [{"issue_id": issue_id, "updated_at": at}]
                )
    return len(changed)


def last_planned(store: Store) -> datetime | None:
    """When the newest issue of this ledger was planned (by the clock of the run that planned it)."""
    with store.connect() as conn:
        found: datetime | None = conn.execute(sa.select(sa.func.max(i.planned_at))).scalar()  # UtcDateTime: aware
    return found


class StoreView:
    """The Store as publish and preview use it: the same methods as lite.Lite, through SQLAlchemy."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def feed_id_url(self) -> str:
        return read_feed_id_url(self.store)

    def last_planned(self) -> datetime | None:
        return last_planned(self.store)

    def carried(self, site_language: str = "") -> dict[str, Carried]:
        return read_carried(self.store, site_language)

    def feed_dates(self) -> dict[str, datetime]:
        return read_feed_dates(self.store)

    def record_feed_dates(self, dated: Mapping[str, datetime], id_url: str = "") -> int:
        return record_feed_dates(self.store, dated, id_url)

    def notes(self) -> dict[str, str]:
        from .reviews import Reviews

        return Reviews(self.store).notes()

    def close(self) -> None:
        self.store.close()
