"""The weekly service: which week a run sends, missed and late runs, resuming unfinished weeks (deferred
mail, refused logins, a database that is down), SIGTERM mid-send and the next start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from digest import pipeline, scheduler
from digest.config import EmailSettings, Settings
from digest.models import OutgoingMessage
from digest.sender.ledger import Ledger
from digest.sender.outcome import SendResult
from digest.sender.store import Store
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
    assert lines[0].startswith("week 2024-W13: 1 entry, sent 3, deferred 0, failed 0 in ")
    assert lines[1].startswith("week 2024-W13: 1 entry, sent 0, deferred 0, failed 0 in ")


class StopAfter:
    """A Maildir transport that raises the stop flag after `count` messages, like a SIGTERM would."""

    def __init__(self, folder: Path, stop: threading.Event, count: int):
        self.inner = MaildirTransport(folder)
        self.stop = stop
        self.count = count

    def open(self) -> None:
        self.inner.open()

    def send(
        self, msg: OutgoingMessage, gate: Callable[[], None] = lambda: None, then: OutgoingMessage | None = None
    ) -> SendResult:
        result = self.inner.send(msg, gate, then)
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


# (zone, day, time, from, the runs expected: local wall time and UTC offset in hours)
DST_RUNS = [
    # New York springs forward at 02:00 on Sunday 8 March 2026: Monday 00:30 the next day is an ordinary run
    ("America/New_York", "monday", "00:30", datetime(2026, 2, 25, tzinfo=UTC),
     [("2026-03-02 00:30", -5), ("2026-03-09 00:30", -4), ("2026-03-16 00:30", -4)]),
    # a time the clocks skip runs as long after the change: 02:30 is 03:30 that Sunday
    ("America/New_York", "sunday", "02:30", datetime(2026, 3, 1, 12, tzinfo=UTC),
     [("2026-03-08 03:30", -4), ("2026-03-15 02:30", -4)]),
    # Chile springs forward at midnight (Saturday 5 September 2026 24:00 is Sunday 01:00): Sunday 00:30 is 01:30
    ("America/Santiago", "sunday", "00:30", datetime(2026, 8, 31, tzinfo=UTC),
     [("2026-09-06 01:30", -3), ("2026-09-13 00:30", -3)]),
    # a time the clocks repeat in autumn runs once, at its first occurrence, then a week later
    ("America/New_York", "sunday", "01:30", datetime(2026, 10, 20, tzinfo=UTC),
     [("2026-10-25 01:30", -4), ("2026-11-01 01:30", -4), ("2026-11-08 01:30", -5), ("2026-11-15 01:30", -5)]),
    ("Europe/Berlin", "sunday", "02:30", datetime(2026, 3, 20, tzinfo=UTC),
     [("2026-03-22 02:30", 1), ("2026-03-29 03:30", 2), ("2026-04-05 02:30", 2)]),
]  # fmt: skip


@pytest.mark.parametrize(("zone", "day", "at", "from_at", "expected"), DST_RUNS)
def test_one_run_a_week_across_dst_changes(
    tmp_path: Path, zone: str, day: str, at: str, from_at: datetime, expected: list[tuple[str, int]]
) -> None:
    """No week loses its run on the night the clocks spring forward, none gets two when they fall back,
    and asking for the runs of a span that holds the repeated hour ends (it looped without end)."""
    extra = f'[schedule]\nday = "{day}"\ntime = "{at}"\n'
    settings = settings_for(write_site(tmp_path, [], READERS, timezone=zone, extra=extra))
    runs = scheduler.next_runs(settings, len(expected), from_at)
    shown = [(r.strftime("%Y-%m-%d %H:%M"), int(r.utcoffset().total_seconds() // 3600)) for r in runs]  # type: ignore[union-attr]
    assert shown == expected
    last = runs[-1] + timedelta(hours=1)
    assert scheduler.runs_between(settings, from_at, last) == runs
    # the trigger the service's scheduler runs gives the same times, one after another
    trigger = scheduler.make_scheduler(settings).get_job("weekly").trigger
    fired = [trigger.get_next_fire_time(None, from_at)]
    while len(fired) < len(expected):
        fired.append(trigger.get_next_fire_time(fired[-1], fired[-1]))
    assert [f.timestamp() for f in fired] == [r.timestamp() for r in runs]


def test_the_run_on_the_night_clocks_spring_forward_sends_its_week(tmp_path: Path) -> None:
    """Monday 00:00 in New York the day after DST began: the service owes that week, and sends it."""
    now_at = local("America/New_York", 2026, 3, 9, 0, 5)
    posts = [Post("saturday", "A Saturday post", local("America/New_York", 2026, 3, 7, 10, 0))]
    extra = '[schedule]\nday = "monday"\ntime = "00:00"\n'
    settings = settings_for(write_site(tmp_path, posts, READERS, timezone="America/New_York", extra=extra))
    assert [r.isoformat() for r in scheduler.past_runs(settings, now_at)][-1] == "2026-03-09T00:00:00-04:00"
    steps = scheduler.tick(settings, clock=lambda: now_at)
    assert [step.week.label for step in steps] == ["2026-W10"]
    assert len(maildir_messages(settings.outbox)) == len(READERS)


@pytest.fixture
def weekly_site(tmp_path: Path, smtp_box: Mailbox, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A site whose week that just ended (by the real clock) has a post, sending to the SMTP fixture."""
    monkeypatch.setenv("DIGEST_SECRET", SECRET)  # service_tick reloads settings from the environment
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


def lines_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "digest.scheduler"]


def test_a_missed_run_happens_once_not_once_per_missed_week(
    weekly_site: Settings, smtp_box: Mailbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="digest.scheduler")
    steps = scheduler.tick(weekly_site)  # five Mondays lie in the 60-day grace; only the newest is sent
    assert [s.week.label for s in steps] == [scheduler.job_week(weekly_site, datetime.now(UTC)).label]
    assert sorted(smtp_box.recipients()) == sorted(READERS)
    assert all("last week's post" in text_of(m) for _, m in smtp_box.received)
    missed = [line for line in lines_of(caplog) if "missed" in line]
    assert len(missed) >= 7 and len(set(missed)) == len(missed)  # each older Monday in the grace, logged once
    (late,) = [line for line in lines_of(caplog) if "running it now" in line]  # said before it is sent
    assert late.startswith(f"week {steps[0].week.label}: its run was due at ")
    assert scheduler.tick(weekly_site) == []  # a second tick owes nothing and logs nothing new
    assert len(smtp_box.received) == len(READERS)
    assert [line for line in lines_of(caplog) if "missed" in line] == missed


def test_a_second_start_after_a_complete_send_sends_nothing(weekly_site: Settings, smtp_box: Mailbox) -> None:
    assert len(scheduler.tick(weekly_site)) == 1
    # a new process, later the same week: the state database says the week is done
    later = datetime.now(UTC) + timedelta(hours=30)
    assert scheduler.tick(weekly_site, clock=lambda: later) == []
    assert len(smtp_box.received) == len(READERS)


def test_a_run_missed_beyond_the_grace_time_is_logged_once_and_not_sent(
    weekly_site: Settings, smtp_box: Mailbox, caplog: pytest.LogCaptureFixture
) -> None:
    settings = replace(weekly_site, schedule=replace(weekly_site.schedule, misfire_grace_hours=1))
    last_run = scheduler.next_runs(settings, 1, datetime.now(UTC) - timedelta(days=7))[0]
    caplog.set_level("INFO", logger="digest.scheduler")
    clock = lambda: last_run + timedelta(hours=5)  # noqa: E731
    assert scheduler.tick(settings, clock=clock) == [] and scheduler.tick(settings, clock=clock) == []
    assert smtp_box.received == []
    assert [line for line in lines_of(caplog) if "missed" in line] == [
        f"week {scheduler.job_week(settings, last_run).label}: its run was missed by more than the grace time; not sent"
    ]


def test_a_week_sent_by_hand_is_not_logged_as_missed(
    weekly_site: Settings, smtp_box: Mailbox, caplog: pytest.LogCaptureFixture
) -> None:
    """The service was down; the owner sent the week with `digest run`: the service, started after the grace
    time, neither sends it again nor logs it as missed."""
    settings = replace(weekly_site, schedule=replace(weekly_site.schedule, misfire_grace_hours=1))
    last_run = scheduler.next_runs(settings, 1, datetime.now(UTC) - timedelta(days=7))[0]
    week = scheduler.job_week(settings, last_run)
    store = Store(settings.db_url)
    try:
        pipeline.run_cycle(settings, last_run + timedelta(hours=2), week, store=store, clock=lambda: datetime.now(UTC))
    finally:
        store.close()
    assert len(smtp_box.received) == len(READERS)
    caplog.set_level("INFO", logger="digest.scheduler")
    assert scheduler.tick(settings, clock=lambda: last_run + timedelta(hours=5)) == []
    assert len(smtp_box.received) == len(READERS)
    assert [line for line in lines_of(caplog) if "missed" in line] == []


def test_a_changed_schedule_applies_at_the_next_tick(weekly_site: Settings) -> None:
    friday = replace(weekly_site, schedule=replace(weekly_site.schedule, day="friday", time="18:00"))
    runs = scheduler.past_runs(friday, datetime.now(UTC))
    assert runs and all((r.weekday(), r.hour) == (4, 18) for r in runs)


def test_a_run_started_late_sends_the_week_of_its_scheduled_time(tmp_path: Path) -> None:
    """Schedule Sunday 23:00; the service was down and runs at Monday 01:00: the week due on Sunday goes out."""
    sunday_23 = local("Asia/Seoul", 2024, 3, 31, 23, 0)
    posts = [Post("due", "The week due on Sunday", sunday_23 - timedelta(days=9))]  # in W12
    config = write_site(tmp_path, posts, READERS, extra='[schedule]\nday = "sunday"\ntime = "23:00"\n')
    settings = settings_for(config)
    assert scheduler.job_week(settings, sunday_23).label == "2024-W12"
    steps = scheduler.tick(settings, clock=lambda: sunday_23 + timedelta(hours=2))
    assert [s.week.label for s in steps] == ["2024-W12"]
    assert steps[0].report is not None and steps[0].report.entries == 1
    assert len(maildir_messages(settings.outbox)) == len(READERS)


def test_deferred_mail_is_retried_by_the_service_until_the_week_is_done(
    weekly_site: Settings, smtp_box: Mailbox
) -> None:
    readers = [f"reader{n:02d}@example.com" for n in range(30)]
    (weekly_site.subscribers or Path()).write_text(
        "subscribers:\n" + "".join(f"  - email: {r}\n" for r in readers), "utf-8"
    )
    smtp_box.defer_rate = 0.2
    now_at = datetime.now(UTC)
    [first] = scheduler.tick(weekly_site, clock=lambda: now_at)
    assert first.cycle is not None and first.cycle.state == "open" and first.cycle.next_try_at is not None
    assert first.report is not None and first.report.delivery is not None and first.report.delivery.deferred == 6
    assert scheduler.tick(weekly_site, clock=lambda: now_at + timedelta(seconds=10)) == []  # not due yet
    smtp_box.defer_rate = 0
    retry_at = first.cycle.next_try_at + timedelta(seconds=1)
    [second] = scheduler.tick(weekly_site, clock=lambda: retry_at)
    assert second.cycle is not None and second.cycle.state == "done"
    copies = Counter(smtp_box.recipients())
    assert sorted(copies) == readers and set(copies.values()) == {1}


def test_a_refused_login_is_retried_with_back_off_and_the_week_is_not_skipped(
    weekly_site: Settings, smtp_box: Mailbox, caplog: pytest.LogCaptureFixture
) -> None:
    settings = replace(weekly_site, smtp=replace(weekly_site.smtp, username="digest", password="wrong"))
    smtp_box.accept_login = False
    caplog.set_level("INFO", logger="digest.scheduler")
    now_at = datetime.now(UTC)
    [first] = scheduler.tick(settings, clock=lambda: now_at)
    assert first.error is not None and "refused the login" in str(first.error)
    assert first.cycle is not None and first.cycle.state == "open" and first.cycle.attempts == 1
    assert first.cycle.next_try_at is not None and first.cycle.next_try_at > now_at
    [error_line] = [line for line in lines_of(caplog) if "refused the login" in line]
    assert "next try" in error_line and "Traceback" not in error_line
    shown = first.cycle.next_try_at.astimezone(settings.site.tz).isoformat(timespec="seconds")
    assert error_line.endswith(f"next try {shown}")  # in the site's time, to the second
    [again] = scheduler.tick(settings, clock=lambda: first.cycle.next_try_at)  # type: ignore[union-attr]
    assert again.cycle is not None and again.cycle.attempts == 2
    assert again.cycle.next_try_at - first.cycle.next_try_at > first.cycle.next_try_at - now_at  # type: ignore
    smtp_box.accept_login = True
    [done] = scheduler.tick(settings, clock=lambda: again.cycle.next_try_at)  # type: ignore[union-attr]
    assert done.cycle is not None and done.cycle.state == "done"
    assert sorted(smtp_box.recipients()) == sorted(READERS)


def test_a_database_that_is_down_is_one_log_line_per_tick(
    weekly_site: Settings, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.support_service import free_port

    monkeypatch.setenv("DIGEST_DATABASE_URL", f"postgresql+psycopg://digest@127.0.0.1:{free_port()}/nowhere")
    caplog.set_level("INFO", logger="digest.scheduler")
    for _ in range(2):
        scheduler.service_tick(str(weekly_site.config_file), str(weekly_site.site.root))
    errors = [r for r in caplog.records if r.name == "digest.scheduler" and r.levelname == "ERROR"]
    assert len(errors) == 2 and all("state database" in r.getMessage() and r.exc_info is None for r in errors)
    assert all("\n" not in r.getMessage() for r in errors)


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
    now_at = local("Asia/Seoul", 2024, 4, 1, 10, 0)
    store = pipeline.open_store(settings)
    due, _ = pipeline.due_weeks(settings, now_at, scheduler.past_runs(settings, now_at), store)
    assert [w.label for w, _ in due] == labels


def test_service_tick_reloads_the_config_and_sends_once(weekly_site: Settings, smtp_box: Mailbox) -> None:
    job_kwargs = {"config": str(weekly_site.config_file), "site": str(weekly_site.site.root)}
    scheduler.service_tick(**job_kwargs)
    scheduler.service_tick(**job_kwargs)  # the same week again: nothing new
    assert sorted(smtp_box.recipients()) == sorted(READERS)


def test_service_tick_logs_a_config_mistake_in_one_line(
    weekly_site: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    assert weekly_site.config_file is not None
    weekly_site.config_file.write_text('[schedule]\nday = "someday"\n', "utf-8")
    caplog.set_level("ERROR", logger="digest.scheduler")
    scheduler.service_tick(str(weekly_site.config_file), str(weekly_site.site.root))
    [record] = [r for r in caplog.records if r.name == "digest.scheduler"]
    assert record.getMessage().startswith("weekly service: ") and "schedule.day" in record.getMessage()
    assert record.exc_info is None


# -- the real process ---------------------------------------------------------------------------------

SERVICE = (
    "import sys; from pathlib import Path; from digest.config import load_settings; "
    "from digest.scheduler import serve_forever; sys.exit(serve_forever(load_settings(Path(sys.argv[1]))))"
)


@pytest.mark.slow
def test_sigterm_during_a_send_stops_cleanly_and_the_next_start_finishes(tmp_path: Path, smtp_box: Mailbox) -> None:
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
    smtp_box.delay = 0.2  # each message takes a while, so the signal lands mid-send
    env = {**os.environ, "DIGEST_SECRET": SECRET}

    def start() -> subprocess.Popen[str]:
        args = [sys.executable, "-c", SERVICE, str(config)]
        return subprocess.Popen(args, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)

    proc = start()
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
    assert "next run: " in log and "SIGTERM" in log and "stopped" in log and "Traceback" not in log
    ledger = Ledger(settings.db_url)
    rows = {d.recipient: d.state for d in ledger.deliveries(week.label)}
    received = smtp_box.recipients()
    assert rows and set(rows.values()) <= {"sent", "pending"}  # nothing left claimed by the stopped run
    assert {r for r, s in rows.items() if s == "sent"} == set(received)
    assert 3 <= len(received) < len(readers)

    smtp_box.delay = 0
    proc = start()  # the next start finishes the week by itself
    try:
        deadline = time.monotonic() + 60
        while len(smtp_box.received) < len(readers):
            assert time.monotonic() < deadline and proc.poll() is None, "the restart did not finish the week"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    copies = Counter(smtp_box.recipients())
    assert sorted(copies) == readers and set(copies.values()) == {1}


def test_sent_messages_carry_a_working_one_click_link(weekly_site: Settings, smtp_box: Mailbox) -> None:
    result = scheduler.run_week(weekly_site, datetime.now(UTC))
    assert result.delivery.sent == len(READERS)
    _, message = smtp_box.received[0]
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert isinstance(weekly_site.email, EmailSettings)
    assert weekly_site.email.public_url + "unsubscribe?token=" in message["List-Unsubscribe"]
