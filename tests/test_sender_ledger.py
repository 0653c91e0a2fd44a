"""The ledger on SQLite and PostgreSQL: planning, claims, outcomes, suppressions, status."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from digest.errors import LedgerError
from digest.models import Status, Subscriber
from digest.sender.ledger import REMOVED, Ledger
from digest.sender.outcome import SendResult
from digest.sender.roster import Roster
from digest.sender.store import deliveries, issues
from digest.sender.suppressions import Suppressions
from tests.support_postgres import ledger, ledger_url

__all__ = ["ledger", "ledger_url"]  # fixtures

NOW_AT = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)
ISSUE = "2024-W10"
SENT = SendResult("sent", 250, "250 2.0.0 Ok: queued as ABC", "<m@digest.test>")


def states(ledger: Ledger, issue: str = ISSUE) -> dict[str, str]:
    return {row.recipient: row.state for row in ledger.deliveries(issue)}


def test_plan_is_idempotent_and_lower_cases(ledger: Ledger) -> None:
    for _ in range(2):
        ledger.plan(ISSUE, ["Kim@Example.com", "lee@example.com"], {"park@example.com": "no matching entries"}, NOW_AT)
    assert states(ledger) == {"kim@example.com": "pending", "lee@example.com": "pending", "park@example.com": "skipped"}
    assert ledger.status(ISSUE).skipped == {"no matching entries": 1}


def test_plan_skips_removed_people_but_never_touches_sent_rows(ledger: Ledger) -> None:
    ledger.plan(ISSUE, ["a@x.test", "b@x.test", "c@x.test"], {}, NOW_AT)
    assert ledger.claim(ISSUE, "w", 1, NOW_AT) == ["a@x.test"]
    ledger.record(ISSUE, "a@x.test", SENT, NOW_AT)
    ledger.plan(ISSUE, ["c@x.test"], {}, NOW_AT)
    rows = {r.recipient: r for r in ledger.deliveries(ISSUE)}
    assert (rows["a@x.test"].state, rows["a@x.test"].message_id) == ("sent", "<m@digest.test>")
    assert (rows["b@x.test"].state, rows["b@x.test"].reply) == ("skipped", REMOVED)
    ledger.plan(ISSUE, ["b@x.test", "c@x.test"], {}, NOW_AT)  # back on the list: pending again
    assert states(ledger)["b@x.test"] == "pending"


def test_plan_changes_many_rows_at_once(ledger: Ledger) -> None:
    """Two readers or more who changed between two runs of one issue (left, paused, deferred then back): the
    rerun skips them and goes on. It raised a traceback for two or more, and the week could not finish."""
    ledger.plan(ISSUE, ["a@x.test", "b@x.test", "c@x.test", "d@x.test"], {}, NOW_AT)
    ledger.plan(ISSUE, ["a@x.test"], {"b@x.test": "paused until 2024-03-20", "c@x.test": "unsubscribed"}, NOW_AT)
    assert states(ledger) == {
        "a@x.test": "pending",
        "b@x.test": "skipped",
        "c@x.test": "skipped",
        "d@x.test": "skipped",
    }
    assert ledger.status(ISSUE).skipped == {"paused until 2024-03-20": 1, "unsubscribed": 1, REMOVED: 1}
    ledger.plan(ISSUE, ["a@x.test", "b@x.test", "c@x.test", "d@x.test"], {}, NOW_AT)  # all back
    assert set(states(ledger).values()) == {"pending"}


def planned(ledger: Ledger, *issue_ids: str) -> None:
    """Issues as the weekly cycle records them before sending (digest.sender.carried.record_issue)."""
    with ledger.store.begin() as conn:
        for issue_id in issue_ids:
            language = issue_id.rpartition("/")[0]
            conn.execute(
                sa.insert(issues).values(
                    issue_id=issue_id, language=language, start_at=NOW_AT, end_at=NOW_AT, planned_at=NOW_AT
                )
            )


@pytest.mark.parametrize("state", ["sent", "sending", "deferred", "failed", "pending", "skipped"])
def test_a_reader_with_the_week_in_another_language_is_skipped_in_this_one(ledger: Ledger, state: str) -> None:
    """Sent or being sent in the week's Korean issue: skipped in its Japanese one (and in no other week's);
    only waiting there, or failed: planned here, where the reader now belongs."""
    planned(ledger, "ko/2024-W10", "ja/2024-W10", "ja/2024-W11", "ko/2024-W100")
    ledger.plan("ko/2024-W10", ["moved@x.test", "stays@x.test"], {}, NOW_AT)
    with ledger.store.begin() as conn:
        conn.execute(
            sa.update(deliveries)
            .where(deliveries.c.issue_id == "ko/2024-W10", deliveries.c.recipient == "moved@x.test")
            .values(state=state)
        )
    had = state in ("sent", "sending")
    for issue_id in ("ja/2024-W10", "ja/2024-W11"):
        ledger.plan(issue_id, ["Moved@x.test", "new@x.test"], {}, NOW_AT)
    rows = {r.recipient: (r.state, r.reply) for r in ledger.deliveries("ja/2024-W10")}
    assert rows["new@x.test"] == ("pending", "")
    reason = "had this week's issue in another language (ko/2024-W10)"
    assert rows["moved@x.test"] == (("skipped", reason) if had else ("pending", ""))
    assert states(ledger, "ja/2024-W11") == {"moved@x.test": "pending", "new@x.test": "pending"}
    ledger.plan("ko/2024-W10", ["stays@x.test"], {}, NOW_AT)  # the Korean issue's next run
    assert states(ledger, "ko/2024-W10")["moved@x.test"] == (state if had or state == "failed" else "skipped")


def move(ledger: Ledger, old: str, new: str) -> None:
    """The reader of `old` confirms the change to `new` (the preference page's two steps)."""
    book = Roster(ledger.store)
    if not book.known(old):
        book.add(Subscriber(old), NOW_AT, status=Status.ACTIVE, method="form", source="page")
    assert book.request_change(old, new, NOW_AT, timedelta(days=1))
    assert book.change_address(old, new, NOW_AT) == "changed"


@pytest.mark.parametrize("state", ["sent", "sending", "deferred", "failed", "pending"])
def test_a_reader_who_changed_address_gets_no_week_the_old_address_had(ledger: Ledger, state: str) -> None:
    """Sent or being sent to the old address: the new one is skipped in that week's issues, in every language,
    also after a second move; only waiting there, or failed: planned at the new address. Later weeks go to the
    new address."""
    planned(ledger, "2024-W10", "ko/2024-W10", "2024-W11")
    ledger.plan("2024-W10", ["ann@x.test", "bo@x.test"], {}, NOW_AT)
    with ledger.store.begin() as conn:
        conn.execute(
            sa.update(deliveries)
            .where(deliveries.c.issue_id == "2024-W10", deliveries.c.recipient == "ann@x.test")
            .values(state=state)
        )
    move(ledger, "ann@x.test", "Ann2@x.test")
    move(ledger, "ann2@x.test", "ann3@x.test")
    had = state in ("sent", "sending")
    for issue_id in ("2024-W10", "ko/2024-W10", "2024-W11"):
        ledger.plan(issue_id, ["ann3@x.test", "bo@x.test"], {}, NOW_AT)
    reason = "had this week's issue at ann@x.test (2024-W10) before the address changed"
    for issue_id in ("2024-W10", "ko/2024-W10"):
        rows = {r.recipient: (r.state, r.reply) for r in ledger.deliveries(issue_id)}
        assert rows["ann3@x.test"] == (("skipped", reason) if had else ("pending", "")), issue_id
    assert states(ledger, "2024-W11") == {"ann3@x.test": "pending", "bo@x.test": "pending"}
    old_row = states(ledger)["ann@x.test"]
    assert old_row == (state if had or state == "failed" else "skipped")  # the old address gets nothing more


def test_suppressed_addresses_are_skipped_at_plan_and_at_claim(ledger: Ledger) -> None:
    assert Suppressions(ledger.store).add("Gone@X.test", NOW_AT, "one-click") is True
    assert Suppressions(ledger.store).add("gone@x.test", NOW_AT, "again") is False
    ledger.plan(ISSUE, ["gone@x.test", "late@x.test", "stay@x.test"], {}, NOW_AT)
    assert states(ledger)["gone@x.test"] == "skipped"
    Suppressions(ledger.store).add("late@x.test", NOW_AT, "one-click")  # unsubscribed while the issue is going out
    assert ledger.claim(ISSUE, "w", 10, NOW_AT) == ["stay@x.test"]
    assert states(ledger)["late@x.test"] == "skipped"
    assert Suppressions(ledger.store).all() == {"gone@x.test", "late@x.test"}
    assert Suppressions(ledger.store).remove("GONE@x.test") is True
    assert Suppressions(ledger.store).remove("gone@x.test") is False


def test_an_issue_carried_by_another_message_is_never_sent_again_and_never_twice(ledger: Ledger) -> None:
    """`carry` (the welcome email carrying the latest issue): a reader with no row, or a skipped one, gets it
    there and no plan of the issue brings it to them again; one the issue's own send has gets it from there."""
    ledger.plan(ISSUE, ["early@x.test"], {"left@x.test": "inactive"}, NOW_AT)
    assert ledger.carry(ISSUE, "New@X.test", "in the welcome email", NOW_AT) is True
    assert ledger.carry(ISSUE, "new@x.test", "in the welcome email", NOW_AT) is True  # a retried welcome: again
    assert ledger.carry(ISSUE, "left@x.test", "in the welcome email", NOW_AT) is True  # skipped: never had it
    assert ledger.carry(ISSUE, "early@x.test", "in the welcome email", NOW_AT) is False  # pending: the send has it
    ledger.plan(ISSUE, ["early@x.test", "left@x.test", "new@x.test"], {}, NOW_AT)
    assert ledger.claim(ISSUE, "w", 10, NOW_AT) == ["early@x.test"]
    rows = {r.recipient: (r.state, r.reply) for r in ledger.deliveries(ISSUE)}
    assert rows["new@x.test"] == rows["left@x.test"] == ("sent", "in the welcome email")


def test_claims_are_disjoint_and_stale_claims_come_back_after_the_lease(ledger: Ledger) -> None:
    people = [f"p{i:02}@x.test" for i in range(10)]
    ledger.plan(ISSUE, people, {}, NOW_AT)
    first = ledger.claim(ISSUE, "w1", 4, NOW_AT)
    second = ledger.claim(ISSUE, "w2", 4, NOW_AT)
    third = ledger.claim(ISSUE, "w3", 4, NOW_AT)
    assert sorted(first + second + third) == people and len(set(first + second + third)) == 10
    assert ledger.claim(ISSUE, "w4", 4, NOW_AT + ledger.lease - timedelta(seconds=1)) == []
    ledger.renew(ISSUE, "w1", NOW_AT + timedelta(minutes=5))  # w1 is alive: keeps its rows
    late = ledger.claim(ISSUE, "w4", 20, NOW_AT + ledger.lease + timedelta(seconds=1))
    assert sorted(late) == sorted(second + third)


def test_release_hands_unsent_claims_back(ledger: Ledger) -> None:
    ledger.plan(ISSUE, ["a@x.test", "b@x.test"], {}, NOW_AT)
    claimed = ledger.claim(ISSUE, "w1", 2, NOW_AT)
    ledger.release(ISSUE, "w2", claimed, NOW_AT)  # not w2's rows: nothing happens
    assert set(states(ledger).values()) == {"sending"}
    ledger.release(ISSUE, "w1", claimed, NOW_AT)
    assert set(states(ledger).values()) == {"pending"}
    assert ledger.due(ISSUE, NOW_AT) == 2


@pytest.mark.parametrize(
    ("tries", "expected_state", "expected_delay"),
    [
        (1, "deferred", timedelta(seconds=60)),
        (2, "deferred", timedelta(seconds=120)),
        (3, "failed", None),  # the fixture's max_attempts is 3
    ],
)
def test_deferred_backs_off_exponentially_then_fails(
    ledger: Ledger, tries: int, expected_state: str, expected_delay: timedelta | None
) -> None:
    ledger.plan(ISSUE, ["slow@x.test"], {}, NOW_AT)
    now_at = NOW_AT
    for _ in range(tries):
        assert ledger.claim(ISSUE, "w", 1, now_at) == ["slow@x.test"]
        ledger.record(ISSUE, "slow@x.test", SendResult("deferred", 451, "451 4.3.0 try again later"), now_at)
        row = ledger.deliveries(ISSUE)[0]
        now_at = row.next_attempt_at or now_at
    assert (row.state, row.attempts, row.reply) == (expected_state, tries, "451 4.3.0 try again later")
    if expected_delay is not None:
        assert row.next_attempt_at == row.updated_at + expected_delay  # type: ignore[operator]
        assert ledger.claim(ISSUE, "w", 1, now_at - timedelta(seconds=1)) == []  # not due yet


def test_failed_keeps_the_reply_and_nothing_downgrades_sent(ledger: Ledger) -> None:
    ledger.plan(ISSUE, ["bad@x.test", "ok@x.test"], {}, NOW_AT)
    ledger.claim(ISSUE, "w", 2, NOW_AT)
    reply = "550 5.1.1 <bad@x.test>: mailbox unavailable"
    ledger.record_many(ISSUE, [("bad@x.test", SendResult("failed", 550, reply)), ("ok@x.test", SENT)], NOW_AT)
    ledger.record(ISSUE, "ok@x.test", SendResult("deferred", 451, "451 late"), NOW_AT)  # a stale worker's news
    status = ledger.status(ISSUE)
    assert (status.counts["sent"], status.counts["failed"], status.unfinished) == (1, 1, 1)
    assert [(f.recipient, f.reply) for f in status.failures] == [("bad@x.test", reply)]
    assert ledger.claim(ISSUE, "w", 5, NOW_AT + timedelta(days=1)) == []  # 5xx is never retried


def test_two_ledgers_claiming_at_once_split_the_work(ledger_url: str) -> None:
    people = [f"p{i:03}@x.test" for i in range(300)]
    Ledger(ledger_url).plan(ISSUE, people, {}, NOW_AT)
    got: dict[str, list[str]] = {"a": [], "b": [], "c": []}

    def work(name: str) -> None:
        mine = Ledger(ledger_url)
        while batch := mine.claim(ISSUE, name, 7, NOW_AT):
            got[name] += batch
            mine.record_many(ISSUE, [(r, SENT) for r in batch], NOW_AT)
        mine.close()

    threads = [threading.Thread(target=work, args=(n,)) for n in got]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [r for batch in got.values() for r in batch]
    assert sorted(everything) == people  # each exactly once
    assert Ledger(ledger_url).status(ISSUE).counts["sent"] == 300


def test_sqlite_file_is_created_with_its_folders_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "state" / "digest.sqlite3"
    opened = Ledger(f"sqlite:///{path}")
    with opened.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    assert path.is_file()


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'digest.sqlite3'}"
    with Ledger(url).engine.begin() as conn:
        conn.execute(sa.text("UPDATE meta SET value = '99' WHERE key = 'schema_version'"))
    with pytest.raises(LedgerError, match="schema version 99") as caught:
        Ledger(url)
    assert "upgrade digest" in str(caught.value)


@pytest.mark.parametrize("url", ["not a url", "nosuchdb://x/y"])
def test_bad_urls_are_ledger_errors(url: str) -> None:
    with pytest.raises(LedgerError):
        Ledger(url)


def test_naive_datetimes_are_rejected(ledger: Ledger) -> None:
    with pytest.raises(sa.exc.StatementError):
        ledger.plan(ISSUE, ["a@x.test"], {}, datetime(2024, 1, 1))


def test_an_older_database_is_migrated_step_by_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from digest.sender import store as store_module

    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    Ledger(url).plan(ISSUE, ["kept@example.com"], {}, NOW_AT)  # made by this version

    def add_column(conn: sa.Connection) -> None:
        conn.execute(sa.text("ALTER TABLE deliveries ADD COLUMN note TEXT DEFAULT ''"))

    monkeypatch.setattr(store_module, "SCHEMA_VERSION", store_module.SCHEMA_VERSION + 1)
    monkeypatch.setitem(store_module.MIGRATIONS, store_module.SCHEMA_VERSION, add_column)
    for _ in range(2):  # the second open finds it done and migrates nothing
        opened = Ledger(url)
        with opened.engine.connect() as conn:
            version = conn.execute(sa.text("SELECT value FROM meta WHERE key = 'schema_version'")).scalar()
            columns = [row[1] for row in conn.execute(sa.text("PRAGMA table_info(deliveries)"))]
        assert version == str(store_module.SCHEMA_VERSION) and columns.count("note") == 1
        assert states(opened) == {"kept@example.com": "pending"}
        opened.close()


@pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)
def test_postgresql_records_an_outcome_through_the_primary_key_right_after_a_big_plan(ledger_url: str) -> None:
    """A plan that adds many rows has PostgreSQL analyse the table: without statistics of them it plans
    every outcome's UPDATE as a scan of all the issue's rows (a hash join, or a loop with a filter)."""
    big = Ledger(ledger_url)
    try:
        now = datetime(2026, 11, 23, tzinfo=UTC)
        big.plan("w47", [f"r{n:05d}@example.com" for n in range(3000)], {}, now)
        claimed = big.claim("w47", "h:1:x/0", 8, now)
        writer = big.writer()
        try:
            sql = "EXPLAIN " + writer.sql
            plan = writer.cursor.execute(sql, (now.replace(tzinfo=None), claimed, ["<m>"] * 8, ["250"] * 8, "w47"))
            text = "\n".join(row[0] for row in plan.fetchall())
        finally:
            writer.close()
        # each outcome's row found by (issue, recipient), not every row of the issue scanned and filtered
        conditions = [line for line in text.splitlines() if "Index Cond" in line]
        assert any("recipient" in line for line in conditions) and "Join Filter" not in text, text
    finally:
        big.close()


def test_a_version_1_database_becomes_version_2_and_an_older_digest_then_refuses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Version 2 names the tables an older digest would ignore (feed_dates, reviews): a file of version 1
    is brought to 2 with what it holds; a digest that knows only version 1 then refuses it in one line
    (it would have sent a held week and moved feed dates back)."""
    from digest.sender import store as store_module

    url = f"sqlite:///{tmp_path / 'digest.sqlite3'}"
    made = Ledger(url)
    made.plan(ISSUE, ["kept@example.com"], {}, NOW_AT)
    with made.engine.begin() as conn:
        conn.execute(sa.text("UPDATE meta SET value = '1' WHERE key = 'schema_version'"))
    made.close()
    opened = Ledger(url)
    with opened.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT value FROM meta WHERE key = 'schema_version'")).scalar() == "2"
    assert states(opened) == {"kept@example.com": "pending"}
    opened.close()
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 1)  # the digest before
    with pytest.raises(LedgerError, match="schema version 2, newer than this digest knows") as caught:
        Ledger(url)
    assert "upgrade digest" in str(caught.value)
