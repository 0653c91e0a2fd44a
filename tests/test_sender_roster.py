"""The subscribers file brought into the store (Roster.sync_file), on SQLite and PostgreSQL, with the file
as most of the store (every row read at once) and as a small part of it (rows read per address)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from digest.models import Status, Subscriber
from digest.sender.roster import Roster, SyncReport
from digest.sender.store import Store
from tests.support_postgres import ledger_url  # noqa: F401  (a fixture)

NOW_AT = datetime(2026, 11, 23, 9, tzinfo=UTC)
FILE = "subscribers.yaml"


@pytest.fixture
def store(ledger_url: str) -> Iterator[Store]:  # noqa: F811
    opened = Store(ledger_url)
    yield opened
    opened.close()


def entries(count: int) -> list[Subscriber]:
    return [
        Subscriber(f"Reader{i}@Example.com", f"구독자 {i}" if i % 3 == 0 else f"Reader {i}", ("python",) * (i % 2))
        for i in range(count)
    ]


# others: subscribers from the form, half of them unsubscribed, so many that the file is a small part of the
# store and of the suppression list (both read per address)
@pytest.mark.parametrize("others", [0, 40])
def test_file_sync_adds_updates_keeps_choices_and_drops(store: Store, others: int) -> None:
    book = Roster(store)
    for i in range(others):
        book.add(Subscriber(f"form{i}@example.org"), NOW_AT, status=Status.ACTIVE, method="form", source="page")
        if i % 2:
            book.unsubscribe(f"form{i}@example.org", NOW_AT, "unsubscribed by link")
    book.unsubscribe("reader4@example.com", NOW_AT, "unsubscribed by link")  # before it was ever in the file
    book.add(Subscriber("early@example.org", "Early"), NOW_AT, status=Status.ACTIVE, method="form", source="page")
    first = [*entries(8), Subscriber("Early@example.org", "Early Bird")]  # from the form, then in the file too
    assert book.sync_file(first, FILE, NOW_AT) == SyncReport(added=8, updated=1)
    early = book.get("early@example.org")
    assert early is not None and early.origin == "form" and early.in_file and early.name == "Early Bird"
    assert book.sync_file(first, FILE, NOW_AT) == SyncReport()  # a second run changes nothing

    record = book.get("reader3@example.com")
    assert record is not None and record.email == "Reader3@Example.com" and record.name == "구독자 3"
    assert record.origin == "file" and record.in_file and record.status == Status.ACTIVE
    assert record.consent_at == NOW_AT and record.created_at == NOW_AT and len(record.tag) == 13
    suppressed = book.get("reader4@example.com")
    assert suppressed is not None and suppressed.status == Status.UNSUBSCRIBED
    assert "suppressed before" in suppressed.events[-1].reason

    later = NOW_AT + timedelta(days=7)
    book.unsubscribe("reader1@example.com", later, "unsubscribed by link")  # the reader's own choice
    second = [replace(first[0], name="New Name"), *first[1:6], replace(first[6], active=False), Subscriber("new@x.org")]
    second.append(first[8])
    assert book.sync_file(second, FILE, later) == SyncReport(added=1, updated=2, deactivated=1)
    changed = book.get("reader0@example.com")
    assert changed is not None and changed.name == "New Name" and changed.updated_at == later
    assert [e.kind for e in changed.events][-1] == "updated"
    kept = book.get("reader1@example.com")
    assert kept is not None and kept.status == Status.UNSUBSCRIBED  # the file, unchanged there, does not undo it
    paused = book.get("reader6@example.com")
    assert paused is not None and paused.status == Status.INACTIVE
    dropped = book.get("reader7@example.com")
    assert dropped is not None and dropped.status == Status.INACTIVE and not dropped.in_file
    assert dropped.events[-1].reason == f"removed from {FILE}"

    found, skipped = book.for_send(later)
    assert sorted(sub.email for sub in found if sub.active and sub.email.startswith("Reader")) == [
        "Reader0@Example.com", "Reader2@Example.com", "Reader3@Example.com", "Reader5@Example.com",
    ]  # fmt: skip
    assert {"reader1@example.com", "reader4@example.com"} <= set(skipped)
    assert len({sub.tag for sub in found}) == len(found)  # every bounce tag its own


@pytest.mark.parametrize("source", ["subscribers.yaml", "it's 100% a list?.yaml", "%(email)s %s \\ ' \" ;"])
def test_what_every_new_row_shares_is_stored_as_bound_values_are(store: Store, source: str) -> None:
    """The values the same for every row of a first sync (the time, the file's name) are written into the
    statement once on SQLite and bound with each row on PostgreSQL: either way they read back as written,
    and as a row written by the general path (the form) stores them."""
    now_at = NOW_AT + timedelta(microseconds=123456)
    book = Roster(store)
    book.add(Subscriber("form@example.org"), now_at, status=Status.ACTIVE, method="form", source=source)
    assert book.sync_file(entries(3), source, now_at) == SyncReport(added=3)
    record = book.get("reader1@example.com")
    assert record is not None
    assert (record.consent_source, record.consent_at, record.created_at, record.updated_at) == (
        source, now_at, now_at, now_at,
    )  # fmt: skip
    assert record.in_file and record.origin == record.consent_method == "file" and record.consent_ip == ""
    assert [(e.at, e.kind, e.reason) for e in record.events] == [(now_at, "added", f"in {source}")]
    with store.connect() as conn:
        raw = conn.exec_driver_sql(
            "SELECT email, CAST(created_at AS TEXT), CAST(consent_source AS TEXT) FROM subscribers ORDER BY email"
        ).all()
    by_form, *by_file = raw
    assert by_form[0] == "form@example.org"
    assert {row[1:] for row in by_file} == {(by_form[1], source)}


def test_a_form_sign_up_the_file_lists_gets_the_files_consent(store: Store) -> None:
    """Someone who asked on the form and never confirmed, whom the author then puts in subscribers.yaml, is
    mailed from then on: the consent record says it is the file's (it said none)."""
    book = Roster(store)
    asked = book.request(
        Subscriber("asked@example.org"), NOW_AT, page="https://blog.example/", ip="", double_opt_in=True,
        interval=timedelta(hours=24),
    )  # fmt: skip
    assert asked.mail == "confirm"
    later = NOW_AT + timedelta(days=2)
    book.sync_file([Subscriber("asked@example.org")], FILE, later)
    record = book.get("asked@example.org")
    assert record is not None and record.status == Status.ACTIVE
    assert (record.consent_at, record.consent_method, record.consent_source) == (later, "file", FILE)
