"""Front matter: YAML between ``---`` lines, TOML between ``+++`` lines, or Pelican-style
``Key: value`` header lines ending at the first blank line. Keys come back lower-cased."""

from __future__ import annotations

import functools
import re
import tomllib
from dataclasses import dataclass, field
from typing import Any

import yaml
from frontmatter.default_handlers import SafeLoader, YAMLHandler

_YAML = YAMLHandler()


class _Loader(SafeLoader):  # type: ignore[misc,valid-type]
    """python-frontmatter's loader, except that a timestamp that is no calendar date (``2019-02-30``,
    ``0000-01-01``) stays text: PyYAML raises a bare ValueError there, which would lose the whole front
    matter; as text the reader reports it as that post's impossible date."""


def _timestamp(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> object:
    try:
        return yaml.constructor.SafeConstructor.construct_yaml_timestamp(loader, node)
    except (ValueError, OverflowError):
        return loader.construct_scalar(node)


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp)
_FENCE = {"---": re.compile(r"^(?:---|\.\.\.)[ \t]*$", re.M), "+++": re.compile(r"^\+\+\+[ \t]*$", re.M)}
_PELICAN_LINE = re.compile(r"^([A-Za-z][\w-]*):[ \t]*(.*)$")
# Pelican headers are recognised only when they name a post, so prose that starts with "Note: …" stays prose.
_PELICAN_KEYS = {"title", "date"}
_PELICAN_MORE = ("    ", "\t")  # a value's next line


class FrontMatterError(ValueError):
    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.line = line


@dataclass(frozen=True)
class Document:
    meta: dict[str, Any]
    body: str
    kind: str  # "yaml" | "toml" | "pelican" | "none"
    body_line: int = 1  # 1-based line of the file where the body starts
    lines: tuple[tuple[str, int], ...] | None = None  # (lower-cased key, line), when known at parse time
    header: str = field(default="", repr=False)  # the front matter's text, for key_lines

    @functools.cached_property
    def key_lines(self) -> tuple[tuple[str, int], ...]:
        """(lower-cased key, line) for messages: found only when a message needs one (most files have none)."""
        return self.lines if self.lines is not None else _key_lines(self.header, 2)


@dataclass(frozen=True)
class Split:
    """A file cut into its front matter text and body, before the front matter is parsed."""

    kind: str  # "yaml" | "toml" | "other"
    header: str
    body: str
    body_line: int


def split(text: str) -> Split:
    """Cheap first step: find the front matter fences; raise FrontMatterError when one is never closed."""
    first = text.split("\n", 1)[0].rstrip()
    if first not in ("---", "+++"):
        return Split("other", "", text, 1)
    start = text.index("\n") + 1 if "\n" in text else len(text)
    close = _FENCE[first].search(text, start)
    if close is None:
        raise FrontMatterError(f"front matter opened with '{first}' on line 1 is never closed", line=1)
    body_start = close.end() + 1
    kind = "yaml" if first == "---" else "toml"
    return Split(kind, text[start : close.start()], text[body_start:], text.count("\n", 0, body_start) + 1)


def load(part: Split) -> Document:
    """Parse the front matter of ``part`` (YAML with python-frontmatter's loader, TOML with tomllib)."""
    if part.kind == "other":
        return _pelican(part.body)
    if part.kind == "yaml":
        data = _load_yaml(part.header)
    else:
        try:
            data = tomllib.loads(part.header)
        except tomllib.TOMLDecodeError as exc:
            m = re.search(r"line (\d+)", str(exc))
            raise FrontMatterError(
                f"malformed TOML front matter: {str(exc).splitlines()[0]}", line=int(m.group(1)) + 1 if m else 1
            ) from exc
    return Document(_lower(data), part.body, part.kind, part.body_line, header=part.header)


def parse(text: str) -> Document:
    """Split ``text`` into metadata and Markdown body; raise FrontMatterError when malformed."""
    return load(split(text))


def _load_yaml(raw: str) -> dict[str, Any]:
    try:
        data = _YAML.load(raw, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise FrontMatterError(f"malformed YAML front matter: {problem}", line=mark.line + 2 if mark else 1) from exc
    except (ValueError, OverflowError) as exc:  # a YAML timestamp that is no real date: 2019-02-30, 0000-01-01
        raise FrontMatterError(f"impossible date in the front matter: {exc}", line=_date_line(raw)) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise FrontMatterError("the front matter is not a mapping of keys to values", line=2)
    return data


def _date_line(raw: str) -> int:
    """The front-matter line (counting the opening ---) of the first value that looks like a date."""
    for number, line in enumerate(raw.split("\n"), start=2):
        if re.search(r":\s*\d{1,4}-\d{1,2}-\d{1,2}", line):
            return number
    return 1


def _pelican(text: str) -> Document:
    meta: dict[str, Any] = {}
    lines: list[tuple[str, int]] = []
    pos = 0
    key = ""
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            break
        m = _PELICAN_LINE.match(line.rstrip("\r"))
        if m is None and key and line.startswith(_PELICAN_MORE):
            # Python-Markdown's meta extension (Pelican's reader): a line indented by four spaces or more
            # goes on with the value above it ("Summary: …" over two lines)
            more = line.strip()
            meta[key] = f"{meta[key]}\n{more}" if meta[key] else more
            pos += len(line) + 1
            continue
        if m is None:
            return Document({}, text, "none")
        key = m.group(1).lower()
        meta[key] = m.group(2).strip() or None
        lines.append((key, number))
        pos += len(line) + 1
    if not _PELICAN_KEYS & meta.keys():
        return Document({}, text, "none")
    body = text[pos:]
    return Document(meta, body, "pelican", text.count("\n", 0, pos) + 1, tuple(lines))


def _lower(data: dict[Any, Any]) -> dict[str, Any]:
    return {str(k).lower(): v for k, v in data.items()}


_KEY = re.compile(r"^([A-Za-z_][\w-]*)\s*[:=]")


def _key_lines(raw: str, first_line: int) -> tuple[tuple[str, int], ...]:
    found = []
    for offset, line in enumerate(raw.split("\n")):
        m = _KEY.match(line)
        if m:
            found.append((m.group(1).lower(), first_line + offset))
    return tuple(found)
