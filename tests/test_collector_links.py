from __future__ import annotations

from pathlib import Path

import pytest

from digest.collector import collect
from digest.collector.links import Linker, absolute_url, absolutize, srcset_candidates
from digest.collector.markdown import render
from tests.support_collector import NOW_AT, make_site, post

BASE = "https://blog.example.com/"
PAGE = "https://blog.example.com/2021/04/27/bundle/"


@pytest.mark.parametrize(
    ("value", "base", "expected"),
    [
        ("/images/x.jpg", BASE, "https://blog.example.com/images/x.jpg"),
        ("img/x.jpg", BASE, "https://blog.example.com/2021/04/27/bundle/img/x.jpg"),
        ("../other/", BASE, "https://blog.example.com/2021/04/27/other/"),
        ("#part", BASE, "https://blog.example.com/2021/04/27/bundle/#part"),
        ("https://elsewhere.org/a", BASE, "https://elsewhere.org/a"),
        ("mailto:me@example.com", BASE, "mailto:me@example.com"),
        ("//cdn.example.net/x.js", BASE, "https://cdn.example.net/x.js"),
        ("/images/x.jpg", "https://user.github.io/blog/", "https://user.github.io/blog/images/x.jpg"),
        ("/blog/images/x.jpg", "https://user.github.io/blog/", "https://user.github.io/blog/images/x.jpg"),
    ],
)
def test_absolute_url(value: str, base: str, expected: str) -> None:
    assert absolute_url(value, PAGE, base) == expected


def test_absolutize_rewrites_every_quoting_style() -> None:
    html = (
        '<p><img src="a.png" alt="x"> <a href=\'/b/\'>b</a> <a href=https://c.example/c>c</a>'
        ' <video poster="p.jpg"></video> <a title="href=/no">t</a></p>'
    )
    out = absolutize(html, PAGE, BASE)
    assert 'src="https://blog.example.com/2021/04/27/bundle/a.png"' in out
    assert 'href="https://blog.example.com/b/"' in out
    assert "<a href=https://c.example/c>" in out  # nothing to change: the tag stays as written
    assert 'poster="https://blog.example.com/2021/04/27/bundle/p.jpg"' in out
    assert 'title="href=/no"' in out


CODE_SAMPLE = """Link the stylesheet in `<link href="/css/site.css">` like this:

```html
<link href="/css/site.css" rel="stylesheet">
<img src='photo.jpg' srcset="a.jpg 1x, b.jpg 2x">
```

    <a href="/indented/">indented code</a>

Prose that says href="/not-a-link" and src=/neither stays prose.
"""


def test_code_and_prose_come_out_byte_for_byte(tmp_path: Path) -> None:
    site = make_site(tmp_path, {"_posts/2021-03-20-code.md": post("Code", body=CODE_SAMPLE)})
    (entry,) = collect(site, NOW_AT).entries
    expected = render(CODE_SAMPLE, entry.url).html  # the same Markdown with no link rewriting at all
    assert entry.body_html == expected
    assert "<code>&lt;link href=&quot;/css/site.css&quot;&gt;</code>" in entry.body_html
    assert "&lt;link href=&quot;/css/site.css&quot; rel=&quot;stylesheet&quot;&gt;\n" in entry.body_html
    assert "&lt;a href=&quot;/indented/&quot;&gt;indented code&lt;/a&gt;" in entry.body_html
    assert "https://" not in entry.body_html


RAW_HTML = """<figure>
<img src="/img/a.png" srcset="/img/a.png 1x, img/a@2x.png 2x" alt="A &amp; B">
<video poster=poster.jpg controls></video>
<figcaption>See <a href='/about/'>about</a> &mdash; <code>&lt;a href="/x"&gt;</code></figcaption>
</figure>

Inline <a href="/inline/">raw link</a>, [markdown](/md/ "t"), ![img](pic.png) and <br/> <span>kept</span>.
"""


def test_raw_html_and_markdown_links_are_absolute_and_the_rest_is_unchanged() -> None:
    page = "https://blog.example.com/2021/03/20/code/"
    plain = render(RAW_HTML, page).html
    out = render(RAW_HTML, page, links=Linker(page, BASE)).html
    assert (
        '<img src="https://blog.example.com/img/a.png" srcset="https://blog.example.com/img/a.png 1x,'
        ' https://blog.example.com/2021/03/20/code/img/a@2x.png 2x" alt="A &amp; B">'
    ) in out
    assert '<video poster="https://blog.example.com/2021/03/20/code/poster.jpg" controls></video>' in out
    assert '<a href="https://blog.example.com/about/">about</a> &mdash; <code>&lt;a href="/x"&gt;</code>' in out
    assert '<a href="https://blog.example.com/inline/">raw link</a>' in out
    assert '<a href="https://blog.example.com/md/" title="t">markdown</a>' in out
    assert '<img src="https://blog.example.com/2021/03/20/code/pic.png" alt="img" />' in out
    # Outside the rewritten tags, not one byte changed.
    for piece in ("<figure>\n", "<br/> <span>kept</span>", "&mdash;", "</figcaption>\n</figure>"):
        assert piece in plain and piece in out


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a.jpg", [("a.jpg", "")]),
        ("a.jpg 1x, b.jpg 2x", [("a.jpg", "1x"), ("b.jpg", "2x")]),
        ("a.jpg,b.jpg 2x", [("a.jpg,b.jpg", "2x")]),  # a comma inside a URL is part of it
        ("a.jpg, b.jpg 2x", [("a.jpg", ""), ("b.jpg", "2x")]),
        ("  /s.jpg 480w ,\n /m.jpg 800w  ", [("/s.jpg", "480w"), ("/m.jpg", "800w")]),
        ("data:image/png;base64,AAAA 1x", [("data:image/png;base64,AAAA", "1x")]),
        ("", []),
    ],
)
def test_srcset_candidates(value: str, expected: list[tuple[str, str]]) -> None:
    assert srcset_candidates(value) == expected
