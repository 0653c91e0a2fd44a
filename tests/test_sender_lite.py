"""The state database read (and the feeds' dates kept) through Python's sqlite3 by a publish and a preview:
the same answers as through the Store, the same stored text, the Store's way whenever the file is not one
it made as this digest would, and no SQLAlchemy imported by a weekly publish."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from digest import pipeline
from digest.config.folders import DATABASE_FILE
from digest.errors import LedgerError
from digest.pipeline.state import ledger_view
from digest.sender import lite
from digest.sender.carried import StoreView
from digest.sender.store import Store, feed_dates, issue_entries, issues, meta, reviews
from tests.conftest import state_env
from tests.support_service import SECRET, Post, settings_for, write_site

NOON = datetime(2026, 11, 16, 3, 0, 0, 123456, tzinfo=UTC)


def _ledger(path: Path) -> Store:
    """A ledger with issues in two languages (one planned under the site's own language's key, before the
    site changed its language), carried entries (a running log's item among them) and the feeds' dates."""
    store = Store(f"sqlite:///{path}")
    week = timedelta(weeks=1)
    rows = [
        ("2026-W45", "", NOON - 2 * week, 2, 1),
        ("2026-W46", "", NOON - week, 1, 0),
        ("ko/2026-W46", "ko", NOON - week, 3, 0),
        ("fr/2026-W47", "fr", NOON, 0, 2),
    ]
    with store.begin() as conn:
        for issue_id, language, start, own, late in rows:
            conn.execute(
                issues.insert().values(
                    issue_id=issue_id,
                    language=language,
                    start_at=start,
                    end_at=start + week - timedelta(microseconds=1),
                    planned_at=start + week + timedelta(hours=9, minutes=len(issue_id)),
                    entries=own,
                    late=late,
                )
            )
        keys = [
            ("", "k1", "2026-W45", "posts/a.md"),
            ("", "k2", "2026-W45", "log.md#2026-11-03-heron"),
            ("", "k3", "2026-W46", "posts/b.md"),
            ("ko", "k4", "ko/2026-W46", "posts/c.ko.md"),
            ("fr", "k5", "fr/2026-W47", "posts/d.fr.md"),
        ]
        conn.execute(
            issue_entries.insert(),
            [{"language": a, "entry_key": b, "issue_id": c, "entry_id": d} for a, b, c, d in keys],
        )
        conn.execute(meta.insert().values(key=lite.FEED_ID_URL, value="https://old.example.org/news/"))
        conn.execute(
            reviews.insert(),
            [
                {"week": "2026-W46", "state": "approved", "decided_by": "cli", "note": "Back from **leave**."},
                {"week": "2026-W47", "state": "pending", "decided_by": "", "note": ""},
            ],
        )
        conn.execute(
            feed_dates.insert(),
            [{"issue_id": "2026-W45", "updated_at": NOON}, {"issue_id": "ko/2026-W46", "updated_at": NOON + week}],
        )
    return store


def _opened(path: Path) -> lite.Lite:
    quick = lite.open_file(path)
    assert quick is not None
    return quick


def test_each_read_gives_what_the_store_gives(tmp_path: Path) -> None:
    path = tmp_path / DATABASE_FILE
    store = _ledger(path)
    quick = _opened(path)
    try:
        slow = StoreView(store)
        assert quick.feed_id_url() == slow.feed_id_url() == "https://old.example.org/news/"
        assert quick.last_planned() == slow.last_planned() is not None
        assert quick.feed_dates() == slow.feed_dates()
        assert quick.feed_dates()["2026-W45"] == NOON  # to the microsecond, aware UTC
        assert quick.notes() == slow.notes() == {"2026-W46": "Back from **leave**."}
        for language in ("", "en", "ko", "ko-KR"):
            assert quick.carried(language) == slow.carried(language)
        merged = quick.carried("ko")
        assert set(merged) == {"", "fr"} and "ko/2026-W46" in merged[""].planned  # the site turned Korean
        assert merged[""].items == {"log.md#2026-11-03-heron": "2026-W45"}
    finally:
        quick.close()
        store.close()


def test_an_empty_ledger_reads_empty_both_ways(tmp_path: Path) -> None:
    path = tmp_path / DATABASE_FILE
    store = Store(f"sqlite:///{path}")
    quick = _opened(path)
    try:
        slow = StoreView(store)
        for view in (quick, slow):
            assert (view.feed_id_url(), view.last_planned(), view.carried(), view.feed_dates(), view.notes()) == (
                "",
                None,
                {},
                {},
                {},
            )
    finally:
        quick.close()
        store.close()


def _raw(path: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT issue_id, updated_at FROM feed_dates ORDER BY issue_id").fetchall()
        return rows + conn.execute("SELECT key, value FROM meta ORDER BY key").fetchall()


@pytest.mark.parametrize("id_url", ["", "https://new.example.net/"])
def test_keeping_the_feeds_dates_writes_what_the_store_writes(tmp_path: Path, id_url: str) -> None:
    """Later dates replace kept ones, earlier ones do not, new ones are added, the first URL stays: the same
    rows, to the stored text, as the Store writes; and the Store reads back what was written here."""
    dated = {
        "2026-W45": NOON - timedelta(days=1),  # earlier than kept: stays
        "ko/2026-W46": NOON + timedelta(weeks=2),  # later: replaced
        "2026-W47": NOON.astimezone(ZoneInfo("Asia/Seoul")),  # new, in another zone
    }
    written = []
    for way in ("store", "lite"):
        path = tmp_path / way / DATABASE_FILE
        path.parent.mkdir()
        store = _ledger(path)
        try:
            if way == "store":
                changed = StoreView(store).record_feed_dates(dated, id_url)
            else:
                quick = _opened(path)
                try:
                    changed = quick.record_feed_dates(dated, id_url)
                finally:
                    quick.close()
            assert changed == 2
            assert StoreView(store).feed_dates()["ko/2026-W46"] == NOON + timedelta(weeks=2)
            assert StoreView(store).feed_id_url() == "https://old.example.org/news/"  # the first one stays
        finally:
            store.close()
        written.append(_raw(path))
    assert written[0] == written[1]
    assert ("2026-W47", "2026-11-16 03:00:00.123456") in written[1]


def test_a_first_url_is_kept_once(tmp_path: Path) -> None:
    path = tmp_path / DATABASE_FILE
    Store(f"sqlite:///{path}").close()
    quick = _opened(path)
    try:
        quick.record_feed_dates({}, "https://a.example.org/")
        quick.record_feed_dates({}, "https://b.example.org/")
        assert quick.feed_id_url() == "https://a.example.org/"
    finally:
        quick.close()


def _older(path: Path) -> None:
    """A database of an older digest: no feed_dates table yet (the Store creates it on open)."""
    Store(f"sqlite:///{path}").close()
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE feed_dates")


def _version(value: str) -> object:
    def change(path: Path) -> None:
        Store(f"sqlite:///{path}").close()
        with sqlite3.connect(path) as conn:
            conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (value,))

    return change


def _rollback_journal(path: Path) -> None:
    Store(f"sqlite:///{path}").close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=DELETE")


def _not_a_database(path: Path) -> None:
    path.write_bytes(b"not a database, but a note someone left here\n" * 100)


@pytest.mark.parametrize(
    "make",
    [
        _older,
        _version("0"),
        _version(str(lite.SCHEMA_VERSION - 1)),
        _version(str(lite.SCHEMA_VERSION + 1)),
        _version(""),
        _rollback_journal,
        _not_a_database,
    ],
    ids=["older-tables", "version-0", "older-version", "newer-version", "no-version", "not-wal", "not-a-database"],
)
def test_a_database_this_digest_did_not_make_as_it_would_goes_to_the_store(tmp_path: Path, make: object) -> None:
    path = tmp_path / DATABASE_FILE
    make(path)  # type: ignore[operator]
    before = path.read_bytes()
    assert lite.open_file(path) is None
    assert path.read_bytes() == before  # looked at, nothing changed


def test_no_file_is_made_by_looking(tmp_path: Path) -> None:
    assert lite.open_file(tmp_path / DATABASE_FILE) is None
    assert not (tmp_path / DATABASE_FILE).exists()


def test_a_failing_read_is_a_ledger_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / DATABASE_FILE
    Store(f"sqlite:///{path}").close()
    quick = _opened(path)
    try:
        with sqlite3.connect(path) as conn:
            conn.execute("DROP TABLE feed_dates")  # gone after the check
        with pytest.raises(LedgerError, match=f"{DATABASE_FILE} failed: no such table: feed_dates"):
            quick.feed_dates()
        with pytest.raises(LedgerError, match="no such table"):
            quick.record_feed_dates({"2026-W47": NOON})
    finally:
        quick.close()


def test_keeping_dates_waits_for_a_send_that_holds_the_write_lock(tmp_path: Path) -> None:
    path = tmp_path / DATABASE_FILE
    store = Store(f"sqlite:///{path}")
    quick = _opened(path)
    held = threading.Event()

    def send() -> None:
        with store.begin() as conn:  # BEGIN IMMEDIATE: the write lock
            conn.execute(feed_dates.insert().values(issue_id="2026-W46", updated_at=NOON))
            held.set()
            time.sleep(0.5)

    sender = threading.Thread(target=send)
    sender.start()
    try:
        assert held.wait(10)
        started = time.monotonic()
        assert quick.record_feed_dates({"2026-W46": NOON + timedelta(days=1), "2026-W47": NOON}) == 2
        assert time.monotonic() - started >= 0.2  # it waited for the lock rather than failing
    finally:
        sender.join()
        quick.close()
    assert StoreView(store).feed_dates() == {"2026-W46": NOON + timedelta(days=1), "2026-W47": NOON}
    store.close()


# -- through the pipeline ----------------------------------------------------------------------------


def _site(tmp_path: Path) -> Path:
    seoul = ZoneInfo("Asia/Seoul")
    posts = [Post(f"p{day}", f"Post of the {day}th", datetime(2026, 11, day, 10, tzinfo=seoul)) for day in (3, 10, 17)]
    return write_site(tmp_path, posts, [])


def _publish(config: Path, now_at: datetime) -> dict[str, bytes]:
    settings = settings_for(config)
    pipeline.publish(settings, now_at, pipeline.select_week(settings, now_at, "last"))
    out = settings.output.dir
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_a_publish_through_sqlite3_writes_the_files_and_dates_of_one_through_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seoul = ZoneInfo("Asia/Seoul")
    files, dates = {}, {}
    for way in ("store", "lite"):
        config = _site(tmp_path / way)
        with monkeypatch.context() as patch:
            if way == "store":
                patch.setattr(lite, "open_file", lambda path: None)
            for day in (16, 23, 23):  # a first publish (it makes the ledger), the next week's, a rerun
                files[way] = _publish(config, datetime(2026, 11, day, 9, tzinfo=seoul))
        settings = settings_for(config)
        with ledger_view(settings) as ledger:
            assert ledger is not None and isinstance(ledger, lite.Lite)
            dates[way] = ledger.feed_dates()
            assert ledger.feed_id_url() == settings.output.url
    assert files["lite"] == files["store"] and "atom.xml" in files["lite"]
    assert dates["lite"] == dates["store"] and set(dates["lite"]) == {"2026-W45", "2026-W46", "2026-W47"}


def test_an_older_database_is_brought_up_to_date_by_a_publish(tmp_path: Path) -> None:
    config = _site(tmp_path)
    settings = settings_for(config)
    _older(settings.state_dir / DATABASE_FILE)
    seoul = ZoneInfo("Asia/Seoul")
    assert "atom.xml" in _publish(config, datetime(2026, 11, 23, 9, tzinfo=seoul))
    with ledger_view(settings) as ledger:
        assert isinstance(ledger, lite.Lite)  # the Store made the table: the next publish reads it here
        assert set(ledger.feed_dates()) == {"2026-W45", "2026-W46", "2026-W47"}


def test_the_clock_check_reads_the_ledger_through_sqlite3_too(tmp_path: Path) -> None:
    config = _site(tmp_path)
    seoul = ZoneInfo("Asia/Seoul")
    _publish(config, datetime(2026, 11, 23, 9, tzinfo=seoul))
    settings = settings_for(config)
    store = Store(settings.db_url)
    try:
        with store.begin() as conn:
            conn.execute(
                issues.insert().values(
                    issue_id="2026-W47",
                    language="",
                    start_at=datetime(2026, 11, 15, 15, tzinfo=UTC),
                    end_at=datetime(2026, 11, 22, 15, tzinfo=UTC),
                    planned_at=datetime(2026, 11, 23, 0, tzinfo=UTC),
                    entries=1,
                    late=0,
                )
            )
    finally:
        store.close()
    with pytest.raises(LedgerError, match="the clock says 2026-11-23T07:59"):  # over an hour before
        _publish(config, datetime(2026, 11, 23, 8, tzinfo=seoul) - timedelta(minutes=1))


_IMPORTS = """
import sys
from digest.cli import main
try:
    main(sys.argv[1:], standalone_mode=False)
finally:
    print("sqlalchemy" in sys.modules)
"""


def test_a_weekly_publish_and_a_preview_with_a_ledger_do_not_import_sqlalchemy(tmp_path: Path) -> None:
    config = _site(tmp_path)

    def digest(now: str, *args: str) -> bool:
        env = {**os.environ, **state_env(), "DIGEST_NOW": now, "DIGEST_SECRET": SECRET}
        ran = subprocess.run(
            [sys.executable, "-c", _IMPORTS, "--config", str(config), *args],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert ran.returncode == 0, ran.stderr
        return ran.stdout.strip().splitlines()[-1] == "True"

    assert digest("2026-11-16T09:00:00+09:00", "publish")  # the first: it makes the ledger
    assert settings_for(config).state_dir.joinpath(DATABASE_FILE).is_file()
    assert not digest("2026-11-23T09:00:00+09:00", "publish")
    assert not digest("2026-11-24T09:00:00+09:00", "preview")
    assert digest("2026-11-24T09:00:00+09:00", "status")  # the rest of the ledger's users: through the Store


def test_sqlalchemy_reads_the_text_written_here() -> None:
    """The stored form of a date is the one SQLAlchemy's SQLite DateTime writes and parses."""
    engine = sa.create_engine("sqlite://")
    table = sa.Table("t", sa.MetaData(), sa.Column("at", sa.DateTime))
    table.create(engine)
    with engine.begin() as conn:
        conn.execute(table.insert().values(at=NOON.replace(tzinfo=None)))
        stored = conn.execute(sa.text("SELECT at FROM t")).scalar()
        conn.execute(sa.text("DELETE FROM t"))
        conn.execute(sa.text("INSERT INTO t (at) VALUES (:at)"), {"at": lite.as_text(NOON)})
        assert conn.execute(sa.select(table.c.at)).scalar() == NOON.replace(tzinfo=None)
    assert stored == lite.as_text(NOON)
    with pytest.raises(ValueError, match="timezone-aware"):
        lite.as_text(NOON.replace(tzinfo=None))
