"""An entry's HTML made ready for an output, with one lxml parse per body (never a regular expression):

everywhere: every image gets alt text, in-page links (`#section`) name the post's page, and the post's own
table of contents (a `목차`/`Contents` heading and the list under it) goes when the issue shows its outline;

in the email also: what mail clients refuse or run is removed by lxml's Cleaner (scripts, styles, forms and
their controls, event attributes, `javascript:` links, Flash-era objects and embeds), an iframe, video or
audio becomes a link to what it showed, HTML5 elements that Outlook for Windows drops become `div`/`span`,
and every image gets a `width` no larger than the email's column (its own size when the file is on the
site, else the column).
"""

from __future__ import annotations

import functools
from urllib.parse import unquote, urljoin, urlsplit

import lxml.html
from lxml import etree
from lxml.cssselect import CSSSelector
from lxml.html import defs
from lxml_html_clean import Cleaner

from digest.models import Site
from digest.templater.images import fragment_images, image_width
from digest.text import is_toc_heading, strip_controls

EMAIL_COLUMN_PX = 552  # the 600px container less the entry cell's 24px padding on each side

_CLEANER = Cleaner(
    scripts=True,
    javascript=True,  # on* attributes, javascript: links
    comments=True,
    style=True,  # <style> blocks of a post would restyle the whole email
    inline_style=False,  # style="text-align: right" of table cells is the post's own
    links=True,
    meta=True,
    page_structure=False,
    processing_instructions=True,
    embedded=True,
    frames=True,
    forms=True,
    annoying_tags=True,
    remove_unknown_tags=False,  # HTML5 elements are renamed below instead of dropped with their text
    safe_attrs_only=True,
    safe_attrs=defs.safe_attrs | {"style"},
)
# Elements Outlook for Windows drops (doiuse-email: "HTML5 semantics"), and what keeps their content.
_RENAMED = {
    "article": "div", "aside": "div", "section": "div", "header": "div", "footer": "div", "nav": "div",
    "main": "div", "figure": "div", "figcaption": "div", "details": "div", "summary": "div", "hgroup": "div",
    "time": "span", "mark": "span", "data": "span",
}  # fmt: skip
# libxml2 does not know <source> is empty and nests what follows inside it: unwrapped, never dropped.
_UNWRAPPED = ("picture", "noscript", "source", "track")
_DROPPED = ("svg", "canvas", "math", "template", "dialog")
_TOC_BLOCKS = ("ul#markdown-toc", "nav#TableOfContents", "div.toc", "nav.toc", "div#toc", "nav#toc")
# Translated to XPath once: cssselect translating them for every body was most of the time feeds took.
_TOC_SELECTOR = CSSSelector(", ".join(_TOC_BLOCKS), translator="html")
_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")


def _video_page(src: str) -> str:
    """The watch page of an embedded player (YouTube, Vimeo), else the embed URL itself."""
    parts = urlsplit(src)
    host = (parts.hostname or "").lower()
    path = parts.path.rstrip("/")
    if host.endswith(("youtube.com", "youtube-nocookie.com")) and "/embed/" in path:
        return f"https://www.youtube.com/watch?v={path.rsplit('/', 1)[-1]}"
    if host == "player.vimeo.com" and path.startswith("/video/"):
        return f"https://vimeo.com/{path.rsplit('/', 1)[-1]}"
    return src


def _replace_with_link(element: lxml.html.HtmlElement, href: str, label: str) -> None:
    if not href.startswith(("http://", "https://")):
        element.drop_tree()
        return
    link = lxml.html.Element("a", href=href)
    link.text = "▶ " + (label or href)
    paragraph = lxml.html.Element("p")
    paragraph.append(link)
    paragraph.tail = element.tail
    element.getparent().replace(element, paragraph)


def _media_to_links(root: lxml.html.HtmlElement, page_url: str) -> None:
    for element in list(root.iter("iframe", "video", "audio")):
        src = element.get("src") or ""
        if not src:
            source = next(iter(element.iter("source")), None)
            src = source.get("src", "") if source is not None else ""
        href = _video_page(urljoin(page_url, src.strip())) if src else ""
        _replace_with_link(element, href, (element.get("title") or "").strip())


def _drop_toc(root: lxml.html.HtmlElement, page_url: str) -> None:
    for element in _TOC_SELECTOR(root):
        element.drop_tree()
    first = next(iter(root), None)
    if first is not None and first.tag in ("ul", "ol") and _is_link_list(first, page_url, root):
        first.drop_tree()  # a table of contents with no heading of its own, at the top of the post
    for heading in list(root.iter(*_HEADINGS)):
        if not is_toc_heading(heading.text_content()):
            continue
        following = heading.getnext()
        # the list right under the heading (only whitespace between them) is the table itself
        if following is not None and following.tag in ("ul", "ol") and not (heading.tail or "").strip():
            following.drop_tree()
        heading.drop_tree()


def _is_link_list(element: lxml.html.HtmlElement, page_url: str, root: lxml.html.HtmlElement) -> bool:
    """A list of two items or more, each only a link to a heading of this post: the outline, written by hand."""
    items = list(element)
    if len(items) < 2 or (element.text or "").strip():
        return False
    ids = {heading.get("id") for heading in root.iter(*_HEADINGS)}
    page = page_url.split("#", 1)[0]
    for item in items:
        links = list(item)
        if item.tag != "li" or len(links) != 1 or links[0].tag != "a" or (item.text or "").strip():
            return False
        if (links[0].tail or "").strip():
            return False
        target, _, fragment = (links[0].get("href") or "").partition("#")
        if target not in ("", page) or unquote(fragment) not in ids:
            return False
    return True


def _number(value: str | None) -> int | None:
    text = (value or "").strip().removesuffix("px")
    return int(text) if text.isdigit() and int(text) > 0 else None


def _fit_images(root: lxml.html.HtmlElement, site: Site, source: str) -> None:
    """A `width` on every image, never wider than the column; the height follows when it was given."""
    for img in root.iter("img"):
        width = _number(img.get("width")) or image_width(img.get("src", ""), site, source)
        height = _number(img.get("height")) if _number(img.get("width")) else None
        if width is None or width > EMAIL_COLUMN_PX:
            if width and height:
                img.set("height", str(max(1, round(height * EMAIL_COLUMN_PX / width))))
            elif "height" in img.attrib:
                del img.attrib["height"]
            width = EMAIL_COLUMN_PX
        img.set("width", str(width))


def _for_outlook(root: lxml.html.HtmlElement) -> None:
    for element in list(root.iter(*_DROPPED)):
        element.drop_tree()
    for element in list(root.iter(*_UNWRAPPED)):
        element.drop_tag()
    for element in root.iter(*_RENAMED):
        element.tag = _RENAMED[element.tag]
        for name in ("datetime", "value", "open"):
            element.attrib.pop(name, None)


def _finish(root: lxml.html.HtmlElement, page_url: str, title: str) -> None:
    for img in root.iter("img"):
        if img.get("alt") is None:
            img.set("alt", (img.get("title") or "").strip() or title)
    for link in root.iter("a"):
        href = link.get("href", "")
        if href.startswith("#"):
            link.set("href", page_url.split("#", 1)[0] + href)


def prepare(fragment: str, page_url: str, title: str, *, drop_toc: bool, email: bool, site: Site, source: str) -> str:
    """`fragment` (an entry's body or summary) ready for the archive and feeds, or with `email` for a
    mail client. Cached: the size guard renders an issue several times; for an email, while the site's
    image files it shows are unchanged (their widths are read from them)."""
    images = fragment_images(fragment, site, source) if email else ()
    return _prepare(fragment, page_url, title, drop_toc=drop_toc, email=email, site=site, source=source, images=images)


# 4,096: a publish of 500 issues prepares 2,000 fragments for the feeds, then the same for the archive
# pages; a smaller cache was emptied by the feeds before the pages asked.
@functools.lru_cache(maxsize=4096)
def _prepare(
    fragment: str, page_url: str, title: str, *, drop_toc: bool, email: bool, site: Site, source: str, images: object
) -> str:
    # `images` is not read here: it is part of the key, so a replaced image file makes another entry.
    if not fragment.strip():
        return fragment
    root = lxml.html.fragment_fromstring(strip_controls(fragment), create_parent="div")
    if drop_toc:
        _drop_toc(root, page_url)
    if email:
        _media_to_links(root, page_url)
        _CLEANER(root)
        _for_outlook(root)
        _fit_images(root, site, source)
    _finish(root, page_url, title)
    html = str(etree.tostring(root, encoding="unicode", method="html"))
    return html[len("<div>") : -len("</div>")]
