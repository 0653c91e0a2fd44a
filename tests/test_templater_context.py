from __future__ import annotations

from dataclasses import replace

import lxml.html
import pytest

from digest.models import Heading
from digest.templater import issue_url
from digest.templater.bodies import prepare
from digest.templater.context import base_context, labels_of, outline_items
from tests.support_templater import POST_URL, make_issue, make_settings, make_site, news_entry


def ready(body: str, *, email: bool = False, drop_toc: bool = False) -> str:
    return prepare(body, POST_URL, "제목", drop_toc=drop_toc, email=email, site=make_site(), source="_posts/x.md")


@pytest.mark.parametrize(
    ("body", "alt"),
    [
        ('<img src="a.png">', "제목"),
        ('<img src="a.png" alt="">', ""),
        ('<IMG SRC="a.png" ALT="x">', "x"),
        ('<img src="a.png" title="작은 그림">', "작은 그림"),
        ("<img src='a.png' title='a \"q\"'>", 'a "q"'),
    ],
)
def test_every_image_gets_alt_text(body: str, alt: str) -> None:
    (img,) = lxml.html.fragment_fromstring(ready(body), create_parent="div").iter("img")
    assert img.get("alt") == alt


def test_a_body_without_images_is_unchanged() -> None:
    assert ready("<p>no image, <code>&lt;img&gt;</code></p>") == "<p>no image, <code>&lt;img&gt;</code></p>"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('<a href="#item">x</a>', f'<a href="{POST_URL}#item">x</a>'),
        ("<a class='c' href='#item'>x</a>", f'<a class="c" href="{POST_URL}#item">x</a>'),
        ('<a href="https://x.example/#y">x</a>', '<a href="https://x.example/#y">x</a>'),
        ('<h3 id="#odd">x</h3>', '<h3 id="#odd">x</h3>'),
        ('<pre><code>&lt;a href="#x"&gt;</code></pre>', '<pre><code>&lt;a href="#x"&gt;</code></pre>'),
    ],
)
def test_in_page_links_name_the_page(body: str, expected: str) -> None:
    assert ready(body) == expected


@pytest.mark.parametrize(
    ("outline", "expected"),
    [
        ((), ()),
        (
            (Heading(2, "목차", "u#toc"), Heading(3, "첫 소식", "u#a"), Heading(3, "둘째", "u#b")),
            (("첫 소식", 0), ("둘째", 0)),
        ),
        (
            (Heading(2, "Setup", "u#s"), Heading(3, "Linux", "u#l"), Heading(2, "Usage", "u#u")),
            (("Setup", 0), ("Linux", 1), ("Usage", 0)),
        ),
        ((Heading(2, "Table of Contents:", "u#t"),), ()),
        ((Heading(4, "deep", "u#d"),), ()),
    ],
)
def test_outline_items(outline: tuple[Heading, ...], expected: tuple[tuple[str, int], ...]) -> None:
    assert tuple((i.text, i.level) for i in outline_items(outline)) == expected


def test_labels_merge_categories_and_tags_without_case_duplicates() -> None:
    entry = replace(news_entry(), categories=("News", "일상"), tags=("news", "Rust", "일상"))
    assert labels_of(entry) == ("News", "일상", "Rust")


def test_issue_url_is_output_url_plus_label() -> None:
    assert issue_url(make_issue(), make_settings()) == "https://blog.example.org/newsletter/2024-W10/"


@pytest.mark.parametrize("summarize", [False, True])
def test_context_bodies_follow_the_summarize_choice(summarize: bool) -> None:
    context = base_context(make_issue(), make_settings(), summarize=summarize)
    news = context["entries"][1]
    assert ("메모리 4GB" in news.body) is not summarize
    assert news.date == "2024-03-06"
    assert (context["week_start"], context["week_end"]) == ("2024-03-04", "2024-03-10")
