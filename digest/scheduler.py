"""`digest schedule`: every week, at the configured day and time in the site's timezone, publish and
send the week that just ended (APScheduler 3.x).

The job lives in a persistent SQLAlchemy job store in the state database, so a restart keeps the
schedule and a run missed while the service was down is made once when it starts again (coalesce,
and an explicit misfire grace time: APScheduler's default of one second would drop it silently).
Sending goes through the ledger, so a rerun of a complete issue sends nothing and a partial one
resumes where it stopped.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import sqlalchemy as sa
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED, JobEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger

from digest import pipeline, report
from digest.config import Settings, load_settings
from digest.errors import DigestError
from digest.models import CycleReport, Week

LOG = logging.getLogger("digest.scheduler")
JOB_ID = "weekly-digest"
JOB_FUNC = "digest.scheduler:scheduled_job"  # a reference, never a callable: the job store pickles it
JOB_TABLE = "apscheduler_jobs"
DAYS = {"monday": "mon", "tuesday": "tue", "wednesday": "wed", "thursday": "thu", "friday": "fri",
        "saturday": "sat", "sunday": "sun"}  # fmt: skip

# Set by SIGTERM/SIGINT in serve_forever; scheduled_job cannot receive an Event through the job
# store (kwargs are pickled), so the running job reads this one.
STOP = threading.Event()

Clock = Callable[[], datetime]


def real_clock() -> datetime:
    return datetime.now(UTC)


# -- one cycle -------------------------------------------------------------------------------------


def job_week(settings: Settings, now_at: datetime) -> Week:
    """The last week that has fully ended at `now_at` (the one before the week containing it)."""
    return pipeline.select_week(settings, now_at, "last")


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
    """One weekly cycle (pipeline.run_cycle) for the week that just ended, or `week`, and its log line."""
    result = pipeline.run_cycle(
        settings, now_at, week or job_week(settings, now_at), clock=clock, store=store, transports=transports, stop=stop
    )
    log.info(report.cycle_log_line(result))
    return result


# -- the schedule ----------------------------------------------------------------------------------


def trigger_for(settings: Settings) -> CronTrigger:
    hour, minute = (int(part) for part in settings.schedule.time.split(":"))
    return CronTrigger(day_of_week=DAYS[settings.schedule.day], hour=hour, minute=minute, timezone=settings.site.tz)


def next_runs(settings: Settings, count: int, now_at: datetime) -> list[datetime]:
    """The next `count` run times after `now_at`, in the site's timezone (DST included)."""
    trigger = trigger_for(settings)
    runs: list[datetime] = []
    fire_at = trigger.get_next_fire_time(None, now_at)
    while fire_at is not None and len(runs) < count:
        runs.append(fire_at)
        fire_at = trigger.get_next_fire_time(fire_at, fire_at)
    return runs


def runs_between(settings: Settings, start_at: datetime, end_at: datetime) -> list[datetime]:
    """Scheduled times in (start_at, end_at]."""
    trigger = trigger_for(settings)
    found: list[datetime] = []
    fire_at = trigger.get_next_fire_time(None, start_at + timedelta(microseconds=1))
    while fire_at is not None and fire_at <= end_at:
        found.append(fire_at)
        fire_at = trigger.get_next_fire_time(fire_at, fire_at)
    return found


def due_weeks(settings: Settings, now_at: datetime) -> list[Week]:
    """What one run sends: the week that just ended, or with schedule.catch_up every week whose
    scheduled run fell inside the misfire grace time (oldest first; complete ones are no-ops)."""
    weeks = [job_week(settings, now_at)]
    if settings.schedule.catch_up:
        grace = timedelta(hours=settings.schedule.misfire_grace_hours)
        missed = [job_week(settings, fire_at) for fire_at in runs_between(settings, now_at - grace, now_at)]
        weeks = missed + weeks
    unique = {w.label: w for w in weeks}
    return sorted(unique.values(), key=lambda w: w.start_at)


def _stored_next_run_at(engine: sa.Engine) -> datetime | None:
    """The persisted job's next run time, read without unpickling the job."""
    if not sa.inspect(engine).has_table(JOB_TABLE):
        return None
    table = sa.Table(JOB_TABLE, sa.MetaData(), autoload_with=engine)
    with engine.connect() as conn:
        stamp = conn.execute(sa.select(table.c.next_run_time).where(table.c.id == JOB_ID)).scalar()
    return None if stamp is None else datetime.fromtimestamp(float(stamp), UTC)


def _job_store(settings: Settings) -> SQLAlchemyJobStore:
    if not settings.database_url:
        settings.state_dir.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {"pool_pre_ping": True}
    if settings.db_url.startswith("sqlite"):
        options = {"connect_args": {"timeout": 60}}  # the ledger may hold the write lock for a moment
    return SQLAlchemyJobStore(url=settings.db_url, tablename=JOB_TABLE, engine_options=options)


def make_scheduler(settings: Settings, *, blocking: bool = True, clock: Clock | None = None) -> BaseScheduler:
    """A scheduler (not started) holding the weekly job in the state database.

    A persisted run time in the past is kept, so the missed run happens once at start (within the
    grace time); a future one is recomputed from the current config, so a changed day or time applies.
    `clock` gives "now" for that decision and for the first run time (tests pass a past moment).
    """
    now_at = (clock or real_clock)()
    store = _job_store(settings)
    trigger = trigger_for(settings)
    stored_at = _stored_next_run_at(store.engine)
    keep = stored_at is not None and stored_at <= now_at
    next_run_at = stored_at if keep else trigger.get_next_fire_time(None, now_at)
    kind = BlockingScheduler if blocking else BackgroundScheduler
    scheduler: BaseScheduler = kind(
        jobstores={"default": store},
        executors={"default": ThreadPoolExecutor(max_workers=1)},
        timezone=settings.site.tz,
    )
    grace = max(1, int(settings.schedule.misfire_grace_hours * 3600))
    # Plain strings only: the job store pickles kwargs, and settings are reloaded at each run.
    config = str(settings.config_file) if settings.config_file else None
    scheduler.add_job(
        JOB_FUNC,
        trigger=trigger,
        id=JOB_ID,
        name="weekly digest",
        kwargs={"config": config, "site": str(settings.site.root)},
        next_run_time=next_run_at,
        coalesce=True,
        max_instances=1,
        misfire_grace_time=grace,
        replace_existing=True,
    )
    return scheduler


def shutdown(scheduler: BaseScheduler, *, wait: bool = True) -> None:
    """Stop a started scheduler, keeping the stored job as it is.

    APScheduler 3 looks at the job stores once more after shutdown() and would advance a due job's
    next run time without running it (a silently lost week); detaching the store first prevents that.
    With wait=True, a running job is waited for (it stops after its message in flight when STOP is set).
    """
    scheduler.remove_jobstore("default")
    scheduler.shutdown(wait=wait)


def scheduled_job(config: str | None, site: str | None) -> None:
    """The job the scheduler runs: reload settings (the config may have changed), run one cycle."""
    try:
        settings = load_settings(Path(config) if config else None, Path(site) if site else None)
        now_at = real_clock()
        for week in due_weeks(settings, now_at):
            if STOP.is_set():
                break
            run_week(settings, now_at, stop=STOP, week=week)
    except DigestError as exc:  # a user's mistake: one line, and the schedule goes on
        LOG.error("weekly run failed: %s", exc)


# -- the service -----------------------------------------------------------------------------------


def _configure_logging() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("digest").setLevel(logging.INFO)


def _log_next_run(scheduler: BaseScheduler) -> None:
    job = scheduler.get_job(JOB_ID)
    if job is not None and job.next_run_time is not None:
        LOG.info("next run: %s", job.next_run_time.isoformat())


def serve_forever(settings: Settings) -> int:
    """Run until SIGTERM/SIGINT; then let the message in flight finish and be recorded, exit 0."""
    _configure_logging()
    STOP.clear()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        LOG.info("%s: finishing the message in flight, then stopping", signal.Signals(signum).name)
        STOP.set()

    def on_event(event: JobEvent) -> None:
        # Never call into the scheduler from here: shutdown() holds its locks while it waits for
        # the job whose end fires this event.
        if event.code == EVENT_JOB_MISSED:
            LOG.warning("the run due at %s was missed by more than the grace time", event.scheduled_run_time)
        upcoming = next_runs(settings, 1, real_clock())
        if upcoming:
            LOG.info("next run: %s", upcoming[0].isoformat())

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        scheduler = make_scheduler(settings, blocking=False)
        scheduler.add_listener(on_event, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED)
        scheduler.start()
        LOG.info(
            "weekly digest every %s at %s (%s), state in %s",
            settings.schedule.day,
            settings.schedule.time,
            settings.site.timezone,
            pipeline.safe_url(settings.db_url),
        )
        _log_next_run(scheduler)
        while not STOP.wait(0.5):
            pass
        shutdown(scheduler)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    LOG.info("stopped")
    return 0
