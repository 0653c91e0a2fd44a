"""The state database: its tables, the engine (SQLite by default, PostgreSQL for large lists and several
senders), the schema version and the steps that migrate an older database.

A new table is one `sa.Table` here (created on open); a change to an existing table is one step in
MIGRATIONS, applied in order under a lock when an older database is opened.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from digest.errors import LedgerError
from digest.models import State

from .lite import SCHEMA_VERSION as SCHEMA_VERSION  # (kept there: a publish reads it without SQLAlchemy)
from .lite import sqlite_hint


def _tables_added(conn: Connection) -> None:
    """2: feed_dates and reviews, made by create_all before the migration runs; the new number is what
    matters, so that an older digest, which ignores them, refuses the file."""


# version -> the step that brings a database of version-1 to it
MIGRATIONS: dict[int, Callable[[Connection], None]] = {2: _tables_added}


class UtcDateTime(sa.TypeDecorator[datetime]):
    """Stored as naive UTC on every dialect (SQLite has no time zones); read back as aware UTC."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("the ledger only stores timezone-aware datetimes")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class StateType(sa.TypeDecorator[State]):
    """A ledger state stored as its text; drivers never see the enum (psycopg would write its name)."""

    impl = sa.String(10)
    cache_ok = True

    def process_bind_param(self, value: State | str | None, dialect: sa.Dialect) -> str | None:
        return None if value is None else State(value).value

    def process_result_value(self, value: str | None, dialect: sa.Dialect) -> State | None:
        return None if value is None else State(value)


metadata = sa.MetaData()
deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("issue_id", sa.String(64), primary_key=True),
    sa.Column("recipient", sa.String(320), primary_key=True),
    sa.Column("state", StateType(), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("message_id", sa.String(255), nullable=False, default=""),
    sa.Column("reply", sa.Text, nullable=False, default=""),
    sa.Column("worker", sa.String(128), nullable=False, default=""),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("next_attempt_at", UtcDateTime, nullable=True),
    # recipient last: claims read one state of one issue in recipient order straight off the index
    sa.Index("ix_deliveries_state", "issue_id", "state", "recipient"),
)
# The reason kept for an address whose reader moved to another one (Roster.change_address), after the
# status: "unsubscribed: moved to new@example.com". The ledger follows it back, so that a week the old
# address had is not sent again to the new one.
MOVED_TO = "moved to "
suppressions = sa.Table(
    "suppressions",
    metadata,
    sa.Column("email", sa.String(320), primary_key=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("reason", sa.Text, nullable=False, default=""),
)
# One row per weekly cycle the service started: the week, the scheduled time it belongs to, whether it is
# finished, and when to try again (deferred mail, a server or database that was down).
cycles = sa.Table(
    "cycles",
    metadata,
    sa.Column("week", sa.String(64), primary_key=True),
    sa.Column("fire_at", UtcDateTime, nullable=False),
    sa.Column("state", sa.String(10), nullable=False),  # open | done | missed
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_try_at", UtcDateTime, nullable=True),
    sa.Column("note", sa.Text, nullable=False, default=""),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)
# One row per issue planned (the first time its delivery was planned), per language: the first one's start
# bounds the late arrivals (digest.issues), and a planned issue keeps the entries it carried.
issues = sa.Table(
    "issues",
    metadata,
    sa.Column("issue_id", sa.String(64), primary_key=True),
    sa.Column("language", sa.String(32), nullable=False),
    sa.Column("start_at", UtcDateTime, nullable=False),
    sa.Column("end_at", UtcDateTime, nullable=False),
    sa.Column("planned_at", UtcDateTime, nullable=False),
    sa.Column("entries", sa.Integer, nullable=False, default=0),  # dated in its window
    sa.Column("late", sa.Integer, nullable=False, default=0),  # late arrivals
    sa.Index("ix_issues_language", "language", "planned_at"),
)
# The date each issue's feed entry was last published with: the next publish never dates it earlier (a post
# deleted from the issue, a Hugo post past its expiryDate), so a feed never goes backwards.
feed_dates = sa.Table(
    "feed_dates",
    metadata,
    sa.Column("issue_id", sa.String(64), primary_key=True),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)
# Every entry an issue carried, under each of its keys (digest.issues.entry_keys): the key is unique per
# language, so an entry is mailed in one issue of a language at most.
issue_entries = sa.Table(
    "issue_entries",
    metadata,
    sa.Column("language", sa.String(32), primary_key=True),
    sa.Column("entry_key", sa.String(40), primary_key=True),
    sa.Column("issue_id", sa.String(64), nullable=False),
    sa.Column("entry_id", sa.Text, nullable=False),  # for people reading the database
    sa.Index("ix_issue_entries_issue", "issue_id"),
)
# The owner's review of a week's issue before the service sends it (schedule.review).
reviews = sa.Table(
    "reviews",
    metadata,
    sa.Column("week", sa.String(64), primary_key=True),
    sa.Column("state", sa.String(10), nullable=False),  # pending | approved | held
    sa.Column("requested_at", UtcDateTime, nullable=True),
    sa.Column("decided_at", UtcDateTime, nullable=True),
    sa.Column("decided_by", sa.String(32), nullable=False, default=""),
    sa.Column("note", sa.Text, nullable=False, default=""),
)
meta = sa.Table(
    "meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(255), nullable=False),
)


# -- readers: the subscriber store (roster.py), its history, and the bookkeeping of the public side ----
subscribers = sa.Table(
    "subscribers",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("email", sa.String(320), nullable=False, unique=True),  # the address key (lower case)
    sa.Column("address", sa.String(320), nullable=False),  # as written
    sa.Column("name", sa.Text, nullable=False, default=""),
    sa.Column("language", sa.String(35), nullable=False, default=""),
    sa.Column("tags", sa.Text, nullable=False, default=""),  # one per line
    sa.Column("format", sa.String(8), nullable=False, default="html"),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("origin", sa.String(16), nullable=False, default=""),  # file | form | import | cli
    sa.Column("in_file", sa.Boolean, nullable=False, default=False),
    sa.Column("file_sig", sa.String(32), nullable=False, default=""),  # the file's entry when last synced
    sa.Column("paused_until", UtcDateTime, nullable=True),
    sa.Column("consent_at", UtcDateTime, nullable=True),
    sa.Column("consent_method", sa.String(16), nullable=False, default=""),
    sa.Column("consent_source", sa.Text, nullable=False, default=""),
    sa.Column("consent_ip", sa.String(64), nullable=False, default=""),  # only with subscribe.store_ip
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("confirm_requested_at", UtcDateTime, nullable=True),  # a confirmation is awaited since
    sa.Column("confirm_mail_at", UtcDateTime, nullable=True),  # the last confirmation/notice mail
    sa.Column("pending_email", sa.String(320), nullable=False, default=""),  # a change of address to confirm
    sa.Column("tag", sa.String(16), nullable=False, unique=True),  # the VERP bounce tag
    sa.Column("hard_bounces", sa.Integer, nullable=False, default=0),
    sa.Column("complaints", sa.Integer, nullable=False, default=0),
    sa.Column("last_bounce_at", UtcDateTime, nullable=True),
    sa.Index("ix_subscribers_status", "status", "email"),
)
subscriber_events = sa.Table(
    "subscriber_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("kind", sa.String(24), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, default=""),
    sa.Column("reason", sa.Text, nullable=False, default=""),
    sa.Index("ix_subscriber_events_email", "email", "kind", "at"),
)
# Fixed-window request counters of the public side (per client, hashed): survive a restart and are shared
# by several server processes.
request_counts = sa.Table(
    "request_counts",
    metadata,
    sa.Column("key", sa.String(128), primary_key=True),
    sa.Column("window_at", UtcDateTime, nullable=False),
    sa.Column("count", sa.Integer, nullable=False, default=0),
)
# Messages of the bounce mailbox already applied (a hash of their bytes): reading the mailbox again after
# a crash between applying a message and marking it read counts nothing twice.
bounce_messages = sa.Table(
    "bounce_messages",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("at", UtcDateTime, nullable=False),
)


def _first_line(exc: sa.exc.DBAPIError) -> str:
    text = str(exc.orig).strip() if exc.orig else str(exc)
    return text.splitlines()[0] if text else type(exc.orig or exc).__name__


def _sqlite_engine(parsed: sa.URL) -> Engine:
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(parsed, connect_args={"timeout": 60, "check_same_thread": False})

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        # pysqlite's own transaction handling would issue a deferred BEGIN; we issue our own below
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout=60000")
        # Switching to WAL needs an exclusive lock and fails at once ("database is locked") while another
        # connection is open, busy timeout or not: switch only when the file is not in WAL mode yet.
        for _ in range(200):  # about 10 s: two processes opening a new file at once
            if cur.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
                break
            try:
                cur.execute("PRAGMA journal_mode=WAL")
            except sqlite3.OperationalError:
                time.sleep(0.05)
        cur.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable against a process kill
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # take the write lock up front: two processes' claims then serialize instead of deadlocking
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def create_engine(url: str) -> Engine:
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise LedgerError(f"not a database URL: {url!r}", "use sqlite:///path or postgresql+psycopg://…") from exc
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    # A connection that dies under a send is reported once, as a LedgerError with what to do; the pool's
    # own report of failing to reset it is a traceback on stderr (or in the service's log) that says no more.
    logging.getLogger("sqlalchemy.pool").setLevel(logging.CRITICAL)
    try:
        return sa.create_engine(parsed, pool_pre_ping=True)
    except (ImportError, sa.exc.ArgumentError) as exc:
        if parsed.drivername in ("postgres", "postgres+psycopg"):
            hint = "SQLAlchemy reads PostgreSQL URLs as postgresql+psycopg://user@host/db, not postgres://"
        elif parsed.get_backend_name() == "postgresql":
            hint = "install digest[postgres]"
        else:
            hint = "the state database is SQLite (sqlite:///path) or PostgreSQL (postgresql+psycopg://…)"
        raise LedgerError(f"cannot use {parsed.render_as_string()}: {exc}", hint) from exc


def safe_url(url: str) -> str:
    """The database URL without its password, for messages and logs."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "(unreadable database URL)"


class Store:
    """An open state database with every table created and migrated. Times must be timezone-aware."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(url)
        self.is_postgres = self.engine.dialect.name == "postgresql"
        try:
            with self.engine.begin() as conn:
                if self.is_postgres:
                    # two processes starting at once would race on CREATE TABLE; SQLite's BEGIN IMMEDIATE
                    # already serializes them
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(7243091)"))
                metadata.create_all(conn)
                self._migrate(conn)
        except sa.exc.DBAPIError as exc:
            self.engine.dispose()
            hint = sqlite_hint(_first_line(exc)) if not self.is_postgres else ""
            raise LedgerError(
                f"cannot open the state database {safe_url(url)}: {_first_line(exc)}",
                hint or "check state.database / DIGEST_DATABASE_URL and that the server is running",
                transient=not hint,
            ) from exc
        except OSError as exc:  # the folder of a SQLite file cannot be made
            self.engine.dispose()
            raise LedgerError(
                f"cannot open the state database {safe_url(url)}: {exc.strerror}", "check state.dir"
            ) from exc

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A transaction; a failing database (down, full, locked for too long) becomes one LedgerError."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except sa.exc.DBAPIError as exc:
            raise self._failed(exc) from exc

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                yield conn
        except sa.exc.DBAPIError as exc:
            raise self._failed(exc) from exc

    def _failed(self, exc: sa.exc.DBAPIError) -> LedgerError:
        hint = sqlite_hint(_first_line(exc)) if not self.is_postgres else ""
        return LedgerError(
            f"the state database {safe_url(self.url)} failed: {_first_line(exc)}",
            hint or "check that it is running and has room; a rerun resumes where this one stopped",
            transient=not hint,
        )

    def _migrate(self, conn: Connection) -> None:
        found = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version")).scalar()
        if found is None:
            conn.execute(meta.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
            return
        if not found.isdigit() or int(found) > SCHEMA_VERSION:
            raise LedgerError(
                f"the state database has schema version {found}, newer than this digest knows ({SCHEMA_VERSION})",
                "upgrade digest, or point state.database at another file",
            )
        for version in range(int(found) + 1, SCHEMA_VERSION + 1):
            MIGRATIONS[version](conn)
        if int(found) < SCHEMA_VERSION:
            conn.execute(sa.update(meta).where(meta.c.key == "schema_version").values(value=str(SCHEMA_VERSION)))

    def damage(self) -> str:
        """What SQLite's quick check of the file finds wrong ("" when the file is whole; PostgreSQL: "")."""
        if self.is_postgres:
            return ""
        with self.connect() as conn:
            found = [str(row[0]) for row in conn.exec_driver_sql("PRAGMA quick_check").fetchall()]
        return "" if found == ["ok"] else (found or ["no answer"])[0]

    def serialize(self, conn: Connection, name: str) -> None:
        """Make transactions that call this with the same `name` run one after another, across processes and
        machines (PostgreSQL: a transaction-level advisory lock; SQLite's BEGIN IMMEDIATE already does)."""
        if self.is_postgres:
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": f"digest:{name}"})

    def insert(self, table: sa.Table) -> Any:
        """An INSERT that knows ON CONFLICT on both dialects."""
        # imported here: the PostgreSQL dialect (with its asyncpg module) is 0.1 s of a SQLite user's start-up
        if self.is_postgres:
            from sqlalchemy.dialects import postgresql

            return postgresql.insert(table)
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(table)

    def close(self) -> None:
        self.engine.dispose()


def open_store(url: str | Store) -> Store:
    return url if isinstance(url, Store) else Store(url)
