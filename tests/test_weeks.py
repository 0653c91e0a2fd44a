from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from digest.errors import UsageError
from digest.weeks import parse_week, week_of, window
from tests.support_collector import site_in

BERLIN = ZoneInfo("Europe/Berlin")
SEOUL = ZoneInfo("Asia/Seoul")


@pytest.mark.parametrize(
    ("moment", "tz", "label", "start"),
    [
        (datetime(2020, 7, 4, 12, tzinfo=SEOUL), "Asia/Seoul", "2020-W27", datetime(2020, 6, 29, tzinfo=SEOUL)),
        # Sunday 23:30 at +03:00 is Monday 05:30 in Seoul: the next week there
        (datetime(2020, 7, 5, 23, 30, tzinfo=timezone(timedelta(hours=3))), "Asia/Seoul", "2020-W28", None),
        (datetime(2020, 7, 5, 23, 30, tzinfo=timezone(timedelta(hours=3))), "Europe/Moscow", "2020-W27", None),
        (datetime(2020, 7, 6, 0, 0, tzinfo=SEOUL), "Asia/Seoul", "2020-W28", datetime(2020, 7, 6, tzinfo=SEOUL)),
        (datetime(2020, 7, 5, 23, 59, 59, 999999, tzinfo=SEOUL), "Asia/Seoul", "2020-W27", None),
        (datetime(2021, 1, 3, 12, tzinfo=UTC), "UTC", "2020-W53", datetime(2020, 12, 28, tzinfo=UTC)),
    ],
)
def test_week_of(moment: datetime, tz: str, label: str, start: datetime | None) -> None:
    week = week_of(moment, site_in(tz))
    assert week.label == label
    assert week.contains(moment.astimezone(ZoneInfo(tz)))
    if start is not None:
        assert week.start_at == start


def test_dst_week_in_berlin_is_167_hours_and_the_next_starts_at_midnight() -> None:
    site = site_in("Europe/Berlin")
    week = week_of(datetime(2021, 3, 28, 12, tzinfo=BERLIN), site)  # clocks go forward that Sunday
    assert week.label == "2021-W12"
    assert week.start_at == datetime(2021, 3, 22, tzinfo=BERLIN)
    assert week.end_at == datetime(2021, 3, 29, tzinfo=BERLIN)
    assert week.end_at.utcoffset() == timedelta(hours=2)
    assert (week.end_at.astimezone(UTC) - week.start_at.astimezone(UTC)) == timedelta(hours=167)
    following = week_of(week.end_at, site)
    assert following.start_at.astimezone(UTC) == week.end_at.astimezone(UTC)
    assert following.label == "2021-W13"


def test_dst_end_week_is_169_hours() -> None:
    week = week_of(datetime(2021, 10, 31, 2, 30, tzinfo=BERLIN), site_in("Europe/Berlin"))
    assert (week.end_at.astimezone(UTC) - week.start_at.astimezone(UTC)) == timedelta(hours=169)


def test_every_moment_falls_in_exactly_one_week_across_dst() -> None:
    site = site_in("Europe/Berlin", week_start_day=6, week_start_hour=2)  # Sunday 02:00: inside the DST gap
    moment = datetime(2021, 3, 20, tzinfo=UTC)
    labels = []
    while moment < datetime(2021, 4, 10, tzinfo=UTC):
        week = week_of(moment, site)
        assert week.start_at.timestamp() <= moment.timestamp() < week.end_at.timestamp()
        labels.append(week.label)
        moment += timedelta(minutes=30)
    assert sorted(set(labels)) == ["2021-03-14", "2021-03-21", "2021-03-28", "2021-04-04"]


def test_configured_start_day_and_hour() -> None:
    site = site_in("Asia/Seoul", week_start_day=6, week_start_hour=9)
    before = week_of(datetime(2020, 7, 5, 8, 59, tzinfo=SEOUL), site)
    after = week_of(datetime(2020, 7, 5, 9, 0, tzinfo=SEOUL), site)
    assert before.label == "2020-06-28"
    assert after.label == "2020-07-05"
    assert after.start_at == datetime(2020, 7, 5, 9, tzinfo=SEOUL)
    assert before.end_at == after.start_at


NOW_AT = datetime(2020, 7, 8, 15, tzinfo=SEOUL)  # a Wednesday in 2020-W28


@pytest.mark.parametrize(
    ("spec", "label"),
    [
        ("2020-W27", "2020-W27"),
        ("2020w27", "2020-W27"),
        ("last", "2020-W27"),
        ("this", "2020-W28"),
        ("current", "2020-W28"),
        ("2020-07-04", "2020-W27"),
        ("2020-7-6", "2020-W28"),
        ("2020-W53", "2020-W53"),
    ],
)
def test_parse_week(spec: str, label: str) -> None:
    assert parse_week(spec, site_in("Asia/Seoul"), NOW_AT).label == label


@pytest.mark.parametrize("spec", ["2021-W53", "2020-W00", "next", "W27", "2020-07-32", ""])
def test_parse_week_rejects_bad_specs(spec: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_week(spec, site_in("Asia/Seoul"), NOW_AT)
    assert caught.value.hint


def test_iso_week_needs_monday_weeks() -> None:
    with pytest.raises(UsageError, match="Monday"):
        parse_week("2020-W27", site_in("Asia/Seoul", week_start_day=6), NOW_AT)


def test_last_week_across_dst_starts_at_local_midnight() -> None:
    now_at = datetime(2021, 3, 31, 10, tzinfo=BERLIN)
    week = parse_week("last", site_in("Europe/Berlin"), now_at)
    assert week.start_at == datetime(2021, 3, 22, tzinfo=BERLIN)
    assert week.start_at.utcoffset() == timedelta(hours=1)
    assert week.end_at.utcoffset() == timedelta(hours=2)


def test_window_with_dates_is_inclusive_of_the_until_day() -> None:
    week = window("2020-07-01", "2020-07-03", site_in("Asia/Seoul"), NOW_AT)
    assert week.start_at == datetime(2020, 7, 1, tzinfo=SEOUL)
    assert week.end_at == datetime(2020, 7, 4, tzinfo=SEOUL)
    assert week.label == "2020-07-01--2020-07-03"


def test_window_matching_a_week_takes_its_label() -> None:
    assert window("2020-06-29", "2020-07-05", site_in("Asia/Seoul"), NOW_AT).label == "2020-W27"


def test_window_with_datetimes_and_open_end() -> None:
    week = window("2020-07-06T09:00:00+09:00", None, site_in("Asia/Seoul"), NOW_AT)
    assert week.start_at == datetime(2020, 7, 6, 9, tzinfo=SEOUL)
    assert week.end_at == NOW_AT


@pytest.mark.parametrize(("since", "until"), [("soon", None), ("2020-07-05", "2020-07-01"), ("2020-07-01", "x")])
def test_window_rejects_bad_values(since: str, until: str | None) -> None:
    with pytest.raises(UsageError):
        window(since, until, site_in("Asia/Seoul"), NOW_AT)


def test_a_window_of_times_the_clocks_skip_says_what_they_are() -> None:
    """02:30 and 03:30 on the night New York springs forward are the same moment: the error shows it."""
    with pytest.raises(UsageError) as caught:
        window("2026-03-08T02:30", "2026-03-08T03:30", site_in("America/New_York"), datetime(2026, 3, 9, tzinfo=UTC))
    assert "they are 2026-03-08T03:30-04:00 and 2026-03-08T03:30-04:00" in caught.value.message


def test_a_window_until_a_time_ends_just_before_it() -> None:
    week = window("2020-07-01T09:00", "2020-07-01T21:00", site_in("Asia/Seoul"), NOW_AT)
    assert week.end_at == datetime(2020, 7, 1, 21, tzinfo=SEOUL)  # half-open: a post at 21:00 is not in it
