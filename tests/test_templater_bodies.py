"""templater.bodies: post HTML made ready for the archive and the feeds, and cleaned for mail clients."""

from __future__ import annotations

from pathlib import Path

import lxml.html
import pytest

from digest.templater.bodies import EMAIL_COLUMN_PX, prepare
from tests.support_templater import POST_URL, make_site, png


def ready(body: str, *, email: bool = True, drop_toc: bool = True, root: Path | None = None) -> str:
    site = make_site(root) if root else make_site()
    return prepare(body, POST_URL, "A post", drop_toc=drop_toc, email=email, site=site, source="_posts/2024-03-06-x.md")


def tags(html: str) -> list[tuple[str, dict[str, str]]]:
    root = lxml.html.fragment_fromstring(html, create_parent="div")
    return [(e.tag, dict(e.attrib)) for e in root.iter() if isinstance(e.tag, str)][1:]


CODE = (
    '<pre><code class="language-html">&lt;link href="/css/site.css"&gt;\n&lt;script&gt;x()&lt;/script&gt;\n'
    "</code></pre>"
)
CLEANED = [
    # (post HTML, what must not be in the email, what must be)
    ("<p>a</p><script>alert(1)</script><p>b</p>", ["<script", "alert"], ["<p>a</p>", "<p>b</p>"]),
    ('<p onclick="steal()" onmouseover="x()">hi</p>', ["onclick", "onmouseover", "steal"], ["<p>hi</p>"]),
    ('<a href="javascript:steal()">x</a>', ["javascript"], [">x</a>"]),
    ('<img src="https://x.example/a.png" onerror="steal()">', ["onerror"], ['src="https://x.example/a.png"']),
    ("<style>body { display: none }</style><p>kept</p>", ["<style", "display"], ["<p>kept</p>"]),
    ('<form action="/s"><input name="q"><button>Go</button><select></select><textarea>t</textarea></form>',
     ["<form", "<input", "<button", "<select", "<textarea"], []),
    ('<iframe src="https://www.youtube.com/embed/aBcDeFgHiJk" title="A talk"></iframe>',
     ["<iframe"], ['<a href="https://www.youtube.com/watch?v=aBcDeFgHiJk">▶ A talk</a>']),
    ('<iframe src="https://www.youtube-nocookie.com/embed/aBcDeFgHiJk?rel=0"></iframe>',
     ["<iframe"], ['href="https://www.youtube.com/watch?v=aBcDeFgHiJk"']),
    ('<iframe src="https://player.vimeo.com/video/123456"></iframe>', ["<iframe"], ['href="https://vimeo.com/123456"']),
    ('<video controls poster="p.jpg"><source src="/media/clip.mp4"></video>',
     ["<video", "<source"], ['href="https://blog.example.org/media/clip.mp4"']),
    ('<audio src="https://x.example/a.mp3"></audio>', ["<audio"], ['href="https://x.example/a.mp3"']),
    ('<object data="x.swf"></object><embed src="y.swf">', ["<object", "<embed", "swf"], []),
    ('<p>Posted <time datetime="2024-03-06">Wednesday</time></p>', ["<time", "datetime"], ["<span>Wednesday</span>"]),
    ("<figure><img src='https://x.example/a.png' width='10'><figcaption>Cap</figcaption></figure>",
     ["<figure", "<figcaption"], ["<div>Cap</div>"]),
    ("<section><header>h</header><article>a</article><aside>s</aside><footer>f</footer></section>",
     ["<section", "<header", "<article", "<aside", "<footer"], ["<div>h</div>"]),
    ("<details><summary>More</summary><p>hidden</p></details>", ["<details", "<summary"], ["<div>More</div>"]),
    ("<p><mark>key</mark></p>", ["<mark"], ["<span>key</span>"]),
    ('<svg viewBox="0 0 1 1"><script>x()</script></svg><p>after</p>', ["<svg", "x()"], ["<p>after</p>"]),
    ('<picture><source srcset="a.webp"><img src="https://x.example/a.png" width="10"></picture>',
     ["<picture", "<source"], ['<img src="https://x.example/a.png" width="10"']),
    ("<p>bell\x07 and\x1b escape\x7f\x85</p>", ["\x07", "\x1b", "\x7f", "\x85"], ["<p>bell and escape</p>"]),
    # code samples come out as they went in
    (CODE, [], [CODE]),
    ("<p>Use <code>&lt;iframe onclick=x&gt;</code> never.</p>", [], ["<code>&lt;iframe onclick=x&gt;</code>"]),
]  # fmt: skip


@pytest.mark.parametrize(("body", "absent", "present"), CLEANED, ids=[c[0][:40] for c in CLEANED])
def test_email_bodies_carry_nothing_a_mail_client_refuses(body: str, absent: list[str], present: list[str]) -> None:
    html = ready(body)
    for needle in absent:
        assert needle not in html
    for needle in present:
        assert needle in html


def test_the_archive_keeps_what_the_post_has() -> None:
    body = '<figure><iframe src="https://www.youtube.com/embed/aBcDeFgHiJk"></iframe></figure><time>t</time>'
    assert ready(body, email=False) == body


@pytest.mark.parametrize(
    ("img", "width", "height"),
    [
        ('<img src="https://x.example/a.png">', str(EMAIL_COLUMN_PX), None),  # unknown: the column
        ('<img src="https://x.example/a.png" width="1200" height="800">', "552", "368"),
        ('<img src="https://x.example/a.png" width="1200px">', "552", None),
        ('<img src="https://x.example/a.png" width="300" height="200">', "300", "200"),
        ('<img src="https://x.example/a.png" width="100%">', "552", None),
        ('<img src="https://blog.example.org/images/icon.png">', "48", None),  # the site's own file: its size
        ('<img src="https://blog.example.org/images/photo.png" height="900">', "552", None),
        ('<img src="https://blog.example.org/static-only.png">', "200", None),  # Hugo's static/
        ('<img src="https://blog.example.org/2024/03/06/x/beside.png">', "120", None),  # a page bundle
    ],
)
def test_every_email_image_has_a_width_within_the_column(
    tmp_path: Path, img: str, width: str, height: str | None
) -> None:
    png(tmp_path / "images" / "icon.png", 48, 48)
    png(tmp_path / "images" / "photo.png", 3000, 2000)
    png(tmp_path / "static" / "static-only.png", 200, 100)
    png(tmp_path / "_posts" / "beside.png", 120, 80)
    ((tag, attrs),) = tags(ready(img, root=tmp_path))
    assert (attrs.get("width"), attrs.get("height")) == (width, height)


def test_a_replaced_image_is_measured_again_in_the_same_process(tmp_path: Path) -> None:
    """The weekly service renders for years in one process: an image file replaced under the same name
    gives the next email its new width (the same body, the same post)."""
    img = '<img src="https://blog.example.org/images/shot.png">'
    png(tmp_path / "images" / "shot.png", 400, 100)
    assert tags(ready(img, root=tmp_path))[0][1]["width"] == "400"
    png(tmp_path / "images" / "shot.png", 250, 100)
    assert tags(ready(img, root=tmp_path))[0][1]["width"] == "250"


TOCS = [
    ("<h2>목차</h2>\n<ul><li><a href='#a'>A</a></li></ul><h2 id='a'>A</h2>", '<h2 id="a">A</h2>'),
    ("<h2>Table of Contents</h2><ol><li>x</li></ol><p>text</p>", "<p>text</p>"),
    ("<h3>Contents:</h3><ul><li>x</li></ul><p>text</p>", "<p>text</p>"),
    (
        "<h2>Contents</h2><p>A paragraph is not a table of contents.</p>",
        "<p>A paragraph is not a table of contents.</p>",
    ),
    ("<ul id='markdown-toc'><li>x</li></ul><p>text</p>", "<p>text</p>"),
    ("<nav id='TableOfContents'><ul><li>x</li></ul></nav><p>text</p>", "<p>text</p>"),
    ("<h2>Context</h2><ul><li>kept</li></ul>", "<h2>Context</h2><ul><li>kept</li></ul>"),
    (  # a weekly news post's own contents at the top, with no heading: each item only a link to a section
        "<ul><li><a href='#알파'>알파</a></li><li><a href='#%EB%B2%A0%ED%83%80'>베타</a></li></ul>"
        "<h3 id='알파'>알파</h3><p>a</p><h3 id='베타'>베타</h3><p>b</p>",
        '<h3 id="알파">알파</h3><p>a</p><h3 id="베타">베타</h3><p>b</p>',
    ),
    (  # a list at the top that links elsewhere, or says more than a link, is the post's own
        "<ul><li><a href='#a'>A</a> and why</li><li><a href='#b'>B</a></li></ul><h3 id='a'>A</h3><h3 id='b'>B</h3>",
        '<ul><li><a href="https://blog.example.org/2024/03/06/weekly-notes/#a">A</a> and why</li>'
        '<li><a href="https://blog.example.org/2024/03/06/weekly-notes/#b">B</a></li></ul>'
        '<h3 id="a">A</h3><h3 id="b">B</h3>',
    ),
    (
        "<ul><li><a href='#a'>A</a></li><li><a href='#nowhere'>B</a></li></ul><h3 id='a'>A</h3>",
        '<ul><li><a href="https://blog.example.org/2024/03/06/weekly-notes/#a">A</a></li>'
        '<li><a href="https://blog.example.org/2024/03/06/weekly-notes/#nowhere">B</a></li></ul><h3 id="a">A</h3>',
    ),
]


@pytest.mark.parametrize(("body", "expected"), TOCS)
def test_the_posts_own_table_of_contents_is_not_shown_twice(body: str, expected: str) -> None:
    for email in (False, True):
        assert ready(body, email=email).strip() == expected


def test_without_an_outline_box_the_posts_table_of_contents_stays() -> None:
    assert "<h2>목차</h2>" in ready(TOCS[0][0], drop_toc=False)


def test_prepare_is_deterministic_and_cached() -> None:
    body = "<p>x</p>" * 100
    first = ready(body)
    assert ready(body) is first  # the size guard renders an issue several times: parsed once
    assert ready(body + " ") is not first and ready(body + " ") == first + " "
