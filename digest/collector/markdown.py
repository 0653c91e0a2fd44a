"""Markdown to HTML with markdown-it-py (CommonMark, tables, strikethrough, raw HTML, bare URLs and domains
as links), plus what the issue shows of a post: the ``##``/``###`` outline with anchors, and a summary.

The summary is the front matter's ``summary``/``description``/``excerpt``, else everything before
``<!--more-->``, else the first paragraph.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.token import Token
from mdit_py_plugins.footnote import footnote_plugin

from digest.models import Heading
from digest.text import is_toc_heading, slugify

from .attributes import apply_attribute_lists
from .links import Linker


# markdown-it-py, chosen with bench/bench_markdown.py (5,000 generated bodies and a real blog's 233 posts,
# load 4.9-6.1 on 2 CPUs; time relative to markdown-it-py with linkify-it as it was, and bodies whose HTML
# differs from its output):
#   markdown-it-py, the quick link test below       0.65x   (real blog 0.93x)   differs on none
#   markdown-it-py, no linkify                      0.60x                       39 of 233 real posts
#   linkify-it only where "://", "www." or "@"      0.63x                       22 of 233 real posts
#   mistune 3                                       0.74x                       87 of 233 real posts
#   cmarkgfm (cmark-gfm, C)                         0.04x                       40 of 233 real posts
#   markdown-it-pyrs (Rust)                         0.04x                       32 of 233, and panics on one
# The two compiled ones give Python HTML only, no token stream for the attribute lists, the anchors and
# outline, the absolute links and the summary; they write table alignment, autolinks inside raw HTML and
# bare domains differently. A fast path for bodies without raw HTML, braces or anything link-like would
# have taken 4 of the real blog's 233 posts. So markdown-it-py stays, and what it did needlessly goes.
# linkify: running logs and news posts paste bare URLs; GFM renders them as links, and so do we.
def _made() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": True, "linkify": True}).enable(["table", "strikethrough", "linkify"])


_MD = _made()
# Footnotes (`text[^1]` and `[^1]: note`), which kramdown (Jekyll's Markdown), Hugo's Goldmark and Pelican's
# Python-Markdown extension render: numbered, listed at the end of the post. The marks are not links here:
# an email's in-page links work in few clients, a link to the post's page would name another anchor than
# the blog's (kramdown's #fn:1), and the text part would number each mark as a link of its own. Only bodies
# with a `[^` are parsed with the plugin: its rules cost 6.6 % of markdown-it-py's time on every body
# (5 runs of 1,500 generated bodies in turns, median), and a body without `[^` has no footnote.
_NOTES = _made().use(footnote_plugin)


def _footnote_mark(self: Any, tokens: list[Token], idx: int, options: Any, env: Any) -> str:
    return f'<sup class="footnote-ref">{self.rules["footnote_caption"](tokens, idx, options, env)}</sup>'


_NOTES.add_render_rule("footnote_ref", _footnote_mark)
_NOTES.add_render_rule("footnote_anchor", lambda self, tokens, idx, options, env: "")  # the way back: none


def _parser(markdown: str) -> MarkdownIt:
    return _NOTES if "[^" in markdown else _MD


# Every link linkify-it can find has a scheme (``http:``, ``//``, ``mailto:``), ``www.``, ``localhost``, an
# ``@`` or a dot right before a top-level domain or an IP address's digits: text with none of these has no
# link, whatever its length. linkify-it's own test is a scan with several very large Unicode patterns, run
# on every paragraph and then on every text of it: 40 % of markdown-it-py's time on the generated bodies,
# 22 % on the real blog's.
# This test answers no for most prose in a microsecond and hands everything else to linkify-it unchanged,
# so the links found are the same.
_MAY_LINK = re.compile(r"[:@]|//|\.\w|www\.|localhost", re.IGNORECASE)


class _QuickLinkify:
    """linkify-it behind a cheap test that only ever says "no" where linkify-it would too."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def pretest(self, text: str) -> bool:
        return _MAY_LINK.search(text) is not None and bool(self.inner.pretest(text))

    def test(self, text: str) -> bool:
        return _MAY_LINK.search(text) is not None and bool(self.inner.test(text))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)  # match, match_at_start: the links themselves


_MD.linkify = _QuickLinkify(_MD.linkify)
_NOTES.linkify = _QuickLinkify(_NOTES.linkify)
MORE = "<!--more-->"
SUMMARY_KEYS = ("summary", "description", "excerpt")


@dataclass(frozen=True)
class Rendered:
    html: str
    summary_html: str
    outline: tuple[Heading, ...]


def render(
    markdown: str,
    page_url: str,
    meta: dict[str, Any] | None = None,
    links: Linker | None = None,
    *,
    heading_ids: bool = True,
) -> Rendered:
    """Render ``markdown``; headings get ``id`` anchors and ``outline`` lists levels 2 and 3. With ``links``,
    every link, image and URL attribute of raw HTML is made absolute (code and text are left alone). Without
    ``heading_ids`` (the blog's pages have none) the outline links a heading to the page itself, unless the
    heading names its id (``{#id}``)."""
    md = _parser(markdown)
    env: dict[str, Any] = {"docId": _doc_id(page_url)} if md is _NOTES else {}
    tokens = apply_attribute_lists(md.parse(markdown, env))
    outline = _anchor_headings(tokens, page_url, heading_ids)
    if links is not None:
        links.tokens(tokens)
    html = md.renderer.render(tokens, md.options, env)
    return Rendered(html, _summary(markdown, tokens, env, meta or {}, links, md), outline)


def _doc_id(page_url: str) -> str:
    """A short prefix of the post's footnote anchors (#fn-3f2a9c-1), the same for the same post."""
    return hashlib.sha256(page_url.encode()).hexdigest()[:6]


def _render(markdown: str, links: Linker | None) -> str:
    md = _parser(markdown)
    env: dict[str, Any] = {}
    tokens = apply_attribute_lists(md.parse(markdown, env))
    if links is not None:
        links.tokens(tokens)
    return str(md.renderer.render(tokens, md.options, env))


def _anchor_headings(tokens: list[Token], page_url: str, heading_ids: bool = True) -> tuple[Heading, ...]:
    seen: dict[str, int] = {}
    outline = []
    for index, token in enumerate(tokens):
        if token.type != "heading_open":
            continue
        inline = tokens[index + 1]
        text = "".join(c.content for c in inline.children or () if c.type in ("text", "code_inline")).strip()
        given = token.attrGet("id")  # {#id} written after the heading
        slug = given if isinstance(given, str) and given else slugify(text)
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        if count:
            slug = f"{slug}-{count}"
        token.attrSet("id", slug)
        level = int(token.tag[1])
        classes = token.attrGet("class")
        hidden = isinstance(classes, str) and "no_toc" in classes.split()  # kramdown: not in the table of contents
        if level in (2, 3) and text and not is_toc_heading(text) and not hidden:
            page = page_url.split("#", 1)[0]
            linked = heading_ids or (isinstance(given, str) and given)
            outline.append(Heading(level, text, f"{page}#{slug}" if linked else page))
    return tuple(outline)


def _summary(
    markdown: str, tokens: list[Token], env: dict[str, Any], meta: dict[str, Any], links: Linker | None, md: MarkdownIt
) -> str:
    for key in SUMMARY_KEYS:
        value = meta.get(key)
        if isinstance(value, str) and value.strip():
            return _render(value.strip(), links)
    if MORE in markdown:
        return _render(markdown.split(MORE, 1)[0], links)
    for start, token in enumerate(tokens):
        # Any visible paragraph, also inside a blockquote (running-log items are quotes); paragraphs of
        # tight lists are hidden and are not a summary.
        if token.type == "paragraph_open" and not token.hidden:
            end = next(i for i in range(start, len(tokens)) if tokens[i].type == "paragraph_close")
            return str(md.renderer.render(tokens[start : end + 1], md.options, env))
    return ""


def note_html(markdown: str, base_url: str) -> str:
    """A short Markdown text written by the author (the editor's note of an issue) as HTML, links absolute."""
    from .links import absolutize

    return absolutize(render(markdown, base_url).html, base_url, base_url)
