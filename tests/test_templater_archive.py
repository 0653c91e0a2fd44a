from __future__ import annotations

import gc
import posixpath
import re
from dataclasses import replace
from html.parser import HTMLParser

import pytest

from digest.config import Settings
from digest.templater import keys, render_archive
from tests.support_templater import DictMemo, check_golden, make_issue, make_settings, older_issue

OUT = "https://blog.example.org/newsletter/"


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("a", "link"):
            self.links.append({"tag": tag} | {k: v or "" for k, v in attrs})


def links_of(page: bytes) -> list[dict[str, str]]:
    parser = _Links()
    parser.feed(page.decode("utf-8"))
    return parser.links


def archive() -> dict[str, bytes]:
    return render_archive([older_issue(), make_issue()], make_settings())


def test_golden_archive() -> None:
    files = archive()
    assert sorted(files) == ["2024-W09/index.html", "2024-W10/index.html", "index.html"]
    check_golden("templater_archive_index.html", files["index.html"])
    check_golden("templater_archive_issue.html", files["2024-W10/index.html"])


def test_archive_is_deterministic() -> None:
    assert archive() == archive()


def test_index_lists_issues_newest_first() -> None:
    page = archive()["index.html"].decode("utf-8")
    assert page.index("2024-W10/index.html") < page.index("2024-W09/index.html")
    assert "글 2편" in page and "글 1편" in page


def test_every_page_announces_every_feed() -> None:
    expected = {
        ("application/atom+xml", OUT + "atom.xml"),
        ("application/rss+xml", OUT + "rss.xml"),
        ("application/feed+json", OUT + "feed.json"),
    }
    for name, page in archive().items():
        alternates = {(ln["type"], ln["href"]) for ln in links_of(page) if ln.get("rel") == "alternate"}
        assert alternates == expected, name


def test_relative_links_resolve_inside_the_archive() -> None:
    files = archive()
    for name, page in files.items():
        folder = posixpath.dirname(name)
        for link in links_of(page):
            href = link.get("href", "")
            if href and not re.match(r"[a-z]+:", href):
                assert posixpath.normpath(posixpath.join(folder, href)) in files, (name, href)


def test_issue_page_has_canonical_url_and_full_bodies() -> None:
    page = archive()["2024-W10/index.html"].decode("utf-8")
    assert f'<link rel="canonical" href="{OUT}2024-W10/">' in page
    assert "메모리 4GB" in page
    assert "&lt;script&gt;" in page and "<script>" not in page
    assert 'rel="prev"' in page and "2024-W09/index.html" in page


COUNTED = "{{ week.label }}: {{ entries | length }} posts"


def with_subject(subject: str) -> Settings:
    settings = make_settings()
    return replace(settings, email=replace(settings.email, subject=subject))


@pytest.mark.parametrize(
    "first, then",
    [
        (
            (with_subject("{{ week.label }}"), ("older", "newer")),
            (with_subject("{{ week.label }}"), ("older", "newer")),
        ),
        ((with_subject("{{ week.label }}"), ("older",)), (with_subject("{{ week.label }}"), ("older", "newer"))),
        (
            (with_subject("{{ week.label }}"), ("older", "newer")),
            (with_subject("Notes {{ week.label }}"), ("older", "newer")),
        ),
        ((with_subject("{{ week.label }}"), ("older", "newer")), (with_subject("{{ week.label }}"), ("newer",))),
        ((with_subject(COUNTED), ("older", "newer")), (with_subject(COUNTED), ("older", "newer, one entry"))),
    ],
)
def test_pages_index_and_links_from_the_cache_are_the_pages_rendered_anew(
    first: tuple[Settings, tuple[str, ...]], then: tuple[Settings, tuple[str, ...]]
) -> None:
    """The index, its link to each issue and the issue pages come from the cache only while the issues and
    the settings they show are unchanged: a new issue, a changed subject, an issue gone, an issue with other
    entries."""
    made = {"older": older_issue(), "newer": make_issue(), "newer, one entry": make_issue(make_issue().entries[:1])}
    memo = DictMemo()
    settings, names = first
    render_archive([made[n] for n in names], settings, memo=memo)
    settings, names = then
    expected = render_archive([made[n] for n in names], settings)
    assert render_archive([made[n] for n in names], settings, memo=memo) == expected
    assert render_archive([made[n] for n in names], settings, memo=memo) == expected
    assert ("links", "index.html") in memo.rows and ("page", "index.html") in memo.rows


@pytest.mark.parametrize("change", ["none", "another entry", "another note"])
def test_an_issue_key_is_computed_once_and_dropped_with_its_issue(change: str) -> None:
    """Each issue's key (what the cache keys its pages and feed entries by) is kept while the issue is used,
    changes with what the issue shows, and goes with the issue: the service holds no issue of past weeks."""
    first = make_issue()
    key = keys.issue_key(first)
    assert keys.issue_key(first) == key and id(first) in keys._ISSUE_KEYS
    other = {
        "none": make_issue(),
        "another entry": make_issue(make_issue().entries[:1]),
        "another note": replace(make_issue(), note_html="<p>a note</p>"),
    }[change]
    assert (keys.issue_key(other) == key) == (change == "none")
    held = id(first)
    del first
    gc.collect()
    assert held not in keys._ISSUE_KEYS
