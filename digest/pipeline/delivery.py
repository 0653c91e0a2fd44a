"""The weekly cycle: build, publish, deliver (the same for `digest run`, `digest send` and the service)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from digest import issues, text
from digest.config import Settings
from digest.models import Carried, Issue, RenderedIssue, Subscriber, Week
from digest.pipeline._shared import Clock
from digest.pipeline.building import (
    build,
    cached,
    feed_dates,
    render_variants,
    site_files,
    with_notes,
    write_files,
)
from digest.pipeline.readers import record_refusals, send_list
from digest.pipeline.state import (
    check_clock,
    feed_floors,
    open_ledger,
    open_store,
    transport_factory,
    with_first_url,
)
from digest.records import CycleReport, DeliveryReport, IssueRun

if TYPE_CHECKING:
    from digest import sender
else:
    from digest.pipeline._shared import sender


# -- delivery --------------------------------------------------------------------------------------


def run_cycle(
    settings: Settings,
    now_at: datetime,
    week: Week,
    *,
    clock: Clock,
    store: sender.Store | None = None,
    transports: sender.TransportFactory | None = None,
    publish: bool = True,
    dry_run: bool = False,
    strict: bool = False,
    subscribers: tuple[Subscriber, ...] | None = None,
    progress: Callable[[int, int], None] | None = None,
    stop: threading.Event | None = None,
    skipped: Mapping[str, str] | None = None,
    preflight: bool = False,
) -> CycleReport:
    """The weekly cycle: build the week's issues once; with `publish`, write the feeds and the archive; send
    each subscriber the issue in their language through the ledger (an issue already complete sends
    nothing, a partial one resumes with the same entries). With `preflight` (the service, `digest run`), DNS
    and the unsubscribe endpoint are checked first and a DeliverabilityError stops the send while DKIM or
    DMARC is broken (see doctor.before_send)."""
    started = time.monotonic()
    own_store = store is None
    store = store or open_store(settings)
    try:
        ledger = sender.StoreView(store)  # read as a publish reads it (pipeline.state.ledger_view)
        if not dry_run:
            check_clock(settings, ledger, now_at)
        carried = ledger.carried(settings.site.language)
        published = 0
        if publish and not dry_run:
            settings = with_first_url(settings, ledger.feed_id_url())
        with cached(settings) as memo:
            dated = feed_floors(settings, ledger) if publish and not dry_run else None
            built = build(settings, now_at, week, strict=strict, carried=carried, memo=memo, dated=dated)
            result = with_notes(built, settings, ledger.notes())
            if publish and not dry_run:
                write_files(settings.output.dir, site_files(result, settings, memo=memo))
                ledger.record_feed_dates(feed_dates(result), settings.output.url)
                published = sum(len(h) for h in result.history.values())
        if not dry_run:
            sender.remember_names(store, carried, result.pools)
        where = "nowhere (dry run)" if dry_run else sender.describe(settings)

        def report(runs: list[IssueRun]) -> CycleReport:
            return CycleReport(
                week, tuple(runs), published, where, round(time.monotonic() - started, 3), dry_run, result.problems
            )

        skip_empty = settings.email.empty_week == "skip"
        if skip_empty and not any(i.all_entries for i in result.issues.values()):
            return report([])
        # why some on the list get nothing (paused until a date, unsubscribed, bounced): from the caller,
        # or from the store with the list
        reasons: dict[str, str] = {text.address_key(k): v for k, v in (skipped or {}).items()}
        if subscribers is None:  # the store, after bringing subscribers.yaml in
            subscribers, found = send_list(settings, now_at, store)
            reasons.update(found)
        by_language: dict[str, list[Subscriber]] = {}
        languages: dict[str, str] = {}  # a subscriber's language -> its issue's: a few values over the list
        for sub in subscribers:
            language = languages.get(sub.language)
            if language is None:
                language = languages[sub.language] = text.issue_language(sub.language, settings.site.language)
            by_language.setdefault(language, []).append(sub)
        if preflight and not dry_run:
            sender.check_before_send(settings, now_at)
        # Every language's issue is recorded and rendered before any mail goes: a template that fails for
        # one language (its own override) stops the send before the others' readers got theirs.
        ready = []
        for language in sorted(by_language):
            issue = result.issue_of(language)
            if not dry_run and (issue.all_entries or not skip_empty):
                # Recorded before anything is sent, once: a rerun sends these very entries.
                keys = sender.record_issue(store, issue, now_at)
                fixed = Carried(planned={issue.id: keys})
                own, late = issues.select(result.pools.get(language, ()), week, issue.id, fixed)
                issue = replace(issue, entries=result.render(own), late=result.render(late))
            elif not dry_run and not week.custom:
                # Nothing to mail in this language this week, but it has readers: the week is recorded as
                # its issue, empty, so that a post dated in it that turns up later (a translation written a
                # week after its original) is a late arrival of the next issue, not lost before the first.
                sender.record_issue(store, issue, now_at)
            # one language: the list itself, not a copy of 100,000 references (nor a list of them kept)
            group = by_language.pop(language)
            readers = subscribers if len(group) == len(subscribers) else tuple(group)
            # each language's issue records the reasons of its own readers (a paused Korean reader is
            # skipped in the Korean issue, with the reason, and appears in no other)
            own_reasons = {sub.key: reasons[sub.key] for sub in group if sub.key in reasons}
            count = sum(1 for sub in group if sub.active and sub.key not in own_reasons)  # who would get mail
            del group
            variants = render_variants(issue, settings, readers) if issue.all_entries or not skip_empty else None
            ready.append((language, issue, readers, own_reasons, count, variants))
        runs = []
        for language, issue, readers, own_reasons, count, variants in ready:
            delivery = None
            if variants is not None:
                delivery = _deliver(settings, issue, readers, store, now_at, clock, variants,
                                    transports, dry_run, progress, stop, own_reasons)  # fmt: skip
                if not dry_run and delivery.status is not None and delivery.status.counts.get("failed"):
                    record_refusals(settings, delivery.status, now_at, store)
            runs.append(IssueRun(issue.id, language, issue.lang, issue.entries, issue.late, delivery, count))
            if stop is not None and stop.is_set():
                break
        return report(runs)
    finally:
        if own_store:
            store.close()


def _deliver(
    settings: Settings,
    issue: Issue,
    subscribers: tuple[Subscriber, ...],
    store: sender.Store,
    now_at: datetime,
    clock: Clock,
    rendered: tuple[dict[sender.Variant, RenderedIssue], dict[str, str]],
    transports: sender.TransportFactory | None,
    dry_run: bool,
    progress: Callable[[int, int], None] | None,
    stop: threading.Event | None,
    skipped: Mapping[str, str] | None = None,
) -> DeliveryReport:
    variants, not_wanted = rendered
    skipped = {**(skipped or {}), **not_wanted}
    factory = sender.MessageFactory(variants, settings, now_at)
    try:
        return sender.deliver(
            factory,
            subscribers,
            open_ledger(settings, store),
            transports or transport_factory(settings, dry_run=dry_run),
            settings.delivery,
            clock,
            issue_id=issue.id,
            skipped=skipped,
            dry_run=dry_run,
            progress=progress,
            stop=stop,
        )
    finally:
        factory.close()  # its DKIM signing helpers, if the send started any
