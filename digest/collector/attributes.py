"""Attribute lists, which CommonMark does not know and would show as text: kramdown's (Jekyll's default
Markdown) ``{: .class #id key="value"}`` and the ``{#id .class}`` of headings (kramdown, Hugo's Goldmark,
Pandoc). They are applied as attributes on markdown-it's token stream, or dropped; never shown.

- a line ``{: …}`` right after a block (its last line, or the next paragraph on its own) sets that block's
  attributes; after a list item's text it belongs to the list;
- ``{: …}`` right after a link, an image, emphasis or inline code sets that element's attributes
  (``[text](url){:target="_blank"}``);
- ``## Title {#id .class}`` sets the heading's id (the outline links to it) and class;
- ``{:toc}`` marks kramdown's generated table of contents: the list it is attached to is removed (the
  issue shows its own outline); definitions of attribute lists (``{:name: …}``) and the extensions
  ``{::comment}``, ``{::options}`` are dropped, ``{::nomarkdown}`` keeps its content.

Event handler attributes (``onclick``) are never applied.
"""

from __future__ import annotations

import re

from markdown_it.token import Token

_IAL = re.compile(r"\{:(?!:)\s*([^{}]*?)\s*\}")
_ONLY_IAL = re.compile(r"^\s*\{:(?!:)[^{}]*\}\s*$")
_DEFINITION = re.compile(r"^\s*\{:[\w-]+:[^{}]*\}\s*$")
_HEADING_ATTRS = re.compile(r"\s*\{(?::\s*)?((?:[#.][\w-]+\s*|[\w-]+=(?:\"[^\"]*\"|'[^']*'|[^\s}]+)\s*)+)\}\s*$")
_PART = re.compile(r"""\.([\w-]+)|#([\w-]+)|([\w-]+)=(?:"([^"]*)"|'([^']*)'|([^\s"'}]+))|([\w-]+)""")
_EXTENSION = re.compile(r"\{::(comment|nomarkdown)\b[^}]*?(/)?\}(?(2)|(.*?)\{:/(?:\1)?\})|\{::options\b[^}]*/\}", re.S)
_CLOSERS = {"link_close": "link_open", "em_close": "em_open", "strong_close": "strong_open", "s_close": "s_open"}


def strip_extensions(text: str) -> str:
    """kramdown's ``{::comment}``/``{::options}`` removed, ``{::nomarkdown}`` replaced by its content."""
    if "{::" not in text:
        return text

    def replace(m: re.Match[str]) -> str:
        return (m.group(3) or "") if m.group(1) == "nomarkdown" else ""

    return _EXTENSION.sub(replace, text)


def parse(text: str) -> tuple[dict[str, str], set[str]]:
    """The attributes of ``.class #id key="value"`` and the bare names (references such as ``toc``)."""
    attrs: dict[str, str] = {}
    names: set[str] = set()
    classes: list[str] = []
    for m in _PART.finditer(text):
        if m.group(1):
            classes.append(m.group(1))
        elif m.group(2):
            attrs["id"] = m.group(2)
        elif m.group(3):
            value = next((v for v in m.group(4, 5, 6) if v is not None), "")
            if not m.group(3).lower().startswith("on"):
                attrs[m.group(3).lower()] = value
        elif m.group(7):
            names.add(m.group(7).lower())
    if classes:
        attrs["class"] = " ".join([attrs.get("class", ""), *classes]).strip()
    return attrs, names


def _apply(token: Token, attrs: dict[str, str]) -> None:
    for name, value in attrs.items():
        if name == "class":
            old = token.attrGet("class")
            value = f"{old} {value}" if isinstance(old, str) and old else value
        token.attrSet(name, value)


def apply_attribute_lists(tokens: list[Token]) -> list[Token]:
    """Apply (or drop) every attribute list in ``tokens``; returns the new token list."""
    if not any(t.type == "inline" and "{" in t.content for t in tokens):
        return tokens
    drop: set[int] = set()
    for index, token in enumerate(tokens):
        if token.type != "inline" or "{" not in token.content or not token.children:
            continue
        _spans(token.children)
        opener = tokens[index - 1] if index else None
        if opener is not None and opener.type == "heading_open":
            _heading(token, opener)
            continue
        if opener is None or opener.type != "paragraph_open":
            continue
        last = token.children[-1]
        if last.type != "text" or not (_ONLY_IAL.match(last.content) or _DEFINITION.match(last.content)):
            continue
        found = None if _DEFINITION.match(last.content) else _IAL.search(last.content)
        attrs, names = parse(found.group(1)) if found else ({}, set())
        if len(token.children) > 1 and token.children[-2].type == "softbreak":
            del token.children[-2:]
            token.content = token.content.rsplit("\n", 1)[0]
            target = _enclosing_list(tokens, index) if opener.hidden else index - 1
        elif len(token.children) == 1:
            drop.update((index - 1, index, index + 1))
            target = _previous_block(tokens, index - 1)
        else:
            continue
        if target is None:
            continue
        if "toc" in names:
            drop.update(range(target, _closing(tokens, target) + 1))
        else:
            _apply(tokens[target], attrs)
    return [t for i, t in enumerate(tokens) if i not in drop]


def _spans(children: list[Token]) -> None:
    for i in range(len(children) - 1, 0, -1):
        child = children[i]
        if child.type != "text" or not child.content.startswith("{:"):
            continue
        m = _IAL.match(child.content)
        before = children[i - 1]
        if m is None:
            continue
        target: Token | None = None
        if before.type in ("image", "code_inline"):
            target = before
        elif before.type in _CLOSERS:
            depth = 0
            for j in range(i - 1, -1, -1):
                if children[j].type == before.type:
                    depth += 1
                elif children[j].type == _CLOSERS[before.type]:
                    depth -= 1
                    if depth == 0:
                        target = children[j]
                        break
        if target is None:
            continue
        _apply(target, parse(m.group(1))[0])
        child.content = child.content[m.end() :]
        if not child.content:
            del children[i]


def _heading(inline: Token, opener: Token) -> None:
    last = inline.children[-1] if inline.children else None
    if last is None or last.type != "text":
        return
    m = _HEADING_ATTRS.search(last.content)
    if m is None:
        return
    _apply(opener, parse(m.group(1))[0])
    last.content = last.content[: m.start()]
    inline.content = inline.content[: len(inline.content) - len(m.group(0))].rstrip()


def _previous_block(tokens: list[Token], index: int) -> int | None:
    """The opening token of the block that ends right before ``tokens[index]`` (at the same level)."""
    if index == 0:
        return None
    before = tokens[index - 1]
    if before.nesting == 0:
        return index - 1 if before.type != "inline" else None
    if before.nesting == 1:
        return None
    depth = 0
    for j in range(index - 1, -1, -1):
        depth += tokens[j].nesting
        if depth == 0:
            return j
    return None


def _closing(tokens: list[Token], start: int) -> int:
    if tokens[start].nesting != 1:
        return start
    depth = 0
    for j in range(start, len(tokens)):
        depth += tokens[j].nesting
        if depth == 0:
            return j
    return len(tokens) - 1


def _enclosing_list(tokens: list[Token], index: int) -> int | None:
    depth = 0
    for j in range(index - 1, -1, -1):
        depth += tokens[j].nesting
        if depth > 0 and tokens[j].type in ("bullet_list_open", "ordered_list_open"):
            return j
    return None
