from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from digest.dates import ImpossibleDate, date_from_path, parse_date

SEOUL = ZoneInfo("Asia/Seoul")


def fixed(hours: int, minutes: int = 0) -> timezone:
    return timezone(timedelta(hours=hours, minutes=minutes))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2020-07-04", datetime(2020, 7, 4, tzinfo=SEOUL)),
        ("2020-12-2", datetime(2020, 12, 2, tzinfo=SEOUL)),
        ("2020-07-04 12:00", datetime(2020, 7, 4, 12, tzinfo=SEOUL)),
        ("2020.07.04 12:00:00", datetime(2020, 7, 4, 12, tzinfo=SEOUL)),
        ("2020/07/04", datetime(2020, 7, 4, tzinfo=SEOUL)),
        ("2020-07-04T12:00:00+09:00", datetime(2020, 7, 4, 12, tzinfo=fixed(9))),
        ("2020-07-04 12:00:00 +0000", datetime(2020, 7, 4, 12, tzinfo=UTC)),
        ("2013-11-22 9:05:00 +0000", datetime(2013, 11, 22, 9, 5, tzinfo=UTC)),
        ("2020-07-04T12:00:00Z", datetime(2020, 7, 4, 12, tzinfo=UTC)),
        ("2020-07-04T12:00:00.250-05:30", datetime(2020, 7, 4, 12, 0, 0, 250000, tzinfo=fixed(-5, -30))),
        ("2021-04-27T14:58:33+03:00", datetime(2021, 4, 27, 14, 58, 33, tzinfo=fixed(3))),
        ("Sat, 04 Jul 2020 12:00:00 +0000", datetime(2020, 7, 4, 12, tzinfo=UTC)),
        (date(2020, 7, 4), datetime(2020, 7, 4, tzinfo=SEOUL)),  # YAML/TOML date
        (datetime(2020, 7, 4, 12, 0), datetime(2020, 7, 4, 12, tzinfo=SEOUL)),  # naive YAML timestamp
        (datetime(2020, 7, 4, 3, 0, tzinfo=UTC), datetime(2020, 7, 4, 3, tzinfo=UTC)),  # TOML offset datetime
    ],
)
def test_every_date_shape_is_read(value: object, expected: datetime) -> None:
    parsed = parse_date(value, SEOUL)
    assert parsed.tzinfo is not None
    assert parsed == expected
    assert parsed.utcoffset() == expected.utcoffset()


def test_naive_time_is_wall_clock_in_the_site_timezone() -> None:
    parsed = parse_date("2020-07-04 12:00", ZoneInfo("Europe/Berlin"))
    assert parsed.astimezone(UTC) == datetime(2020, 7, 4, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    "value", ["yesterday", "2020-13-01", "2020-02-30", "", None, 12, "2020-07-04 25:00", "07/04/2020"]
)
def test_non_dates_raise(value: object) -> None:
    with pytest.raises(ValueError):
        parse_date(value, SEOUL)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("_posts/2021-05-10-infos.md", date(2021, 5, 10)),
        ("_posts/2020-7-4-short.markdown", date(2020, 7, 4)),
        ("content/blog/2017/04/2017-04-24-slug/index.md", date(2017, 4, 24)),
        ("content/blog/2023/08/slug-without-date/index.md", None),
        ("content/posts/2019/03/05/slug.md", date(2019, 3, 5)),
        ("pages/about.md", None),
    ],
)
def test_dates_from_file_and_folder_names(path: str, expected: date | None) -> None:
    found = date_from_path(path, SEOUL)
    if expected is None:
        assert found is None
    else:
        assert found == datetime.combine(expected, datetime.min.time(), tzinfo=SEOUL)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("2019-02-30", "day is out of range for month"),
        ("2026-13-01", "month must be in 1..12"),
        ("0000-01-01", "year 0 is out of range"),
        ("2019-02-29T10:00:00+09:00", "day is out of range for month"),
        ("2020-07-04 24:00", "hour must be in 0..23"),
    ],
)
def test_impossible_dates_say_so(value: str, why: str) -> None:
    with pytest.raises(ImpossibleDate) as raised:
        parse_date(value, SEOUL)
    assert str(raised.value) == f"{value} is not a calendar date ({why})"


@pytest.mark.parametrize(
    "path",
    ["_posts/2021-02-30-bad.md", "_posts/2026-13-01-x.md", "content/b/0000-01-01-slug/index.md", "a/2019/02/31/x.md"],
)
def test_impossible_dates_in_file_names_raise(path: str) -> None:
    with pytest.raises(ImpossibleDate, match="is not a calendar date"):
        date_from_path(path, SEOUL)


NEW_YORK = ZoneInfo("America/New_York")


@pytest.mark.parametrize(
    ("value", "zone", "shown"),
    [
        ("2026-03-08 02:30", NEW_YORK, "2026-03-08T03:30:00-04:00"),  # the hour clocks skip
        (datetime(2026, 3, 8, 2, 0), NEW_YORK, "2026-03-08T03:00:00-04:00"),  # a YAML datetime
        ("Sun, 08 Mar 2026 02:59:00", NEW_YORK, "2026-03-08T03:59:00-04:00"),
        ("2026-03-08 01:59", NEW_YORK, "2026-03-08T01:59:00-05:00"),  # just before: as written
        ("2026-03-08 03:00", NEW_YORK, "2026-03-08T03:00:00-04:00"),  # just after
        ("2026-11-01 01:30", NEW_YORK, "2026-11-01T01:30:00-04:00"),  # the hour that comes twice: the first
        ("2026-03-08 02:30 -0500", NEW_YORK, "2026-03-08T02:30:00-05:00"),  # an offset is taken as written
        (date(2026, 3, 8), ZoneInfo("America/Havana"), "2026-03-08T01:00:00-04:00"),  # no midnight that day
    ],
)
def test_a_time_the_timezone_skips_is_shown_as_the_clock_reads(value: object, zone: ZoneInfo, shown: str) -> None:
    parsed = parse_date(value, zone)
    assert parsed.isoformat() == shown
    assert parsed.timestamp() == datetime.fromisoformat(shown).timestamp()  # the instant itself never moves


def test_a_file_name_of_a_day_without_midnight_is_its_first_hour() -> None:
    found = date_from_path("_posts/2026-03-08-spring.md", ZoneInfo("America/Havana"))
    assert found is not None and found.isoformat() == "2026-03-08T01:00:00-04:00"
