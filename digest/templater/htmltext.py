"""Entry HTML -> readable plain text, links as numbered references shared by the whole message.

Written on html.parser rather than html2text: html2text is GPL-licensed (digest is MIT) and the
subset of HTML that Markdown produces is small.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import unquote

_BLOCKS = {
    "p", "div", "section", "article", "header", "footer", "figure", "figcaption", "table", "ul", "ol", "dl",
    "blockquote", "pre", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "details", "summary", "dd", "dt",
}  # fmt: skip
_SKIP = {"script", "style", "head", "title", "template"}
_SPACES = re.compile(r"[ \t\r\n\f\v]+")
# A footnote mark (collector.markdown renders `text[^1]` as <sup class="footnote-ref">[1]</sup>) in superscript
# digits: "[1]" in the text part is the first link's number.
_SUPERSCRIPT = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹", "[]")


class References:
    """Numbered link references: the same URL always gets the same number, in order of first use.

    A percent-encoded link and its Unicode spelling (Korean heading anchors) count as one URL.
    """

    def __init__(self) -> None:
        self._numbers: dict[str, int] = {}
        self._urls: list[str] = []

    def ref(self, url: str) -> str:
        key = unquote(url)
        if key not in self._numbers:
            self._urls.append(url)
            self._numbers[key] = len(self._urls)
        return f"[{self._numbers[key]}]"

    def items(self) -> list[tuple[int, str]]:
        return list(enumerate(self._urls, start=1))

    def __len__(self) -> int:
        return len(self._urls)


class _TextWriter(HTMLParser):
    def __init__(self, refs: References) -> None:
        super().__init__(convert_charrefs=True)
        self.refs = refs
        self.lines: list[str] = []  # finished lines
        self.words: list[str] = []  # the line being built
        self.lists: list[list[int]] = []  # per open list: [counter] (-1 for bullets)
        self.quote = 0
        self.pre: list[str] | None = None  # raw text inside <pre>
        self.skip = 0
        self.links: list[tuple[str, int]] = []  # (href, length of text when the <a> opened)
        self.text_len = 0
        self.row: list[str] | None = None
        self.mark = 0  # inside a footnote mark
        self.marked = False  # a list item's marker was just written

    # -- output helpers
    def _prefix(self) -> str:
        return "> " * self.quote

    def _flush(self) -> None:
        line = "".join(self.words).strip()
        self.words = []
        if line:
            indent = "   " * max(len(self.lists) - 1, 0)
            self.lines.append(self._prefix() + indent + line)

    def _blank(self) -> None:
        self._flush()
        if self.lines and self.lines[-1].strip("> "):
            self.lines.append(self._prefix().rstrip())

    def _emit(self, text: str) -> None:
        self.words.append(text)
        self.text_len += len(text)

    # -- parser callbacks
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag in _SKIP:
            self.skip += 1
        elif tag == "br":
            self._flush()
        elif tag in ("ul", "ol"):
            self._blank() if not self.lists else self._flush()
            self.lists.append([0 if tag == "ol" else -1])
        elif tag == "li":
            self._flush()
            counter = self.lists[-1] if self.lists else [-1]
            if counter[0] >= 0:
                counter[0] += 1
                self._emit(f"{counter[0]}. ")
            else:
                self._emit("- ")
            self.marked = True  # a paragraph that opens the item stays on the marker's line
        elif tag == "blockquote":
            self._blank()
            self.quote += 1
        elif tag == "pre":
            self._blank()
            self.pre = []
        elif tag == "hr":
            self._blank()
            self.lines.append(self._prefix() + "-" * 20)
            self._blank()
        elif tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
            self._blank()
            self._emit("#" * int(tag[1]) + " ")
        elif tag == "tr":
            self._flush()
            self.row = []
        elif tag in ("td", "th") and self.row is not None:
            self.row.append("".join(self.words).strip())
            self.words = []
        elif tag == "sup" and "footnote-ref" in a.get("class", "").split():
            self.mark += 1
        elif tag == "a":
            self.links.append((a.get("href", ""), self.text_len))
        elif tag == "img":
            src = a.get("src", "")
            alt = a.get("alt", "").strip() or "image"
            self._emit(f"[{alt}]" + (" " + self.refs.ref(src) if src.startswith(("http:", "https:")) else ""))
        elif tag in _BLOCKS and not (tag == "p" and self.marked):
            self._blank()
        if tag != "li":
            self.marked = False

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip = max(self.skip - 1, 0)
        elif tag == "sup":
            self.mark = max(self.mark - 1, 0)
        elif tag in ("ul", "ol"):
            self._flush()
            if self.lists:
                self.lists.pop()
            if not self.lists:
                self._blank()
        elif tag == "li":
            self._flush()
        elif tag == "blockquote":
            self._flush()
            self.quote = max(self.quote - 1, 0)
            if self.lines and not self.lines[-1].strip("> "):
                self.lines[-1] = self._prefix().rstrip()  # the quote's trailing blank line leaves the quote
            else:
                self._blank()
        elif tag == "pre" and self.pre is not None:
            code = "".join(self.pre).strip("\n")
            self.pre = None
            self.lines.extend(self._prefix() + "    " + line for line in code.split("\n"))
            self._blank()
        elif tag == "tr" and self.row is not None:
            self.row.append("".join(self.words).strip())
            self.words = []
            cells = self.row[1:]  # the text before the first cell is whitespace
            self.row = None
            self.lines.append(self._prefix() + " | ".join(cells))
        elif tag == "a" and self.links:
            href, start = self.links.pop()
            self._close_link(href, start)
        elif tag in _BLOCKS or tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
            self._blank()

    def _close_link(self, href: str, start: int) -> None:
        shown = "".join(self.words)[-(self.text_len - start) :] if self.text_len > start else ""
        if not href.startswith(("http:", "https:", "mailto:")):
            return  # in-page anchors and relative links mean nothing outside the page
        if shown.strip() == href or shown.strip() == href.removeprefix("mailto:"):
            return  # the URL is already in the text
        self._emit(" " + self.refs.ref(href))

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        if self.pre is not None:
            self.pre.append(data)
            return
        text = _SPACES.sub(" ", data)
        if not text.strip() and self.marked:
            return  # the line break between an item and its paragraph
        self.marked = False
        if self.mark:
            text = text.strip().translate(_SUPERSCRIPT)
        if not self.words or "".join(self.words).endswith(" "):
            text = text.lstrip(" ") if not self.words else text
        self._emit(text)

    def close(self) -> None:
        super().close()
        self._flush()


def html_to_text(fragment: str, refs: References) -> str:
    """Plain text of an HTML fragment; links become `text [n]` with URLs collected in `refs`."""
    writer = _TextWriter(refs)
    writer.feed(fragment)
    writer.close()
    lines = [line.rstrip() for line in writer.lines]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n")
