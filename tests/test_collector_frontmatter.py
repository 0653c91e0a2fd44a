from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from digest.collector.frontmatter import FrontMatterError, parse

YAML_POST = "---\nTitle: 봄 소식\nDate: 2020-07-04\nTAGS: [a, b]\nsummary:\n---\n\n본문\n"
TOML_POST = '+++\ntitle = "Spring notes"\ndate = 2020-07-04T12:00:00+09:00\ntags = ["x"]\n+++\n\nBody here\n'
PELICAN_POST = "Title: 산책 기록\nDate: 2020-07-04 10:20\nTags: walk, park\n\nFirst paragraph.\n"


@pytest.mark.parametrize(
    ("text", "kind", "title", "body_start"),
    [
        (YAML_POST, "yaml", "봄 소식", "\n본문"),
        (TOML_POST, "toml", "Spring notes", "\nBody here"),
        (PELICAN_POST, "pelican", "산책 기록", "\nFirst paragraph."),
        ("Just prose: no header here\n\nMore.\n", "none", None, "Just prose"),
        ("Note: this is prose\n\nand not a header.\n", "none", None, "Note:"),
        ("---\n---\nEmpty header\n", "yaml", None, "Empty header"),
    ],
)
def test_each_front_matter_format(text: str, kind: str, title: str | None, body_start: str) -> None:
    doc = parse(text)
    assert doc.kind == kind
    assert doc.meta.get("title") == title
    assert doc.body.startswith(body_start)


def test_a_pelican_value_goes_on_over_indented_lines() -> None:
    """Pelican reads its headers with Python-Markdown's meta extension: a line indented by four spaces or a
    tab continues the value above it (a summary over two lines). Such a post was read as one without a
    header, so without a date, and was never mailed."""
    text = (
        "Title: 긴 요약\nDate: 2026-10-14 10:00\nSummary: the first line\n    and the second\n\tand a third\n"
        "Tags: a\n\nBody.\n"
    )
    doc = parse(text)
    assert doc.kind == "pelican"
    assert doc.meta["title"] == "긴 요약" and doc.meta["date"] == "2026-10-14 10:00" and doc.meta["tags"] == "a"
    assert doc.meta["summary"] == "the first line\nand the second\nand a third"
    assert doc.body == "\nBody.\n" and dict(doc.key_lines)["tags"] == 6
    # an indented line with no header line above it is prose, as before
    assert parse("    indented code\nTitle: x\n\nBody\n").kind == "none"


def test_keys_are_case_insensitive_and_nulls_tolerated() -> None:
    doc = parse(YAML_POST)
    assert doc.meta["date"] == date(2020, 7, 4)
    assert doc.meta["tags"] == ["a", "b"]
    assert doc.meta["summary"] is None
    assert dict(doc.key_lines)["date"] == 3


def test_toml_datetimes_are_values() -> None:
    assert parse(TOML_POST).meta["date"] == datetime(2020, 7, 4, 12, tzinfo=timezone(timedelta(hours=9)))


def test_seed_style_date_stays_a_string_for_the_date_parser() -> None:
    assert parse("---\ndate: 2020.07.04 12:00:00\n---\n").meta["date"] == "2020.07.04 12:00:00"


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("---\ntitle: a\n", "never closed", 1),
        ("---\ntitle: [unclosed\ndate: 2020-01-01\n---\nbody\n", "malformed YAML", None),
        ("---\n- just\n- a list\n---\n", "not a mapping", 2),
        ('+++\ntitle = "a"\ndate = \n+++\n', "malformed TOML", None),
    ],
)
def test_malformed_front_matter(text: str, message: str, line: int | None) -> None:
    with pytest.raises(FrontMatterError, match=message) as caught:
        parse(text)
    assert caught.value.line is not None
    if line is not None:
        assert caught.value.line == line
