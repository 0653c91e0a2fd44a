"""kramdown attribute lists and heading attributes are applied or dropped, never shown as text."""

from __future__ import annotations

import pytest

from digest.collector.attributes import parse, strip_extensions
from digest.collector.markdown import render

PAGE = "https://blog.example.com/2024/01/02/post/"


@pytest.mark.parametrize(
    ("markdown", "html"),
    [
        ("Para one\n{: .note}\n", '<p class="note">Para one</p>\n'),
        ("Para\n\n{: #para-id .a .b}\n", '<p id="para-id" class="a b">Para</p>\n'),
        ("> quoted\n\n{: .aside}\n", '<blockquote class="aside">\n<p>quoted</p>\n</blockquote>\n'),
        ("```\ncode\n```\n{: .lineno}\n", '<pre><code class="lineno">code\n</code></pre>\n'),
        ("* TOC\n{:toc}\n\nText\n", "<p>Text</p>\n"),
        ("1. one\n2. two\n{: .steps}\n", '<ol class="steps">\n<li>one</li>\n<li>two</li>\n</ol>\n'),
        ('[a](/x){:target="_blank"} b\n', '<p><a href="/x" target="_blank">a</a> b</p>\n'),
        ('![i](p.png){: width="300" .wide}\n', '<p><img src="p.png" alt="i" width="300" class="wide" /></p>\n'),
        (
            "*em*{: .e} and **b**{:.s} and `c`{: .c}\n",
            '<p><em class="e">em</em> and <strong class="s">b</strong> and <code class="c">c</code></p>\n',
        ),
        ('[x](/y){: onclick="steal()" .ok}\n', '<p><a href="/y" class="ok">x</a></p>\n'),
        ("{:refdef: .important}\n\nText\n", "<p>Text</p>\n"),
        ("# Title {#custom .big}\n", '<h1 id="custom" class="big">Title</h1>\n'),
        ("## Title {: #kid}\n", '<h2 id="kid">Title</h2>\n'),
        ("## Title\n{:.no_toc}\n", '<h2 class="no_toc" id="title">Title</h2>\n'),
        ("```\n{: .stays}\n```\n", "<pre><code>{: .stays}\n</code></pre>\n"),
        ("Inline `{: .code}` stays\n", "<p>Inline <code>{: .code}</code> stays</p>\n"),
        ("A set {1, 2} stays\n", "<p>A set {1, 2} stays</p>\n"),
    ],
)
def test_attribute_lists_are_applied_never_shown(markdown: str, html: str) -> None:
    assert render(markdown, PAGE).html == html


def test_a_custom_heading_id_is_the_outline_anchor_and_no_toc_is_left_out() -> None:
    outline = render("## One {#first}\n\n## Contents\n{:.no_toc}\n\n### Two\n", PAGE).outline
    assert [(h.text, h.anchor) for h in outline] == [("One", PAGE + "#first"), ("Two", PAGE + "#two")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a {::comment}hidden\ntext{:/comment} b", "a  b"),
        ("a {::comment}hidden{:/} b", "a  b"),
        ('{::options parse_block_html="true" /}\nText', "\nText"),
        ("{::nomarkdown}<b>kept</b>{:/nomarkdown}", "<b>kept</b>"),
        ("no extension {: .x}", "no extension {: .x}"),
    ],
)
def test_kramdown_extensions(text: str, expected: str) -> None:
    assert strip_extensions(text) == expected


def test_parse() -> None:
    assert parse(".a #b c=\"d e\" f='g' h=i toc") == (
        {"id": "b", "c": "d e", "f": "g", "h": "i", "class": "a"},
        {"toc"},
    )
