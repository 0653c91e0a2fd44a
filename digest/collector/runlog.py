"""Running logs: one post that collects dated items over months, each item a top-level bullet that begins
with a date, items separated by rules of dashes::

    -----------------
    * 20210331 Title of the item
      > what happened …
    -----------------
    * 2021.2.18 Another item

Such a post is split into one entry per dated item so a week's issue shows only that week's items.

Rules:
- A post is a running log when it has at least one dash rule (a line of three or more ``-``) and at least
  two top-level bullets that begin with a date. An item runs from its bullet to the next rule or the next
  top-level bullet.
- Dates: ``20210331`` and ``2021.2.18``/``2021-2-18``/``2021/2/18`` (a day), ``202104`` and ``2021.4``
  (a month only). A bare year (``2021``) or anything that is not a real calendar date is not an item date.
- A month-only item takes the post's own date (front matter, else the file name), because that is when
  the item was written down at the latest; if the post's date is earlier than that month, the item takes
  the first day of the month instead.
- Items without a date (an intro, a trailing "older items are elsewhere" note) are dropped.
- Item dates are midnight in the site's timezone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, tzinfo

from digest.text import slugify

_RULE = re.compile(r"^ {0,3}-{3,}\s*$")
_BULLET = re.compile(r"^[*+-]\s+")
_DATED = re.compile(
    r"^(?P<indent>[*+-]\s+)(?P<date>(?P<y>\d{4})(?:(?P<m8>\d{2})(?P<d8>\d{2})?|[./-](?P<m>\d{1,2})(?:[./-](?P<d>\d{1,2}))?\.?))"
    # "- 2024-01-05 Title", "- 2024-01-05: Title", "- 2024-01-05 — Title": the separator is not the title's
    r":?(?=\s|$)[ \t]*(?:[:–—-][ \t]+)?(?P<title>.*)$"
)


@dataclass(frozen=True)
class LogItem:
    title: str
    markdown: str  # the item's body without the date line
    published_at: datetime
    slug: str  # anchor within the post, unique in it
    month_only: bool


def _item_date(m: re.Match[str]) -> tuple[date, bool] | None:
    month = m.group("m8") or m.group("m")
    day = m.group("d8") or m.group("d")
    try:
        return date(int(m.group("y")), int(month), int(day or 1)), day is None
    except ValueError:
        return None


def _dated(line: str) -> tuple[re.Match[str], date, bool] | None:
    m = _DATED.match(line)
    if m is None:
        return None
    found = _item_date(m)
    return (m, *found) if found else None


def is_running_log(body: str) -> bool:
    lines = body.split("\n")
    if not any(_RULE.match(line) for line in lines):
        return False
    return sum(1 for line in lines if line[:1] in "*+-" and _dated(line)) >= 2


def split_items(body: str, post_at: datetime | None, tz: tzinfo) -> list[LogItem]:
    """The dated items of a running-log post, in file order (empty when ``body`` is not one)."""
    if not is_running_log(body):
        return []
    items: list[LogItem] = []
    seen: set[str] = set()
    current: tuple[re.Match[str], date, bool] | None = None
    lines: list[str] = []

    def flush() -> None:
        if current is not None:
            items.append(_make_item(current, lines, post_at, tz, seen))

    for line in body.split("\n"):
        if _RULE.match(line) or _BULLET.match(line):
            flush()
            current, lines = (_dated(line) if not _RULE.match(line) else None), []
            continue
        lines.append(line)
    flush()
    return items


def _make_item(
    found: tuple[re.Match[str], date, bool], lines: list[str], post_at: datetime | None, tz: tzinfo, seen: set[str]
) -> LogItem:
    m, day, month_only = found
    published_at = datetime.combine(day, time(), tzinfo=tz)
    if month_only and post_at is not None and post_at.timestamp() >= published_at.timestamp():
        published_at = post_at
    title = m.group("title").strip() or m.group("date")
    stamp = f"{day.year:04d}-{day.month:02d}" if month_only else day.isoformat()
    base = re.sub(r"-{2,}", "-", slugify(f"{stamp} {title}", limit=60)).strip("-")
    slug, n = base, 1
    while slug in seen:
        n += 1
        slug = f"{base}-{n}"
    seen.add(slug)
    width = len(m.group("indent"))
    text = "\n".join(_dedent(line, width) for line in lines).strip("\n")
    return LogItem(title, text, published_at, slug, month_only)


def _dedent(line: str, width: int) -> str:
    stripped = len(line) - len(line.lstrip(" "))
    return line[min(stripped, width) :]
