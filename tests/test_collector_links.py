from __future__ import annotations

import pytest

from digest.collector.links import absolute_url, absolutize

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
    assert 'href="https://c.example/c"' in out
    assert 'poster="https://blog.example.com/2021/04/27/bundle/p.jpg"' in out
    assert 'title="href=/no"' in out
