from __future__ import annotations

import pytest

from digest.templater.htmltext import References, html_to_text


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>한 문단</p><p>두   번째\n문단</p>", "한 문단\n\n두 번째 문단"),
        ("<h3>소식</h3><p>본문</p>", "### 소식\n\n본문"),
        ('<p>See <a href="https://a.example/">the docs</a>.</p>', "See the docs [1]."),
        ('<p><a href="https://a.example/">https://a.example/</a></p>', "https://a.example/"),
        ('<p><a href="/relative">here</a> and <a href="#x">there</a></p>', "here and there"),
        ("<ul><li>하나</li><li>둘<ul><li>셋</li></ul></li></ul>", "- 하나\n- 둘\n   - 셋"),
        ("<ol><li>first</li><li>second</li></ol>", "1. first\n2. second"),
        ("<blockquote><p>인용</p><p>more</p></blockquote><p>after</p>", "> 인용\n>\n> more\n\nafter"),
        ("<pre><code>a = 1\n  b = 2\n</code></pre>", "    a = 1\n      b = 2"),
        ("<table><tr><th>이름</th><th>값</th></tr><tr><td>x</td><td>1</td></tr></table>", "이름 | 값\nx | 1"),
        ('<p><img src="https://i.example/p.png" alt="그림"></p>', "[그림] [1]"),
        ("<p>a<br>b</p><hr><p>c</p>", "a\nb\n\n--------------------\n\nc"),
        ("<p>x</p><script>alert(1)</script><style>p{}</style>", "x"),
        ("<p>&lt;tag&gt; &amp; &#54620;</p>", "<tag> & 한"),
    ],
)
def test_html_to_text(html: str, text: str) -> None:
    assert html_to_text(html, References()) == text


def test_references_are_shared_and_numbered_in_order_of_first_use() -> None:
    refs = References()
    first = html_to_text('<a href="https://b.example/">b</a> <a href="https://a.example/">a</a>', refs)
    second = html_to_text('<a href="https://a.example/">again</a> <a href="https://c.example/">c</a>', refs)
    assert first == "b [1] a [2]"
    assert second == "again [2] c [3]"
    assert refs.items() == [(1, "https://b.example/"), (2, "https://a.example/"), (3, "https://c.example/")]
    assert len(refs) == 3


def test_encoded_and_unicode_spellings_share_a_number() -> None:
    refs = References()
    assert refs.ref("https://b.example/p/#작은-모델") == "[1]"
    assert refs.ref("https://b.example/p/#%EC%9E%91%EC%9D%80-%EB%AA%A8%EB%8D%B8") == "[1]"
    assert refs.items() == [(1, "https://b.example/p/#작은-모델")]


def test_footnote_marks_are_superscript_digits_not_link_numbers() -> None:
    """`text[^1]` marks render as [1] in HTML; in the text part "[1]" is the first link's number, so the mark
    reads as ¹ there, and the link keeps its [1]."""
    from digest.collector.markdown import render

    body = render(
        "A claim[^1] and [a source](https://src.example/) ten[^10].\n\n[^1]: Why.\n[^10]: Ten.\n",
        "https://b.example/p/",
    )
    refs = References()
    text = html_to_text(body.html, refs)
    assert "A claim¹ and a source [1] ten²." in text  # numbered in the order they are cited
    assert refs.items() == [(1, "https://src.example/")]
    assert html_to_text('<p>x<sup class="footnote-ref">[12]</sup></p>', References()) == "x¹²"
    assert "1. Why.\n\n2. Ten." in text  # each note on its number's line


def test_a_paragraph_that_opens_a_list_item_stays_on_its_marker_line() -> None:
    html = "<ul>\n<li>\n<p>loose one</p>\n</li>\n<li>\n<p>loose two</p>\n</li>\n</ul>\n<ol><li><p>first</p></li></ol>"
    assert html_to_text(html, References()) == "- loose one\n\n- loose two\n\n1. first"
