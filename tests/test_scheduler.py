"""The weekly job: which week a run sends, the persistent schedule, missed runs, SIGTERM mid-send."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.schedulers.base import BaseScheduler

from digest import scheduler
from digest.config import EmailSettings, Settings
from digest.models import OutgoingMessage
from digest.sender.ledger import Ledger
from digest.sender.outcome import SendResult
from digest.sender.transports import MaildirTransport
from tests.support_service import (
    SECRET,
    Mailbox,
    Post,
    maildir_messages,
    settings_for,
    smtp_box,
    text_of,
    write_site,
)

__all__ = ["smtp_box"]

ROOT = Path(__file__).resolve().parents[1]
READERS = ["kim@example.com", "lee@example.org", "park@example.net"]


def local(zone: str, *parts: int) -> datetime:
    return datetime(*parts, tzinfo=ZoneInfo(zone))  # type: ignore[misc]


# -- which week a run sends ------------------------------------------------------------------------

# (timezone, now: the Monday 09:00 run, expected label, hours in that week)
WEEKS = [
    ("Asia/Seoul", local("Asia/Seoul", 2024, 4, 1, 9, 0), "2024-W13", 168),
    ("Europe/Berlin", local("Europe/Berlin", 2024, 4, 1, 9, 0), "2024-W13", 167),  # clocks went forward
    ("Europe/Berlin", local("Europe/Berlin", 2024, 10, 28, 9, 0), "2024-W43", 169),  # clocks went back
]


@pytest.mark.parametrize(("zone", "now_at", "label", "hours"), WEEKS)
def test_job_week_is_the_week_that_just_ended(
    tmp_path: Path, zone: str, now_at: datetime, label: str, hours: int
) -> None:
    settings = settings_for(write_site(tmp_path, [], READERS, timezone=zone))
    week = scheduler.job_week(settings, now_at)
    assert week.label == label
    assert week.end_at == now_at.replace(hour=0)
    # in UTC: Python subtracts wall-clock times that share a tzinfo, hiding the DST hour
    assert week.end_at.astimezone(UTC) - week.start_at.astimezone(UTC) == timedelta(hours=hours)


@pytest.mark.parametrize(("zone", "now_at", "label", "hours"), WEEKS)
def test_run_cycle_sends_the_sunday_night_post(
    tmp_path: Path, zone: str, now_at: datetime, label: str, hours: int
) -> None:
    sunday_late = now_at - timedelta(days=1) + timedelta(hours=14, minutes=30)  # Sunday 23:30 local
    assert sunday_late.weekday() == 6 and sunday_late.hour == 23
    posts = [
        Post("sunday-night", "일요일 밤 23시 30분의 글", sunday_late),
        Post("monday-early", "Monday just after midnight", now_at.replace(hour=0, minute=30)),
        Post("two-weeks-ago", "A post from two weeks ago", now_at - timedelta(days=10)),
    ]
    settings = settings_for(write_site(tmp_path, posts, READERS, timezone=zone))
    result = scheduler.run_week(settings, now_at)
    assert (result.week.label, result.entries, result.delivery.sent, result.delivery.failed) == (
        label,
        1,
        len(READERS),
        0,
    )
    messages = maildir_messages(settings.outbox)
    assert sorted(m["To"].split("<")[-1].rstrip(">") for m in messages) == sorted(READERS)
    for message in messages:
        body = text_of(message)
        assert "일요일 밤 23시 30분의 글" in body
        assert "Monday just after midnight" not in body and "two weeks ago" not in body
    # feeds and archive are written before sending
    out = settings.output.dir
    assert {"atom.xml", "rss.xml", "index.html"} <= {p.name for p in out.iterdir()}
    assert (out / label / "index.html").is_file()


def test_a_complete_issue_is_a_no_op_and_the_log_line_says_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    now_at = local("Asia/Seoul", 2024, 4, 1, 9, 0)
    posts = [Post("walk", "강변 산책", now_at - timedelta(days=2))]
    settings = settings_for(write_site(tmp_path, posts, READERS))
    caplog.set_level("INFO", logger="digest.scheduler")
    first = scheduler.run_week(settings, now_at)
    second = scheduler.run_week(settings, now_at + timedelta(hours=1))
    assert (first.delivery.sent, second.delivery.sent) == (len(READERS), 0)
    assert len(maildir_messages(settings.outbox)) == len(READERS)
    lines = [r.getMessage() for r in caplog.records if r.name == "digest.scheduler"]
    assert lines[0].startswith("week 2024-W13: 1 entries, sent 3, deferred 0, failed 0 in ")
    assert lines[1].startswith("week 2024-W13: 1 entries, sent 0, deferred 0, failed 0 in ")


class StopAfter:
    """A Maildir transport that raises the stop flag after `count` messages, like a SIGTERM would."""

    def __init__(self, folder: Path, stop: threading.Event, count: int):
        self.inner = MaildirTransport(folder)
        self.stop = stop
        self.count = count

    def open(self) -> None:
        self.inner.open()

    def send(self, msg: OutgoingMessage) -> SendResult:
        result = self.inner.send(msg)
        self.count -= 1
        if self.count <= 0:
            self.stop.set()
        return result

    def close(self) -> None:
        self.inner.close()


def test_a_partial_issue_resumes_without_duplicates(tmp_path: Path) -> None:
    now_at = local("Asia/Seoul", 2024, 4, 1, 9, 0)
    readers = [f"reader{n:02d}@example.com" for n in range(12)]
    settings = settings_for(write_site(tmp_path, [Post("walk", "강변 산책", now_at - timedelta(days=2))], readers))
    stop = threading.Event()
    first = scheduler.run_week(settings, now_at, stop=stop, transports=lambda: StopAfter(settings.outbox, stop, 4))
    assert (
        first.delivery.stopped
        and 0 < first.delivery.sent < len(readers)
        and first.delivery.outstanding == len(readers) - first.delivery.sent
    )
    second = scheduler.run_week(settings, now_at)
    assert first.delivery.sent + second.delivery.sent == len(readers) and second.delivery.outstanding == 0
    copies = Counter(m["To"] for m in maildir_messages(settings.outbox))
    assert len(copies) == len(readers) and set(copies.values()) == {1}


@pytest.mark.parametrize("mode", ["skip", "note"])
def test_an_empty_week_never_sends_an_empty_email(tmp_path: Path, mode: str) -> None:
    now_at = local("Asia/Seoul", 2024, 4, 1, 9, 0)
    old = [Post("old", "An older post", now_at - timedelta(days=20))]
    settings = settings_for(write_site(tmp_path, old, READERS))
    settings = replace(settings, email=replace(settings.email, empty_week=mode))
    result = scheduler.run_week(settings, now_at)
    assert result.entries == 0 and (result.delivery is None or result.delivery.failed == 0)
    messages = maildir_messages(settings.outbox)
    if mode == "skip":
        assert result.empty and messages == []
    for message in messages:  # "note": only ever the no-new-posts note
        assert "No new posts this week" in text_of(message)
        assert "An older post" not in text_of(message)


# -- the schedule ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "now_at", "expected_utc"),
    [
        # Monday 09:00 in Berlin is 08:00 UTC in winter and 07:00 UTC in summer; Seoul: a minute late is next week
        (
            "Europe/Berlin",
            datetime(2024, 3, 20, tzinfo=UTC),
            ["2024-03-25T08:00", "2024-04-01T07:00", "2024-04-08T07:00"],
        ),
        (
            "Europe/Berlin",
            datetime(2024, 10, 20, tzinfo=UTC),
            ["2024-10-21T07:00", "2024-10-28T08:00", "2024-11-04T08:00"],
        ),
        (
            "Asia/Seoul",
            datetime(2024, 4, 1, 0, 1, tzinfo=UTC),
            ["2024-04-08T00:00", "2024-04-15T00:00", "2024-04-22T00:00"],
        ),
    ],
)
def test_next_runs_follow_the_site_timezone(
    tmp_path: Path, zone: str, now_at: datetime, expected_utc: list[str]
) -> None:
    settings = settings_for(write_site(tmp_path, [], READERS, timezone=zone))
    runs = scheduler.next_runs(settings, 3, now_at)
    assert [r.astimezone(UTC).strftime("%Y-%m-%dT%H:%M") for r in runs] == expected_utc
    assert all(r.tzinfo is not None and r.weekday() == 0 and (r.hour, r.minute) == (9, 0) for r in runs)


def test_the_schedule_comes_from_config(tmp_path: Path) -> None:
    config = write_site(tmp_path, [], READERS, extra='[schedule]\nday = "friday"\ntime = "17:45"\n')
    runs = scheduler.next_runs(settings_for(config), 2, local("Asia/Seoul", 2024, 4, 1, 9, 0))
    assert runs == [local("Asia/Seoul", 2024, 4, 5, 17, 45), local("Asia/Seoul", 2024, 4, 12, 17, 45)]


def stored_job(settings: Settings) -> tuple[str, float] | None:
    with sqlite3.connect(settings.db_url.removeprefix("sqlite:///")) as db:
        row = db.execute("SELECT id, next_run_time FROM apscheduler_jobs").fetchone()
    return None if row is None else (row[0], row[1])


def persist(settings: Settings, now_at: datetime) -> None:
    """Write the job into the state database as a scheduler running at `now_at` would, then stop."""
    sched = scheduler.make_scheduler(settings, blocking=False, clock=lambda: now_at)
    sched.start(paused=True)
    scheduler.shutdown(sched, wait=False)


def test_the_job_is_stored_as_plain_data(tmp_path: Path) -> None:
    settings = settings_for(write_site(tmp_path, [], READERS, extra="[schedule]\nmisfire_grace_hours = 6\n"))
    sched = scheduler.make_scheduler(settings, blocking=False)
    sched.start(paused=True)
    try:
        job = sched.get_job(scheduler.JOB_ID)
        assert job.func_ref == "digest.scheduler:scheduled_job"
        assert job.kwargs == {"config": str(settings.config_file), "site": str(settings.site.root)}
        assert (job.coalesce, job.max_instances, job.misfire_grace_time) == (True, 1, 6 * 3600)
        assert job.next_run_time == scheduler.next_runs(settings, 1, datetime.now(UTC))[0]
    finally:
        scheduler.shutdown(sched, wait=False)
    assert stored_job(settings) is not None and stored_job(settings)[0] == "weekly-digest"  # type: ignore[index]


class Runs:
    """Counts job executions of a started scheduler and waits for them."""

    def __init__(self, sched: BaseScheduler):
        self.events: list[JobExecutionEvent] = []
        self.done = threading.Event()
        sched.add_listener(self.on_event, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED)

    def on_event(self, event: JobExecutionEvent) -> None:
        self.events.append(event)
        self.done.set()

    def wait(self, timeout: float = 60) -> list[int]:
        assert self.done.wait(timeout), "the job did not run"
        time.sleep(0.5)  # room for a second (wrong) execution to show up
        return [e.code for e in self.events]


@pytest.fixture
def weekly_site(tmp_path: Path, smtp_box: Mailbox, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A site whose week that just ended (by the real clock) has a post, sending to the SMTP fixture."""
    monkeypatch.setenv("DIGEST_SECRET", SECRET)  # scheduled_job reloads settings from the environment
    now_at = datetime.now(UTC)
    probe = settings_for(write_site(tmp_path, [], READERS))
    post_at = scheduler.job_week(probe, now_at).start_at + timedelta(days=2, hours=20)
    config = write_site(
        tmp_path,
        [Post("weekly", "지난주의 글 · last week's post", post_at)],
        READERS,
        smtp_port=smtp_box.port,
        extra="[schedule]\nmisfire_grace_hours = 1440\n",  # 60 days: five missed weeks are still in grace
    )
    return settings_for(config)


def run_started(settings: Settings, clock: Callable[[], datetime] | None = None) -> tuple[list[int], Any]:
    sched = scheduler.make_scheduler(settings, blocking=False, clock=clock)
    runs = Runs(sched)
    sched.start()
    try:
        codes = runs.wait()
        return codes, sched.get_job(scheduler.JOB_ID).next_run_time
    finally:
        scheduler.shutdown(sched)


def test_a_missed_run_happens_once_then_next_monday(weekly_site: Settings, smtp_box: Mailbox) -> None:
    now_at = datetime.now(UTC)
    persist(weekly_site, now_at - timedelta(days=35))
    stored = stored_job(weekly_site)
    assert stored is not None and stored[1] < (now_at - timedelta(days=28)).timestamp()  # five Mondays missed

    codes, next_run_at = run_started(weekly_site)  # a new scheduler on the real clock finds the old job
    assert codes == [EVENT_JOB_EXECUTED]  # once, not once per missed week
    assert next_run_at == scheduler.next_runs(weekly_site, 1, datetime.now(UTC))[0]
    assert next_run_at.weekday() == 0 and next_run_at > now_at
    assert sorted(smtp_box.recipients()) == sorted(READERS)
    assert all("last week's post" in text_of(m) for _, m in smtp_box.received)


def test_a_second_start_after_a_complete_send_sends_nothing(weekly_site: Settings, smtp_box: Mailbox) -> None:
    now_at = datetime.now(UTC)
    persist(weekly_site, now_at - timedelta(days=35))
    assert run_started(weekly_site)[0] == [EVENT_JOB_EXECUTED]
    assert len(smtp_box.received) == len(READERS)
    # the stored run is in the future now; a clock eight days back makes this week's run due again
    codes, _ = run_started(weekly_site, clock=lambda: now_at - timedelta(days=8))
    assert codes == [EVENT_JOB_EXECUTED]
    assert len(smtp_box.received) == len(READERS)


def test_a_run_missed_beyond_the_grace_time_is_dropped(weekly_site: Settings, smtp_box: Mailbox) -> None:
    settings = replace(weekly_site, schedule=replace(weekly_site.schedule, misfire_grace_hours=1))
    persist(settings, datetime.now(UTC) - timedelta(days=8))  # last Monday, days past the one-hour grace
    codes, next_run_at = run_started(settings)
    assert codes == [EVENT_JOB_MISSED]
    assert smtp_box.received == [] and next_run_at > datetime.now(UTC)


def test_a_future_run_is_recomputed_when_the_config_changes(weekly_site: Settings) -> None:
    persist(weekly_site, datetime.now(UTC))
    friday = replace(weekly_site, schedule=replace(weekly_site.schedule, day="friday", time="18:00"))
    sched = scheduler.make_scheduler(friday, blocking=False)
    sched.start(paused=True)
    try:
        next_run_at = sched.get_job(scheduler.JOB_ID).next_run_time
    finally:
        scheduler.shutdown(sched, wait=False)
    assert (next_run_at.weekday(), next_run_at.hour) == (4, 18)


# -- SIGTERM during a send --------------------------------------------------------------------------

SERVICE = (
    "import sys; from pathlib import Path; from digest.config import load_settings; "
    "from digest.scheduler import serve_forever; sys.exit(serve_forever(load_settings(Path(sys.argv[1]))))"
)


@pytest.mark.slow
def test_sigterm_during_a_send_leaves_the_ledger_consistent(tmp_path: Path, smtp_box: Mailbox) -> None:
    readers = [f"reader{n:02d}@example.com" for n in range(20)]
    now_at = datetime.now(UTC)
    probe = settings_for(write_site(tmp_path, [], readers))
    week = scheduler.job_week(probe, now_at)
    config = write_site(
        tmp_path,
        [Post("weekly", "느린 서버 · a slow server", week.start_at + timedelta(days=1))],
        readers,
        smtp_port=smtp_box.port,
        extra="[schedule]\nmisfire_grace_hours = 240\n",
    )
    settings = settings_for(config)
    persist(settings, now_at - timedelta(days=8))  # due as soon as the service starts
    smtp_box.delay = 0.2  # each message takes a while, so the signal lands mid-send
    env = {**os.environ, "DIGEST_SECRET": SECRET}
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVICE, str(config)], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while len(smtp_box.received) < 3:
            assert time.monotonic() < deadline and proc.poll() is None, "the service sent nothing"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, log = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, log
    assert "next run: " in log and "SIGTERM" in log and "stopped" in log

    ledger = Ledger(settings.db_url)
    rows = {d.recipient: d.state for d in ledger.deliveries(week.label)}
    received = smtp_box.recipients()
    assert rows and set(rows.values()) <= {"sent", "pending"}  # nothing left claimed by the dead run
    assert {r for r, s in rows.items() if s == "sent"} == set(received)
    assert 3 <= len(received) < len(readers)

    smtp_box.delay = 0
    result = scheduler.run_week(settings, datetime.now(UTC))
    assert result.delivery.sent == len(readers) - len(received) and result.delivery.outstanding == 0
    copies = Counter(smtp_box.recipients())
    assert sorted(copies) == readers and set(copies.values()) == {1}


def test_sent_messages_carry_a_working_one_click_link(weekly_site: Settings, smtp_box: Mailbox) -> None:
    result = scheduler.run_week(weekly_site, datetime.now(UTC))
    assert result.delivery.sent == len(READERS)
    _, message = smtp_box.received[0]
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert isinstance(weekly_site.email, EmailSettings)
    assert weekly_site.email.public_url + "unsubscribe?token=" in message["List-Unsubscribe"]


@pytest.mark.parametrize(
    ("catch_up", "grace_hours", "labels"),
    [
        (False, 24 * 30, ["2024-W13"]),  # default: one send, the week that just ended
        (True, 24, ["2024-W13"]),  # only this Monday's run lies inside the grace time
        (True, 24 * 15, ["2024-W11", "2024-W12", "2024-W13"]),  # one send per missed week, oldest first
    ],
)
def test_catch_up_sends_each_missed_week_only_when_configured(
    tmp_path: Path, catch_up: bool, grace_hours: int, labels: list[str]
) -> None:
    settings = settings_for(write_site(tmp_path, [], READERS))
    settings = replace(
        settings, schedule=replace(settings.schedule, catch_up=catch_up, misfire_grace_hours=grace_hours)
    )
    weeks = scheduler.due_weeks(settings, local("Asia/Seoul", 2024, 4, 1, 10, 0))
    assert [w.label for w in weeks] == labels


def test_scheduled_job_reloads_the_config_and_sends(weekly_site: Settings, smtp_box: Mailbox) -> None:
    job_kwargs = {"config": str(weekly_site.config_file), "site": str(weekly_site.site.root)}
    scheduler.scheduled_job(**job_kwargs)
    scheduler.scheduled_job(**job_kwargs)  # the same week again: nothing new
    assert sorted(smtp_box.recipients()) == sorted(READERS)


def test_scheduled_job_logs_a_config_mistake_in_one_line(
    weekly_site: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    assert weekly_site.config_file is not None
    weekly_site.config_file.write_text('[schedule]\nday = "someday"\n', "utf-8")
    caplog.set_level("ERROR", logger="digest.scheduler")
    scheduler.scheduled_job(str(weekly_site.config_file), str(weekly_site.site.root))
    [record] = [r for r in caplog.records if r.name == "digest.scheduler"]
    assert record.getMessage().startswith("weekly run failed: ") and "schedule.day" in record.getMessage()
    assert record.exc_info is None
