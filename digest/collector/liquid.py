"""Template code that must never reach a reader: Liquid (Jekyll) and Hugo shortcodes.

Video and post embeds (youtube, vimeo, tweet, x) become plain Markdown links; ``{% highlight %}`` becomes a
fenced code block; ``{% raw %}`` keeps its content; comments and ``*.inline`` shortcodes vanish with their
content; every other tag or shortcode is dropped and the text between paired tags is kept.
"""

from __future__ import annotations

import re
import shlex

_RAW = re.compile(r"{%-?\s*raw\s*-?%}(.*?){%-?\s*endraw\s*-?%}", re.S)
_COMMENT = re.compile(r"{%-?\s*comment\s*-?%}.*?{%-?\s*endcomment\s*-?%}", re.S)
_HIGHLIGHT = re.compile(r"{%-?\s*highlight\s+([\w+#.-]+)[^%]*%}\n?(.*?){%-?\s*endhighlight\s*-?%}", re.S)
_INLINE = re.compile(r"{{[<%]\s*([\w/-]+\.inline)\b.*?[>%]}}.*?{{[<%]\s*/\s*\1\s*[>%]}}", re.S)
_SHORTCODE = re.compile(r"{{(?:<|%)\s*(/?)\s*(\w[\w/.-]*)?(.*?)\s*(?:>|%)}}", re.S)
_HUGO_COMMENT = re.compile(r"{{<\s*/\*.*?\*/\s*>}}|{{%\s*/\*.*?\*/\s*%}}", re.S)
_LIQUID_TAG = re.compile(r"{%.*?%}", re.S)
_LIQUID_OUT = re.compile(r"{{.*?}}", re.S)
_RAW_MARK = "\x00raw{}\x00"  # NUL never survives xml_safe() upstream, so it cannot clash with post text

_EMBEDS = {
    "youtube": ("https://www.youtube.com/watch?v={id}", "YouTube video"),
    "vimeo": ("https://vimeo.com/{id}", "Vimeo video"),
    "tweet": ("https://twitter.com/{user}/status/{id}", "Post on X"),
    "twitter": ("https://twitter.com/{user}/status/{id}", "Post on X"),
    "x": ("https://x.com/{user}/status/{id}", "Post on X"),
}


def strip_templates(text: str) -> str:
    """Return Markdown with Liquid and shortcodes removed or replaced by links."""
    if "{%" not in text and "{{" not in text:
        return text
    kept: list[str] = []

    def keep(m: re.Match[str]) -> str:
        kept.append(m.group(1))
        return _RAW_MARK.format(len(kept) - 1)

    text = _RAW.sub(keep, text)
    text = _COMMENT.sub("", text)
    text = _HIGHLIGHT.sub(lambda m: f"```{m.group(1)}\n{m.group(2).rstrip()}\n```", text)
    text = _HUGO_COMMENT.sub("", text)
    text = _INLINE.sub("", text)
    text = _SHORTCODE.sub(_shortcode, text)
    text = _LIQUID_TAG.sub("", text)
    text = _LIQUID_OUT.sub("", text)
    for index, content in enumerate(kept):
        text = text.replace(_RAW_MARK.format(index), content)
    return text


def _shortcode(m: re.Match[str]) -> str:
    closing, name, args = m.group(1), (m.group(2) or "").lower(), m.group(3)
    if closing or name not in _EMBEDS:
        return ""
    positional, named = _arguments(args)
    pattern, label = _EMBEDS[name]
    video_id = named.get("id") or named.get("tweetid") or (positional[-1] if positional else "")
    user = named.get("user") or (positional[0] if len(positional) > 1 else "i")
    if not video_id:
        return ""
    return f"[{label}]({pattern.format(id=video_id, user=user)})"


def _arguments(args: str) -> tuple[list[str], dict[str, str]]:
    try:
        words = shlex.split(args)
    except ValueError:
        words = args.split()
    positional = [w for w in words if "=" not in w]
    named = dict(w.split("=", 1) for w in words if "=" in w)
    return positional, {k.lower(): v for k, v in named.items()}
