from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import feedparser
import pytest

from digest.config import OutputSettings
from digest.models import Issue
from digest.templater import render_feeds
from digest.templater.syndicate import issue_tag_uri
from tests.support_templater import DictMemo, check_golden, make_issue, make_settings, make_week, older_issue

A = "{http://www.w3.org/2005/Atom}"
OUT = "https://blog.example.org/newsletter/"


def feeds() -> dict[str, bytes]:
    return render_feeds([older_issue(), make_issue()], make_settings())


def test_golden_feeds() -> None:
    files = feeds()
    assert sorted(files) == ["atom.xml", "feed.json", "rss.xml"]
    check_golden("templater_atom.xml", files["atom.xml"])
    check_golden("templater_rss.xml", files["rss.xml"])
    check_golden("templater_feed.json", files["feed.json"])


def test_feeds_are_deterministic() -> None:
    assert feeds() == feeds()


@pytest.mark.parametrize(("name", "version"), [("atom.xml", "atom10"), ("rss.xml", "rss20")])
def test_feedparser_reads_them_back(name: str, version: str) -> None:
    parsed = feedparser.parse(feeds()[name])
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == version
    assert parsed.feed.title == "별빛 개발 노트"
    assert [e.link for e in parsed.entries] == [OUT + "2024-W10/", OUT + "2024-W09/"]
    assert parsed.entries[0].id == "tag:blog.example.org,2024-03-04:/newsletter/2024-W10"
    assert "주간 개발 뉴스 (3월 1주차)" in parsed.entries[0].content[0].value
    assert parsed.entries[0].summary.startswith("Garden log")
    assert "&lt;script&gt;" in parsed.entries[0].content[0].value
    assert {t.term for t in parsed.entries[0].tags} == {"garden", "plants", "news", "Rust", "LLM"}


def test_atom_has_the_rfc4287_elements() -> None:
    root = ET.fromstring(feeds()["atom.xml"])
    assert root.tag == f"{A}feed"
    for name in ("id", "title", "updated"):
        assert root.find(f"{A}{name}") is not None and root.find(f"{A}{name}").text  # type: ignore[union-attr]
    assert root.findtext(f"{A}author/{A}name") == "김하늘"
    assert root.findtext(f"{A}updated") == "2024-03-09T01:15:00+00:00"  # the newest entry's update, not now
    links = {link.get("rel"): link.get("href") for link in root.findall(f"{A}link")}
    assert links == {"self": OUT + "atom.xml", "alternate": OUT}
    entries = root.findall(f"{A}entry")
    assert len(entries) == 2
    for entry in entries:
        for name in ("id", "title", "updated"):
            assert entry.findtext(f"{A}{name}")
        assert entry.find(f"{A}content").get("type") == "html"  # type: ignore[union-attr]
        assert entry.find(f"{A}link").get("href", "").startswith(OUT)  # type: ignore[union-attr]
    assert [e.findtext(f"{A}updated") for e in entries] == ["2024-03-09T01:15:00+00:00", "2024-02-28T09:00:00+00:00"]
    categories = [c.get("term") for c in root.findall(f"{A}category")]
    assert categories == ["garden", "LLM", "news", "plants", "Rust", "회고"]


def test_rss_channel_and_items() -> None:
    channel = ET.fromstring(feeds()["rss.xml"]).find("channel")
    assert channel is not None
    assert channel.findtext("title") == "별빛 개발 노트"
    assert channel.findtext("link") == OUT  # not the self link, whatever order feedgen saw them in
    assert channel.findtext("description") == "한국어와 English로 쓰는 개발 기록"
    assert channel.find(f"{A}link").get("href") == OUT + "rss.xml"  # type: ignore[union-attr]
    assert channel.findtext("lastBuildDate") == "Sat, 09 Mar 2024 01:15:00 +0000"
    items = channel.findall("item")
    guids = [i.find("guid") for i in items]
    assert [g.get("isPermaLink") for g in guids] == ["false", "false"]  # type: ignore[union-attr]
    assert [g.text for g in guids] == [  # type: ignore[union-attr]
        "tag:blog.example.org,2024-03-04:/newsletter/2024-W10",
        "tag:blog.example.org,2024-02-26:/newsletter/2024-W09",
    ]
    assert items[0].findtext("pubDate") == "Fri, 08 Mar 2024 00:00:00 +0000"  # its newest post out; edited later


def test_ids_do_not_change_when_content_changes() -> None:
    issue = make_issue()
    changed = replace(issue, entries=issue.entries[:1])
    settings = make_settings()
    assert issue_tag_uri(issue, settings) == issue_tag_uri(changed, settings)


def test_only_the_latest_issues_newest_first() -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    issues = [make_issue(week=make_week(start + timedelta(weeks=n))) for n in range(5)]
    settings = replace(make_settings(), output=replace(make_settings().output, feed_issues=3))
    parsed = feedparser.parse(render_feeds(issues, settings)["atom.xml"])
    assert [e.link.rsplit("/", 2)[1] for e in parsed.entries] == ["2024-W05", "2024-W04", "2024-W03"]


def test_empty_feed_has_a_fixed_date() -> None:
    files = render_feeds([], make_settings())
    root = ET.fromstring(files["atom.xml"])
    assert root.findtext(f"{A}updated") == "1970-01-01T00:00:00+00:00"
    assert not feedparser.parse(files["rss.xml"]).bozo


def test_self_links_follow_the_output_url() -> None:
    settings = replace(
        make_settings(), output=OutputSettings(dir=make_settings().output.dir, url="https://news.example.com/")
    )
    files = render_feeds([make_issue()], settings)
    atom = ET.fromstring(files["atom.xml"])
    assert atom.find(f"{A}link[@rel='self']").get("href") == "https://news.example.com/atom.xml"  # type: ignore[union-attr]
    rss = ET.fromstring(files["rss.xml"]).find("channel")
    assert rss.find(f"{A}link").get("href") == "https://news.example.com/rss.xml"  # type: ignore[union-attr]
    assert atom.findtext(f"{A}entry/{A}id") == "tag:news.example.com,2024-03-04:/2024-W10"


def test_characters_xml_forbids_are_dropped() -> None:
    entry = replace(make_issue().entries[0], title="제어\x0b문자\x1f", tags=("tag\x08",))
    files = render_feeds([make_issue((entry,))], make_settings())
    for name in ("atom.xml", "rss.xml"):
        parsed = feedparser.parse(files[name])
        assert not parsed.bozo
        assert "제어 문자" in parsed.entries[0].summary
        assert [t.term for t in parsed.entries[0].tags] == ["garden", "tag"]


def test_json_feed_is_version_1_1_with_the_atom_ids_and_dates() -> None:
    files = feeds()
    document = json.loads(files["feed.json"])
    assert document["version"] == "https://jsonfeed.org/version/1.1"
    assert document["feed_url"] == OUT + "feed.json" and document["home_page_url"] == OUT
    atom = ET.fromstring(files["atom.xml"])
    atom_entries = atom.findall(f"{A}entry")
    assert [i["id"] for i in document["items"]] == [e.findtext(f"{A}id") for e in atom_entries]
    assert [i["url"] for i in document["items"]] == [OUT + "2024-W10/", OUT + "2024-W09/"]
    for item, entry in zip(document["items"], atom_entries, strict=True):
        assert item["title"] == entry.findtext(f"{A}title")
        assert datetime.fromisoformat(item["date_modified"]) == datetime.fromisoformat(entry.findtext(f"{A}updated"))
        assert item["content_html"].startswith("<") and item["summary"]
    assert set(document["items"][0]["tags"]) == {"garden", "plants", "news", "Rust", "LLM"}


def test_a_feed_of_a_subset_lives_in_its_own_folder_with_its_own_links() -> None:
    files = render_feeds([make_issue()], make_settings(), path="tags/rust/", title="별빛 개발 노트 · Rust")
    assert sorted(files) == ["tags/rust/atom.xml", "tags/rust/feed.json", "tags/rust/rss.xml"]
    atom = ET.fromstring(files["tags/rust/atom.xml"])
    assert atom.findtext(f"{A}title") == "별빛 개발 노트 · Rust"
    assert atom.findtext(f"{A}id") == OUT + "tags/rust/"
    links = {link.get("rel"): link.get("href") for link in atom.findall(f"{A}link")}
    assert links == {"self": OUT + "tags/rust/atom.xml", "alternate": OUT}
    assert json.loads(files["tags/rust/feed.json"])["feed_url"] == OUT + "tags/rust/feed.json"


def history(count: int) -> list[Issue]:
    """`count` weekly issues, newest first; titles with quotes, line breaks and Korean (JSON escapes them)."""
    issues = []
    for n in range(count):
        week = make_week(datetime(2024, 3, 4, tzinfo=UTC) - timedelta(weeks=n))
        entry = replace(
            make_issue().entries[0],
            id=f"tag:blog.example.org,2024:/post-{n}",
            title=f'글 {n}: "quoted"\nand a line break',
            published_at=week.start_at + timedelta(days=1),
        )
        issues.append(make_issue((entry,), week=week))
    return issues


@pytest.mark.parametrize("count", [0, 1, 3])
@pytest.mark.parametrize("kept", ["none", "all", "all but the newest"])
def test_feeds_made_from_kept_parts_and_frames_are_the_whole_feeds(count: int, kept: str) -> None:
    """Every kind (Atom, RSS, JSON) joined from the entries' texts and the frame an earlier run kept is byte
    for byte the feed written whole."""
    settings = make_settings()
    issues = history(count)
    whole = render_feeds(issues, settings)
    memo = DictMemo()
    if kept != "none":
        render_feeds(issues if kept == "all" else issues[1:], settings, memo=memo)
    assert render_feeds(issues, settings, memo=memo) == whole
    assert render_feeds(issues, settings, memo=memo) == whole  # everything kept now, frames too
    if count:
        assert any(kind == "frame" for kind, _ in memo.rows)
        assert all(
            set(value[2]) == {"atom", "rss", "json"}  # type: ignore[index]
            for (kind, _), value in memo.rows.items()
            if kind == "item"
        )


def test_a_kept_frame_of_other_feed_fields_is_not_used() -> None:
    settings = make_settings()
    memo = DictMemo()
    render_feeds(history(2), settings, memo=memo)
    renamed = replace(settings, site=replace(settings.site, title="Another title"))
    assert render_feeds(history(2), renamed, memo=memo) == render_feeds(history(2), renamed)
