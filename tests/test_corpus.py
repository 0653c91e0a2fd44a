"""The collector over two real blogs kept next to the repository (skipped when they are absent):
a Jekyll site with a running-log post and a Hugo site with page bundles and UTC offsets."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from digest.collector import collect
from digest.collector.reader import scan
from digest.config import load_settings, with_overrides
from digest.dates import parse_date
from digest.models import Site
from digest.weeks import parse_week, week_of
from tests.conftest import state_env

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
NOW_AT = datetime(2026, 6, 1, tzinfo=UTC)


def corpus_site(name: str, **changes: object) -> Site:
    root = SHARED / "corpus" / name
    if not root.is_dir():
        pytest.skip(f"corpus {name} not available")
    settings = load_settings(site=root, env=state_env())
    return with_overrides(settings, **changes).site if changes else settings.site


@pytest.mark.parametrize(("name", "files", "excluded"), [("wonwizard", 20, 0), ("solus", 204, 1)])
def test_every_markdown_file_is_collected_or_has_a_reason(name: str, files: int, excluded: int) -> None:
    site = corpus_site(name)
    on_disk = sorted(p for d in site.source_dirs for p in d.rglob("*.md"))
    assert len(on_disk) == files
    found = scan(site, NOW_AT)
    accounted = [p.source for p in found.posts] + [p.source for p in found.problems] + [s for s, _ in found.excluded]
    assert sorted(accounted) == sorted(p.relative_to(site.root).as_posix() for p in on_disk)
    assert found.scanned == files
    assert len(found.excluded) == excluded
    assert all(reason for _, reason in found.excluded)
    assert found.problems == []


def test_wonwizard_running_log_yields_its_dated_items() -> None:
    site = corpus_site("wonwizard")
    result = collect(site, NOW_AT)
    items = [e for e in result.entries if e.source == "_posts/2021-05-10-infos.md"]
    assert [(e.published_at.date(), e.title.split()[0]) for e in items] == [
        (date(2021, 5, 10), "EfficientNetV2:"),  # "202104": month only, so the post's own date (file name)
        (date(2021, 3, 31), "ResNet-RS"),
        (date(2021, 2, 18), "Transformers"),
        (date(2021, 1, 7), "오픈AI는"),
    ]
    assert all(e.url.startswith("http://wonwizard.github.io/2021-05/infos#") for e in items)
    assert len({e.id for e in items}) == 4
    assert 'src="http://wonwizard.github.io/images/' in items[0].body_html
    assert all("2021년 이전" not in e.title for e in result.entries)  # the undated trailing note is dropped
    assert len(result.entries) == 24  # 20 posts; two are running logs with 4 and 2 items


def test_solus_page_relative_images_come_out_absolute() -> None:
    site = corpus_site("solus")
    entries = {e.source: e for e in collect(site, NOW_AT).entries}
    release = entries["content/blog/2019/03/2019-03-17-solus-4-released/index.md"]
    # Front matter `url: /2019/03/17/solus-4-released`: Hugo writes …/solus-4-released/index.html.
    assert release.url == "https://getsol.us/2019/03/17/solus-4-released/"
    assert 'src="https://getsol.us/2019/03/17/solus-4-released/budgie-10/Budgie.jpg"' in release.body_html
    sources = [s for e in entries.values() for s in re.findall(r'src="([^"]*)"', e.body_html)]
    assert len(sources) > 100
    assert all(s.startswith(("https://", "http://")) for s in sources)
    assert not any(re.search(r"{{[<%]", e.body_html) for e in entries.values())


def _offset_week_posts(site: Site) -> dict[str, datetime]:
    """Posts whose ISO week at their own UTC offset differs from their ISO week in UTC."""
    found = {}
    for path in sorted(site.source_dirs[0].rglob("index.md")):
        m = re.search(r"^date:\s*[\"']?([^\"'\n]+)", path.read_text("utf-8"), re.M)
        if not m:
            continue
        own = parse_date(m.group(1), UTC)
        if own.isocalendar()[:2] != own.astimezone(UTC).isocalendar()[:2]:
            found[path.relative_to(site.root).as_posix()] = own
    return found


@pytest.mark.parametrize(
    ("timezone", "labels"),
    [
        ("Europe/Helsinki", ["2017-W17", "2023-W32"]),  # +03:00 in summer, the posts' own offset
        ("Asia/Seoul", ["2017-W17", "2023-W32"]),
        ("UTC", ["2017-W16", "2023-W31"]),
        ("America/New_York", ["2017-W16", "2023-W31"]),
    ],
)
def test_solus_posts_near_midnight_land_in_the_configured_timezone_week(timezone: str, labels: list[str]) -> None:
    site = corpus_site("solus", timezone=timezone)
    offset_posts = _offset_week_posts(site)
    assert sorted(offset_posts) == [
        "content/blog/2017/04/2017-04-24-this-week-in-solus-install-43/index.md",
        "content/blog/2023/08/state-of-solus-august-2023/index.md",
    ]
    for source, label in zip(sorted(offset_posts), labels, strict=True):
        week = parse_week(label, site, NOW_AT)
        collected = collect(site, week.end_at, week.start_at).entries
        in_week = {e.source: e for e in collected if week.contains(e.published_at)}
        assert source in in_week
        assert week_of(in_week[source].published_at, site).label == label


@pytest.mark.parametrize("name", ["wonwizard", "solus"])
def test_no_relative_url_raw_template_or_attribute_list_in_any_body(name: str) -> None:
    site = corpus_site(name)
    entries = collect(site, NOW_AT).entries
    for entry in entries:
        for url in re.findall(r'(?:href|src|poster)="([^"]*)"', entry.body_html + entry.summary_html):
            assert re.match(r"^[a-z][a-z0-9+.-]*:", url), (entry.source, url)  # absolute: https:, irc:, mailto:
        assert not re.search(r"{[{%:]|[%}]}", entry.body_html), entry.source
        assert entry.language == ""  # single-language sites: every post is in the site's language


def test_wonwizard_reads_its_one_posts_folder_with_front_matter_categories() -> None:
    site = corpus_site("wonwizard")
    assert [d.name for d in site.source_dirs] == ["_posts"]
    infos = [e for e in collect(site, NOW_AT).entries if e.source == "_posts/2021-05-10-infos.md"]
    assert {e.categories for e in infos} == {("info",)}  # `categories: [info]`; no folder above _posts


def test_solus_dated_pages_outside_the_blog_section_are_not_posts() -> None:
    # content/security.md, content/privacy.md and content/about/technology.md have dates, but Hugo's main
    # section (the one with the most pages) is blog/: they are pages, not newsletter entries.
    site = corpus_site("solus")
    assert [d.relative_to(site.root).as_posix() for d in site.source_dirs] == ["content/blog"]
    sources = {e.source for e in collect(site, NOW_AT).entries}
    assert sources and all(s.startswith("content/blog/") for s in sources)
