from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from digest.collector.runlog import is_running_log, split_items
from tests.support_collector import RUNNING_LOG, SEOUL, WEEKLY_NEWS

BODY = RUNNING_LOG.split("---\n", 2)[2]


def at(y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d, tzinfo=SEOUL)


def test_running_log_splits_into_dated_items() -> None:
    items = split_items(BODY, at(2021, 3, 20), SEOUL)
    assert [(i.published_at.date(), i.month_only) for i in items] == [
        (date(2021, 3, 20), True),  # 202103 takes the post's date (inside that month)
        (date(2021, 3, 15), False),
        (date(2021, 2, 8), False),
        (date(2021, 1, 3), False),
    ]
    assert [i.title for i in items] == [
        "Bread Baking Without Yeast  (2021.3)",
        "Cheap Bicycle Repairs (fixer)",
        "Notes on Winter Birds",
        "새해 첫 산책 기록",
    ]
    assert items[1].slug == "2021-03-15-cheap-bicycle-repairs-fixer"
    assert items[0].markdown.startswith("> 효모 없이")
    assert "![starter](/images/starter.jpg)" in items[0].markdown
    assert all("이전 기록" not in i.markdown for i in items)  # the undated trailing note is dropped


@pytest.mark.parametrize(
    ("post_day", "expected"),
    [
        (date(2021, 5, 10), date(2021, 5, 10)),  # post written after that month: the post's date
        (date(2021, 3, 31), date(2021, 3, 31)),
        (date(2021, 2, 20), date(2021, 3, 1)),  # post dated before the month: the month's first day
        (None, date(2021, 3, 1)),
    ],
)
def test_month_only_rule(post_day: date | None, expected: date) -> None:
    post_at = at(post_day.year, post_day.month, post_day.day) if post_day else None
    assert split_items(BODY, post_at, SEOUL)[0].published_at.date() == expected


@pytest.mark.parametrize(
    ("line", "day"),
    [
        ("* 20210331 Title", date(2021, 3, 31)),
        ("* 2021.2.18 Title", date(2021, 2, 18)),
        ("* 2021.1.7 Title", date(2021, 1, 7)),
        ("- 2021-02-03 Title", date(2021, 2, 3)),
        ("+ 2021.4 Title", date(2021, 4, 1)),
        ("* 202104 Title", date(2021, 4, 1)),
        ("* 2021/12/25", date(2021, 12, 25)),
        ("- 2021-02-03: Title", date(2021, 2, 3)),
        ("- 2021-02-03 — Title", date(2021, 2, 3)),
        ("- 2021-02-03 - Title", date(2021, 2, 3)),
        ("* 2021.4: Title", date(2021, 4, 1)),
    ],
)
def test_item_date_shapes(line: str, day: date) -> None:
    body = f"---\n\n{line}\n  > one\n\n---\n\n* 20200101 Other\n"
    items = split_items(body, None, SEOUL)
    assert items[0].published_at.date() == day
    assert items[0].title == ("Title" if "Title" in line else items[0].title)


@pytest.mark.parametrize(
    "body",
    [
        WEEKLY_NEWS.split("---\n", 2)[2],
        "* 2017 AI-ALC\n* 2018 AI-STT\n\n-----\n",  # bare years are not item dates
        "* 20210331 one\n* 20210401 two\n",  # dated bullets without any rule
        "-----\n\n* 20210331 one only\n\n-----\n",
        "-----\n* 2103 ResNet\n* 20211332 not a date\n-----\n",
    ],
)
def test_posts_that_are_not_running_logs(body: str) -> None:
    assert not is_running_log(body)
    assert split_items(body, at(2021, 5, 1), SEOUL) == []


def test_duplicate_titles_get_distinct_slugs() -> None:
    body = "-----\n* 20210101 Same\n-----\n* 20210101 Same\n-----\n"
    assert [i.slug for i in split_items(body, None, SEOUL)] == ["2021-01-01-same", "2021-01-01-same-2"]


def test_a_log_with_no_date_of_its_own_is_read_by_its_items(tmp_path: Path) -> None:
    """A running log with no date key and no date in its file name (reading-log.md) was left out whole as
    "not a post": its items carry their dates, so they are its entries; the log is dated by its oldest item,
    so its URL stays the same as items are added."""
    from digest.collector import collect
    from digest.config import load_settings
    from tests.conftest import state_env
    from tests.support_collector import write

    write(
        tmp_path,
        "digest.toml",
        "[site]\nurl = 'https://log.example.org/'\ntimezone = 'UTC'\npermalink = '/:year/:title/'\n",
    )
    log = "---\ntitle: Reading log\n---\n\n-----\n\n- 2026-11-18 — Second item\n  b\n\n- 2026-10-02 — First item\n  a\n"
    write(tmp_path, "posts/reading-log.md", log)
    settings = load_settings(site=tmp_path, env=state_env())
    now = datetime(2026, 11, 23, tzinfo=UTC)
    found = collect(settings.site, now)
    assert [(e.title, e.published_at.date()) for e in found.entries] == [
        ("Second item", date(2026, 11, 18)),
        ("First item", date(2026, 10, 2)),
    ]
    assert found.entries[0].url.startswith("https://log.example.org/2026/reading-log/#2026-11-18")
    write(
        tmp_path,
        "posts/reading-log.md",
        log.replace("-----\n\n- 2026-11-18", "-----\n\n- 2026-11-20 — Third\n  c\n\n- 2026-11-18"),
    )
    again = collect(settings.site, now)
    assert len(again.entries) == 3 and {e.url.split("#")[0] for e in again.entries} == {
        found.entries[0].url.split("#")[0]
    }
