"""The suppression list: addresses that must never get mail again (unsubscribed by link, by mail, by hand).

Every plan and every claim of the ledger checks it, so an address suppressed in the middle of a send gets
nothing more."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from digest.sender.store import Store, open_store, suppressions
from digest.text import address_key


class Suppressions:
    def __init__(self, store: Store | str) -> None:
        self.store = open_store(store)

    def add(self, email: str, now_at: datetime, reason: str) -> bool:
        """True when the address was not suppressed before."""
        with self.store.begin() as conn:
            # RETURNING, not rowcount: psycopg reports -1 for an INSERT … ON CONFLICT through SQLAlchemy
            stmt = self.store.insert(suppressions).on_conflict_do_nothing().returning(suppressions.c.email)
            done = conn.execute(stmt, {"email": address_key(email), "created_at": now_at, "reason": reason})
            return done.first() is not None

    def remove(self, email: str) -> bool:
        with self.store.begin() as conn:
            done = conn.execute(sa.delete(suppressions).where(suppressions.c.email == address_key(email)))
            return bool(done.rowcount)

    def all(self) -> set[str]:
        with self.store.connect() as conn:
            return set(conn.execute(sa.select(suppressions.c.email)).scalars())
