from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from digest.collector import collect
from digest.config import load_settings
from digest.models import Entry
from digest.weeks import week_of
from tests.conftest import state_env
from tests.support_collector import (
    FROST,
    HERON,
    MUSHROOMS,
    NOW_AT,
    POND_LOG,
    RUNNING_LOG,
    SEOUL,
    WEEKLY_NEWS,
    make_site,
    post,
    write,
)

TOML_POST = """+++
title = "Hugo style notes"
date = 2021-03-24T08:00:00+09:00
tags = ["hugo", "메모"]
categories = "tools"
author = "Kim"
+++

Notes written in **TOML** front matter. {{< youtube "vid42" >}}

{{< callout type="info" >}}Keep this text{{< /callout >}}
"""
PELICAN = "Title: Pelican 헤더\nDate: 2021-03-22 9:05:00 +0000\nTags: a, b\nAuthors: Lee, Park\n\nPelican body.\n"
LIQUID = post(
    "Liquid post",
    "2021-03-21 10:00",
    body="{% include head.html %}Hello {{ page.title }}.\n\n![pic]({{ site.baseurl }}/assets/p.png)\n",
)


@pytest.fixture
def entries(tmp_path: Path) -> dict[str, Entry]:
    site = make_site(
        tmp_path,
        {
            "_posts/2021-03-27-weekly-news.md": WEEKLY_NEWS,
            "_posts/2021-03-20-reading-log.md": RUNNING_LOG,
            "_posts/2021-03-24-toml.md": TOML_POST,
            "_posts/2021-03-22-pelican.md": PELICAN,
            "_posts/2021-03-21-liquid.md": LIQUID,
        },
    )
    result = collect(site, NOW_AT)
    assert result.problems == ()
    return {e.title: e for e in result.entries}


def test_weekly_news_post(entries: dict[str, Entry]) -> None:
    e = entries["주간 정원 소식 (3월 넷째 주)"]
    assert e.published_at == datetime(2021, 3, 27, 18, 30, tzinfo=SEOUL)
    assert e.url == "https://blog.example.com/2021/03/27/weekly-news/"
    assert e.id == "tag:blog.example.com,2021-03-27:/_posts/2021-03-27-weekly-news.md"
    assert e.source == "_posts/2021-03-27-weekly-news.md"
    assert [h.text for h in e.outline] == ["Tomato Seeds", "Rain & Wind", "새 화분"]
    assert e.categories == ("news",) and e.tags == ("garden", "식물")
    assert 'href="https://blog.example.com/notes/tomato.html"' in e.body_html
    assert 'src="https://blog.example.com/2021/03/27/weekly-news/rain.jpg"' in e.body_html
    assert 'href="https://blog.example.com/2021/03/27/weekly-news/#tomato-seeds"' in e.body_html
    assert e.summary_html.startswith("<p><a href=")


def test_running_log_becomes_one_entry_per_dated_item(entries: dict[str, Entry]) -> None:
    items = [e for e in entries.values() if e.source == "_posts/2021-03-20-reading-log.md"]
    assert sorted((e.published_at.date().isoformat(), e.title) for e in items) == [
        ("2021-01-03", "새해 첫 산책 기록"),
        ("2021-02-08", "Notes on Winter Birds"),
        ("2021-03-15", "Cheap Bicycle Repairs (fixer)"),
        ("2021-03-20", "Bread Baking Without Yeast  (2021.3)"),
    ]
    bikes = entries["Cheap Bicycle Repairs (fixer)"]
    assert bikes.url == "https://blog.example.com/2021/03/20/reading-log/#2021-03-15-cheap-bicycle-repairs-fixer"
    assert (
        bikes.id
        == "tag:blog.example.com,2021-03-15:/_posts/2021-03-20-reading-log.md#2021-03-15-cheap-bicycle-repairs-fixer"
    )
    assert bikes.categories == ("log",)
    assert "<blockquote>" in bikes.body_html
    assert bikes.summary_html.startswith("<p>체인에 기름칠하는")
    bread = entries["Bread Baking Without Yeast  (2021.3)"]
    assert 'src="https://blog.example.com/images/starter.jpg"' in bread.body_html


def test_toml_post_with_shortcodes(entries: dict[str, Entry]) -> None:
    e = entries["Hugo style notes"]
    assert e.published_at == datetime(2021, 3, 24, 8, tzinfo=SEOUL)
    assert e.tags == ("hugo", "메모") and e.categories == ("tools",) and e.authors == ("Kim",)
    assert 'href="https://www.youtube.com/watch?v=vid42"' in e.body_html
    assert "Keep this text" in e.body_html
    assert "{{" not in e.body_html and "callout" not in e.body_html


def test_pelican_post(entries: dict[str, Entry]) -> None:
    e = entries["Pelican 헤더"]
    assert e.published_at == datetime(2021, 3, 22, 18, 5, tzinfo=SEOUL)
    assert e.tags == ("a", "b") and e.authors == ("Lee", "Park")
    assert e.body_html == "<p>Pelican body.</p>\n"


def test_liquid_never_reaches_the_body(entries: dict[str, Entry]) -> None:
    e = entries["Liquid post"]
    assert e.body_html.startswith("<p>Hello .</p>")
    assert 'src="https://blog.example.com/assets/p.png"' in e.body_html
    assert not re.search(r"{[{%]|[%}]}", e.body_html)


def test_newest_first_and_window(tmp_path: Path) -> None:
    site = make_site(
        tmp_path, {f"_posts/2021-03-{d:02d}-p{d}.md": post(f"P{d}", f"2021-03-{d:02d}") for d in (1, 9, 15, 31)}
    )
    titles = [e.title for e in collect(site, NOW_AT).entries]
    assert titles == ["P31", "P15", "P9", "P1"]
    since = datetime(2021, 3, 9, tzinfo=SEOUL)
    assert [e.title for e in collect(site, datetime(2021, 3, 15, tzinfo=SEOUL), since).entries] == ["P15", "P9"]


def test_xml_illegal_characters_are_removed(tmp_path: Path) -> None:
    text = post("Bad\x01 title\x0b", body="Body\x00 with\x1f control\x08 chars\x0c.\n")
    site = make_site(tmp_path, {"_posts/2021-03-20-x.md": text})
    e = collect(site, NOW_AT).entries[0]
    assert e.title == "Bad title"
    assert e.body_html == "<p>Body with control chars.</p>\n"


def test_offset_post_lands_in_the_site_timezone_week(tmp_path: Path) -> None:
    site = make_site(tmp_path, {"_posts/2020-07-05-late.md": post("Late", "2020-07-05T23:30:00+03:00")})
    e = collect(site, datetime(2020, 8, 1, tzinfo=SEOUL)).entries[0]
    assert e.published_at == datetime(2020, 7, 6, 5, 30, tzinfo=SEOUL)
    assert e.published_at.utcoffset() == timedelta(hours=9)
    assert week_of(e.published_at, site).label == "2020-W28"
    moscow = make_site(tmp_path, {}, timezone="Europe/Moscow")
    assert (
        week_of(collect(moscow, datetime(2020, 8, 1, tzinfo=UTC)).entries[0].published_at, moscow).label == "2020-W27"
    )


def test_authors_from_lists_and_mappings(tmp_path: Path) -> None:
    extra = "authors:\n- name: Joon\n  link: https://x.example\n- Mina\n"
    site = make_site(tmp_path, {"_posts/2021-03-20-a.md": post("A", extra=extra)})
    assert collect(site, NOW_AT).entries[0].authors == ("Joon", "Mina")


def test_jekyll_site_through_load_settings(tmp_path: Path) -> None:
    write(
        tmp_path,
        "_config.yml",
        "title: 정원 일기\nurl: https://garden.example\nbaseurl: /diary\ntimezone: Europe/Berlin\n"
        "permalink: /:year-:month/:title\nexclude:\n  - _posts/2021-03-02-private.md\n",
    )
    write(tmp_path, "_posts/2021-03-28-spring.md", post("Spring", "2021-03-28 01:30", body="![a](/images/a.png)\n"))
    write(tmp_path, "_posts/2021-03-02-private.md", post("Private", "2021-03-02"))
    site = load_settings(site=tmp_path, env=state_env()).site
    result = collect(site, datetime(2021, 4, 1, tzinfo=ZoneInfo("UTC")))
    assert [e.title for e in result.entries] == ["Spring"]
    e = result.entries[0]
    assert e.url == "https://garden.example/diary/2021-03/spring"
    assert e.published_at.utcoffset() == timedelta(hours=1)  # 01:30 is before the switch to summer time
    assert 'src="https://garden.example/diary/images/a.png"' in e.body_html
    assert week_of(e.published_at, site).label == "2021-W12"


def test_hugo_site_through_load_settings(tmp_path: Path) -> None:
    write(
        tmp_path,
        "hugo.toml",
        'baseURL = "https://hugo.example/"\ntitle = "Hugo"\ntimeZone = "Asia/Seoul"\n'
        'ignoreFiles = ["\\\\.secret\\\\.md$"]\n[permalinks]\nposts = "/:year/:month/:title/"\n',
    )
    bundle = post("Bundle", "2021-03-14T23:30:00+03:00", body="![shot](shot.png) [up](../)\n")
    write(tmp_path, "content/posts/2021/2021-03-14-bundle/index.md", bundle)
    write(tmp_path, "content/posts/_index.md", "---\ntitle: Posts\n---\n")
    write(tmp_path, "content/posts/hidden.secret.md", post("Secret", "2021-03-10"))
    write(tmp_path, "content/about.md", post("About", "2021-03-10"))
    settings = load_settings(site=tmp_path, env=state_env())
    result = collect(settings.site, NOW_AT)
    assert [e.title for e in result.entries] == ["Bundle"]
    e = result.entries[0]
    assert e.url == "https://hugo.example/2021/03/bundle/"
    assert 'src="https://hugo.example/2021/03/bundle/shot.png"' in e.body_html
    assert 'href="https://hugo.example/2021/03/"' in e.body_html
    assert e.published_at == datetime(2021, 3, 15, 5, 30, tzinfo=SEOUL)
    assert week_of(e.published_at, settings.site).label == "2021-W11"


def test_xml_illegal_characters_from_yaml_escapes_are_removed(tmp_path: Path) -> None:
    extra = 'summary: "요약\\x02 text"\ntags: ["t\\x1f1"]\n'
    site = make_site(tmp_path, {"_posts/2021-03-20-x.md": post('"Escaped\\x07 title"', extra=extra)})
    e = collect(site, NOW_AT).entries[0]
    assert (e.title, e.summary_html, e.tags) == ("Escaped title", "<p>요약 text</p>\n", ("t1",))


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("date: 2020-07-04", datetime(2020, 7, 4, tzinfo=SEOUL)),
        ("date: 2020-12-2", datetime(2020, 12, 2, tzinfo=SEOUL)),
        ("date: 2020-07-04 12:00", datetime(2020, 7, 4, 12, tzinfo=SEOUL)),
        ("date: 2020.07.04 12:00:00", datetime(2020, 7, 4, 12, tzinfo=SEOUL)),
        ("date: 2020-07-04T12:00:00+09:00", datetime(2020, 7, 4, 12, tzinfo=SEOUL)),
        ("date: 2020-07-04 12:00:00 +0000", datetime(2020, 7, 4, 21, tzinfo=SEOUL)),
        ("date: 2020-07-04 03:00:00 +00:00", datetime(2020, 7, 4, 12, tzinfo=SEOUL)),
        ("date: 2013-11-22 9:05:00 +0000", datetime(2013, 11, 22, 18, 5, tzinfo=SEOUL)),
        ('date: "2020-07-04T03:00:00Z"', datetime(2020, 7, 4, 12, tzinfo=SEOUL)),
        ("Date: 2020-07-04", datetime(2020, 7, 4, tzinfo=SEOUL)),
        ("title: no date key", datetime(2020, 7, 3, tzinfo=SEOUL)),  # from the file name
    ],
)
def test_front_matter_date_lines(tmp_path: Path, line: str, expected: datetime) -> None:
    site = make_site(tmp_path, {"_posts/2020-07-03-d.md": f"---\n{line}\n---\n\nBody\n"})
    result = collect(site, datetime(2021, 1, 1, tzinfo=SEOUL))
    assert result.problems == ()
    assert result.entries[0].published_at == expected
    assert result.entries[0].published_at.utcoffset() == timedelta(hours=9)


def test_toml_local_date_and_hugo_bundle_folder_date(tmp_path: Path) -> None:
    files = {
        "content/posts/2020/07/2020-07-01-bundle/index.md": '+++\ntitle = "B"\n+++\nBody\n',
        "content/posts/2020-07-02-local.md": '+++\ntitle = "L"\ndate = 2020-07-02\n+++\nBody\n',
        "content/posts/local-time.md": '+++\ntitle = "T"\ndate = 2020-07-03T08:15:00\n+++\nBody\n',
    }
    site = make_site(tmp_path, files, source="content/posts", permalink="/:path/")
    got = {e.title: (e.published_at, e.url) for e in collect(site, datetime(2021, 1, 1, tzinfo=SEOUL)).entries}
    assert got == {
        "B": (datetime(2020, 7, 1, tzinfo=SEOUL), "https://blog.example.com/posts/2020/07/2020-07-01-bundle/"),
        "L": (datetime(2020, 7, 2, tzinfo=SEOUL), "https://blog.example.com/posts/2020-07-02-local/"),
        "T": (datetime(2020, 7, 3, 8, 15, tzinfo=SEOUL), "https://blog.example.com/posts/local-time/"),
    }


def test_a_long_running_process_holds_one_source_per_post_however_often_it_changes(tmp_path: Path) -> None:
    """The weekly service collects in one process for years: every edit gives a post a new revision, and
    what render_entries needs of the old ones must not pile up."""
    from digest.collector import entries as module
    from digest.collector import render_entries

    files = {f"_posts/2021-03-{d:02d}-p{d}.md": post(f"P{d}", f"2021-03-{d:02d}") for d in (9, 15)}
    site = make_site(tmp_path, files)
    held: list[int] = []
    for edit in range(12):
        write(tmp_path, "_posts/2021-03-09-p9.md", post("P9", "2021-03-09", body="edit " * (edit + 1) + "\n"))
        collected = collect(site, NOW_AT, render=False)
        rendered = {e.title: e for e in render_entries(collected.entries)}
        assert rendered["P9"].body_html == "<p>" + " ".join(["edit"] * (edit + 1)) + "</p>\n"
        held.append(len(module._SOURCES))
    assert held[-1] == held[0], held


# A running log has no date of its own: the file name dates it (the day it was last added to), after the
# items it has held for weeks. Windows in the past must still find those items.
POND_FILES = {
    "_posts/2026-11-18-field-notes.md": POND_LOG,
    "_posts/2026-09-15-ramp.md": post("Ramp repaired", "2026-09-15 10:00"),
    "_posts/2026-11-20-ice.md": post("Ice forecast", "2026-11-20 10:00"),
}


def _on(day: tuple[int, int, int] | None, hour: int = 0) -> datetime | None:
    return datetime(*day, hour, tzinfo=SEOUL) if day else None


@pytest.mark.parametrize("kept", ["no cache", "cold cache", "cache of a recent window", "cache of an earlier now"])
@pytest.mark.parametrize(
    ("now", "since", "until", "later", "titles"),
    [
        # the week of 2026-09-14, looked at on later days: the log dated 2026-11-18 still holds its item
        ((2026, 11, 30), (2026, 9, 14), (2026, 9, 21), False, [FROST, "Ramp repaired"]),
        ((2026, 11, 30), (2026, 9, 14), (2026, 9, 21), True, [FROST, "Ramp repaired"]),
        ((2027, 6, 1), (2026, 9, 14), (2026, 9, 21), False, [FROST, "Ramp repaired"]),
        # a look-back pass (a window ending before the log's date), and one ending after it
        ((2026, 11, 30), (2026, 9, 1), (2026, 11, 1), True, [MUSHROOMS, FROST, "Ramp repaired"]),
        ((2026, 11, 30), (2026, 10, 1), (2026, 11, 19), True, [HERON, MUSHROOMS]),
        ((2026, 11, 30), (2026, 11, 16), None, True, ["Ice forecast", HERON]),
        ((2026, 11, 30), None, (2026, 10, 1), True, [FROST, "Ramp repaired"]),
        # a log dated after now is not published yet: none of its items, whatever the window
        ((2026, 11, 17), (2026, 9, 14), (2026, 9, 21), False, ["Ramp repaired"]),
        ((2026, 11, 17), None, None, True, ["Ramp repaired"]),
    ],
)
def test_a_running_log_dated_after_a_window_gives_the_items_in_it(
    tmp_path: Path,
    kept: str,
    now: tuple[int, int, int],
    since: tuple[int, int, int] | None,
    until: tuple[int, int, int] | None,
    later: bool,
    titles: list[str],
) -> None:
    from digest.cache import Cache

    site = make_site(tmp_path / "site", POND_FILES)
    path = tmp_path / "cache.sqlite3"
    now_at = _on(now, 12)
    assert now_at is not None
    if kept == "cache of a recent window":  # the weekly run read the log before; this run reuses its record
        with Cache(path) as memo:
            recent = collect(site, now_at, datetime(2026, 11, 16, tzinfo=SEOUL), memo=memo, render=False)
            assert [e.title for e in recent.entries] == (["Ice forecast", HERON] if now > (2026, 11, 20) else [])
    elif kept == "cache of an earlier now":  # a run before the log's date: it was in the future then
        with Cache(path) as memo:
            early = collect(site, datetime(2026, 9, 16, 12, tzinfo=SEOUL), memo=memo, render=False)
            assert [e.title for e in early.entries] == ["Ramp repaired"]
    memo = Cache(path) if kept != "no cache" else None
    try:
        found = collect(site, now_at, _on(since), memo=memo, later=later, until_at=_on(until))
    finally:
        if memo is not None:
            memo.close()
    assert found.problems == ()
    assert [e.title for e in found.entries] == titles
    frost = [e for e in found.entries if e.title == FROST]
    for e in frost:
        assert e.url == "https://blog.example.com/2026/11/18/field-notes/#2026-09-16-first-frost-on-the-boat-ramp"
        assert e.body_html == "<blockquote>\n<p>Thin, gone by nine.</p>\n</blockquote>\n"
