"""pipeline.build: the selected week's issue plus the recent issues the feeds and the archive list."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from digest import pipeline
from digest.config import load_settings

SEOUL = ZoneInfo("Asia/Seoul")


def post(folder: Path, day: str, title: str) -> None:
    (folder / f"{day}-{title}.md").write_text(f"---\ntitle: {title}\ndate: {day} 10:00\n---\n\n{title} 본문.\n")


@pytest.fixture
def site(tmp_path: Path) -> Path:
    posts = tmp_path / "posts"
    posts.mkdir()
    (tmp_path / "digest.toml").write_text("[site]\ntimezone = 'Asia/Seoul'\n[output]\nfeed_issues = 3\n")
    for day, title in [
        ("2026-10-05", "old"),  # 2026-W41: outside a 3-week window ending in W47
        ("2026-11-04", "w45"),
        ("2026-11-12", "w46-a"),
        ("2026-11-13", "w46-b"),
        ("2026-11-17", "w47"),
        ("2026-11-24", "w48"),  # after the selected week
    ]:
        post(posts, day, title)
    return tmp_path


@pytest.mark.parametrize(
    ("week", "labels", "entries"),
    [
        ("2026-W47", ["2026-W47", "2026-W46", "2026-W45"], ["w47"]),  # W41 is outside the 3-week window
        ("2026-W46", ["2026-W46", "2026-W45"], ["w46-b", "w46-a"]),
        ("2026-W44", [], []),  # an empty week has no issue of its own; W42–W44 have no posts
    ],
)
def test_history_is_the_last_weeks_with_posts(site: Path, week: str, labels: list[str], entries: list[str]) -> None:
    settings = load_settings(site=site, env={})
    now_at = datetime(2026, 12, 1, tzinfo=SEOUL)
    result = pipeline.build(settings, now_at, pipeline.select_week(settings, now_at, week))
    assert [i.week.label for i in result.history] == labels
    assert [e.title for e in result.issue.entries] == entries


def test_posts_after_now_are_not_in_any_issue(site: Path) -> None:
    settings = load_settings(site=site, env={})
    now_at = datetime(2026, 11, 17, 12, 0, tzinfo=SEOUL)
    result = pipeline.build(settings, now_at, pipeline.select_week(settings, now_at, "this"))
    assert [e.title for e in result.issue.entries] == ["w47"]
    assert all(e.published_at <= now_at for i in result.history for e in i.entries)


def test_tag_feeds_hold_only_their_tags_entries(site: Path) -> None:
    (site / "posts" / "2026-11-18-tagged.md").write_text(
        "---\ntitle: Tagged\ndate: 2026-11-18 10:00\ntags: [Rust, 여행]\ncategories: news\n---\n\nbody\n"
    )
    settings = load_settings(site=site, env={})
    now_at = datetime(2026, 12, 1, tzinfo=SEOUL)
    result = pipeline.build(settings, now_at, pipeline.select_week(settings, now_at, "2026-W47"))
    assert not any(name.startswith("tags/") for name in pipeline.site_files(result, settings))
    settings = replace(settings, output=replace(settings.output, tag_feeds=True))
    files = pipeline.site_files(result, settings)
    tagged = sorted(name for name in files if name.startswith("tags/"))
    assert tagged == [
        f"tags/{slug}/{name}" for slug in ("news", "rust", "여행") for name in ("atom.xml", "feed.json", "rss.xml")
    ]
    feed = json.loads(files["tags/rust/feed.json"])
    assert feed["title"].endswith("· Rust")
    assert [item["id"].rsplit(":", 1)[-1] for item in feed["items"]] == ["/newsletter/2026-W47"]
    assert "Tagged" in feed["items"][0]["content_html"] and "w47" not in feed["items"][0]["content_html"]
    everything = json.loads(files["feed.json"])
    assert "w47" in everything["items"][0]["content_html"]
