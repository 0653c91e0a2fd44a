"""The owner's review of each week's issue (schedule.review): asked once, answered by a signed link or the
command line; the service sends the week only once it is approved (or, per review_default, when the send
time comes without an answer)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from digest.records import Review
from digest.sender.store import Store, open_store, reviews

r = reviews.c
PENDING, APPROVED, HELD = "pending", "approved", "held"


class Reviews:
    def __init__(self, store: Store | str) -> None:
        self.store = open_store(store)

    def get(self, week: str) -> Review | None:
        with self.store.connect() as conn:
            row = conn.execute(sa.select(reviews).where(r.week == week)).first()
        if row is None:
            return None
        return Review(row.week, row.state, row.requested_at, row.decided_at, row.decided_by, row.note)

    def held(self) -> list[str]:
        """The weeks the owner held (not the service's default), oldest first."""
        with self.store.connect() as conn:
            rows = conn.execute(sa.select(r.week).where(r.state == HELD, r.decided_by != "default").order_by(r.week))
            return [str(week) for week in rows.scalars()]

    def notes(self) -> dict[str, str]:
        """{week: its editor's note}, of every week that has one."""
        with self.store.connect() as conn:
            return {str(week): str(note) for week, note in conn.execute(sa.select(r.week, r.note).where(r.note != ""))}

    def ask(self, week: str, now_at: datetime) -> bool:
        """Record that the preview of `week` goes to the owner; True only the first time (mail it then)."""
        with self.store.begin() as conn:
            stmt = self.store.insert(reviews).values(
                week=week, state=PENDING, requested_at=now_at, decided_by="", note=""
            )
            done = conn.execute(stmt.on_conflict_do_nothing().returning(r.week))
            return done.first() is not None

    def decide(self, week: str, state: str, by: str, now_at: datetime, note: str | None = None) -> Review:
        """Approve or hold `week` (a later answer replaces an earlier one); `note` replaces the editor's note."""
        values: dict[str, object] = {"state": state, "decided_at": now_at, "decided_by": by}
        if note is not None:
            values["note"] = note
        with self.store.begin() as conn:
            stmt = self.store.insert(reviews).values(week=week, requested_at=None, **{"note": "", **values})
            conn.execute(stmt.on_conflict_do_update(index_elements=["week"], set_=values))
        found = self.get(week)
        assert found is not None
        return found
