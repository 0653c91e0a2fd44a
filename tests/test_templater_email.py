from __future__ import annotations

import re
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pytest

from digest.config import EmailSettings
from digest.errors import TemplateError
from digest.models import RECIPIENT_EMAIL_MARK, UNSUBSCRIBE_URL_MARK
from digest.templater import render_email, render_subject
from digest.templater.email import PREHEADER_CHARS, make_preheader
from digest.templater.env import builtin_templates
from digest.templater.labels import ENGLISH, KOREAN, Labels
from tests.support_templater import (
    POST_URL,
    check_golden,
    english_entry,
    make_issue,
    make_settings,
    make_site,
    news_entry,
)


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))


def tags_of(html: str) -> list[tuple[str, dict[str, str]]]:
    parser = _Tags()
    parser.feed(html)
    return parser.tags


def test_golden_html_and_text() -> None:
    rendered = render_email(make_issue(), make_settings())
    check_golden("templater_email.html", rendered.html)
    check_golden("templater_email.txt", rendered.text)


def test_rendering_twice_gives_identical_bytes() -> None:
    first = render_email(make_issue(), make_settings())
    second = render_email(make_issue(), make_settings())
    assert first.html.encode() == second.html.encode()
    assert first.text.encode() == second.text.encode()


def test_placeholders_are_in_html_and_text() -> None:
    rendered = render_email(make_issue(), make_settings())
    links = [a["href"] for tag, a in tags_of(rendered.html) if tag == "a"]
    assert UNSUBSCRIBE_URL_MARK in links
    assert RECIPIENT_EMAIL_MARK in rendered.html
    assert f"{KOREAN.unsubscribe}: {UNSUBSCRIBE_URL_MARK}" in rendered.text
    assert RECIPIENT_EMAIL_MARK in rendered.text


def test_css_is_inlined_and_layout_needs_no_style_block() -> None:
    html = render_email(make_issue(), make_settings()).html
    tags = tags_of(html)
    container = next(a for tag, a in tags if tag == "table" and "container" in a.get("class", ""))
    assert container["width"] == "600"
    assert "width:600px" in container["style"]
    assert all("style" in a for tag, a in tags if tag == "td")
    # only what cannot be inlined (dark mode, small screens) is left in <head>
    style = re.search(r"<style[^>]*>(.*?)</style>", html, re.S)
    assert style is not None
    leftover = re.sub(r"@media[^{]*\{(?:[^{}]*\{[^}]*\})*\s*\}", "", style[1])
    assert re.sub(r":root\s*\{[^}]*\}", "", leftover).strip() == ""


def test_email_head_and_frame() -> None:
    rendered = render_email(make_issue(), make_settings())
    tags = tags_of(rendered.html)
    metas = {a.get("name"): a.get("content") for tag, a in tags if tag == "meta"}
    assert metas["color-scheme"] == "light dark"
    assert metas["supported-color-schemes"] == "light dark"
    assert ("a", {"href": "https://blog.example.org/newsletter/2024-W10/", "style": "color:#4b5563"}) in tags
    assert rendered.archive_url == "https://blog.example.org/newsletter/2024-W10/"
    preheader = re.search(r'<div class="preheader" style="([^"]*)">([^<]*)</div>', rendered.html)
    assert preheader and "display:none" in preheader[1]
    assert preheader[2].startswith("Garden log: tomatoes &amp; &lt;script&gt;")


def test_every_image_has_alt_text() -> None:
    images = [a for tag, a in tags_of(render_email(make_issue(), make_settings()).html) if tag == "img"]
    assert len(images) == 2
    assert [a["alt"] for a in images] == ["Seedlings in March", "주간 개발 뉴스 (3월 1주차)"]


def test_outline_is_a_linked_list() -> None:
    html = render_email(make_issue(), make_settings()).html
    box = re.search(r'<div class="outline".*?</div>', html, re.S)
    assert box is not None
    hrefs = [a["href"] for tag, a in tags_of(box[0]) if tag == "a"]
    assert hrefs == [POST_URL + "#rust-ui", POST_URL + "#tiny-llm"]
    assert "목차" not in box[0]


def test_titles_are_escaped() -> None:
    rendered = render_email(make_issue(), make_settings())
    assert "<script>" not in rendered.html
    assert "Garden log: tomatoes &amp; &lt;script&gt;alert(1)&lt;/script&gt;" in rendered.html
    assert "Garden log: tomatoes & <script>alert(1)</script>" in rendered.text


def big_issue(count: int = 12):  # type: ignore[no-untyped-def]
    filler = "<p>" + "긴 본문 문장이 계속 이어진다. Long body text goes on. " * 60 + "</p>"
    entries = tuple(
        replace(news_entry(), id=f"tag:x,2024-03-06:/p{n}", title=f"긴 글 {n}", body_html=filler * 4)
        for n in range(count)
    )
    return make_issue(entries)


def test_over_the_size_limit_summaries_replace_bodies() -> None:
    settings = make_settings(max_html_bytes=102_000)
    full = render_email(big_issue(), settings, summarize=False)
    assert full.html_size > 102_000
    auto = render_email(big_issue(), settings)
    assert auto.summarized
    assert auto.html_size < 102_000
    assert "Long body text" not in auto.html
    assert "이번 주에는 러스트 UI 툴킷과" in auto.html
    assert KOREAN.long_issue in auto.html and KOREAN.long_issue in auto.text
    assert auto.html.count(KOREAN.read_more) == 12


@pytest.mark.parametrize(
    ("limit", "summarize", "expected"),
    [(102_000, None, False), (9_500, None, True), (9_500, False, False), (102_000, True, True)],
)
def test_summarize_choice(limit: int, summarize: bool | None, expected: bool) -> None:
    rendered = render_email(make_issue(), make_settings(max_html_bytes=limit), summarize=summarize)
    assert rendered.summarized is expected
    assert ("메모리 4GB" in rendered.html) is not expected
    marks = rendered.html.count(UNSUBSCRIBE_URL_MARK) + rendered.html.count(RECIPIENT_EMAIL_MARK)
    assert rendered.html_size == len(rendered.html.encode("utf-8")) + 256 * marks


@pytest.mark.parametrize(
    ("count", "limit_kb", "summarized", "omitted"),
    [
        (12, 250, False, 0),  # full posts fit
        (12, 102, True, 0),  # 214 KB with full posts: summaries
        (40, 102, True, 0),  # 75 KB of summaries
        (40, 60, True, 9),  # summaries of the first 31, the rest left to the archive link
        (40, 20, True, 33),
        (40, 7, True, 40),  # only the frame and the link fit
    ],
)
def test_the_size_guard_holds_for_the_final_bytes(count: int, limit_kb: int, summarized: bool, omitted: int) -> None:
    issue = big_issue(count)
    rendered = render_email(issue, make_settings(max_html_bytes=limit_kb * 1000))
    assert (rendered.summarized, rendered.omitted) == (summarized, omitted)
    assert rendered.html_size <= limit_kb * 1000
    assert len(rendered.issue.all_entries) == count - omitted
    # what a subscriber gets: the placeholders replaced by the longest values the sender puts in
    delivered = rendered.html.replace(UNSUBSCRIBE_URL_MARK, "u" * 256).replace(RECIPIENT_EMAIL_MARK, "e" * 254)
    assert len(delivered.encode("utf-8")) <= limit_kb * 1000
    more = KOREAN.more_in_archive.format(count=omitted)
    assert (more in rendered.html) is (omitted > 0) and (more in rendered.text) is (omitted > 0)
    assert rendered.text.count(KOREAN.read_more) == (count - omitted if summarized else 0)


def test_a_limit_smaller_than_the_frame_is_a_one_line_error() -> None:
    with pytest.raises(TemplateError, match=r"an email without any entry is .* KB, more than output.max_html_kb = 3"):
        render_email(big_issue(3), make_settings(max_html_bytes=3_000))


def test_an_email_template_too_big_for_the_limit_is_named(tmp_path: Path) -> None:
    """The frame alone over the limit because of the author's own template: the error names that file and
    says to make it smaller, rather than only to raise the limit (which lets Gmail clip the email)."""
    builtin = (builtin_templates() / "email.html.j2").read_text("utf-8")
    filler = "{% for i in range(3000) %}<p>Filler {{ i }} of the frame.</p>{% endfor %}"
    (tmp_path / "email.html.j2").write_text(builtin.replace("</body>", filler + "</body>"), "utf-8")
    settings = make_settings()
    settings = replace(settings, output=replace(settings.output, templates=tmp_path))
    with pytest.raises(TemplateError, match="more than output.max_html_kb = 102") as info:
        render_email(big_issue(3), settings)
    assert info.value.source == str(tmp_path / "email.html.j2")
    assert "make the email template smaller" in info.value.hint


@pytest.mark.parametrize(
    ("template", "subject"),
    [
        (EmailSettings.subject, "별빛 개발 노트: 2024-W10"),
        ("{{ site.title }} 주간 소식 — {{ entries | length }}편", "별빛 개발 노트 주간 소식 — 2편"),
        ("{{ entries[0].title }}", "Garden log: tomatoes & <script>alert(1)</script>"),
        ("{{ week.label }}\r\nBcc: x@example.com", "2024-W10 Bcc: x@example.com"),
        ("{{ week.start_at.strftime('%m/%d') }} {{ issue.id }}", "03/04 2024-W10"),
    ],
)
def test_subject_template(template: str, subject: str) -> None:
    settings = replace(make_settings(), email=EmailSettings(subject=template))
    assert render_subject(make_issue(), settings) == subject


@pytest.mark.parametrize(
    ("template", "message"), [("{{ }}", "syntax"), ("  {{ '' }} ", "empty"), ("{{ nope.x }}", "failed")]
)
def test_bad_subject_templates_raise_template_errors(template: str, message: str) -> None:
    settings = replace(make_settings(), email=EmailSettings(subject=template))
    with pytest.raises(TemplateError, match=message):
        render_subject(make_issue(), settings)


@pytest.mark.parametrize(
    ("titles", "expected"),
    [
        ((), "한국어와 English로 쓰는 개발 기록"),
        (("하나",), "하나"),
        (("a  b\nc", "둘"), "a b c · 둘"),
    ],
)
def test_preheader(titles: tuple[str, ...], expected: str) -> None:
    entries = tuple(replace(english_entry(), title=t) for t in titles)
    assert make_preheader(make_issue(entries)) == expected


def test_long_preheader_is_cut() -> None:
    entries = tuple(replace(english_entry(), title=f"제목 번호 {n} 입니다") for n in range(40))
    preheader = make_preheader(make_issue(entries))
    assert len(preheader) == PREHEADER_CHARS
    assert preheader.endswith("…")


def test_empty_week_renders_a_note() -> None:
    rendered = render_email(make_issue(()), make_settings())
    assert KOREAN.no_posts in rendered.html
    assert KOREAN.no_posts in rendered.text
    assert UNSUBSCRIBE_URL_MARK in rendered.html


def test_user_override_wins(tmp_path: Path) -> None:
    (tmp_path / "email.txt.j2").write_text("{{ site.title }} / {{ unsubscribe_url }}\n", "utf-8")
    (tmp_path / "email.css").write_text(".footer { color: #123456; }\n", "utf-8")
    rendered = render_email(make_issue(), make_settings(templates=tmp_path))
    assert rendered.text == f"별빛 개발 노트 / {UNSUBSCRIBE_URL_MARK}\n"
    assert "color:#123456" in rendered.html


@pytest.mark.parametrize(
    ("language", "labels"), [("en", ENGLISH), ("en-US", ENGLISH), ("ko_KR", KOREAN), ("fr", ENGLISH)]
)
def test_labels_follow_the_site_language(language: str, labels: Labels) -> None:
    site = replace(make_site(), language=language)
    rendered = render_email(make_issue(site=site), make_settings(site))
    for text in (labels.view_in_browser, labels.unsubscribe, labels.in_this_post):
        assert text in rendered.html
        assert text in rendered.text
    assert f'<html lang="{language}"' in rendered.html


@pytest.mark.parametrize(
    ("name", "source"),
    [
        ("email.txt.j2", "{{ site.title }}\n"),
        ("email.html.j2", "<html><body><p>{{ site.title }}</p></body></html>"),
        # the URL only in a comment, or as text: no link a reader can follow
        ("email.html.j2", "<html><body><p>{{ site.title }}</p><!-- {{ unsubscribe_url }} --></body></html>"),
        ("email.html.j2", "<html><body><p>{{ site.title }} {{ unsubscribe_url }}</p></body></html>"),
    ],
)
def test_override_without_unsubscribe_link_is_refused(tmp_path: Path, name: str, source: str) -> None:
    (tmp_path / name).write_text(source, "utf-8")
    with pytest.raises(TemplateError, match="no unsubscribe link") as info:
        render_email(make_issue(), make_settings(templates=tmp_path))
    assert info.value.source == str(tmp_path / name)  # the file itself, where the link is to go


def test_an_override_with_the_unsubscribe_link_in_an_href_is_taken(tmp_path: Path) -> None:
    (tmp_path / "email.html.j2").write_text(
        "<html><body><p>{{ site.title }}</p><a href='{{ unsubscribe_url }}'>bye</a></body></html>", "utf-8"
    )
    assert UNSUBSCRIBE_URL_MARK in render_email(make_issue(), make_settings(templates=tmp_path)).html


def test_the_editors_note_is_made_safe_for_mail_clients_as_the_posts_are() -> None:
    """The note is the owner's Markdown, raw HTML allowed: in the email it loses what the posts lose (a
    script, an event attribute, a `javascript:` link); the archive page keeps it as written, as the posts'."""
    from digest.collector.markdown import note_html

    note = note_html(
        'Back soon. <script>alert(71)</script><b onclick="x()">bold</b> [home](https://blog.example.org/) '
        '<a href="javascript:alert(2)">bad</a>',
        "https://blog.example.org/",
    )
    rendered = render_email(replace(make_issue(), note_html=note), make_settings())
    assert "Back soon." in rendered.html and "<b>bold</b>" in rendered.html
    assert 'href="https://blog.example.org/"' in rendered.html
    for unsafe in ("<script>alert(71)", "alert(71)", "onclick", "javascript:"):
        assert unsafe not in rendered.html, unsafe
