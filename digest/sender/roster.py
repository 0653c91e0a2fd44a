"""The subscriber store: who is on the list, in which status, since when and why.

`subscribers.yaml` stays the author's own source: `sync_file` brings it in on every run (new entries added,
changed entries updated, entries gone from the file made inactive) without undoing what readers chose
themselves (an unsubscribe, a bounce, a change of topics made after the author's last edit of that entry).
The weekly send reads the store (`for_send`). Every change of status is one transaction that also keeps the
suppression list in step: unsubscribed, bounced and complained addresses are suppressed (the ledger checks
that list at every plan and claim), and an address made active again leaves it.

Large lists: rows are read and written with SQLAlchemy Core in chunks, never as ORM objects; the file sync
keeps one small tuple per address.
"""

from __future__ import annotations

import hashlib
import itertools
import operator
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from digest.models import SUPPRESSED, State, Status, Subscriber
from digest.records import ImportRow, SubscriberEvent, SubscriberRecord
from digest.sender.store import (
    MOVED_TO,
    Store,
    bounce_messages,
    deliveries,
    open_store,
    request_counts,
    subscriber_events,
    subscribers,
    suppressions,
)
from digest.sender.tokens import new_bounce_tag, new_bounce_tags
from digest.text import address_key

CHUNK = 500
SUPPRESSED_VALUES = frozenset(x.value for x in SUPPRESSED)
s = subscribers.c
e = subscriber_events.c
# read for a send: everyone but the unconfirmed (suppressed ones only to record in the ledger why they are skipped)
SENDABLE = tuple(x.value for x in Status if x != Status.UNCONFIRMED)
# as rows store them (an enum member's .value costs more than the rest of a new row's fields)
_ACTIVE, _INACTIVE, _UNSUBSCRIBED = Status.ACTIVE.value, Status.INACTIVE.value, Status.UNSUBSCRIBED.value


def _tags_text(tags: Iterable[str]) -> str:
    return "\n".join(" ".join(t.split()) for t in tags if t.strip())


def _tags_of(text: str) -> tuple[str, ...]:
    return tuple(text.split("\n")) if text else ()


def file_signature(sub: Subscriber, tags: str | None = None) -> str:
    """What the subscribers file says about one entry: a changed entry is applied, an unchanged one is not
    (so a reader's own later choices survive the author's next run). `tags`: _tags_text(sub.tags), if known."""
    tags = _tags_text(sub.tags) if tags is None else tags
    text = "\x1f".join((sub.name, tags, sub.format, sub.language, "1" if sub.active else "0"))
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()


@dataclass(frozen=True)
class SyncReport:
    added: int = 0
    updated: int = 0
    deactivated: int = 0


@dataclass(frozen=True)
class Request:
    """What a subscribe request leads to: which mail to send now (if any)."""

    mail: str  # "confirm" | "notice" (already subscribed) | "welcome" (no double opt-in) | "" (nothing now)
    email: str
    language: str = ""
    planned: str = ""  # the ledger issue a confirmation was planned under (request(plan=…))
    name: str = ""  # the reader's name, for the mail's To:


class Roster:
    def __init__(self, store: Store | str) -> None:
        self.store = open_store(store)
        self.engine = self.store.engine

    # -- changes of status, with the suppression list kept in step -------------------------------

    def _event(self, conn: Connection, key: str, now_at: datetime, kind: str, status: str, reason: str) -> None:
        conn.execute(
            subscriber_events.insert().values(email=key, at=now_at, kind=kind, status=status, reason=reason[:2000])
        )

    def _suppress(self, conn: Connection, key: str, status: Status, reason: str, now_at: datetime) -> None:
        why = f"{status.value}: {reason}" if reason else status.value
        stmt = self.store.insert(suppressions).on_conflict_do_nothing()
        conn.execute(stmt, {"email": key, "created_at": now_at, "reason": why})

    def _set_status(
        self,
        conn: Connection,
        key: str,
        status: Status,
        reason: str,
        now_at: datetime,
        kind: str = "status",
        **more: Any,
    ) -> bool:
        """Move one subscriber to `status` (True when it changed); suppress or unsuppress to match."""
        current = conn.execute(sa.select(s.status).where(s.email == key)).scalar()
        if current is None:
            return False
        changed = bool(current != status.value)
        conn.execute(
            sa.update(subscribers).where(s.email == key).values(status=status.value, updated_at=now_at, **more)
        )
        if status in SUPPRESSED:
            self._suppress(conn, key, status, reason, now_at)
        elif status == Status.ACTIVE:
            conn.execute(sa.delete(suppressions).where(suppressions.c.email == key))
        if changed or kind != "status":
            self._event(conn, key, now_at, kind, status.value if changed else "", reason)
        return changed

    def set_status(self, email: str, status: Status, reason: str, now_at: datetime, kind: str = "status") -> bool:
        with self.store.begin() as conn:
            return self._set_status(conn, address_key(email), status, reason, now_at, kind)

    def unsubscribe(self, email: str, now_at: datetime, reason: str) -> bool:
        """Suppress an address (known to the store or not); True when it was not suppressed before."""
        key = address_key(email)
        with self.store.begin() as conn:
            before = conn.execute(sa.select(suppressions.c.email).where(suppressions.c.email == key)).scalar()
            if not self._set_status(conn, key, Status.UNSUBSCRIBED, reason, now_at):
                self._suppress(conn, key, Status.UNSUBSCRIBED, reason, now_at)
            return before is None

    def resubscribe(self, email: str, now_at: datetime, reason: str) -> bool:
        """Lift a suppression made by hand or by a link; True when there was one."""
        key = address_key(email)
        with self.store.begin() as conn:
            gone = conn.execute(sa.delete(suppressions).where(suppressions.c.email == key)).rowcount
            status = conn.execute(sa.select(s.status).where(s.email == key)).scalar()
            if status in {x.value for x in SUPPRESSED}:
                self._set_status(conn, key, Status.ACTIVE, reason, now_at)
            return bool(gone)

    # -- the subscribers file --------------------------------------------------------------------

    def sync_file(self, entries: Sequence[Subscriber], source: str, now_at: datetime) -> SyncReport:
        """Bring the file's entries into the store (see the module docstring); idempotent, and safe when several
        senders (several machines) start at once: their syncs run one after another."""
        added = updated = 0
        with self.store.begin() as conn:
            self.store.serialize(conn, "subscribers-file")
            known, gone = self._file_rows(conn, entries)
            # Written a chunk at a time as the entries are compared: a first sync of 100,000 held 200,000
            # row dicts (80 MB) before writing any.
            fresh = _Rows(conn, subscribers, _FILE_ROW_KEYS, _file_row_constants(now_at, source))
            changes = _Writer(lambda rows: conn.execute(_FILE_UPDATE.values(updated_at=now_at), rows))
            events = _Rows(conn, subscriber_events, _EVENT_KEYS, {"at": now_at})
            tags = new_bounce_tags()
            added_reason = f"in {source}"
            vouched: list[str] = []  # a form's unconfirmed sign-ups the file lists: the file is their consent
            for sub in entries:
                key = sub.key
                old = known.get(key, _NEW)
                known[key] = None  # listed in the file this time
                if old is None:
                    continue  # listed twice: the file's loader refuses that, so this is only a guard
                topics = _tags_text(sub.tags) if sub.tags else ""
                sig = file_signature(sub, topics)
                if old is not _NEW and old[0] == sig and old[1]:
                    continue  # unchanged since the last run: the reader's own choices stay
                if old is _NEW:
                    if key in gone:
                        value, reason = _UNSUBSCRIBED, f"{added_reason}; suppressed before: {gone[key]}"
                    else:
                        value, reason = _ACTIVE if sub.active else _INACTIVE, added_reason
                    fresh.add((key, sub.email, sub.name, sub.language, topics, sub.format, value, sig, next(tags)))
                    events.add((key, "added", value, reason))
                    added += 1
                    continue
                wanted = Status.ACTIVE if sub.active else Status.INACTIVE
                status = Status(old[2])
                if status in (Status.ACTIVE, Status.INACTIVE, Status.UNCONFIRMED) and status != wanted:
                    events.add((key, "status", wanted.value, f"as {source} says"))
                    if status == Status.UNCONFIRMED and wanted == Status.ACTIVE:
                        vouched.append(key)
                    status = wanted
                elif not old[1] or old[0] != sig:
                    events.add((key, "updated", "", f"changed in {source}"))
                changes.add(
                    {
                        "b_email": key,
                        "b_address": sub.email,
                        "b_name": sub.name,
                        "b_tags": topics,
                        "b_format": sub.format,
                        "b_language": sub.language,
                        "b_status": status.value,
                        "b_sig": sig,
                    }
                )
                updated += 1
            fresh.flush()
            changes.flush()
            for batch in _batches(vouched):
                conn.execute(
                    sa.update(subscribers)
                    .where(s.email.in_(list(batch)), s.consent_method == "")
                    .values(consent_at=now_at, consent_method="file", consent_source=source, confirm_requested_at=None)
                )
            dropped = [k for k, old in known.items() if old is not None and old[1]]
            del known
            for batch in _batches(dropped):
                keys = list(batch)
                conn.execute(
                    sa.update(subscribers)
                    .where(s.email.in_(keys), s.status == Status.ACTIVE.value)
                    .values(status=Status.INACTIVE.value, updated_at=now_at)
                )
                conn.execute(sa.update(subscribers).where(s.email.in_(keys)).values(in_file=False, file_sig=""))
                for k in keys:
                    events.add((k, "status", "inactive", f"removed from {source}"))
            events.flush()
        return SyncReport(added, updated, len(dropped))

    @staticmethod
    def _file_rows(
        conn: Connection, entries: Sequence[Subscriber]
    ) -> tuple[dict[str, tuple[str, bool, str] | None], dict[str, str]]:
        """({address key: (file signature, in the file, status)}, {suppressed address key: reason}) for the
        file's entries and what it listed last time.

        Only the rows the file is about: a store of 100,000 subscribers from a form or an import is not read
        whole for a file of a few entries. When the file is most of the table (its first sync above all),
        one read of every row costs less than 200 queries of 500 addresses each."""
        columns = sa.select(s.email, s.file_sig, s.in_file, s.status)
        suppressed = sa.select(suppressions.c.email, suppressions.c.reason)
        whole = conn.execute(sa.select(sa.func.count()).select_from(subscribers)).scalar_one() <= 2 * len(entries)
        all_gone = conn.execute(sa.select(sa.func.count()).select_from(suppressions)).scalar_one() <= 2 * len(entries)
        words: dict[str, str] = {}  # a few statuses: one string each, not one per row
        known: dict[str, tuple[str, bool, str] | None] = {
            key: (sig, in_file, words.setdefault(status, status))
            for key, sig, in_file, status in conn.execute(columns if whole else columns.where(s.in_file))
        }
        gone: dict[str, str] = {key: reason for key, reason in conn.execute(suppressed)} if all_gone else {}
        for batch in [] if whole and all_gone else _batches(sub.key for sub in entries):
            if not whole:
                for key, sig, in_file, status in conn.execute(columns.where(s.email.in_(batch))):
                    known[key] = (sig, in_file, words.setdefault(status, status))
            if not all_gone:
                gone.update(
                    (key, reason) for key, reason in conn.execute(suppressed.where(suppressions.c.email.in_(batch)))
                )
        return known, gone

    @staticmethod
    def _event_row(key: str, now_at: datetime, kind: str, status: str, reason: str) -> dict[str, Any]:
        return {"email": key, "at": now_at, "kind": kind, "status": status, "reason": reason}

    @staticmethod
    def _new_row(sub: Subscriber, sig: str, status: Status, now_at: datetime, source: str) -> dict[str, Any]:
        return {
            "email": sub.key,
            "address": sub.email,
            "name": sub.name,
            "language": sub.language,
            "tags": _tags_text(sub.tags),
            "format": sub.format,
            "status": status.value,
            "file_sig": sig,
            "tag": new_bounce_tag(),
        } | _file_row_constants(now_at, source)

    # -- the weekly send -------------------------------------------------------------------------

    def for_send(self, now_at: datetime) -> tuple[tuple[Subscriber, ...], dict[str, str]]:
        """Every confirmed subscriber, and why those who get nothing are skipped (paused, unsubscribed,
        bounced, complained: the ledger records the reason). Unconfirmed addresses are not read at all."""
        found: list[Subscriber] = []
        skipped: dict[str, str] = {}
        # Topics, format and language take a few distinct values over the whole list: one object each
        # instead of one per row (the driver makes a new string per row; about 10 MB per 100,000).
        topics: dict[str, tuple[str, ...]] = {}
        words: dict[str, str] = {}
        query = sa.select(s.address, s.name, s.tags, s.format, s.language, s.status, s.paused_until, s.tag)
        query = query.where(s.status.in_(SENDABLE)).order_by(s.email)
        with self.store.connect() as conn:
            for address, name, tags, fmt, language, status, paused_until, tag in conn.execution_options(
                yield_per=2000
            ).execute(query):
                active = status == _ACTIVE
                if active and paused_until is not None and paused_until > now_at:
                    day = paused_until.astimezone(now_at.tzinfo).date()  # in now_at's zone: the site's
                    skipped[address_key(address)] = f"paused until {day.isoformat()}"
                elif status in SUPPRESSED_VALUES:
                    skipped[address_key(address)] = status
                chosen = topics.get(tags)
                if chosen is None:
                    chosen = topics[tags] = _tags_of(tags)
                fmt = words.setdefault(fmt, fmt)
                language = words.setdefault(language, language)
                found.append(Subscriber(address, name, chosen, fmt, active, None, language, tag))
        return tuple(found), skipped

    # -- reading ---------------------------------------------------------------------------------

    def get(self, email: str, *, events: bool = True) -> SubscriberRecord | None:
        key = address_key(email)
        with self.store.connect() as conn:
            row = conn.execute(sa.select(subscribers).where(s.email == key)).first()
            if row is None:
                return None
            history: tuple[SubscriberEvent, ...] = ()
            if events:
                history = tuple(
                    SubscriberEvent(at, kind, status, reason)
                    for at, kind, status, reason in conn.execute(
                        sa.select(e.at, e.kind, e.status, e.reason).where(e.email == key).order_by(e.at, e.id)
                    )
                )
            soft = self._soft_count(conn, key, None)
        return _record(row, soft, history)

    def records(self, statuses: Sequence[str] = ()) -> Iterator[SubscriberRecord]:
        """Every subscriber (of these statuses), by address, read in batches."""
        query = sa.select(subscribers).order_by(s.email)
        if statuses:
            query = query.where(s.status.in_(list(statuses)))
        with self.store.connect() as conn:
            for row in conn.execution_options(yield_per=2000).execute(query):
                yield _record(row, 0, ())

    def listed_in_file(self) -> int:
        """How many active subscribers the subscribers file brought in (and lists, as of its last sync)."""
        with self.store.connect() as conn:
            query = sa.select(sa.func.count()).where(s.in_file.is_(True), s.status == Status.ACTIVE.value)
            return int(conn.execute(query).scalar_one())

    def counts(self) -> dict[str, int]:
        with self.store.connect() as conn:
            found: dict[str, int] = dict(conn.execute(sa.select(s.status, sa.func.count()).group_by(s.status)).all())
        return {status.value: int(found.get(status.value, 0)) for status in Status}

    def tag_owner(self, tags: Sequence[str]) -> str:
        """The address of the first of `tags` that belongs to a subscriber, else ""."""
        if not tags:
            return ""
        with self.store.connect() as conn:
            owners = dict(conn.execute(sa.select(s.tag, s.email).where(s.tag.in_(list(tags)))).all())
        return next((str(owners[t]) for t in tags if t in owners), "")

    def former_address(self, addresses: Iterable[str], owner: str) -> str:
        """The first of `addresses` that `owner` had before changing address (suppressed as moved to it),
        else "": a bounce for that address is the old mailbox's, not the reader's new one."""
        keys = [address_key(a) for a in addresses]
        if not keys:
            return ""
        with self.store.connect() as conn:
            reasons = dict(
                conn.execute(
                    sa.select(suppressions.c.email, suppressions.c.reason).where(suppressions.c.email.in_(keys))
                ).all()
            )
        for key in keys:
            moved = str(reasons.get(key, "")).partition(MOVED_TO)[2]
            if moved and address_key(moved) == address_key(owner):
                return key
        return ""

    def known(self, email: str) -> bool:
        with self.store.connect() as conn:
            return conn.execute(sa.select(s.id).where(s.email == address_key(email))).first() is not None

    # -- by hand -----------------------------------------------------------------------------------

    def add(
        self,
        sub: Subscriber,
        now_at: datetime,
        *,
        status: Status,
        method: str,
        source: str,
        ip: str = "",
        consent_at: datetime | None = None,
    ) -> bool:
        """A new subscriber (True), or False when the address is already in the store."""
        with self.store.begin() as conn:
            return self._add(
                conn, sub, now_at, status=status, method=method, source=source, ip=ip, consent_at=consent_at
            )

    def _add(
        self,
        conn: Connection,
        sub: Subscriber,
        now_at: datetime,
        *,
        status: Status,
        method: str,
        source: str,
        ip: str = "",
        consent_at: datetime | None = None,
    ) -> bool:
        key = sub.key
        if conn.execute(sa.select(s.id).where(s.email == key)).first() is not None:
            return False
        row = self._new_row(sub, "", status, now_at, source)
        consented = status == Status.ACTIVE
        row.update(
            origin=method,
            in_file=False,
            consent_method=method if consented else "",
            consent_source=source if consented else "",
            consent_at=(consent_at or now_at) if consented else None,
            consent_ip=ip if consented else "",
        )
        conn.execute(subscribers.insert().values(**row))
        self._event(conn, key, now_at, "added", status.value, f"{method}: {source}" if source else method)
        if status in SUPPRESSED:
            self._suppress(conn, key, status, method, now_at)
        return True

    def forget(self, email: str) -> bool:
        """Delete everything kept about an address: its row, its history and its suppression."""
        key = address_key(email)
        with self.store.begin() as conn:
            done = conn.execute(sa.delete(subscribers).where(s.email == key)).rowcount
            conn.execute(sa.delete(subscriber_events).where(e.email == key))
            gone = conn.execute(sa.delete(suppressions).where(suppressions.c.email == key)).rowcount
            return bool(done or gone)

    # -- the subscribe form and double opt-in ------------------------------------------------------

    def request(
        self,
        sub: Subscriber,
        now_at: datetime,
        *,
        page: str,
        ip: str,
        double_opt_in: bool,
        interval: timedelta,
        plan: str = "",
        method: str = "form",
    ) -> Request:
        """A subscribe request from the form (or, `method` "cli", `digest subscribers add --confirm`). At most
        one mail per address per `interval`: the mail slot is taken in the same transaction as the check, so
        a thousand requests at once send one mail. With `plan`, a confirmation is planned in the ledger under
        that issue in the same transaction too: a process stopped before sending it leaves it owed there
        (send_confirmations), not lost."""
        key = sub.key
        slot_free = sa.or_(s.confirm_mail_at.is_(None), s.confirm_mail_at <= now_at - interval)
        with self.store.begin() as conn:
            row = conn.execute(sa.select(s.status, s.language, s.name).where(s.email == key)).first()
            if row is None:
                status = Status.UNCONFIRMED if double_opt_in else Status.ACTIVE
                self._add(conn, sub, now_at, status=status, method=method, source=page, ip=ip)
                if status == Status.ACTIVE:
                    return Request("welcome", key, sub.language)
                conn.execute(
                    sa.update(subscribers)
                    .where(s.email == key)
                    .values(confirm_requested_at=now_at, confirm_mail_at=now_at, consent_source=page, consent_ip=ip)
                )
                self._event(conn, key, now_at, "subscribe", "", _origin(method, page))
                planned = self._plan(conn, plan, key, now_at)
                return Request("confirm", key, sub.language, planned, sub.name)
            status, language, name = Status(row[0]), row[1], sub.name or str(row[2] or "")
            # Someone who left (or an author's inactive entry) asks again: they confirm again, whatever the
            # store says, and only the confirmation makes them active.
            wants_confirm = status != Status.ACTIVE
            values: dict[str, Any] = {"confirm_mail_at": now_at}
            if wants_confirm:
                values.update(confirm_requested_at=now_at, consent_source=page, consent_ip=ip)
                if sub.language:  # a new opt-in, in the form's language (still nothing is sent them before the button)
                    values.update(language=sub.language)
            taken = conn.execute(sa.update(subscribers).where(s.email == key, slot_free).values(**values)).rowcount
            if not taken:
                return Request("", key, sub.language or language)
            self._event(conn, key, now_at, "subscribe", "", _origin(method, page))
            # The mail answers the form, in its language. An active reader's own language is theirs to change
            # on the preference page: anyone can post the form with their address.
            if wants_confirm:
                planned = self._plan(conn, plan, key, now_at)
                return Request("confirm", key, sub.language or language, planned, name)
            return Request("notice", key, sub.language or language, name=name)

    def _plan(self, conn: Connection, issue_id: str, key: str, now_at: datetime) -> str:
        """A confirmation mail to `key`, pending in the ledger under `issue_id` (none without one). Not for
        an address the ledger suppresses (someone who left and asks again): the ledger would skip it, so
        their confirmation goes out directly, as it always did."""
        if not issue_id:
            return ""
        suppressed = conn.execute(sa.select(suppressions.c.email).where(suppressions.c.email == key)).first()
        if suppressed is None:
            row = {"issue_id": issue_id, "recipient": key, "state": State.PENDING, "attempts": 0, "reply": ""}
            row |= {"message_id": "", "worker": "", "updated_at": now_at}
            conn.execute(self.store.insert(deliveries).on_conflict_do_nothing(), [row])
            return issue_id
        return ""

    def free_mail_slot(self, email: str, taken_at: datetime) -> bool:
        """Give back the mail slot `request` took at `taken_at`, when its mail could not be sent: the next
        request mails at once, and a confirmation still owed is sent through the ledger by the next
        `send_confirmations` (the service's tick, `digest run`)."""
        key = address_key(email)
        with self.store.begin() as conn:
            freed = conn.execute(
                sa.update(subscribers).where(s.email == key, s.confirm_mail_at == taken_at).values(confirm_mail_at=None)
            ).rowcount
        return bool(freed)

    def confirm(self, email: str, now_at: datetime, days: int) -> str:
        """The button of the confirmation page: "confirmed", "already" (active before) or "expired"."""
        key = address_key(email)
        with self.store.begin() as conn:
            row = conn.execute(
                sa.select(s.status, s.confirm_requested_at, s.consent_source, s.consent_ip).where(s.email == key)
            ).first()
            if row is None:
                return "expired"
            status, asked_at, page, ip = row
            if status == Status.ACTIVE.value:
                return "already"
            if asked_at is None or asked_at < now_at - timedelta(days=days):
                return "expired"
            self._set_status(
                conn,
                key,
                Status.ACTIVE,
                "confirmed by the reader (double opt-in)",
                now_at,
                kind="confirmed",
                confirm_requested_at=None,
                consent_at=now_at,
                consent_method="form",
                consent_source=page,
                consent_ip=ip,
            )
            return "confirmed"

    def _waiting(self, now_at: datetime, days: int) -> Any:
        """Unconfirmed addresses whose request is still open (its link would still confirm)."""
        cutoff = now_at - timedelta(days=days)
        return sa.and_(
            s.status == Status.UNCONFIRMED.value, s.confirm_requested_at.is_not(None), s.confirm_requested_at >= cutoff
        )

    def owes_confirmations(self, now_at: datetime, days: int) -> bool:
        """Whether someone waits for a confirmation mail that never went out (an import that stopped)."""
        with self.store.connect() as conn:
            query = sa.select(s.email).where(self._waiting(now_at, days), s.confirm_mail_at.is_(None)).limit(1)
            return conn.execute(query).first() is not None

    def plan_confirmations(self, issue_id: str, now_at: datetime, days: int) -> int:
        """Take the mail slot of every address still owed its first confirmation mail (imported without
        consent) and plan its mail in the ledger under `issue_id`, in one transaction: after a crash either
        both happened (the ledger then sends it exactly once) or neither (the next call plans it). Those who
        got one are left to `subscribe.confirm_interval_hours`, like the form's requests."""
        owed = sa.and_(self._waiting(now_at, days), s.confirm_mail_at.is_(None))
        with self.store.begin() as conn:
            keys = list(
                conn.execute(
                    sa.update(subscribers).where(owed).values(confirm_mail_at=now_at).returning(s.email)
                ).scalars()
            )
            base = {"issue_id": issue_id, "attempts": 0, "message_id": "", "worker": "", "updated_at": now_at}
            insert = self.store.insert(deliveries).on_conflict_do_nothing()
            for batch in _batches(sorted(keys)):
                conn.execute(insert, [{**base, "recipient": k, "state": State.PENDING, "reply": ""} for k in batch])
        return len(keys)

    def awaiting_confirmation(self, emails: Iterable[str], now_at: datetime, days: int) -> list[Subscriber]:
        """Those of `emails` who still wait to confirm (the others confirmed, left or were forgotten)."""
        found: list[Subscriber] = []
        with self.store.connect() as conn:
            for batch in _batches(sorted({address_key(x) for x in emails})):
                query = sa.select(s.address, s.name, s.tags, s.format, s.language, s.tag).where(
                    s.email.in_(list(batch)), self._waiting(now_at, days)
                )
                for r in conn.execute(query):
                    found.append(
                        Subscriber(r.address, r.name, _tags_of(r.tags), r.format, True, None, r.language, r.tag)
                    )
        return found

    def expire_unconfirmed(self, now_at: datetime, days: int) -> int:
        """Forget addresses that never confirmed within `days`: nothing is kept about them."""
        cutoff = now_at - timedelta(days=days)
        with self.store.begin() as conn:
            keys = list(
                conn.execute(
                    sa.select(s.email).where(s.status == Status.UNCONFIRMED.value, s.created_at < cutoff)
                ).scalars()
            )
            for batch in _batches(keys):
                conn.execute(sa.delete(subscribers).where(s.email.in_(list(batch))))
                conn.execute(sa.delete(subscriber_events).where(e.email.in_(list(batch))))
            # people who left and asked again without confirming: the request lapses, the status stays
            conn.execute(
                sa.update(subscribers)
                .where(s.confirm_requested_at.is_not(None), s.confirm_requested_at < cutoff)
                .values(confirm_requested_at=None)
            )
        return len(keys)

    def client_allowed(self, key: str, limit: int, window: timedelta, now_at: datetime) -> bool:
        """Count one request of a client (a hashed key) in a fixed window; False once over `limit`."""
        start_at = datetime.fromtimestamp(
            now_at.timestamp() // window.total_seconds() * window.total_seconds(), now_at.tzinfo
        )
        with self.store.begin() as conn:
            row = conn.execute(
                sa.select(request_counts.c.window_at, request_counts.c.count).where(request_counts.c.key == key)
            ).first()
            if row is None:
                conn.execute(request_counts.insert().values(key=key, window_at=start_at, count=1))
                return True
            if row[0] != start_at:
                conn.execute(
                    sa.update(request_counts).where(request_counts.c.key == key).values(window_at=start_at, count=1)
                )
                conn.execute(sa.delete(request_counts).where(request_counts.c.window_at < start_at - window))
                return True
            conn.execute(
                sa.update(request_counts).where(request_counts.c.key == key).values(count=request_counts.c.count + 1)
            )
            return int(row[1]) < limit

    # -- preferences -------------------------------------------------------------------------------

    def update_preferences(
        self,
        email: str,
        now_at: datetime,
        *,
        language: str,
        tags: Sequence[str],
        fmt: str,
        pause_weeks: int,
    ) -> bool:
        key = address_key(email)
        values: dict[str, Any] = {"language": language, "tags": _tags_text(tags), "format": fmt, "updated_at": now_at}
        if pause_weeks > 0:
            values["paused_until"] = now_at + timedelta(weeks=pause_weeks)
        elif pause_weeks == 0:
            values["paused_until"] = None
        with self.store.begin() as conn:
            done = conn.execute(sa.update(subscribers).where(s.email == key).values(**values)).rowcount
            if done:
                what = f"topics: {', '.join(tags) or 'all'}; format {fmt}; language {language or 'the site default'}"
                if pause_weeks > 0:
                    what += f"; paused for {pause_weeks} week(s)"
                self._event(conn, key, now_at, "preferences", "", what)
            return bool(done)

    def request_change(self, email: str, new_email: str, now_at: datetime, interval: timedelta) -> bool:
        """Note a change of address to confirm at the new address; False when a change was asked too recently.
        The limit is on changes (each mails an address the reader types): a first change right after
        subscribing is fine, a second one within `interval` waits."""
        key = address_key(email)
        slot_free = sa.or_(s.pending_email == "", s.confirm_mail_at.is_(None), s.confirm_mail_at <= now_at - interval)
        with self.store.begin() as conn:
            taken = conn.execute(
                sa.update(subscribers)
                .where(s.email == key, slot_free)
                .values(pending_email=address_key(new_email), confirm_mail_at=now_at)
            ).rowcount
            if taken:
                self._event(conn, key, now_at, "address", "", f"change to {new_email} asked; waiting for confirmation")
            return bool(taken)

    def address_taken(self, new_email: str, conn: Connection | None = None) -> bool:
        """The address belongs to someone on the list: any subscriber but one who unsubscribed (an address
        left behind, such as the reader's own before an earlier change, may be taken up again; one that
        bounced or complained may not)."""
        query = sa.select(s.status).where(s.email == address_key(new_email))
        if conn is None:
            with self.store.connect() as own:
                status = own.execute(query).scalar()
        else:
            status = conn.execute(query).scalar()
        return status is not None and status != Status.UNSUBSCRIBED.value

    def change_address(self, email: str, new_email: str, now_at: datetime) -> str:
        """Confirmed at the new address: "changed", "taken" (the new address is a subscriber) or "expired"."""
        key, new_key = address_key(email), address_key(new_email)
        with self.store.begin() as conn:
            pending = conn.execute(sa.select(s.pending_email).where(s.email == key)).scalar()
            if pending != new_key:
                return "expired"
            if self.address_taken(new_key, conn):
                return "taken"
            # an address left behind (unsubscribed): its record makes way, its history joins the reader's
            conn.execute(sa.delete(subscribers).where(s.email == new_key))
            conn.execute(
                sa.update(subscribers)
                .where(s.email == key)
                .values(email=new_key, address=new_email.strip(), pending_email="", updated_at=now_at, in_file=False)
            )
            conn.execute(sa.update(subscriber_events).where(e.email == key).values(email=new_key))
            conn.execute(sa.delete(suppressions).where(suppressions.c.email == new_key))
            self._event(conn, new_key, now_at, "address", "", f"changed from {email} (confirmed at the new address)")
            # the old address gets nothing more, even if an old subscribers file still lists it
            self._suppress(conn, key, Status.UNSUBSCRIBED, f"{MOVED_TO}{new_email.strip()}", now_at)
            return "changed"

    # -- bounces -----------------------------------------------------------------------------------

    def first_time(self, key: str, now_at: datetime) -> bool:
        """Record a mailbox message (or a refused send) as applied; False when it was applied before."""
        with self.store.begin() as conn:
            stmt = self.store.insert(bounce_messages).on_conflict_do_nothing().returning(bounce_messages.c.key)
            return conn.execute(stmt, {"key": key, "at": now_at}).first() is not None

    def _soft_count(self, conn: Connection, key: str, since_at: datetime | None) -> int:
        query = sa.select(sa.func.count()).where(e.email == key, e.kind == "soft bounce")
        if since_at is not None:
            query = query.where(e.at > since_at)
        return int(conn.execute(query).scalar() or 0)

    def record_bounce(
        self, email: str, kind: str, reason: str, now_at: datetime, *, soft_limit: int, soft_days: int
    ) -> str:
        """Apply one finding; return the new status ("" when the status did not change).

        hard -> bounced at once; soft -> bounced when this makes `soft_limit` within `soft_days`;
        complaint -> complained; unsubscribe (a mail to the List-Unsubscribe address) -> unsubscribed."""
        key = address_key(email)
        with self.store.begin() as conn:
            status = conn.execute(sa.select(s.status).where(s.email == key)).scalar()
            if status is None:
                return ""
            if kind == "hard":
                conn.execute(
                    sa.update(subscribers)
                    .where(s.email == key)
                    .values(hard_bounces=s.hard_bounces + 1, last_bounce_at=now_at)
                )
                return self._to(conn, key, Status.BOUNCED, f"hard bounce: {reason}", now_at, status)
            if kind == "soft":
                conn.execute(sa.update(subscribers).where(s.email == key).values(last_bounce_at=now_at))
                self._event(conn, key, now_at, "soft bounce", "", reason)
                count = self._soft_count(conn, key, now_at - timedelta(days=soft_days))
                if count >= soft_limit:
                    why = f"{count} soft bounces in {soft_days} days; last: {reason}"
                    return self._to(conn, key, Status.BOUNCED, why, now_at, status)
                return ""
            if kind == "complaint":
                conn.execute(sa.update(subscribers).where(s.email == key).values(complaints=s.complaints + 1))
                return self._to(conn, key, Status.COMPLAINED, f"complaint: {reason}", now_at, status)
            if kind == "unsubscribe":
                return self._to(conn, key, Status.UNSUBSCRIBED, reason, now_at, status)
        return ""

    def _to(self, conn: Connection, key: str, status: Status, reason: str, now_at: datetime, current: str) -> str:
        if current in (Status.UNSUBSCRIBED.value, Status.COMPLAINED.value) and status == Status.BOUNCED:
            self._event(conn, key, now_at, "bounce", "", reason)  # already out for a stronger reason
            return ""
        return status.value if self._set_status(conn, key, status, reason, now_at) else ""

    # -- import ------------------------------------------------------------------------------------

    def apply_import(
        self,
        rows: Iterable[ImportRow],
        now_at: datetime,
        *,
        source: str,
        dry_run: bool,
        before_mail: Callable[[], object] | None = None,
    ) -> tuple[int, int, int, list[str]]:
        """(added, updated, unchanged, addresses to confirm). Consent comes from the file: an address that
        consented there is active; one that did not waits for the confirmation mail; one the file says left
        is added as unsubscribed, bounced or complained (see import_status). Existing subscribers keep their
        status; only empty fields are filled. `before_mail` is called once, at the first address that will
        need the confirmation mail: an exception from it leaves the store as it was.

        Rows are read and written a batch at a time (one query for the known ones, one multi-row insert for
        each table), so a list of 100,000 neither waits on 300,000 statements nor sits in memory."""
        added = updated = unchanged = 0
        to_confirm: list[str] = []
        seen: set[str] = set()
        fill = (
            sa.update(subscribers)
            .where(s.email == sa.bindparam("b_email"))
            .values(
                name=sa.bindparam("b_name"),
                tags=sa.bindparam("b_tags"),
                language=sa.bindparam("b_language"),
                updated_at=now_at,
            )
        )
        with self.store.begin() as conn:
            if self.store.is_postgres:
                # After five runs of the same lookup psycopg prepares it, and PostgreSQL may then keep a
                # generic plan costed when the table was empty (a scan comparing every row with all 500
                # keys): an import of 100,000 into a new database took minutes instead of seconds.
                conn.execute(sa.text("SET LOCAL plan_cache_mode = force_custom_plan"))
            for batch in _batches(rows):
                keys = [address_key(r.email) for r in batch]
                query = sa.select(s.email, s.name, s.tags, s.language).where(s.email.in_(keys))
                existing = {row.email: row for row in conn.execute(query)}
                # an address the ledger suppresses with no record (one a reader left behind when changing
                # address): it comes back as it left, never active again from an old export
                suppressed = dict(
                    conn.execute(
                        sa.select(suppressions.c.email, suppressions.c.reason).where(
                            suppressions.c.email.in_([k for k in keys if k not in existing])
                        )
                    ).all()
                )
                fresh: list[dict[str, Any]] = []
                events: list[dict[str, Any]] = []
                gone: list[dict[str, Any]] = []
                filled: list[dict[str, Any]] = []
                for key, r in zip(keys, batch, strict=True):
                    old = existing.get(key)
                    if key in seen:  # a repeated line of the same file
                        unchanged += 1
                        continue
                    seen.add(key)
                    if old is None and key in suppressed:
                        added += 1
                        why = str(suppressed[key])
                        status = _status_of_suppression(why)
                        fresh.append(self._import_row(r, status, now_at, source))
                        events.append(
                            self._event_row(
                                key, now_at, "added", status.value, f"import: {source}; suppressed before: {why}"
                            )
                        )
                        continue
                    if old is None:
                        added += 1
                        status = import_status(r)
                        if status == Status.UNCONFIRMED and not _asked_before(r):
                            if not to_confirm and before_mail is not None:
                                before_mail()  # what the mail needs is checked before anything is stored
                            to_confirm.append(key)
                        fresh.append(self._import_row(r, status, now_at, source))
                        events.append(self._event_row(key, now_at, "added", status.value, f"import: {source}"))
                        if status in SUPPRESSED:
                            gone.append({"email": key, "created_at": now_at, "reason": f"{status.value}: import"})
                        continue
                    if (old.name or not r.name) and (old.tags or not r.tags) and (old.language or not r.language):
                        unchanged += 1
                        continue
                    updated += 1
                    filled.append(
                        {
                            "b_email": key,
                            "b_name": old.name or r.name,
                            "b_tags": old.tags or _tags_text(r.tags),
                            "b_language": old.language or r.language,
                        }
                    )
                    events.append(self._event_row(key, now_at, "updated", "", f"empty fields filled from {source}"))
                if dry_run:
                    continue
                if fresh:
                    conn.execute(subscribers.insert(), fresh)
                if filled:
                    conn.execute(fill, filled)
                if events:
                    conn.execute(subscriber_events.insert(), events)
                if gone:
                    conn.execute(self.store.insert(suppressions).on_conflict_do_nothing(), gone)
        return added, updated, unchanged, to_confirm

    def _import_row(self, r: ImportRow, status: Status, now_at: datetime, source: str) -> dict[str, Any]:
        """A new subscriber's row from an imported line: the consent record this tool's own export carries
        (whatever the status), else the import's own for someone the file says consented."""
        sub = Subscriber(r.email, r.name, r.tags, r.format or "html", True, None, r.language)
        row = self._new_row(sub, "", status, now_at, source)
        if r.consent_method:
            consent: tuple[datetime | None, str, str] | None = (r.consent_at, r.consent_method, r.consent_source)
        else:
            consent = (r.consent_at, "import", source) if status == Status.ACTIVE else None
        row.update(
            origin=r.origin or "import",  # this tool's own export says how they first came, and when
            created_at=r.created_at or now_at,
            paused_until=r.paused_until,
            in_file=False,
            consent_method=consent[1] if consent else "",
            consent_source=(consent[2] or source) if consent else "",
            consent_at=(consent[0] or now_at) if consent else None,
            consent_ip="",
        )
        # Every row carries the same keys: a multi-row insert takes its columns from the first row, so a key
        # only some rows have would be dropped from all of them.
        row["confirm_requested_at"] = row["confirm_mail_at"] = None
        if status == Status.UNCONFIRMED and _asked_before(r):
            # this tool's own export: they asked there and had its mail; they wait as they did (their link
            # works with the same DIGEST_SECRET), and are forgotten as they would have been, not mailed again
            asked_at = r.created_at or now_at
            row.update(confirm_requested_at=asked_at, confirm_mail_at=asked_at)
            row.update(consent_source=r.consent_source or source)
        elif status == Status.UNCONFIRMED:  # the confirmation mail goes out next; its page is the request's
            row.update(confirm_requested_at=now_at, consent_source=r.consent_source or source)
        return row


# what an export says about someone who must not be mailed -> their status here
LEFT_AS = {
    "cleaned": Status.BOUNCED,  # Mailchimp's word for addresses that bounced
    "bounced": Status.BOUNCED,
    "undeliverable": Status.BOUNCED,
    "complained": Status.COMPLAINED,
    "unsubscribed": Status.UNSUBSCRIBED,
    "blocklisted": Status.UNSUBSCRIBED,
    "inactive": Status.INACTIVE,
}


def _asked_before(row: ImportRow) -> bool:
    """A line of this tool's own export of someone who asked and was sent the confirmation mail there."""
    return row.status == Status.UNCONFIRMED.value


def import_status(row: ImportRow) -> Status:
    """The status an imported line starts in: left (as the file says), active with consent, else waiting for
    the confirmation mail."""
    left = LEFT_AS.get(row.status)
    if left is not None:
        return left
    return Status.ACTIVE if row.consented else Status.UNCONFIRMED


def _batches(items: Iterable[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    it = iter(items)
    while batch := list(itertools.islice(it, size)):
        yield batch


def _record(row: Any, soft: int, events: tuple[SubscriberEvent, ...]) -> SubscriberRecord:
    return SubscriberRecord(
        email=row.address,
        name=row.name,
        language=row.language,
        tags=_tags_of(row.tags),
        format=row.format,
        status=Status(row.status),
        origin=row.origin,
        in_file=bool(row.in_file),
        consent_at=row.consent_at,
        consent_method=row.consent_method,
        consent_source=row.consent_source,
        consent_ip=row.consent_ip,
        created_at=row.created_at,
        updated_at=row.updated_at,
        paused_until=row.paused_until,
        soft_bounces=soft,
        hard_bounces=row.hard_bounces,
        complaints=row.complaints,
        last_bounce_at=row.last_bounce_at,
        events=events,
        tag=row.tag,
    )


def _status_of_suppression(reason: str) -> Status:
    """The status a suppression was made with ("bounced: 550 …"), unsubscribed when it names none."""
    named = reason.partition(":")[0].strip()
    return Status(named) if named in SUPPRESSED_VALUES else Status.UNSUBSCRIBED


_NEW: tuple[str, bool, str] = ("", False, "")  # not in the store yet (compared by identity)
_FILE_UPDATE = (
    sa.update(subscribers)
    .where(s.email == sa.bindparam("b_email"))
    .values(
        address=sa.bindparam("b_address"),
        name=sa.bindparam("b_name"),
        tags=sa.bindparam("b_tags"),
        format=sa.bindparam("b_format"),
        language=sa.bindparam("b_language"),
        status=sa.bindparam("b_status"),
        file_sig=sa.bindparam("b_sig"),
        in_file=True,
    )
)


class _Writer:
    """Rows to write, written a chunk at a time."""

    def __init__(self, write: Callable[[list[dict[str, Any]]], object]) -> None:
        self.rows: list[dict[str, Any]] = []
        self.write = write

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if len(self.rows) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.write(self.rows)
            self.rows = []


# A new subscriber's row from the file: what differs from row to row, and what does not.
_FILE_ROW_KEYS = ("email", "address", "name", "language", "tags", "format", "status", "file_sig", "tag")
_EVENT_KEYS = ("email", "kind", "status", "reason")


def _file_row_constants(now_at: datetime, source: str) -> dict[str, Any]:
    return {
        "origin": "file",
        "in_file": True,
        "consent_at": now_at,
        "consent_method": "file",
        "consent_source": source,
        "consent_ip": "",
        "created_at": now_at,
        "updated_at": now_at,
        "pending_email": "",
        "hard_bounces": 0,
        "complaints": 0,
    }


_PLAIN_LITERAL = re.compile(r"[\w .:+-]*|'[\w .:+-]*'")


class _Rows:
    """Rows of one table given as tuples (in the order of `keys`), inserted a chunk at a time by a statement
    compiled once, with the values the same for every row (`constants`) written in it as literals.

    SQLAlchemy's executemany converts every value of every row dict through its column type (three
    datetimes per subscriber, all the same `now`): a first sync of 100,000 entries spent 3.8 of its 7.5 s of
    CPU there. Each value bound is also work for the driver: the same 100,000 rows inserted with raw sqlite3
    took 1.7-1.8 s of CPU with 20 values bound per row, 1.25 s with the 11 constant ones in the statement."""

    def __init__(
        self, conn: Connection, table: sa.Table, keys: Sequence[str], constants: Mapping[str, Any] | None = None
    ) -> None:
        self.conn = conn
        self.rows: list[tuple[Any, ...]] = []
        dialect = conn.dialect
        values: dict[str, Any] = {key: sa.bindparam(key) for key in keys}
        bound: dict[str, Any] = {}  # constants bound with every row, converted once
        for key, value in (constants or {}).items():
            # the dialect's own literal for the column's type (datetimes as it binds them), put in the statement
            # only when nothing in it could be taken for a placeholder or need escaping
            literal = sa.literal(value, table.c[key].type).compile(
                dialect=dialect, compile_kwargs={"literal_binds": True}
            )
            if _PLAIN_LITERAL.fullmatch(str(literal)):
                values[key] = sa.literal_column(str(literal))
            else:
                bound[key] = value
        keys = [*keys, *bound]
        values.update((key, sa.bindparam(key)) for key in bound)
        convert = [table.c[key].type.dialect_impl(dialect).bind_processor(dialect) for key in bound]
        self.extra = tuple(v if f is None else f(v) for f, v in zip(convert, bound.values(), strict=True))
        compiled = table.insert().values(values).compile(dialect=dialect, for_executemany=True)
        self.names = list(compiled.positiontup or compiled.binds)
        if sorted(self.names) != sorted(keys):
            raise ValueError(f"the columns {keys} are not all of {table.name}'s insert")
        where = [list(keys).index(name) for name in self.names]
        self.order = None if where == sorted(where) else operator.itemgetter(*where)
        self.sql = str(compiled)
        self.positional = bool(compiled.positional)

    def add(self, row: tuple[Any, ...]) -> None:
        self.rows.append(row + self.extra if self.extra else row)
        if len(self.rows) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        rows, self.rows = self.rows, []
        if not rows:
            return
        if self.order is not None:
            rows = [self.order(row) for row in rows]
        if self.positional:
            self.conn.exec_driver_sql(self.sql, rows)
        else:
            self.conn.exec_driver_sql(self.sql, [dict(zip(self.names, row, strict=True)) for row in rows])


def _origin(method: str, page: str) -> str:
    """Where a subscribe request came from, as its event says: "form on <page>", or the command."""
    if method == "form":
        return f"form on {page}" if page else "form"
    return page or method
