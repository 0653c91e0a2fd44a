"""Template code that must never reach a reader: Liquid (Jekyll) and Hugo shortcodes.

Each generator's own template code is handled, and only that: Jekyll (and a plain folder) Liquid tags and
outputs plus Hugo shortcodes; Hugo only its shortcodes (`{{ .Title }}` in a Hugo post is text, as Hugo
shows it); Pelican only `{% %}` tags (the liquid_tags plugin), never `{{ }}`.

- Links to other posts and to the site become absolute URLs (with ``links``): Jekyll's `{% link %}`,
  `{% post_url %}`, `{{ "/a.png" | relative_url }}`, `| absolute_url`, `| prepend: site.baseurl`,
  `{{ site.url }}`, `{{ site.baseurl }}`, `{{ page.url }}`; Hugo's `ref` and `relref`.
- Hugo's `figure` (and the `include figure` of Jekyll themes) becomes a `<figure>` with its image, link
  and caption.
- Video and post embeds (youtube, vimeo, tweet, x) become plain Markdown links; ``{% highlight %}`` a
  fenced code block; ``{% raw %}`` keeps its content; comments and ``*.inline`` shortcodes vanish with
  their content; every other tag or shortcode is dropped and the text between paired tags is kept.
"""

from __future__ import annotations

import html
import re
import shlex
from typing import Protocol

from markdown_it import MarkdownIt

_RAW = re.compile(r"{%-?\s*raw\s*-?%}(.*?){%-?\s*endraw\s*-?%}", re.S)
_COMMENT = re.compile(r"{%-?\s*comment\s*-?%}.*?{%-?\s*endcomment\s*-?%}", re.S)
_HIGHLIGHT = re.compile(r"{%-?\s*highlight\s+([\w+#.-]+)[^%]*%}\n?(.*?){%-?\s*endhighlight\s*-?%}", re.S)
_INLINE = re.compile(r"{{[<%]\s*([\w/-]+\.inline)\b.*?[>%]}}.*?{{[<%]\s*/\s*\1\s*[>%]}}", re.S)
_SHORTCODE = re.compile(r"{{(?:<|%)\s*(/?)\s*(\w[\w/.-]*)?(.*?)\s*(?:>|%)}}", re.S)
_HUGO_COMMENT = re.compile(r"{{<\s*/\*.*?\*/\s*>}}|{{%\s*/\*.*?\*/\s*%}}", re.S)
_LIQUID = re.compile(r"{%-?\s*(.*?)\s*-?%}|{{-?\s*(.*?)\s*-?}}", re.S)
_LIQUID_TAG = re.compile(r"{%.*?%}", re.S)
_RAW_MARK = "\x00raw{}\x00"  # NUL never survives xml_safe() upstream, so it cannot clash with post text
_CAPTION = MarkdownIt("commonmark", {"html": True})

_EMBEDS = {
    "youtube": ("https://www.youtube.com/watch?v={id}", "YouTube video"),
    "vimeo": ("https://vimeo.com/{id}", "Vimeo video"),
    "tweet": ("https://twitter.com/{user}/status/{id}", "Post on X"),
    "twitter": ("https://twitter.com/{user}/status/{id}", "Post on X"),
    "x": ("https://x.com/{user}/status/{id}", "Post on X"),
}


class Links(Protocol):
    """What resolves a post's links (crossrefs.PostLinks)."""

    def absolute(self, path: str) -> str: ...
    def base_path(self) -> str: ...
    def site_root(self) -> str: ...
    def page_url(self) -> str: ...
    def link(self, path: str) -> str: ...
    def post_url(self, name: str) -> str: ...
    def ref(self, target: str, lang: str = "") -> str: ...


def strip_templates(text: str, kind: str = "plain", links: Links | None = None) -> str:
    """Return Markdown with the generator's template code resolved, replaced by links or removed."""
    if "{%" not in text and "{{" not in text:
        return text
    kept: list[str] = []

    def keep(m: re.Match[str]) -> str:
        kept.append(m.group(1))
        return _RAW_MARK.format(len(kept) - 1)

    liquid = kind != "hugo"
    if liquid:
        text = _RAW.sub(keep, text)
        text = _COMMENT.sub("", text)
        text = _HIGHLIGHT.sub(lambda m: f"```{m.group(1)}\n{m.group(2).rstrip()}\n```", text)
    if kind != "pelican":
        text = _HUGO_COMMENT.sub("", text)
        text = _INLINE.sub("", text)
        text = _SHORTCODE.sub(lambda m: _shortcode(m, links), text)
    if kind == "pelican":
        text = _LIQUID_TAG.sub(lambda m: _liquid(m.group(0)[2:-2].strip("- \t\n"), links), text)
    elif liquid:
        text = _liquid_pass(text, links)
    for index, content in enumerate(kept):
        text = text.replace(_RAW_MARK.format(index), content)
    return text


def _liquid_pass(text: str, links: Links | None) -> str:
    out: list[str] = []
    done = 0
    prefix_at = -1  # where a {{ site.url }}/{{ site.baseurl }} that the next link already contains begins
    for m in _LIQUID.finditer(text):
        between = text[done : m.start()]
        out.append(between)
        if between:
            prefix_at = -1
        tag, output = m.group(1), m.group(2)
        value = _liquid(tag, links) if tag is not None else _output(output or "", links)
        resolves_link = tag is not None and re.match(r"(link|post_url)\b", tag) is not None
        if resolves_link and prefix_at >= 0 and value.startswith(("http://", "https://")):
            del out[prefix_at:]  # `{{ site.baseurl }}{% link x %}`: the link is already absolute
        out.append(value)
        is_prefix = tag is None and re.fullmatch(r"site\.(url|baseurl)", (output or "").strip()) is not None
        prefix_at = (len(out) - 1 if prefix_at < 0 else prefix_at) if is_prefix else -1
        done = m.end()
    out.append(text[done:])
    return "".join(out)


def _liquid(tag: str, links: Links | None) -> str:
    """A `{% tag %}`: links and figures resolved, embeds as links, anything else dropped."""
    name, _, args = tag.partition(" ")
    name = name.strip().lower()
    args = args.strip()
    if links is not None and name == "link":
        return links.link(args)
    if links is not None and name == "post_url":
        return links.post_url(args)
    if name == "include" and re.match(r"figure(\.html)?\b", args):
        named = _arguments(args.split(None, 1)[1] if " " in args else "")[1]
        src = named.get("image_path") or named.get("src") or named.get("url") or ""
        if src and links is not None:
            src = links.absolute(src)
        return _figure({**named, "src": src}) if src else ""
    if name in _EMBEDS:
        positional, named = _arguments(args)
        return _embed(name, positional, named)
    return ""


def _output(expression: str, links: Links | None) -> str:
    """A `{{ … }}`: a string or a site/page variable through relative_url, absolute_url, prepend and
    append; anything else is dropped."""
    if links is None:
        return ""
    parts = [p.strip() for p in _split_filters(expression)]
    value = _value(parts[0], links)
    if value is None:
        return ""
    for part in parts[1:]:
        name, _, arg = part.partition(":")
        name = name.strip()
        if name in ("relative_url", "absolute_url"):
            value = links.absolute(value)
        elif name in ("prepend", "append"):
            extra = _value(arg.strip(), links)
            if extra is None:
                return ""
            value = extra + value if name == "prepend" else value + extra
        else:
            return ""
    return value  # a site path (`/blog/y/`) is made absolute with the other links of the post


def _split_filters(expression: str) -> list[str]:
    """``"a|b" | prepend: x`` -> ['"a|b"', "prepend: x"]: split on the pipes outside quotes."""
    parts: list[str] = []
    current: list[str] = []
    quote = ""
    for char in expression:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "|":
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return [p for p in parts if p.strip()]


def _value(term: str, links: Links) -> str | None:
    if len(term) >= 2 and term[0] == term[-1] and term[0] in "'\"":
        return term[1:-1]
    return {
        "site.baseurl": links.base_path,
        "site.url": links.site_root,
        "page.url": links.page_url,
    }.get(term, lambda: None)()


def _shortcode(m: re.Match[str], links: Links | None) -> str:
    closing, name, args = m.group(1), (m.group(2) or "").lower(), m.group(3)
    if closing:
        return ""
    positional, named = _arguments(args)
    if name in ("ref", "relref") and links is not None:
        target = named.get("path") or (positional[0] if positional else "")
        return links.ref(target, named.get("lang", ""))
    if name == "figure":
        src = named.get("src", "")
        if src and links is not None and src.startswith("/"):
            src = links.absolute(src)
        return _figure({**named, "src": src}) if src else ""
    if name not in _EMBEDS:
        return ""
    return _embed(name, positional, named)


def _embed(name: str, positional: list[str], named: dict[str, str]) -> str:
    pattern, label = _EMBEDS[name]
    video_id = named.get("id") or named.get("tweetid") or (positional[-1] if positional else "")
    user = named.get("user") or (positional[0] if len(positional) > 1 else "i")
    if not video_id:
        return ""
    return f"[{label}]({pattern.format(id=video_id, user=user)})"


def _figure(named: dict[str, str]) -> str:
    """Hugo's figure: the image (in its link), then the caption (Markdown) with the title and attribution."""
    attrs = [f'src="{html.escape(named["src"])}"', f'alt="{html.escape(named.get("alt", ""))}"']
    attrs += [f'{k}="{html.escape(named[k])}"' for k in ("width", "height") if named.get(k)]
    image = f"<img {' '.join(attrs)}>"
    if named.get("link"):
        image = f'<a href="{html.escape(named["link"])}">{image}</a>'
    caption = ""
    if named.get("title"):
        caption += f"<h4>{html.escape(named['title'])}</h4>"
    text = named.get("caption", "")
    if text or named.get("attr"):
        credit = html.escape(named.get("attr", ""))
        if credit and named.get("attrlink"):
            credit = f'<a href="{html.escape(named["attrlink"])}">{credit}</a>'
        caption += f"<p>{_CAPTION.renderInline(text)}{' ' if text and credit else ''}{credit}</p>"
    css = f' class="{html.escape(named["class"])}"' if named.get("class") else ""
    return f"<figure{css}>{image}{f'<figcaption>{caption}</figcaption>' if caption else ''}</figure>"


def _arguments(args: str) -> tuple[list[str], dict[str, str]]:
    try:
        words = shlex.split(args)
    except ValueError:
        words = args.split()
    positional = [w for w in words if "=" not in w]
    named = dict(w.split("=", 1) for w in words if "=" in w)
    return positional, {k.lower(): v for k, v in named.items()}
