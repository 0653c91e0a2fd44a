"""subscribers.yaml in its plain shape, read a line at a time without a YAML parser.

Most lists are written the way subscribers.example.yaml is: an optional `defaults:` block of `key: value`
lines, then `subscribers:` and a block list of `- email: …` entries, each followed by a few `key: value`
lines, one value to a line. Through libyaml's events (one Python object per event and per mark, composed
into nodes) such a list costs about 40 µs an entry, 4 s of a dry run of 100,000; matched here a line at a
time it costs about a tenth of that.

Only what is certain to read the same as YAML is read here: plain values without `:` or `#`, quoted
values without escapes, flow lists of plain words (`[a, b]`), full-line comments and blank lines. Anything
else (escapes, a comment after a value, anchors, tags, flow mappings, block lists, multi-line values, tabs,
CR line ends, a byte-order mark, document markers, another top-level key) raises NotPlain, and the caller
reads the file with the YAML parser, which also names the line of every problem.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from yaml.constructor import SafeConstructor

# Characters libyaml accepts, less the ones that would need thought here: tab, CR, NEL, the Unicode line
# and paragraph separators (line breaks to YAML), the byte-order mark.
_UNUSUAL = re.compile(r"[^\n\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]")
# One line: a key and its value (after "- " on an entry's first line), a comment, or nothing.
_LINE = re.compile(
    r"""(?P<indent>[ ]*)
    (?:
        (?P<dash>-[ ])?
        (?P<key>[A-Za-z_]+):
        (?:[ ]+(?:
            "(?P<dq>[^"\\\n]*)"
          | '(?P<sq>[^'\n]*)'
          | \[(?P<flow>[^\[\]{}\n\#'":]*)\]
          | (?P<plain>[^-?:,\[\]{}\#&*!|>'"%@`\ \n][^:\#\n]*)
        ))?
        [ ]*
      | (?:\#[^\n]*)?
    )\n""",
    re.VERBOSE,
)
_FLOW_WORD = re.compile(r"""[^-?,\[\]{}\#&*!|>'"%@`\ ][^,]*""")
_BOOL_TAG = "tag:yaml.org,2002:bool"
_BOOLS: Mapping[str, bool] = SafeConstructor.bool_values


class NotPlain(Exception):
    """The file has something this reader leaves to the YAML parser."""


Resolvers = Mapping[Any, Sequence[tuple[str, re.Pattern[str]]]]


def scan(text: str, resolvers: Resolvers) -> tuple[dict[str, Any], Iterator[tuple[int, dict[str, Any]]]]:
    """(the `defaults:` block's {key: value}, the entries as (line, {key: value}) in order). Values are as
    YAML's safe loader gives them: str, bool, or a list of str. NotPlain, at once or while iterating,
    when the file is not of the plain shape; a key repeated within a block counts as not plain too."""
    if None in resolvers or _UNUSUAL.search(text):
        raise NotPlain
    if not text.endswith("\n"):
        text += "\n"
    pos = line = 0
    block: dict[str, Any] | None = None
    defaults: dict[str, Any] = {}
    top: set[str] = set()
    indent = -1
    while True:  # the part before the list
        found = _LINE.match(text, pos)
        if found is None:
            raise NotPlain
        pos, line = found.end(), line + 1
        margin, dash, key = found.group("indent", "dash", "key")
        if key is None:
            continue
        if dash is not None:
            raise NotPlain
        if not margin:
            if key in top or key not in ("defaults", "subscribers") or _value(found, resolvers) is not None:
                raise NotPlain
            top.add(key)
            if key == "subscribers":
                break
            block = defaults
            continue
        if block is None or (indent >= 0 and len(margin) != indent):
            raise NotPlain
        indent = len(margin)
        _put(block, key, _value(found, resolvers))
    if "defaults" in top and not defaults:
        raise NotPlain  # "defaults:" with nothing under it is null, which the parser reports
    return defaults, _entries(text, pos, line, resolvers)


def _entries(text: str, pos: int, line: int, resolvers: Resolvers) -> Iterator[tuple[int, dict[str, Any]]]:
    entry: dict[str, Any] | None = None
    start = 0
    dash_margin = key_margin = ""
    match = _LINE.match
    end = len(text)
    while pos < end:
        found = match(text, pos)
        if found is None:
            raise NotPlain
        pos, line = found.end(), line + 1
        margin, dash, key, _, _, _, plain = found.groups()
        if key is None:
            continue
        if dash is not None:
            if entry is None:
                dash_margin, key_margin = margin, margin + "  "
            elif margin != dash_margin:
                raise NotPlain
            else:
                yield start, entry
            entry, start = {}, line
        elif entry is None or margin != key_margin or key in entry:
            raise NotPlain
        # the common case inline: a plain value whose first character starts no other type
        if plain is not None and plain[0] not in resolvers:
            entry[key] = plain.rstrip(" ")
        else:
            _put(entry, key, _value(found, resolvers))
    if entry is not None:
        yield start, entry


def _put(block: dict[str, Any], key: str, value: Any) -> None:
    if key in block or value is None:
        raise NotPlain
    block[key] = value


def _value(found: re.Match[str], resolvers: Resolvers) -> Any:
    quoted, single, flow, plain = found.group("dq", "sq", "flow", "plain")
    if plain is not None:
        return _plain(plain.rstrip(" "), resolvers)
    if quoted is not None:
        return quoted
    if single is not None:
        return single
    if flow is None:
        return None
    words = flow.split(",")
    if len(words) > 1 and not words[-1].strip():
        words.pop()  # "[a, b,]": a trailing comma is allowed
    items = [word.strip(" ") for word in words]
    if items == [""]:
        return []
    if not all(_FLOW_WORD.fullmatch(item) for item in items):
        raise NotPlain
    return [_plain(item, resolvers) for item in items]


def _plain(value: str, resolvers: Resolvers) -> str | bool:
    """A plain scalar's value as the resolver types it: text, or true/false; other types are not plain."""
    for tag, pattern in resolvers.get(value[0], ()):
        if pattern.match(value):
            if tag == _BOOL_TAG:
                return _BOOLS[value.lower()]
            raise NotPlain
    return value
