"""The delivery ledger: one row per (issue, recipient), so every subscriber gets an issue exactly once.

States (models.State): pending -> sending (claimed by one worker) -> sent | deferred (retried later) |
failed; skipped (with a reason) for recipients that must not get this issue. Works on SQLite (WAL mode,
claims under BEGIN IMMEDIATE) and PostgreSQL (claims with FOR UPDATE SKIP LOCKED), so several processes,
even on several machines, can share one issue's work.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from digest.errors import LedgerError
from digest.models import State, Status
from digest.records import Delivery, IssueStatus
from digest.sender.journal import replay, replaying, unrecorded
from digest.sender.outcome import SendResult
from digest.sender.store import (
    MOVED_TO,
    Store,
    UtcDateTime,
    deliveries,
    issues,
    open_store,
    safe_url,
    suppressions,
)
from digest.text import address_key

REMOVED = "not in the subscriber list"
_MOVED = f"{Status.UNSUBSCRIBED.value}: {MOVED_TO}"  # see Roster.change_address
CHUNK = 500  # rows per statement: keeps IN (...) lists and executemany batches modest
d = deliveries.c
UNFINISHED = (State.PENDING, State.SENDING, State.DEFERRED, State.FAILED)


_PG_PLAN = sa.text(
    "INSERT INTO deliveries (issue_id, recipient, state, attempts, message_id, reply, worker, updated_at) "
    "SELECT :issue, v.r, v.s, 0, '', v.why, '', :at "
    "FROM unnest(CAST(:rs AS text[]), CAST(:ss AS text[]), CAST(:whys AS text[])) AS v(r, s, why) "
    "ON CONFLICT DO NOTHING"
).bindparams(sa.bindparam("at", type_=UtcDateTime))
ANALYZE_AFTER = 1000  # rows a plan adds before PostgreSQL is asked to analyse the table again


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class Ledger:
    """The state database. `Ledger(url)` creates the tables; times passed in must be timezone-aware."""

    def __init__(
        self,
        store: Store | str,
        *,
        max_attempts: int = 5,
        retry_base_seconds: float = 60.0,
        lease: timedelta = timedelta(minutes=10),
        journal: Path | None = None,
    ) -> None:
        self.store = open_store(store)
        # where sends keep their outcome journals (journal.py); None: every outcome is committed before the
        # worker's next message passes its point of no return
        self.journal = journal
        self.engine = self.store.engine
        self.is_postgres = self.store.is_postgres
        self.max_attempts = max_attempts
        self.retry_base_seconds = retry_base_seconds
        self.lease = lease
        # worker -> last recipient it claimed: the next pending claim starts there, so PostgreSQL does not
        # rescan the dead index entries of rows already claimed (claims walk the index in recipient order)
        self._cursor: dict[str, str] = {}
        self._pending = d.state == State.PENDING

    def close(self) -> None:
        self.store.close()

    # -- planning ---------------------------------------------------------------------------------

    def plan(self, issue_id: str, recipients: Sequence[str], skipped: Mapping[str, str], now_at: datetime) -> None:
        """Make the ledger match this run's list; idempotent and never touches sent rows.

        New recipients get a pending row; recipients in `skipped` (or suppressed) and rows of people no
        longer in the list become skipped with a reason; a skipped recipient who is back becomes pending.
        Rows claimed by another worker (sending), failed or sent are left alone. A recipient who has the
        same week's issue in another language (sent, or being sent) is skipped: a reader who changed
        language gets one issue that week, and the new language's from the next.
        """
        with self.store.begin() as conn:
            wanted, reasons = self._wanted(conn, issue_id, recipients, skipped)
            existing = {
                r: (state, reply)
                for r, state, reply in conn.execute(
                    sa.select(d.recipient, d.state, d.reply).where(d.issue_id == issue_id)
                )
            }
            base = {"issue_id": issue_id, "attempts": 0, "message_id": "", "worker": "", "updated_at": now_at}
            fresh = itertools.chain(
                ((r, State.PENDING, "") for r in sorted(wanted) if r not in existing),
                ((r, State.SKIPPED, why) for r, why in reasons.items() if r not in existing),
            )
            insert = self.store.insert(deliveries).on_conflict_do_nothing()
            added = 0
            while self.is_postgres and (rows := list(itertools.islice(fresh, CHUNK * 10))):
                # one statement over arrays: an executemany of 10,000 rows took 0.53 s here, this 0.1 s
                recipients, states, whys = (list(column) for column in zip(*rows, strict=True))
                values = {"issue": issue_id, "at": now_at, "rs": recipients, "ss": [st.value for st in states]}
                conn.execute(_PG_PLAN, {**values, "whys": whys})
                added += len(rows)
            while rows := list(itertools.islice(fresh, CHUNK)):
                # row dicts a chunk at a time: 100,000 of them at once would cost ~50 MB
                conn.execute(insert, [{**base, "recipient": r, "state": st, "reply": why} for r, st, why in rows])
                added += len(rows)
            changes = []
            for r, (state, reply) in existing.items():
                if r in wanted and state == State.SKIPPED:
                    changes.append((r, State.PENDING, ""))
                elif r not in wanted and state in (State.PENDING, State.DEFERRED, State.SKIPPED):
                    why = reasons.get(r, REMOVED)
                    if (state, reply) != (State.SKIPPED, why):
                        changes.append((r, State.SKIPPED, why))
            stmt = (
                sa.update(deliveries)
                .where(
                    d.issue_id == issue_id,
                    d.recipient == sa.bindparam("b_r"),
                    # not in_(): an executemany cannot expand a list (SQLAlchemy 2.1 refuses the statement)
                    sa.or_(*(d.state == state for state in (State.PENDING, State.DEFERRED, State.SKIPPED))),
                )
                .values(
                    state=sa.bindparam("b_state"),
                    reply=sa.bindparam("b_reply"),
                    updated_at=now_at,
                    next_attempt_at=None,
                )
            )
            for batch in _chunks(changes):
                conn.execute(stmt, [{"b_r": r, "b_state": s, "b_reply": why} for r, s, why in batch])
        if self.is_postgres and added >= ANALYZE_AFTER:
            # Without statistics of the new rows PostgreSQL plans each outcome's UPDATE as a scan of every
            # row of the issue (a hash join): 2.8 ms of the server's CPU a commit at 10,000 rows, against
            # 0.5 ms through the primary key once analysed (autovacuum analyses minutes later). A table
            # another role owns is skipped with a warning, not an error.
            with self.store.begin() as conn:
                conn.execute(sa.text("ANALYZE deliveries"))

    def _wanted(
        self, conn: Connection, issue_id: str, recipients: Sequence[str], skipped: Mapping[str, str]
    ) -> tuple[set[str], dict[str, str]]:
        """(who gets the issue, why each of the others does not): see _excluded."""
        wanted = {address_key(r) for r in recipients}
        reasons = self._excluded(conn, issue_id, wanted, skipped)
        wanted.difference_update(reasons)
        return wanted, reasons

    def _excluded(
        self, conn: Connection, issue_id: str, recipients: Collection[str], skipped: Mapping[str, str]
    ) -> dict[str, str]:
        """Why those who get nothing do not: `skipped` with its reasons, and those of `recipients` (address
        keys) who are suppressed or have the week in another language (plan's rules). A mapping, not a copy of
        the recipients: a dry run of 100,000 asks it of the keys it already holds."""
        reasons = {key: v for k, v in skipped.items() if (key := address_key(k)) not in recipients}
        moved: dict[str, str] = {}  # old address key -> the key its reader moved to
        for email, reason in conn.execute(sa.select(suppressions.c.email, suppressions.c.reason)):
            if email in recipients:
                reasons[email] = f"unsubscribed: {reason}" if reason else "unsubscribed"
            if reason.startswith(_MOVED):
                moved[email] = address_key(reason[len(_MOVED) :])
        for email, other in self._other_languages(conn, issue_id, recipients):
            reasons[email] = f"had this week's issue in another language ({other})"
        for email, old, other in self._at_old_addresses(conn, issue_id, recipients, moved):
            reasons[email] = f"had this week's issue at {old} ({other}) before the address changed"
        return reasons

    def _at_old_addresses(
        self, conn: Connection, issue_id: str, wanted: Collection[str], moved: Mapping[str, str]
    ) -> list[tuple[str, str, str]]:
        """(recipient, old address, issue id) for recipients of `wanted` who moved from an address whose row
        in this week's issue, in any language, is sent or being sent: one issue a week per reader, whatever
        address it went to."""
        formers: dict[str, str] = {}  # old key -> the recipient it now is (a chain of moves followed)
        for old, new in moved.items():
            hops = 0
            while new not in wanted and new in moved and hops < 20:
                new, hops = moved[new], hops + 1
            if new in wanted and old != new:
                formers[old] = new
        if not formers:
            return []
        found = []
        week = [issue_id, *self._week_issues(conn, issue_id)]
        for batch in _chunks(sorted(formers)):
            rows = conn.execute(
                sa.select(d.recipient, d.issue_id).where(
                    d.issue_id.in_(week), d.recipient.in_(batch), d.state.in_((State.SENT, State.SENDING))
                )
            )
            found += [(formers[old], old, other) for old, other in rows]
        return found

    @staticmethod
    def _week_issues(conn: Connection, issue_id: str) -> list[str]:
        """The other languages' issues of the week of `issue_id`, from the issues table (one row per issue
        planned), so no plan scans the deliveries of every past week."""
        label = issue_id.rpartition("/")[2]  # "ko/2026-W47" -> "2026-W47"
        week_of = sa.or_(issues.c.issue_id == label, issues.c.issue_id.endswith(f"/{label}", autoescape=True))
        return [i for i in conn.execute(sa.select(issues.c.issue_id).where(week_of)).scalars() if i != issue_id]

    def _other_languages(self, conn: Connection, issue_id: str, wanted: Collection[str]) -> list[tuple[str, str]]:
        """(recipient, issue id) for recipients of `wanted` whose row in another language's issue of the
        same week is sent or being sent."""
        others = self._week_issues(conn, issue_id)
        found = []
        for other in others:
            rows = conn.execute(
                sa.select(d.recipient).where(d.issue_id == other, d.state.in_((State.SENT, State.SENDING)))
            )
            found += [(r, other) for r in rows.scalars() if r in wanted]
        return found

    def forecast(
        self,
        issue_id: str,
        recipients: Collection[str],
        skipped: Mapping[str, str],
        now_at: datetime,
        is_dead: Callable[[str], bool],
    ) -> tuple[list[str], IssueStatus]:
        """What plan() and the claims of a send at `now_at` would do, without writing anything (a dry run):
        (the recipients it would send to now, the issue's status once it has). Rows already sent or failed
        stay as they are; rows another live sender holds stay `sending`."""
        stale_at = now_at - self.lease
        with self.store.connect() as conn:
            reasons = self._excluded(conn, issue_id, recipients, skipped)
            rows = conn.execute(
                sa.select(d.recipient, d.state, d.reply, d.next_attempt_at, d.worker, d.updated_at).where(
                    d.issue_id == issue_id
                )
            )
            existing = {row.recipient: row for row in rows}
        journaled = self._journaled(issue_id)
        to_send: list[str] = []
        counts: dict[str, int] = dict.fromkeys(State, 0)
        why: dict[str, int] = {}

        def skip(reason: str) -> None:
            counts[State.SKIPPED] += 1
            why[reason] = why.get(reason, 0) + 1

        for r in recipients:
            if r in reasons:
                continue
            row = existing.get(r)
            if row is None or row.state in (State.PENDING, State.SKIPPED):
                to_send.append(r)
            elif row.state == State.DEFERRED:
                due = row.next_attempt_at is None or row.next_attempt_at <= now_at
                if due:
                    to_send.append(r)
                else:
                    counts[State.DEFERRED] += 1
            elif row.state == State.SENDING:
                if r in journaled:  # sent by a run that is gone: the send records it, sends nothing
                    counts[State.SENT] += 1
                elif row.updated_at < stale_at or (row.worker and is_dead(row.worker)):
                    to_send.append(r)
                else:
                    counts[State.SENDING] += 1
            else:  # sent or failed: a send leaves them alone
                counts[row.state] += 1
        for r, row in existing.items():
            if r in recipients and r not in reasons:
                continue
            if row.state in (State.PENDING, State.DEFERRED, State.SKIPPED):
                skip(reasons.get(r, REMOVED))  # as plan() records it
            else:
                counts[row.state] += 1
        for r, reason in reasons.items():
            if r not in existing:
                skip(reason)
        counts[State.SENT] += len(to_send)
        return to_send, IssueStatus(issue_id, counts, (), why)

    # -- claiming and recording -------------------------------------------------------------------

    def claim(self, issue_id: str, worker: str, limit: int, now_at: datetime) -> list[str]:
        """Atomically move up to `limit` rows to `sending` for `worker` and return their recipients.

        Takes pending rows first, then deferred rows whose next attempt is due, then `sending` rows whose
        lease (default 10 minutes without an update) ran out: their worker died. That last case is where
        "in flight at a kill" duplicates come from: a message the dead worker had handed to the server
        but not yet recorded is claimed and sent again. deliver() bounds how many that can be.
        Recipients that were suppressed since plan() are marked skipped here instead of claimed.
        """
        stale_at = now_at - self.lease
        conditions = [
            self._pending,
            sa.and_(d.state == State.DEFERRED, d.next_attempt_at <= now_at),
            sa.and_(d.state == State.SENDING, d.updated_at < stale_at),
        ]
        claimed: list[str] = []
        with self.store.begin() as conn:
            for condition in conditions:
                need = limit - len(claimed)
                if need <= 0:
                    break
                found = self._candidates(conn, issue_id, worker, condition, need)
                if not found:
                    continue
                gone = self._skip_suppressed(conn, issue_id, found, worker, now_at)
                found = [r for r in found if r not in gone]
                if found:
                    conn.execute(
                        sa.update(deliveries)
                        .where(d.issue_id == issue_id, d.recipient.in_(found))
                        .values(state=State.SENDING, worker=worker, updated_at=now_at)
                    )
                    claimed += found
        if claimed:
            self._cursor[worker] = max(claimed)
        return claimed

    @staticmethod
    def _skip_suppressed(
        conn: Connection, issue_id: str, recipients: Sequence[str], worker: str, now_at: datetime
    ) -> set[str]:
        """Mark the rows of `recipients` who are suppressed now skipped ("unsubscribed"); those recipients."""
        gone: set[str] = set()
        for batch in _chunks(list(recipients)):
            gone.update(conn.execute(sa.select(suppressions.c.email).where(suppressions.c.email.in_(batch))).scalars())
        for batch in _chunks(sorted(gone)):
            conn.execute(
                sa.update(deliveries)
                .where(d.issue_id == issue_id, d.recipient.in_(batch), d.state != State.SENT)
                .values(state=State.SKIPPED, reply="unsubscribed", worker=worker, updated_at=now_at)
            )
        return gone

    def drop_suppressed(self, issue_id: str, worker: str, recipients: Sequence[str], now_at: datetime) -> set[str]:
        """Of the rows `worker` claimed and has not sent, those whose reader left since (an unsubscribe while
        the send runs: a claim can be minutes old under rate limits) become skipped; their recipients."""
        with self.store.begin() as conn:
            return self._skip_suppressed(conn, issue_id, recipients, worker, now_at)

    def _candidates(self, conn: Connection, issue_id: str, worker: str, condition: Any, need: int) -> list[str]:
        after = self._cursor.get(worker, "") if condition is self._pending else ""
        while True:
            query = sa.select(d.recipient).where(d.issue_id == issue_id, condition, d.recipient > after)
            query = query.order_by(d.recipient).limit(need)
            if self.is_postgres:
                query = query.with_for_update(skip_locked=True)
            found = list(conn.execute(query).scalars())
            if found or not after:
                return found
            after = ""  # wrap around once: rows released by a stopped worker sit before the cursor

    def carry(self, issue_id: str, recipient: str, how: str, now_at: datetime) -> bool:
        """Record that `recipient` gets issue `issue_id` inside another message (`how`: the welcome email),
        so no send of that issue mails it to them again: True when that message may carry it (they have no
        row in it, or a skipped one, or one this same record made), False when the issue's own send has or
        will have them (a pending, sending, sent or failed row). One transaction: a plan of the issue at the
        same moment either sees this row or makes the one this reads back."""
        key = address_key(recipient)
        row = {"issue_id": issue_id, "recipient": key, "attempts": 0, "message_id": "", "worker": ""}
        mine = {"state": State.SENT, "reply": how, "updated_at": now_at}
        with self.store.begin() as conn:
            conn.execute(self.store.insert(deliveries).on_conflict_do_nothing(), [{**row, **mine}])
            conn.execute(
                sa.update(deliveries)
                .where(d.issue_id == issue_id, d.recipient == key, d.state == State.SKIPPED)
                .values(**mine)
            )
            state, reply = conn.execute(
                sa.select(d.state, d.reply).where(d.issue_id == issue_id, d.recipient == key)
            ).one()
        return bool(state == State.SENT and reply == how)

    def release_dead(self, issue_id: str, is_dead: Callable[[str], bool], now_at: datetime) -> int:
        """Hand back the rows of workers known to be dead (a killed process on this host) without
        waiting for their lease, once the journals of dead runs are committed. Their in-flight messages
        may be sent twice: the same bound as a lease."""
        with replaying(self.journal) if self.journal is not None else contextlib.nullcontext():
            if self.journal is not None:
                replay(self.journal, self.record_many)
            with self.store.begin() as conn:
                holders = conn.execute(
                    sa.select(d.worker).where(d.issue_id == issue_id, d.state == State.SENDING).distinct()
                ).scalars()
                dead = [w for w in holders if w and is_dead(w)]
                if not dead:
                    return 0
                result = conn.execute(
                    sa.update(deliveries)
                    .where(d.issue_id == issue_id, d.state == State.SENDING, d.worker.in_(dead))
                    .values(state=State.PENDING, updated_at=now_at)
                )
                return int(result.rowcount or 0)

    def skip(self, issue_id: str, recipients: Sequence[str], reason: str, now_at: datetime) -> None:
        """Mark claimed or pending rows skipped (a claimed recipient this run does not know)."""
        with self.store.begin() as conn:
            for batch in _chunks([address_key(r) for r in recipients]):
                conn.execute(
                    sa.update(deliveries)
                    .where(
                        d.issue_id == issue_id,
                        d.recipient.in_(batch),
                        d.state.in_((State.PENDING, State.SENDING, State.DEFERRED)),
                    )
                    .values(state=State.SKIPPED, reply=reason, updated_at=now_at)
                )

    def due(self, issue_id: str, now_at: datetime) -> int:
        """How many rows a claim at `now_at` could take: the work left for this run."""
        stale_at = now_at - self.lease
        with self.store.connect() as conn:
            query = sa.select(sa.func.count()).where(
                d.issue_id == issue_id,
                sa.or_(
                    d.state == State.PENDING,
                    sa.and_(d.state == State.DEFERRED, d.next_attempt_at <= now_at),
                    sa.and_(d.state == State.SENDING, d.updated_at < stale_at),
                ),
            )
            return int(conn.execute(query).scalar() or 0)

    def held(self, issue_id: str) -> int:
        """Rows claimed (`sending`) by some worker: after a run's own workers are done, another sender's."""
        with self.store.connect() as conn:
            query = sa.select(sa.func.count()).where(d.issue_id == issue_id, d.state == State.SENDING)
            return int(conn.execute(query).scalar() or 0)

    def renew(self, issue_id: str, worker: str, now_at: datetime) -> set[str]:
        """Refresh the lease of every row `worker` holds, so a slow (rate-limited) worker keeps them; the
        recipients it still holds. A worker that stalled past its lease (a paused machine) may have lost
        rows to another sender, which sends them: they are not its to send any more."""
        held = (d.issue_id == issue_id, d.state == State.SENDING, d.worker == worker)
        with self.store.begin() as conn:
            conn.execute(sa.update(deliveries).where(*held).values(updated_at=now_at))
            return set(conn.execute(sa.select(d.recipient).where(*held)).scalars())

    def release(self, issue_id: str, worker: str, recipients: Sequence[str], now_at: datetime) -> None:
        """Hand claimed-but-unsent rows back (a clean stop), so nobody waits for the lease."""
        with self.store.begin() as conn:
            for batch in _chunks(list(recipients)):
                conn.execute(
                    sa.update(deliveries)
                    .where(d.issue_id == issue_id, d.recipient.in_(batch), d.state == State.SENDING, d.worker == worker)
                    .values(state=State.PENDING, worker="", updated_at=now_at)
                )

    def record(self, issue_id: str, recipient: str, outcome: SendResult, now_at: datetime) -> None:
        self.record_many(issue_id, [(recipient, outcome)], now_at)

    def record_many(self, issue_id: str, results: Sequence[tuple[str, SendResult]], now_at: datetime) -> None:
        """Store several outcomes in one transaction.

        sent: time, Message-ID and reply (always wins, even over a row someone reclaimed);
        deferred: attempts + 1, next try after retry_base * 2**(attempts-1), failed after max_attempts;
        failed: the server's reply. Deferred and failed never overwrite a sent row.
        """
        if not results:
            return
        sent = [(address_key(r), o) for r, o in results if o.status == State.SENT]
        other = {address_key(r): o for r, o in results if o.status != State.SENT}
        with self.store.begin() as conn:
            if sent:
                conn.execute(
                    sa.update(deliveries)
                    .where(d.issue_id == issue_id, d.recipient == sa.bindparam("b_r"))
                    .values(
                        state=State.SENT,
                        attempts=d.attempts + 1,
                        message_id=sa.bindparam("b_mid"),
                        reply=sa.bindparam("b_reply"),
                        updated_at=now_at,
                        next_attempt_at=None,
                    ),
                    [{"b_r": r, "b_mid": o.message_id, "b_reply": o.reply} for r, o in sent],
                )
            if other:
                self._record_unsent(conn, issue_id, other, now_at)

    def writer(self) -> OutcomeWriter:
        return OutcomeWriter(self)

    def _record_unsent(
        self, conn: Connection, issue_id: str, outcomes: Mapping[str, SendResult], now_at: datetime
    ) -> None:
        attempts = dict(
            conn.execute(
                sa.select(d.recipient, d.attempts).where(
                    d.issue_id == issue_id, d.recipient.in_(list(outcomes)), d.state != State.SENT
                )
            ).all()
        )
        rows = []
        for r, outcome in outcomes.items():
            if r not in attempts:
                continue
            tries = attempts[r] + 1
            state, next_at = State.FAILED, None
            if outcome.status == State.DEFERRED and tries < self.max_attempts:
                state = State.DEFERRED
                next_at = now_at + timedelta(seconds=self.retry_base_seconds * 2 ** (tries - 1))
            rows.append({"b_r": r, "b_state": state, "b_tries": tries, "b_reply": outcome.reply, "b_next": next_at})
        if rows:
            conn.execute(
                sa.update(deliveries)
                .where(d.issue_id == issue_id, d.recipient == sa.bindparam("b_r"), d.state != State.SENT)
                .values(
                    state=sa.bindparam("b_state"),
                    attempts=sa.bindparam("b_tries"),
                    reply=sa.bindparam("b_reply"),
                    next_attempt_at=sa.bindparam("b_next", type_=UtcDateTime),
                    updated_at=now_at,
                ),
                rows,
            )

    # -- reading ----------------------------------------------------------------------------------

    def _journaled(self, issue_id: str) -> set[str]:
        """Recipients of `issue_id` whose sent outcomes are in the journal of a run that is gone, not yet
        in the database (the next send records them first)."""
        return unrecorded(self.journal).get(issue_id, set()) if self.journal is not None else set()

    def status(self, issue_id: str) -> IssueStatus:
        journaled = self._journaled(issue_id)
        with self.store.connect() as conn:
            counts: dict[str, int] = dict.fromkeys(State, 0)
            for state, n in conn.execute(
                sa.select(d.state, sa.func.count()).where(d.issue_id == issue_id).group_by(d.state)
            ):
                counts[state] = n
            for batch in _chunks(sorted(journaled)):
                for state in conn.execute(
                    sa.select(d.state).where(d.issue_id == issue_id, d.recipient.in_(batch), d.state != State.SENT)
                ).scalars():
                    counts[state] -= 1  # counted as the next send will record it
                    counts[State.SENT] += 1
            skipped: dict[str, int] = dict(
                conn.execute(
                    sa.select(d.reply, sa.func.count())
                    .where(d.issue_id == issue_id, d.state == State.SKIPPED)
                    .group_by(d.reply)
                ).all()
            )
            failures = tuple(
                self._row(row)
                for row in conn.execute(
                    sa.select(deliveries)
                    .where(d.issue_id == issue_id, d.state.in_((State.FAILED, State.DEFERRED)))
                    .order_by(d.state, d.recipient)
                    .limit(1000)
                )
            )
        return IssueStatus(issue_id, counts, failures, skipped)

    def deliveries(self, issue_id: str) -> list[Delivery]:
        with self.store.connect() as conn:
            rows = conn.execute(sa.select(deliveries).where(d.issue_id == issue_id).order_by(d.recipient))
            return [self._row(row) for row in rows]

    def _of_week(self, week_label: str) -> Any:
        # an issue id is the week label, or "<language>/<label>" for the other languages of a site
        return sa.or_(d.issue_id == week_label, d.issue_id.like(f"%/{week_label}"))

    def open_rows(self, week_label: str) -> int:
        """Rows of the week's issues (every language) that still need a send: pending, sending, deferred."""
        with self.store.connect() as conn:
            query = sa.select(sa.func.count()).where(
                self._of_week(week_label), d.state.in_((State.PENDING, State.SENDING, State.DEFERRED))
            )
            return int(conn.execute(query).scalar() or 0)

    def next_retry_at(self, week_label: str) -> datetime | None:
        """When the earliest deferred row of the week's issues may be tried again."""
        with self.store.connect() as conn:
            query = sa.select(sa.func.min(d.next_attempt_at)).where(
                self._of_week(week_label), d.state == State.DEFERRED
            )
            found = conn.execute(query).scalar()
        return UtcDateTime().process_result_value(found, self.engine.dialect) if isinstance(found, datetime) else None

    def unfinished_issues(self, since_at: datetime) -> list[str]:
        """Issue ids with rows that still need a send, touched at or after `since_at`."""
        with self.store.connect() as conn:
            query = sa.select(d.issue_id).where(
                d.state.in_((State.PENDING, State.SENDING, State.DEFERRED)), d.updated_at >= since_at
            )
            return sorted(set(conn.execute(query.distinct()).scalars()))

    def issues(self) -> list[str]:
        """Issue ids in the ledger, newest label last."""
        with self.store.connect() as conn:
            return sorted(conn.execute(sa.select(d.issue_id).distinct()).scalars())

    @staticmethod
    def _row(row: Any) -> Delivery:
        return Delivery(
            issue_id=row.issue_id,
            recipient=row.recipient,
            state=State(row.state),
            attempts=row.attempts,
            message_id=row.message_id,
            reply=row.reply,
            updated_at=row.updated_at,
            next_attempt_at=row.next_attempt_at,
        )


class OutcomeWriter:
    """Records outcomes over one connection of its own: the hot path of a send.

    A sent outcome is one UPDATE written in the driver's own SQL, executed with the DBAPI cursor: through
    SQLAlchemy Core (statement building, cache key, pool checkout and reset) one single-row commit took
    621 µs on SQLite here, over the bare cursor 77 µs, and deliver() commits once per message and
    connection. Deferred and failed outcomes (rare) take record_many's way.

    On PostgreSQL a group is one statement over arrays (unnest) on a connection in autocommit mode: one
    round trip that is its own transaction, where executemany and COMMIT took two. Every round trip
    gives up the interpreter lock, and getting it back behind workers that build messages costs up to the
    switch interval (5 ms): with two, a commit took 3.9 ms (median) inside a send of 10,000 messages while
    the same commit alone takes 0.75 ms, and commits are what each worker waits for before its next final
    dot. The commit still waits for the server's flush as synchronous_commit says (the user's setting).
    """

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        engine = ledger.store.engine
        self.sqlite = engine.dialect.name == "sqlite"
        self.postgres = engine.dialect.name == "postgresql"
        mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        if self.postgres:
            self.sql = (
                "UPDATE deliveries AS d SET state='sent', attempts=d.attempts+1, message_id=v.mid, "
                "reply=v.reply, updated_at=%s, next_attempt_at=NULL "
                "FROM unnest(%s::text[], %s::text[], %s::text[]) AS v(r, mid, reply) "
                "WHERE d.issue_id=%s AND d.recipient=v.r"
            )
        else:
            self.sql = (
                f"UPDATE deliveries SET state='sent', attempts=attempts+1, message_id={mark}, reply={mark}, "
                f"updated_at={mark}, next_attempt_at=NULL WHERE issue_id={mark} AND recipient={mark}"
            )
        # stored as naive UTC (UtcDateTime), then as the dialect stores a DateTime (SQLite: text)
        self._plain: Callable[[Any], Any] | None = (
            sa.DateTime().dialect_impl(engine.dialect).bind_processor(engine.dialect)
        )
        self._errors: tuple[type[BaseException], ...] = (engine.dialect.dbapi.Error,) if engine.dialect.dbapi else ()
        try:
            self.raw = engine.raw_connection()
            if self.postgres:
                driver: Any = self.raw.driver_connection
                # never back into the pool in autocommit mode: closed for good when the run ends
                self.raw.detach()
                driver.rollback()  # the pool's ping may have opened a transaction
                driver.autocommit = True
            # one cursor for the run: a new psycopg cursor per commit cost about 100 µs of CPU more
            self.cursor = self.raw.cursor()
        except sa.exc.DBAPIError as exc:
            raise ledger.store._failed(exc) from exc
        except self._errors as exc:
            raise self._failed(exc) from exc

    def _failed(self, exc: BaseException) -> LedgerError:
        return LedgerError(
            f"the state database {safe_url(self.ledger.store.url)} failed: {str(exc).strip().splitlines()[0]}",
            "check that it is running and has room; a rerun resumes where this one stopped",
            transient=True,
        )

    def write(self, issue_id: str, results: Sequence[tuple[str, SendResult]], now_at: datetime) -> None:
        sent = [(o.message_id, o.reply, address_key(r)) for r, o in results if o.status == State.SENT]
        other = [(r, o) for r, o in results if o.status != State.SENT]
        if sent:
            naive = now_at.astimezone(UTC).replace(tzinfo=None)
            stamp = self._plain(naive) if self._plain else naive
            cursor = self.cursor
            try:
                if self.postgres:
                    mids, replies, recipients = (list(column) for column in zip(*sent, strict=True))
                    cursor.execute(self.sql, (stamp, recipients, mids, replies, issue_id))
                else:
                    if self.sqlite:
                        cursor.execute("BEGIN IMMEDIATE")
                    cursor.executemany(self.sql, [(mid, reply, stamp, issue_id, r) for mid, reply, r in sent])
                    if self.sqlite:
                        cursor.execute("COMMIT")
                    else:
                        self.raw.commit()
            except self._errors as exc:
                with contextlib.suppress(*self._errors):
                    if self.sqlite:
                        cursor.execute("ROLLBACK")
                    elif not self.postgres:
                        self.raw.rollback()
                raise self._failed(exc) from exc
        if other:
            self.ledger.record_many(issue_id, other, now_at)

    def close(self) -> None:
        with contextlib.suppress(*self._errors, sa.exc.DBAPIError):
            self.cursor.close()
        with contextlib.suppress(*self._errors, sa.exc.DBAPIError):
            self.raw.close()
