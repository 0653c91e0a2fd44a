"""Weeks: half-open windows [start, start + 7 days) in the site's timezone.

Boundaries are built from local calendar dates and the configured start hour with zoneinfo, never by adding
timedelta to an aware datetime, so a week that contains a DST change is 167 or 169 hours long and the next
week still starts at the configured wall-clock hour. Weeks starting on Monday are labelled by ISO week
(``2020-W27``); others by their start date (``2020-07-05``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

from digest.dates import parse_date
from digest.errors import UsageError
from digest.models import Site, Week

_ISO_WEEK = re.compile(r"^(\d{4})-?W(\d{1,2})$", re.I)
_WEEK_HINT = 'use 2020-W27, "last", "this" or a date such as 2020-07-04'


def _start_of(day: date, site: Site) -> datetime:
    return datetime.combine(day, time(site.week_start_hour), tzinfo=ZoneInfo(site.timezone))


def _week_from(start_day: date, site: Site) -> Week:
    start_at = _start_of(start_day, site)
    end_at = _start_of(start_day + timedelta(days=7), site)
    if site.week_start_day == 0:
        year, number, _ = start_day.isocalendar()
        label = f"{year}-W{number:02d}"
    else:
        label = start_day.isoformat()
    return Week(start_at, end_at, label)


def _start_day(moment_at: datetime, site: Site) -> date:
    local = moment_at.astimezone(ZoneInfo(site.timezone))
    day = local.date() - timedelta(days=(local.weekday() - site.week_start_day) % 7)
    # Compare instants, not wall clocks: same-tzinfo comparisons ignore the DST fold.
    if _start_of(day, site).timestamp() > moment_at.timestamp():
        day -= timedelta(days=7)
    return day


def week_of(moment_at: datetime, site: Site) -> Week:
    """The week containing ``moment_at`` (an aware datetime in any timezone)."""
    if moment_at.tzinfo is None:
        raise ValueError("week_of needs a timezone-aware datetime")
    return _week_from(_start_day(moment_at, site), site)


def parse_week(spec: str, site: Site, now_at: datetime) -> Week:
    """``2020-W27`` (weeks starting Monday only), ``last``, ``this``/``current`` or a date ``2020-07-04``."""
    text = spec.strip().lower()
    if text in ("this", "current"):
        return week_of(now_at, site)
    if text in ("last", "previous"):
        return _week_from(_start_day(now_at, site) - timedelta(days=7), site)
    m = _ISO_WEEK.match(text)
    if m:
        if site.week_start_day != 0:
            raise UsageError(
                f"ISO week {spec!r} needs weeks that start on Monday",
                'give a date inside the week instead, or set site.week_start = "monday"',
            )
        try:
            monday = date.fromisocalendar(int(m.group(1)), int(m.group(2)), 1)
        except ValueError as exc:
            raise UsageError(f"week {spec!r} does not exist", _WEEK_HINT) from exc
        return _week_from(monday, site)
    day = _parse_day(spec)
    if day is None:
        raise UsageError(f"cannot read the week {spec!r}", _WEEK_HINT)
    # A date names the week its start hour belongs to, so the start day picks the week it opens.
    return week_of(_start_of(day, site), site)


def _parse_day(spec: str) -> date | None:
    try:
        return parse_date(spec, ZoneInfo("UTC")).date()
    except ValueError:
        return None


def window(since: str, until: str | None, site: Site, now_at: datetime) -> Week:
    """A window from ``--since``/``--until``: a date means its local midnight; ``until`` as a date is
    inclusive (the window ends at the following midnight); no ``until`` means ``now_at``."""
    tz = ZoneInfo(site.timezone)
    start_at = _moment(since, "--since", tz, end=False)
    end_at = _moment(until, "--until", tz, end=True) if until else now_at.astimezone(tz)
    if end_at.timestamp() <= start_at.timestamp():
        raise UsageError(
            f"--since {since} is not before --until {until or 'now'}: in {site.timezone} they are "
            f"{start_at.isoformat(timespec='minutes')} and {end_at.isoformat(timespec='minutes')} (a time the "
            "clocks skip is read as the same time after the change)",
            "swap or fix the two values",
        )
    exact = week_of(start_at, site)
    if exact.start_at == start_at and exact.end_at == end_at:
        return exact
    last = (end_at - timedelta(microseconds=1)).date()
    return Week(start_at, end_at, f"{start_at.date().isoformat()}--{last.isoformat()}", custom=True)


def _moment(text: str, option: str, tz: ZoneInfo, *, end: bool) -> datetime:
    try:
        moment = parse_date(text, tz)
    except ValueError as exc:
        raise UsageError(
            f"{option} {text!r} is not a date", "use a date such as 2020-07-04 or 2020-07-04T12:00:00+09:00"
        ) from exc
    if end and re.fullmatch(r"\s*\d{4}[-./]\d{1,2}[-./]\d{1,2}\s*", text):
        moment = datetime.combine(moment.date() + timedelta(days=1), time(), tzinfo=tz)
    return moment.astimezone(tz)


# -- a weekly time: the service's runs -----------------------------------------------------------------


def wall_time(day: date, at: time, tz: tzinfo) -> datetime:
    """`at` on `day` in `tz` as an instant: a wall time the clocks skip (02:30 on the night they spring
    forward) is the same length of time after the change (03:30), as cron does; one they repeat (01:30 when
    they fall back) is its first occurrence."""
    return datetime.combine(day, at, tzinfo=tz).astimezone(UTC).astimezone(tz)


def weekly_times(weekday: int, at: time, tz: tzinfo, after: datetime) -> Iterator[datetime]:
    """Every `weekday` (0 = Monday) at `at` in `tz` strictly after `after`, oldest first, without end; one a
    week whatever the DST changes between them (each found from its own date, never by adding hours)."""
    instant = after.timestamp()
    day = after.astimezone(tz).date() - timedelta(days=1)  # the day before: a skipped time moves forward
    day += timedelta(days=(weekday - day.weekday()) % 7)
    while True:
        moment = wall_time(day, at, tz)
        if moment.timestamp() > instant:
            yield moment
        day += timedelta(days=7)
