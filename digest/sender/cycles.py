"""The service's record of weekly cycles, in the state database next to the ledger: which weeks it started,
which are finished, and when to try an unfinished one again. The ledger says what each subscriber got;
this table says which weeks the service still owes."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from digest.records import Cycle
from digest.sender.store import Store, cycles, open_store

c = cycles.c
OPEN, DONE, MISSED = "open", "done", "missed"


class Cycles:
    def __init__(self, store: Store | str) -> None:
        self.store = open_store(store)

    def get(self, week: str) -> Cycle | None:
        with self.store.connect() as conn:
            row = conn.execute(sa.select(cycles).where(c.week == week)).first()
        return None if row is None else _cycle(row)

    def open_since(self, since_at: datetime) -> list[Cycle]:
        """Open cycles whose scheduled time is at or after `since_at`, oldest first."""
        with self.store.connect() as conn:
            rows = conn.execute(
                sa.select(cycles).where(c.state == OPEN, c.fire_at >= since_at).order_by(c.fire_at)
            ).all()
        return [_cycle(row) for row in rows]

    def start(self, week: str, fire_at: datetime, now_at: datetime) -> Cycle:
        """Record that the service works on `week` (idempotent; a finished cycle stays finished)."""
        with self.store.begin() as conn:
            stmt = self.store.insert(cycles).values(
                week=week, fire_at=fire_at, state=OPEN, attempts=0, note="", updated_at=now_at
            )
            conn.execute(stmt.on_conflict_do_nothing())
        found = self.get(week)
        assert found is not None
        return found

    def finish(self, week: str, now_at: datetime, note: str = "") -> None:
        with self.store.begin() as conn:
            conn.execute(
                sa.update(cycles)
                .where(c.week == week)
                .values(state=DONE, next_try_at=None, note=note, updated_at=now_at)
            )

    def retry(self, week: str, now_at: datetime, next_try_at: datetime, note: str, *, failed: bool) -> Cycle:
        """Keep the cycle open until `next_try_at`; `failed` counts an attempt (for the back-off)."""
        with self.store.begin() as conn:
            conn.execute(
                sa.update(cycles)
                .where(c.week == week)
                .values(
                    state=OPEN,
                    attempts=c.attempts + 1 if failed else 0,
                    next_try_at=next_try_at,
                    note=note[:1000],
                    updated_at=now_at,
                )
            )
        found = self.get(week)
        assert found is not None
        return found

    def miss(self, week: str, fire_at: datetime, now_at: datetime, note: str) -> bool:
        """Record a run missed beyond the grace time; True the first time (so it is logged once)."""
        with self.store.begin() as conn:
            stmt = self.store.insert(cycles).values(
                week=week, fire_at=fire_at, state=MISSED, attempts=0, note=note, updated_at=now_at
            )
            done = conn.execute(stmt.on_conflict_do_nothing().returning(c.week))
            return done.first() is not None


def _cycle(row: sa.Row[tuple[object, ...]]) -> Cycle:
    return Cycle(
        week=row.week,
        fire_at=row.fire_at,
        state=row.state,
        attempts=row.attempts,
        next_try_at=row.next_try_at,
        note=row.note,
    )
