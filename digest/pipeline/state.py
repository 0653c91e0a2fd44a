"""The state database: the store, the ledger, the subscribers file read into it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from xml.etree import ElementTree

from digest import config, issues
from digest.config import Settings, private_folder
from digest.config.folders import DATABASE_FILE
from digest.errors import ConfigError, LedgerError
from digest.models import Carried, Problem, Subscriber

if TYPE_CHECKING:
    from digest import sender
    from digest.records import IssueStatus
    from digest.sender.lite import LedgerView
else:
    from digest.pipeline._shared import sender


# -- the state database ----------------------------------------------------------------------------


def open_store(settings: Settings) -> sender.Store:
    if not settings.database_url:
        _own_state_folder(settings)
    return sender.Store(settings.db_url)


def _own_state_folder(settings: Settings) -> None:
    from digest import cache  # its file's name

    traces = config.lost_ledger(settings.state_dir, (settings.state_dir / cache.FILE_NAME, settings.outbox))
    if traces:
        raise LedgerError(
            f"the state database {settings.state_dir / DATABASE_FILE} is an empty file, in a state folder used "
            f"before ({traces}): the record of what was mailed and of who left is lost",
            "restore it from a backup; to start anew instead (every reader gets the latest issue again, and "
            "unsubscribes are forgotten), delete the file",
        )
    private_folder(settings.state_dir)
    config.mark_owner(settings.state_dir, config.owner_of(settings.config_file, settings.site.root))


_ATOM = "{http://www.w3.org/2005/Atom}"


def feed_floors(settings: Settings, ledger: LedgerView) -> dict[str, datetime]:
    """{issue id: the date its feed entry was last published with}, the floor of the next publish: from the
    ledger; while the ledger holds none (a state folder from a version that did not keep them, or one that
    was lost), from the Atom feeds published in the output folder, each language's in its own folder."""
    kept = ledger.feed_dates()
    if kept:
        return kept
    found: dict[str, datetime] = {}
    out = settings.output.dir
    for feed in [out / "atom.xml", *sorted(out.glob("*/atom.xml"))]:
        prefix = "" if feed.parent == out else f"{feed.parent.name}/"
        try:
            root = ElementTree.parse(feed).getroot()
        except (OSError, ElementTree.ParseError):
            continue  # none there, or not one digest wrote whole: nothing to keep from it
        for entry in root.iter(f"{_ATOM}entry"):
            label = (entry.findtext(f"{_ATOM}id") or "").strip().rpartition("/")[2]  # tag:…:/path/[ko/]label
            try:
                updated = datetime.fromisoformat((entry.findtext(f"{_ATOM}updated") or "").strip())
            except ValueError:
                continue
            if issues.WEEKLY_LABEL.fullmatch(label) and updated.tzinfo is not None:
                found[prefix + label] = updated
    return found


@contextmanager
def ledger_view(
    settings: Settings, store: sender.Store | None = None, *, create: bool = False
) -> Iterator[LedgerView | None]:
    """The ledger as a publish or a preview reads it: `store` when given; else the state folder's SQLite
    file through sqlite3 when it can be (sender.lite: no SQLAlchemy to import), else through a Store of its
    own; None when there is no ledger yet and not `create` (a preview never creates one)."""
    if store is not None:
        yield sender.StoreView(store)
        return
    if not settings.database_url:
        path = settings.state_dir / DATABASE_FILE
        if not path.is_file() and not create:
            yield None
            return
        from digest.sender import lite  # not sender's face: that would name the Store's modules

        quick = lite.open_file(path) if path.is_file() else None
        if quick is not None:
            _own_state_folder(settings)
            try:
                yield quick
            finally:
                quick.close()
            return
    opened = open_store(settings)
    try:
        yield sender.StoreView(opened)
    finally:
        opened.close()


def open_ledger(settings: Settings, store: sender.Store | None = None) -> sender.Ledger:
    policy = settings.delivery
    store = store or open_store(settings)
    return sender.Ledger(
        store,
        max_attempts=policy.max_attempts,
        retry_base_seconds=policy.retry_base_seconds,
        lease=timedelta(seconds=policy.lease_seconds),
        # PostgreSQL's commit is a round trip: sends keep what they sent on this host's disk first
        journal=settings.state_dir / "journal" if store.is_postgres else None,
    )


def issue_status(settings: Settings, issue_id: str, store: sender.Store | None = None) -> IssueStatus:
    return open_ledger(settings, store).status(issue_id)


def week_issues(settings: Settings, week_label: str, store: sender.Store | None = None) -> list[str]:
    """The issue ids the ledger holds for one week: its own and those of the site's other languages."""
    return [i for i in open_ledger(settings, store).issues() if i == week_label or i.endswith(f"/{week_label}")]


def unsubscribe(
    settings: Settings, email: str, now_at: datetime, reason: str, store: sender.Store | None = None
) -> bool:
    """Suppress an address (and mark it unsubscribed in the subscriber store); True when it was not
    suppressed before."""
    return sender.Roster(store or open_store(settings)).unsubscribe(email, now_at, reason)


def resubscribe(
    settings: Settings, email: str, store: sender.Store | None = None, now_at: datetime | None = None
) -> bool:

    when = now_at or datetime.now(UTC)
    return sender.Roster(store or open_store(settings)).resubscribe(email, when, "resubscribed by hand")


def suppressed(settings: Settings, store: sender.Store | None = None) -> set[str]:
    return sender.Suppressions(store or open_store(settings)).all()


def address_of_token(settings: Settings, token: str, now_at: datetime) -> str:
    """The address an unsubscribe token was made for; TokenError when forged, damaged or expired."""
    return sender.verify_token(settings.secret, token, now_at, old_secrets=settings.old_secrets)


# -- subscribers -----------------------------------------------------------------------------------


def load_subscribers(settings: Settings) -> tuple[Subscriber, ...]:
    return config.load_subscribers(require_subscribers(settings))


def check_subscribers(settings: Settings) -> tuple[tuple[Subscriber, ...], list[Problem]]:
    return config.check_subscribers(require_subscribers(settings))


def require_subscribers(settings: Settings) -> Path:
    if settings.subscribers is None:
        raise ConfigError(
            "no subscribers file",
            "set [subscribers] file in digest.toml or put subscribers.yaml next to it",
            source=str(settings.config_file or settings.site.root),
        )
    return settings.subscribers


# How far behind the ledger's newest issue a clock may be (a clock set right by NTP, a run a few minutes
# after another host's) before a publish or a send stops: more, and the newer issues' posts are in the
# future, so the feeds and the archive would drop them.
CLOCK_SLACK = timedelta(hours=1)


def check_clock(settings: Settings, ledger: LedgerView, now_at: datetime) -> None:
    """LedgerError when `now_at` is well before the newest issue was planned: a clock gone back (or a
    DIGEST_NOW in the past) would take the newer issues out of the feeds and the archive."""
    last = ledger.last_planned()
    if last is not None and now_at < last - CLOCK_SLACK:
        raise LedgerError(
            f"the clock says {now_at.astimezone(settings.site.tz).isoformat(timespec='minutes')}, before the newest "
            "issue of the ledger was "
            f"planned ({last.astimezone(settings.site.tz).isoformat(timespec='minutes')}): its posts would be in the "
            "future, and the feeds and the archive would lose them",
            "check the machine's clock, and DIGEST_NOW if set; nothing was published or sent",
        )


def read_carried(
    settings: Settings, store: sender.Store | None = None, *, now_at: datetime | None = None
) -> dict[str, Carried]:
    """What the ledger says about the issues planned so far ({} when there is no ledger yet: a preview
    never creates one). With `now_at` (a publish), the clock is checked against the ledger first."""
    with ledger_view(settings, store) as ledger:
        if ledger is None:
            return {}
        if now_at is not None:
            check_clock(settings, ledger, now_at)
        return ledger.carried(settings.site.language)


def read_notes(settings: Settings, store: sender.Store | None = None) -> dict[str, str]:
    """{week: the editor's note the owner gave its issue} ({} when there is no ledger yet)."""
    with ledger_view(settings, store) as ledger:
        return {} if ledger is None else ledger.notes()


def with_first_url(settings: Settings, first: str) -> Settings:
    """`settings` with the output URL the feeds' ids were first made from (`first`, kept by the first
    publish), when the newsletter has moved since: its feed entries keep their ids."""
    if not first or first == settings.output.url:
        return settings
    return replace(settings, output=replace(settings.output, feed_id_url=first))


def check_settings(settings: Settings) -> None:
    """The checks that need a stage's knowledge (config checked everything else at load)."""
    sender.transport_kind(settings)


def transport_factory(settings: Settings, *, dry_run: bool = False) -> sender.TransportFactory:
    return sender.transport_for(settings, dry_run=dry_run)
