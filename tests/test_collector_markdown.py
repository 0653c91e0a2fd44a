from __future__ import annotations

import re

import pytest

from digest.collector.markdown import render
from tests.support_collector import WEEKLY_NEWS

URL = "https://blog.example.com/2021/03/27/news/"


def test_tables_raw_html_and_heading_anchors() -> None:
    body = WEEKLY_NEWS.split("---\n", 2)[2] + '\n<div class="note">원문 HTML</div>\n'
    rendered = render(body, URL)
    assert "<table>" in rendered.html and "<td>배양토</td>" in rendered.html
    assert '<div class="note">원문 HTML</div>' in rendered.html
    assert '<h3 id="rain--wind">Rain &amp; Wind</h3>' in rendered.html
    assert 'href="#rain--wind"' in rendered.html  # the table of contents still points at the anchors


def test_outline_lists_the_news_items_not_the_table_of_contents() -> None:
    outline = render(WEEKLY_NEWS.split("---\n", 2)[2], URL).outline
    assert [(h.level, h.text) for h in outline] == [(3, "Tomato Seeds"), (3, "Rain & Wind"), (3, "새 화분")]
    assert outline[0].anchor == URL + "#tomato-seeds"
    assert outline[2].anchor == URL + "#새-화분"


def test_repeated_headings_get_distinct_anchors() -> None:
    rendered = render("## Notes\n\n## Notes\n\n#### Deep\n", URL)
    assert [h.anchor.split("#")[1] for h in rendered.outline] == ["notes", "notes-1"]
    assert 'id="deep"' in rendered.html


@pytest.mark.parametrize(
    ("markdown", "meta", "summary"),
    [
        (
            "First para.\n\nSecond.\n",
            {"summary": "Front **matter** summary"},
            "<p>Front <strong>matter</strong> summary</p>\n",
        ),
        ("First para.\n\nSecond.\n", {"description": "설명 문장"}, "<p>설명 문장</p>\n"),
        ("First para.\n\nSecond.\n", {"excerpt": "Excerpt"}, "<p>Excerpt</p>\n"),
        ("Intro one.\n\nIntro two.\n<!--more-->\n\nRest.\n", {}, "<p>Intro one.</p>\n<p>Intro two.</p>\n"),
        ("## Heading\n\n- list\n\nThe *first* paragraph.\n\nNext.\n", {}, "<p>The <em>first</em> paragraph.</p>\n"),
        ("## Only a heading\n", {"summary": None}, ""),
        ("> 인용 첫 문단\nlazy line\n\n> second\n", {}, "<p>인용 첫 문단\nlazy line</p>\n"),
    ],
)
def test_summary_rules(markdown: str, meta: dict[str, object], summary: str) -> None:
    assert render(markdown, URL, meta).summary_html == summary


# Texts around every kind of link linkify-it finds (scheme, "//", www., localhost, a TLD after a dot, an IP,
# an e-mail address, Unicode and punycode domains, upper case), and prose that only looks close to one.
LINKIFY_CASES = [
    "see example.com now",
    "files foo.md and README.md",
    "go WWW.EXAMPLE.COM or www.a.com",
    "visit https://a.example/c?d=1&e (it moved)",
    "protocol-relative //cdn.example.net/x.js",
    "ftp://files.example.org/pub and mailto:a@b.example",
    "write to me@x.org or 192.168.1.1@mail.example.com",
    "the box at 10.0.0.1 and localhost:8000/admin",
    "ссылка на пример.рф и xn--80ak6aa92e.com",
    "version 1.2.3 and e.g. this, i.e. that",
    "a sentence. Another one. 오늘은 작은 정원.",
    "escaped http\\://example.com/ and a&#64;b.example",
    "[a link](/2024/05/01/note/) then text without any",
    "`code example.com` and **bold www.bold.example**",
    "no links at all: just words, 숫자 12 and 3/4 cup",
]


@pytest.mark.parametrize("text", LINKIFY_CASES)
def test_quick_link_test_finds_the_links_linkify_it_finds(text: str) -> None:
    from digest.collector import markdown

    quick = markdown._MD.linkify
    expected_html = markdown._MD.render(text)
    markdown._MD.linkify = quick.inner
    try:
        assert markdown._MD.render(text) == expected_html
    finally:
        markdown._MD.linkify = quick


def test_footnotes_are_rendered_at_the_end_of_the_post_with_plain_marks() -> None:
    """kramdown's footnotes (Jekyll's Markdown; Goldmark and Python-Markdown have them too) were shown raw,
    `[^1]` and `[^1]: note`. The marks are not links: in an email they would lead nowhere useful."""
    text = "A nice café.[^x] And a second.[^2]\n\n[^x]: Near the *station*.\n[^2]: Second note.\n"
    one = render(text, "https://b.example/one/")
    assert "[^" not in one.html and '<sup class="footnote-ref">[1]</sup>' in one.html
    assert "<em>station</em>" in one.html and "<a " not in one.html
    two = render(text, "https://b.example/two/")
    ids = lambda html: set(re.findall(r'id="([^"]+)"', html))  # noqa: E731
    assert ids(one.html) and not ids(one.html) & ids(two.html)  # two posts in one email: no id twice
