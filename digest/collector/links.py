"""Make every URL in a post absolute so links work inside an email, touching nothing else.

Only URL attributes change: ``href``, ``src``, ``srcset`` and ``poster``. Links and images written in
Markdown are rewritten on markdown-it's token stream (their URLs are token attributes); raw HTML in a post
(``html_block``/``html_inline`` tokens) goes through the standard library's HTML parser, which reports each
start tag's exact text and position, so only those tags are rebuilt and every other byte is copied. Code
blocks, inline code and prose are text tokens and are never looked at: a code sample showing
``<link href="/css/site.css">`` comes out exactly as written. (lxml was tried and left aside: it
re-serialises the whole fragment, changing entities, quotes and void tags; parsing every rendered body
with html.parser instead of only the raw-HTML tokens costs about a fifth of the collect time.)

Site-relative paths (``/images/x.jpg``) resolve against the site's base URL; page-relative ones
(``img/x.jpg``, ``../other/``) against the page's own URL, which for a page bundle (``…/slug/index.md``) is
the bundle folder, so the caller passes that URL with a trailing slash. Fragment-only links (``#top``)
point into the page. Absolute and ``mailto:``/``tel:``/``data:`` URLs are left alone.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

from markdown_it.token import Token

URL_ATTRIBUTES = frozenset({"href", "src", "srcset", "poster"})
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)


def absolute_url(value: str, page_url: str, base_url: str) -> str:
    value = value.strip()
    if not value or _SCHEME.match(value):
        return value
    if value.startswith("//"):
        return f"{urlsplit(base_url).scheme or 'https'}:{value}"
    if value.startswith("/"):
        base_path = urlsplit(base_url).path
        if base_path != "/" and value.startswith(base_path):
            return urljoin(base_url, value)
        return base_url.rstrip("/") + value
    return urljoin(page_url, value)


def srcset_candidates(value: str) -> list[tuple[str, str]]:
    """(URL, descriptor) pairs of a ``srcset`` value, split as the HTML standard says: a URL runs to the
    next whitespace (a trailing comma ends the candidate), its descriptor to the next comma outside
    parentheses."""
    found: list[tuple[str, str]] = []
    i, n = 0, len(value)
    while i < n:
        while i < n and (value[i].isspace() or value[i] == ","):
            i += 1
        start = i
        while i < n and not value[i].isspace():
            i += 1
        url = value[start:i]
        if not url:
            break
        if url.endswith(","):
            found.append((url.rstrip(","), ""))
            continue
        start, depth = i, 0
        while i < n and (value[i] != "," or depth):
            depth += {"(": 1, ")": -1}.get(value[i], 0)
            i += 1
        found.append((url, value[start:i].strip()))
        i += 1
    return found


@dataclass(frozen=True)
class Linker:
    """Rewrites the URLs of one page. ``special`` sees every URL first and may answer for it (a Pelican
    ``{filename}`` link, say); None lets the usual rules apply."""

    page_url: str
    base_url: str
    special: Callable[[str], str | None] | None = None

    def url(self, value: str) -> str:
        if self.special is not None:
            found = self.special(value.strip())
            if found is not None:
                return found
        return absolute_url(value, self.page_url, self.base_url)

    def srcset(self, value: str) -> str:
        return ", ".join(f"{self.url(u)} {d}".rstrip() for u, d in srcset_candidates(value))

    def attribute(self, name: str, value: str) -> str:
        return self.srcset(value) if name == "srcset" else self.url(value)

    def tokens(self, tokens: Iterable[Token]) -> None:
        """Rewrite, in place, the URLs of Markdown links and images and of raw HTML in ``tokens``."""
        for token in tokens:
            if token.type == "link_open":
                href = token.attrGet("href")
                if isinstance(href, str):
                    token.attrSet("href", self.url(href))
            elif token.type == "image":
                src = token.attrGet("src")
                if isinstance(src, str):
                    token.attrSet("src", self.url(src))
            elif token.type in ("html_block", "html_inline") and "=" in token.content:
                token.content = self.html(token.content)
            if token.children:
                self.tokens(token.children)

    def html(self, fragment: str) -> str:
        """``fragment`` with the URL attributes of its start tags rewritten; every other byte unchanged."""
        tags = _StartTags()
        tags.feed(fragment)
        tags.close()
        if not tags.found:
            return fragment
        line_starts = [0] + [m.end() for m in re.finditer("\n", fragment)]
        out: list[str] = []
        done = 0
        for line, column, text, tag, attrs in tags.found:
            start = line_starts[line - 1] + column
            if start < done or fragment[start : start + len(text)] != text:
                continue  # the parser's position and the text disagree: leave this tag as written
            rebuilt = self._tag(tag, attrs, text)
            if rebuilt != text:
                out += [fragment[done:start], rebuilt]
                done = start + len(text)
        out.append(fragment[done:])
        return "".join(out)

    def _tag(self, tag: str, attrs: list[tuple[str, str | None]], text: str) -> str:
        changed = False
        parts = [f"<{tag}"]
        for name, value in attrs:
            if value is None:
                parts.append(f" {name}")
                continue
            if name in URL_ATTRIBUTES:
                new = self.attribute(name, value)
                changed = changed or new != value
                value = new
            parts.append(f' {name}="{html.escape(value, quote=True)}"')
        if not changed:
            return text
        return "".join(parts) + (" />" if text.rstrip().endswith("/>") else ">")


class _StartTags(HTMLParser):
    """Collects the start tags that carry a URL attribute, with where they begin."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.found: list[tuple[int, int, str, str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if any(name in URL_ATTRIBUTES for name, _ in attrs):
            text = self.get_starttag_text()
            if text is not None:
                line, column = self.getpos()
                self.found.append((line, column, text, tag, attrs))

    handle_startendtag = handle_starttag


def absolutize(fragment: str, page_url: str, base_url: str) -> str:
    """Rewrite the href/src/srcset/poster attributes of an HTML fragment (nothing else changes)."""
    return Linker(page_url, base_url).html(fragment)


__all__ = ["URL_ATTRIBUTES", "Linker", "absolute_url", "absolutize", "srcset_candidates"]
