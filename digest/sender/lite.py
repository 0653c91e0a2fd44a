"""What a publish and a preview read from the state database, and the one thing a publish writes to it, through
Python's sqlite3 when the state database is the state folder's SQLite file: without SQLAlchemy.

Why a second way into the same tables: importing SQLAlchemy 2.1 costs 0.25 to 0.35 s here (`python -c
"import sqlalchemy"` 0.28-0.37 s against 0.02-0.04 s for `pass`, 2 CPUs), as much as the whole rest of a
weekly `digest publish` rerun of bench_publish's site (0.26 s, and 0.51 s through SQLAlchemy, median of 7
in turns). A publish reads five small things (the feeds' first URL, when the newest issue was planned, what
each planned issue carried, the feeds' dates, the editor's notes) and keeps the feeds' dates: a few plain
statements.

Only a database digest's Store made is read here: the schema version this digest writes, in WAL mode, with
the tables used here. Anything else (no file, an older or newer schema, a missing table, a file that is not
a database) gives None from `open_file`, and the caller goes through the Store, which creates, migrates or
reports it as always. Dates are the text SQLAlchemy's SQLite DateTime writes (naive UTC,
`2024-06-10 00:00:00.000000`). Tests run each function here and its SQLAlchemy counterpart on the same
databases and compare.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from digest.errors import LedgerError
from digest.models import Carried
from digest.text import language_key

# The state database's schema (store.py migrates older ones). 2: the tables an older digest would not read
# (feed_dates, reviews): a version that does not know them refuses the file rather than ignore them (a held
# week sent, feed dates moved back).
SCHEMA_VERSION = 2
FEED_ID_URL = "feed_id_url"  # in the meta table: the output URL the feeds' entry ids were first made from
_TABLES = frozenset({"meta", "issues", "issue_entries", "feed_dates", "reviews"})
_BUSY_MS = 60_000  # as the Store: a send holding the write lock is waited for, not failed


def sqlite_hint(error: str) -> str:
    """What to do about a SQLite state database failing with `error` (its first line) when no rerun can
    mend it: a damaged file, one this user cannot write; "" for anything else (busy, full, gone)."""
    if "malformed" in error or "not a database" in error:
        return "the file is damaged: restore it from a backup (a rerun cannot mend it)"
    if "readonly" in error or "read-only" in error:
        return "this user cannot write the state folder or its database file: check their owner and permissions"
    return ""


def as_text(at: datetime) -> str:
    """A date as SQLAlchemy's SQLite DateTime stores it (UtcDateTime: naive UTC)."""
    if at.tzinfo is None:
        raise ValueError("the ledger only stores timezone-aware datetimes")
    return at.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def carried_from_rows(
    firsts: Iterable[tuple[str, datetime]],
    planned_issues: Iterable[tuple[str, str, datetime, datetime, int, int]],
    carried_entries: Iterable[tuple[str, str, str, str]],
    site_language: str = "",
) -> dict[str, Carried]:
    """{language: what its planned issues carried}, from the ledger's rows: `firsts` (language, start) in
    the order of planning, newest first; `planned_issues` (language, issue id, start, end, entries, late);
    `carried_entries` (language, entry key, issue id, entry id). See sender.read_carried."""
    first: dict[str, datetime] = {}
    for language, start_at in firsts:
        first[language] = start_at  # the last one written is the earliest planned
    planned: dict[str, dict[str, set[str]]] = {}
    windows: dict[str, dict[str, tuple[datetime, datetime]]] = {}
    sizes: dict[str, dict[str, int]] = {}
    for language, issue_id, start_at, end_at, dated_in, late in planned_issues:
        planned.setdefault(language, {})[issue_id] = set()
        windows.setdefault(language, {})[issue_id] = (start_at, end_at)
        sizes.setdefault(language, {})[issue_id] = dated_in + late
    entries: dict[str, dict[str, str]] = {}
    items: dict[str, dict[str, str]] = {}
    for language, key, issue_id, entry_id in carried_entries:
        entries.setdefault(language, {})[key] = issue_id
        planned.setdefault(language, {}).setdefault(issue_id, set()).add(key)
        if "#" in entry_id:  # a running log's item: its id names its date and title (issues.mailed_as)
            items.setdefault(language, {})[entry_id] = issue_id
    found = {
        language: Carried(
            entries=entries.get(language, {}),
            planned={k: frozenset(v) for k, v in planned.get(language, {}).items()},
            first_start_at=first.get(language),
            windows=windows.get(language, {}),
            sizes=sizes.get(language, {}),
            items=items.get(language, {}),
        )
        for language in first.keys() | entries.keys()
    }
    own = language_key(site_language)
    if own and own in found:
        # the issues planned under the site's own language key, before the site changed its language, are
        # the pool's now (a site that turns from English to Korean knows what the Korean issues carried)
        before, earlier = found.get("", Carried()), found.pop(own)
        found[""] = Carried(
            entries={**earlier.entries, **before.entries},
            planned={**earlier.planned, **before.planned},
            # the bound of the language the pool is in now: its own first issue
            first_start_at=earlier.first_start_at or before.first_start_at,
            windows={**earlier.windows, **before.windows},
            sizes={**earlier.sizes, **before.sizes},
            items={**earlier.items, **before.items},
        )
    return found


def later_dates(dated: Mapping[str, datetime], kept: Mapping[str, datetime]) -> dict[str, datetime]:
    """Of `dated`, the issues whose date is new or later than the one `kept`: what a publish keeps."""
    return {issue_id: at for issue_id, at in sorted(dated.items()) if issue_id not in kept or at > kept[issue_id]}


class LedgerView(Protocol):
    """The ledger as a publish and a preview use it: Lite here, or the Store through carried.StoreView."""

    def feed_id_url(self) -> str: ...
    def last_planned(self) -> datetime | None: ...
    def carried(self, site_language: str = "") -> dict[str, Carried]: ...
    def feed_dates(self) -> dict[str, datetime]: ...
    def record_feed_dates(self, dated: Mapping[str, datetime], id_url: str = "") -> int: ...
    def notes(self) -> dict[str, str]: ...
    def close(self) -> None: ...


class Lite:
    """The state folder's SQLite database, opened with sqlite3 (see the module's text)."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self.conn = conn

    def _failed(self, exc: sqlite3.Error) -> LedgerError:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        hint = sqlite_hint(first)
        return LedgerError(
            f"the state database {self.path} failed: {first}",
            hint or "check that its disk has room; a rerun resumes where this one stopped",
            transient=not hint,
        )

    def _rows(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        try:
            return self.conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise self._failed(exc) from exc

    def feed_id_url(self) -> str:
        rows = self._rows("SELECT value FROM meta WHERE key = ?", (FEED_ID_URL,))
        return str(rows[0][0] or "") if rows else ""

    def last_planned(self) -> datetime | None:
        rows = self._rows("SELECT max(planned_at) FROM issues")
        return _at(str(rows[0][0])) if rows and rows[0][0] is not None else None

    def carried(self, site_language: str = "") -> dict[str, Carried]:
        firsts = self._rows("SELECT language, start_at FROM issues ORDER BY planned_at DESC, start_at DESC")
        planned = self._rows("SELECT language, issue_id, start_at, end_at, entries, late FROM issues")
        keys = self._rows("SELECT language, entry_key, issue_id, entry_id FROM issue_entries")
        return carried_from_rows(
            ((str(lang), _at(str(start))) for lang, start in firsts),
            (
                (str(lang), str(issue), _at(str(start)), _at(str(end)), int(str(own)), int(str(late)))
                for lang, issue, start, end, own, late in planned
            ),
            ((str(lang), str(key), str(issue), str(entry)) for lang, key, issue, entry in keys),
            site_language,
        )

    def feed_dates(self) -> dict[str, datetime]:
        return {str(issue): _at(str(at)) for issue, at in self._rows("SELECT issue_id, updated_at FROM feed_dates")}

    def notes(self) -> dict[str, str]:
        """{week: its editor's note} (the reviews table), of every week that has one."""
        return {str(week): str(note) for week, note in self._rows("SELECT week, note FROM reviews WHERE note <> ''")}

    def record_feed_dates(self, dated: Mapping[str, datetime], id_url: str = "") -> int:
        """As carried.record_feed_dates: one transaction, which takes the write lock first (BEGIN IMMEDIATE,
        as the Store's transactions)."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                if id_url:
                    self.conn.execute(
                        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT DO NOTHING", (FEED_ID_URL, id_url)
                    )
                rows = self.conn.execute("SELECT issue_id, updated_at FROM feed_dates")
                kept = {str(issue_id): _at(str(at)) for issue_id, at in rows}
                changed = later_dates(dated, kept)
                self.conn.executemany(
                    "INSERT INTO feed_dates (issue_id, updated_at) VALUES (?, ?) "
                    "ON CONFLICT (issue_id) DO UPDATE SET updated_at = excluded.updated_at",
                    [(issue_id, as_text(at)) for issue_id, at in changed.items()],
                )
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise self._failed(exc) from exc
        return len(changed)

    def close(self) -> None:
        self.conn.close()


def open_file(path: Path) -> Lite | None:
    """The SQLite state database at `path`, when it is one this digest's Store made and needs nothing done
    to; else None (the Store then opens it, creates or migrates it, or says what is wrong)."""
    try:
        # mode=rw: never creates the file (the Store creates it, with its tables)
        conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=rw", uri=True, timeout=_BUSY_MS / 1000)
    except (sqlite3.Error, ValueError):
        return None
    try:
        conn.isolation_level = None  # our own BEGIN IMMEDIATE, as the Store
        conn.execute(f"PRAGMA busy_timeout={_BUSY_MS}")
        wal = str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal"
        tables = {str(row[0]) for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not wal or not tables >= _TABLES:
            conn.close()
            return None
        version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if version is None or version[0] != str(SCHEMA_VERSION):
            conn.close()
            return None
        conn.execute("PRAGMA synchronous=NORMAL")  # as the Store: WAL + NORMAL is durable against a kill
    except sqlite3.Error:
        conn.close()
        return None
    return Lite(path, conn)
