"""The weekly service: which weeks are due, resumed or finished."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from digest import config, weeks
from digest.config import Settings
from digest.errors import DigestError, UsageError
from digest.models import Week
from digest.pipeline._shared import Clock
from digest.pipeline.building import build, job_week, render_variants, with_notes
from digest.pipeline.delivery import run_cycle
from digest.pipeline.review import review_gate
from digest.pipeline.state import open_ledger, read_carried, read_notes, transport_factory
from digest.records import Cycle, CycleReport

if TYPE_CHECKING:
    from digest import sender
else:
    from digest.pipeline._shared import sender


# -- the weekly service ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceStep:
    """What the service did about one week in one tick."""

    week: Week
    report: CycleReport | None = None  # None when the cycle failed before it could report
    error: DigestError | None = None
    cycle: Cycle | None = None  # the cycle's record afterwards: done, or open with its next try
    quiet: bool = False  # nothing new to say (still waiting for the owner's approval)


def _week_of_issue(settings: Settings, issue_id: str) -> Week | None:
    label = issue_id.rsplit("/", 1)[-1]
    try:
        return weeks.parse_week(label, settings.site, datetime.now(settings.site.tz))
    except UsageError:
        return None  # a custom --since/--until window: not the service's to finish


def due_weeks(
    settings: Settings, now_at: datetime, fire_times: Iterable[datetime], store: sender.Store
) -> tuple[list[tuple[Week, datetime]], list[Week]]:
    """(the weeks the service owes at `now_at`, oldest first; the weeks it missed) from the scheduled times
    that have passed (`fire_times`, oldest first) and the state database:

    - a week never started whose scheduled time is within `schedule.misfire_grace_hours`: the newest such
      week only, or each of them with `schedule.catch_up`; the others are missed, recorded (and returned)
      once so the service logs each once;
    - a started week that is not finished (mail deferred, a server or database that was down, a stop or a
      crash in the middle), within `schedule.resume_days` of its scheduled time, once its retry time came;
    - an issue with rows still to send (a `digest send` stopped or killed by hand) within `resume_days`.
    """
    cycles = sender.Cycles(store)
    grace = timedelta(hours=settings.schedule.misfire_grace_hours)
    resume_from = now_at - timedelta(days=settings.schedule.resume_days)
    due: dict[str, tuple[Week, datetime]] = {}
    new: list[tuple[Week, datetime]] = []
    for fire_at in fire_times:
        week = job_week(settings, fire_at)
        cycle = cycles.get(week.label)
        if cycle is None:
            new.append((week, fire_at))
        elif cycle.state == "open" and fire_at >= resume_from and (cycle.next_try_at or now_at) <= now_at:
            due[week.label] = (week, fire_at)
    in_grace = [(w, f) for w, f in new if now_at - f <= grace]
    started = in_grace if settings.schedule.catch_up else in_grace[-1:]
    for week, fire_at in started:
        due.setdefault(week.label, (week, fire_at))
    ledger = open_ledger(settings, store)
    # a week whose issue is in the ledger was sent by hand (`digest run` from cron, `digest send`): not missed
    planned = {issue_id.rpartition("/")[2] for issue_id in ledger.issues()} if new else set()
    missed = [
        week
        for week, fire_at in new
        if (week, fire_at) not in started
        and week.label not in planned
        and cycles.miss(week.label, fire_at, now_at, "the service was not running")
    ]
    for cycle in cycles.open_since(resume_from):
        found = _week_of_issue(settings, cycle.week)
        if found is not None and cycle.week not in due and (cycle.next_try_at or now_at) <= now_at:
            due[cycle.week] = (found, cycle.fire_at)
    for issue_id in ledger.unfinished_issues(resume_from):
        found = _week_of_issue(settings, issue_id)
        if found is not None and found.label not in due and cycles.get(found.label) is None:
            due[found.label] = (found, found.end_at)
    return sorted(due.values(), key=lambda pair: pair[1]), missed


def _backoff(settings: Settings, attempts: int) -> timedelta:
    seconds = settings.delivery.retry_base_seconds * 2 ** max(0, attempts - 1)
    return timedelta(seconds=min(max(seconds, settings.schedule.tick_seconds), 3600))


def advance_cycle(
    settings: Settings,
    week: Week,
    fire_at: datetime,
    *,
    clock: Clock,
    store: sender.Store,
    transports: sender.TransportFactory | None = None,
    stop: threading.Event | None = None,
) -> ServiceStep:
    """One step of a week's cycle for the service: run it (a complete issue sends nothing, a partial one
    resumes), then record whether the week is finished or when to try again. A transient failure (a
    server, a database, a full disk) is retried with back-off; a config mistake too, since the config is
    read again at every tick; the week is never given up while it is within `schedule.resume_days`."""
    cycles = sender.Cycles(store)
    cycles.start(week.label, fire_at, clock())
    before = cycles.get(week.label)
    waiting = review_gate(settings, week, fire_at, clock(), store)
    if waiting is not None:
        return ServiceStep(week, None, None, waiting, quiet=before is not None and before.note == waiting.note)
    try:
        report = run_cycle(
            settings, clock(), week, clock=clock, store=store, transports=transports, stop=stop, preflight=True
        )
    except DigestError as exc:
        now_at = clock()
        record = cycles.get(week.label)
        attempts = (record.attempts if record else 0) + 1
        cycle = cycles.retry(week.label, now_at, now_at + _backoff(settings, attempts), str(exc), failed=True)
        return ServiceStep(week, None, exc, cycle)
    now_at = clock()
    ledger = open_ledger(settings, store)
    # every language's issue of the week: "2026-W47", "ko/2026-W47", …
    left = sum(ledger.open_rows(issue) for issue in {week.label, *(run.issue_id for run in report.issues)})
    stopped = report.delivery.stopped if report.delivery else ""
    if stop is not None and stop.is_set() and left:
        cycle = cycles.retry(week.label, now_at, now_at, f"stopped with {left} to send", failed=False)
    elif stopped and left:  # the error budget ran out: the server refuses everything for now
        record = cycles.get(week.label)
        attempts = (record.attempts if record else 0) + 1
        cycle = cycles.retry(week.label, now_at, now_at + _backoff(settings, attempts), stopped, failed=True)
    elif left:
        retries = [ledger.next_retry_at(run.issue_id) for run in report.issues] or [ledger.next_retry_at(week.label)]
        retry_at = min((r for r in retries if r), default=None) or now_at + timedelta(
            seconds=settings.schedule.tick_seconds
        )
        cycle = cycles.retry(week.label, now_at, max(retry_at, now_at), f"{left} waiting for a retry", failed=False)
    else:
        cycles.finish(week.label, now_at)
        return ServiceStep(week, report, None, cycles.get(week.label))
    return ServiceStep(week, report, None, cycle)


def send_test_copy(
    settings: Settings, now_at: datetime, week: Week, address: str, language: str = ""
) -> sender.SendResult | None:
    """One copy of the issue in `language` to one address (`digest send --to`); the ledger is not written.
    A bad address is a usage error whether or not the issue has entries."""
    subscriber = config.single_subscriber(address)
    result = with_notes(build(settings, now_at, week, carried=read_carried(settings)), settings, read_notes(settings))
    issue = result.issue_of(language)
    if not issue.all_entries:
        return None
    variants, _ = render_variants(issue, settings, [subscriber])
    message = sender.MessageFactory(variants, settings, now_at).build(subscriber)
    return sender.send_test_copy(message, transport_factory(settings)())
