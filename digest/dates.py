"""Dates in every shape real blogs use, made timezone-aware.

Accepted: YAML/TOML date and datetime values; strings ``2020-07-04``, ``2020-12-2``, ``2020.07.04 12:00:00``,
``2020/07/04``, ``2020-07-04 12:00``, ``2020-07-04T12:00:00+09:00``, ``2020-07-04 12:00:00 +0000``,
``2013-11-22 9:05:00 +0000``, ``…Z``/``UTC``, fractional seconds, and RFC 2822 (``Sat, 04 Jul 2020 12:00:00 +0000``).
A value without an offset is wall-clock time in the site's timezone. Without a date key the date comes from
the file name (``2021-05-10-infos.md``), the page-bundle folder (``2017-04-24-slug/index.md``) or
``/YYYY/MM/DD/`` folders.

A wall-clock time the site's timezone skips (02:30 on the night clocks go forward) is the same instant shown
as the clock then reads (03:30, one hour later in the new offset), as Jekyll and Hugo show it.

A value shaped like a date that is no day of the calendar (``2019-02-30``, ``2026-13-01``, ``0000-01-01``)
raises ImpossibleDate, in front matter and in file names alike, so the reader can name the file.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from typing import Any

_DATE_TEXT = re.compile(
    r"""^\s*(?P<y>\d{4})(?P<sep>[-./])(?P<m>\d{1,2})(?P=sep)(?P<d>\d{1,2})
    (?:[T\s]+(?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:[.,](?P<f>\d+))?)?)?
    \s*(?P<tz>Z|UTC|GMT|[+-]\d{2}:?\d{2}|[+-]\d{1,2})?\s*$""",
    re.X | re.I,
)
_NAME_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:-|$)")
_FOLDER_DATE = re.compile(r"(?:^|/)(\d{4})/(\d{2})/(\d{2})(?:/|$)")


class ImpossibleDate(ValueError):
    """A date in the right shape that names no day of the calendar."""


def parse_date(value: Any, tz: tzinfo) -> datetime:
    """Return an aware datetime for a front-matter value; raise ValueError when it is not a date."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else local(value, tz)
    if isinstance(value, date):
        return local(datetime.combine(value, time()), tz)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"not a date: {value!r}")
    m = _DATE_TEXT.match(value)
    if m is None:
        return _rfc2822(value, tz)
    fraction = (m.group("f") or "0")[:6].ljust(6, "0")
    try:
        naive = datetime(
            int(m.group("y")), int(m.group("m")), int(m.group("d")),
            int(m.group("H") or 0), int(m.group("M") or 0), int(m.group("S") or 0), int(fraction),
        )  # fmt: skip
    except ValueError as exc:
        raise ImpossibleDate(f"{value.strip()} is not a calendar date ({exc})") from exc
    return naive.replace(tzinfo=_offset(m.group("tz"))) if m.group("tz") else local(naive, tz)


def local(naive: datetime, tz: tzinfo) -> datetime:
    """`naive` as wall-clock time in `tz`. In the hour a change to summer time skips, the time has no
    offset of its own: it is read with the offset before the change (the same instant as an hour later in
    the new one) and shown as the clock reads then."""
    aware = naive.replace(tzinfo=tz)
    if isinstance(tz, timezone):  # a fixed offset (UTC too) skips no hour
        return aware
    shown = aware.astimezone(UTC).astimezone(tz)
    return shown if shown.replace(tzinfo=None) != naive else aware


@functools.lru_cache(maxsize=64)  # a site writes a handful of offsets, thousands of times
def _offset(text: str) -> tzinfo:
    if text.upper() in ("Z", "UTC", "GMT"):
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes = (int(digits[:-2]), int(digits[-2:])) if len(digits) > 2 else (int(digits), 0)
    if hours > 23 or minutes > 59:
        raise ValueError(f"not a UTC offset: {text}")
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _rfc2822(value: str, tz: tzinfo) -> datetime:
    from email.utils import parsedate_to_datetime  # imported by the few sites that write such dates: 12 ms

    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError) as exc:
        raise ValueError(f"not a date: {value!r}") from exc
    return parsed if parsed.tzinfo is not None else local(parsed, tz)


def date_from_path(rel_path: str, tz: tzinfo) -> datetime | None:
    """The date a Jekyll/Hugo file name or folder carries, at midnight in the site's timezone; None when
    there is none; ImpossibleDate when it is no calendar date."""
    parts = rel_path.split("/")
    name = parts[-1].rsplit(".", 1)[0]
    candidates = [name]
    if name in ("index", "_index") and len(parts) > 1:
        candidates.insert(0, parts[-2])
    for candidate in candidates:
        m = _NAME_DATE.match(candidate)
        if m:
            return _midnight(m.groups(), tz)
    m = _FOLDER_DATE.search(rel_path)
    return _midnight(m.groups(), tz) if m else None


def date_from_file_name(rel_path: str, pattern: str, tz: tzinfo) -> datetime | None:
    """The date Pelican's FILENAME_METADATA `pattern` finds in a file's name (its `date` group, matched at the
    start of the name without its extension); None when it finds none."""
    name = rel_path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    m = re.match(pattern, name)
    found = m.groupdict().get("date") if m else None
    if not found:
        return None
    try:
        return parse_date(found, tz)
    except ImpossibleDate:
        raise
    except (ValueError, OverflowError) as exc:
        raise ImpossibleDate(f"{found!r} is not a date") from exc


def _midnight(ymd: tuple[str, ...], tz: tzinfo) -> datetime:
    try:
        midnight = datetime(int(ymd[0]), int(ymd[1]), int(ymd[2]))
    except ValueError as exc:
        raise ImpossibleDate(f"{'-'.join(ymd)} is not a calendar date ({exc})") from exc
    return local(midnight, tz)
