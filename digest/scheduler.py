"""`digest schedule`: the weekly service. APScheduler 3.x wiring only; what to do is pipeline's.

Two jobs in one single-threaded executor, so they never overlap: a weekly trigger at `schedule.day` /
`schedule.time` in the site timezone (DST-aware), and a tick every `schedule.tick_seconds`, plus one at
start. Both do the same thing: read the config again, ask the state database which weeks the service still
owes (pipeline.due_weeks: a week due by its scheduled time, or started and unfinished — deferred mail, a
server or database that was down, a stop or a crash in the middle) and advance each. So the service does
not depend on APScheduler's stored run times: a kill, a restart, a deploy or a run started late finishes
every week it started, and the week of a run is the week of its scheduled time.
"""

from __future__ import annotations

import itertools
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, time, timedelta, tzinfo
from pathlib import Path
from types import FrameType

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger

from digest import pipeline, report
from digest.config import WEEKDAYS, Settings, load_settings
from digest.errors import DigestError
from digest.models import Week
from digest.records import CycleReport
from digest.weeks import weekly_times

LOG = logging.getLogger("digest.scheduler")

# Set by SIGTERM/SIGINT in serve_forever: the running cycle finishes the messages in flight and stops.
STOP = threading.Event()

Clock = Callable[[], datetime]


def real_clock() -> datetime:
    return datetime.now(UTC)


# -- the schedule ----------------------------------------------------------------------------------


class WeeklyTrigger(BaseTrigger):  # type: ignore[misc]  # APScheduler 3 has no type hints
    """`schedule.day` at `schedule.time` in the site's timezone, once every week (see weeks.weekly_times).

    Not APScheduler's CronTrigger: in 3.11 it skips a Monday 00:30 run on the night the clocks spring
    forward at midnight (New York, 2026-03-09: the week gets no issue) and, for a time in the hour they
    repeat in autumn, returns that same time again and again, so asking for the runs after it never ends
    (the scheduler's own thread loops and grows; upstream issues 1021 and 1059)."""

    def __init__(self, weekday: int, at: time, tz: tzinfo) -> None:
        self.weekday, self.at, self.tz = weekday, at, tz

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime:
        after = previous_fire_time if previous_fire_time is not None else now - timedelta(microseconds=1)
        return next(self.times(after))

    def times(self, after: datetime) -> Iterator[datetime]:
        return weekly_times(self.weekday, self.at, self.tz, after)

    def __str__(self) -> str:
        return f"weekly on day {self.weekday} at {self.at.isoformat()} ({self.tz})"


def trigger_for(settings: Settings) -> WeeklyTrigger:
    hour, minute, *second = (int(part) for part in settings.schedule.time.split(":"))
    at = time(hour, minute, second[0] if second else 0)
    return WeeklyTrigger(WEEKDAYS.index(settings.schedule.day), at, settings.site.tz)


def next_runs(settings: Settings, count: int, now_at: datetime) -> list[datetime]:
    """The next `count` run times from `now_at` on, in the site's timezone (DST included)."""
    return list(itertools.islice(trigger_for(settings).times(now_at - timedelta(microseconds=1)), max(count, 0)))


def runs_between(settings: Settings, start_at: datetime, end_at: datetime) -> list[datetime]:
    """Scheduled times in (start_at, end_at], oldest first."""
    end = end_at.timestamp()
    return list(itertools.takewhile(lambda at: at.timestamp() <= end, trigger_for(settings).times(start_at)))


def job_week(settings: Settings, fire_at: datetime) -> Week:
    """The week a run scheduled at `fire_at` sends: the last one that had ended by then."""
    return pipeline.job_week(settings, fire_at)


def past_runs(settings: Settings, now_at: datetime) -> list[datetime]:
    """The scheduled times the service may still owe something for: within the grace and resume windows."""
    window = max(timedelta(hours=settings.schedule.misfire_grace_hours), timedelta(days=settings.schedule.resume_days))
    return runs_between(settings, now_at - window, now_at)


# -- one tick ----------------------------------------------------------------------------------------


def tick(
    settings: Settings,
    *,
    clock: Clock = real_clock,
    stop: threading.Event | None = None,
    store: pipeline.Store | None = None,
    transports: pipeline.TransportFactory | None = None,
    log: logging.Logger = LOG,
) -> list[pipeline.ServiceStep]:
    """Advance every week the service owes now, oldest first; one log line per week (and per missed week)."""
    own = store is None
    store = store or pipeline.open_store(settings)
    steps: list[pipeline.ServiceStep] = []
    try:
        now_at = clock()
        coming = runs_between(settings, now_at, now_at + timedelta(hours=settings.schedule.review_hours))
        for week, result in pipeline.request_reviews(settings, now_at, coming, store):
            log.info("week %s: the preview went to %s for review: %s", week.label, pipeline.review_owner(settings),
                     result.status)  # fmt: skip
        due, missed = pipeline.due_weeks(settings, now_at, past_runs(settings, now_at), store)
        for week in missed:
            log.warning("week %s: its run was missed by more than the grace time; not sent", week.label)
        for week, fire_at in due:
            if stop is not None and stop.is_set():
                break
            if now_at - fire_at > timedelta(seconds=2 * settings.schedule.tick_seconds):
                # a run the service was not up for, or one a stopped process left unfinished: said before it
                # goes on, so the log tells why mail goes out now
                log.info("week %s: its run was due at %s; running it now", week.label, fire_at.isoformat())
            step = pipeline.advance_cycle(
                settings, week, fire_at, clock=clock, store=store, transports=transports, stop=stop
            )
            log_step(step, log)
            steps.append(step)
    finally:
        if own:
            store.close()
    return steps


def log_step(step: pipeline.ServiceStep, log: logging.Logger = LOG) -> None:
    if step.quiet:
        return
    cycle = step.cycle
    retry = ""
    if cycle and cycle.state == "open" and cycle.next_try_at:  # in the site's time, as every time it logs
        retry = f"; next try {cycle.next_try_at.astimezone(step.week.start_at.tzinfo).isoformat(timespec='seconds')}"
    if step.error is not None:
        log.error("week %s: %s%s", step.week.label, step.error, retry)
    elif step.report is not None:
        log.info("%s%s", report.cycle_log_line(step.report), retry)
    elif cycle is not None and cycle.note:
        log.info("week %s: %s", step.week.label, cycle.note)


def run_week(
    settings: Settings,
    now_at: datetime,
    *,
    week: Week | None = None,
    stop: threading.Event | None = None,
    store: pipeline.Store | None = None,
    transports: pipeline.TransportFactory | None = None,
    clock: Clock = real_clock,
    log: logging.Logger = LOG,
) -> CycleReport:
    """One weekly cycle (pipeline.run_cycle) for the week that ended before `now_at`, or `week`, logged."""
    result = pipeline.run_cycle(
        settings, now_at, week or job_week(settings, now_at), clock=clock, store=store, transports=transports, stop=stop
    )
    log.info(report.cycle_log_line(result))
    return result


def service_tick(config: str | None, site: str | None) -> None:
    """The job both triggers run: read the config again (it may have changed), then one tick. A failure is
    one log line and the next tick tries again (a database or server that is down, a config mistake)."""
    try:
        settings = load_settings(Path(config) if config else None, Path(site) if site else None)
        pipeline.check_settings(settings)
        tick(settings, stop=STOP)
    except DigestError as exc:
        LOG.error("weekly service: %s; trying again at the next tick", exc)


# -- the service -----------------------------------------------------------------------------------


def _configure_logging() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("digest").setLevel(logging.INFO)
    # its own lines say nothing a user needs: not even its warnings ("maximum number of running instances
    # reached" at every tick of a long send, "run time … was missed"): the service's ticks decide what is owed
    logging.getLogger("apscheduler").setLevel(logging.ERROR)


def make_scheduler(settings: Settings, *, clock: Clock = real_clock) -> BackgroundScheduler:
    """A scheduler (not started) with the weekly trigger and the tick; the first tick runs at once."""
    scheduler = BackgroundScheduler(
        jobstores={"default": MemoryJobStore()},
        executors={"default": ThreadPoolExecutor(max_workers=1)},
        timezone=settings.site.tz,
    )
    kwargs = {"config": str(settings.config_file) if settings.config_file else None, "site": str(settings.site.root)}
    common = {"coalesce": True, "max_instances": 1, "misfire_grace_time": None, "kwargs": kwargs}
    scheduler.add_job(service_tick, trigger_for(settings), id="weekly", name="weekly digest", **common)
    interval = IntervalTrigger(seconds=settings.schedule.tick_seconds, timezone=settings.site.tz)
    scheduler.add_job(service_tick, interval, id="tick", name="resume", next_run_time=clock(), **common)
    return scheduler


def serve_forever(settings: Settings) -> int:
    """Run until SIGTERM/SIGINT; then let the messages in flight finish and be recorded, exit 0. What is
    left of the week is finished by the next start."""
    _configure_logging()
    STOP.clear()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        LOG.info("%s: finishing the messages in flight, then stopping", signal.Signals(signum).name)
        STOP.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        scheduler = make_scheduler(settings)
        add_readers_job(scheduler, settings)
        scheduler.start()
        LOG.info(
            "weekly digest every %s at %s (%s), state in %s",
            settings.schedule.day,
            settings.schedule.time,
            settings.site.timezone,
            pipeline.safe_url(settings.db_url),
        )
        upcoming = next_runs(settings, 1, real_clock())
        if upcoming:
            LOG.info("next run: %s", upcoming[0].isoformat())
        while not STOP.wait(0.5):
            pass
        scheduler.shutdown(wait=True)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    LOG.info("stopped")
    return 0


# -- readers: the bounce mailbox and the expiry of unconfirmed addresses, between weekly runs ------------

READERS_JOB_ID = "readers-tick"
READERS_JOB_FUNC = "digest.scheduler:readers_job"


def readers_job(config: str | None, site: str | None) -> None:
    """Read the bounce mailbox once, send deferred welcome emails again and forget unconfirmed addresses
    past their time (pipeline.readers_tick)."""
    try:
        settings = load_settings(Path(config) if config else None, Path(site) if site else None)
        tick = pipeline.readers_tick(settings, real_clock(), clock=real_clock)
        if tick.bounces is not None and tick.bounces.messages:
            LOG.info(report.bounce_log_line(tick.bounces))
        if tick.welcomes:
            LOG.info("sent %d deferred welcome email(s)", tick.welcomes)
        if tick.confirmations:
            LOG.info("sent %d confirmation mail(s) an import still owed", tick.confirmations)
        if tick.expired:
            LOG.info("forgot %d address(es) that never confirmed", tick.expired)
    except DigestError as exc:
        LOG.error("the readers' tick failed: %s", exc)


def add_readers_job(scheduler: BackgroundScheduler, settings: Settings) -> None:
    """Every bounces.check_minutes: the readers' tick. Kept in memory (not the job store): it is cheap to
    miss one, and the interval follows the config at each start."""
    from apscheduler.jobstores.memory import MemoryJobStore

    if "readers" not in scheduler._jobstores:  # noqa: SLF001 - APScheduler 3 has no public "has jobstore"
        scheduler.add_jobstore(MemoryJobStore(), "readers")
    config = str(settings.config_file) if settings.config_file else None
    scheduler.add_job(
        READERS_JOB_FUNC,
        trigger="interval",
        minutes=settings.bounces.check_minutes,
        id=READERS_JOB_ID,
        kwargs={"config": config, "site": str(settings.site.root)},
        coalesce=True,
        max_instances=1,
        jobstore="readers",
        replace_existing=True,
    )
