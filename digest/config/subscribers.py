"""The subscribers file (YAML): read, validate with line numbers, and the per-entry tag filter.

The file is read as a stream of YAML events, one subscriber's node tree at a time (not `safe_load`), so
every error can name the line of the offending subscriber or key, and a list of 100,000 never exists as
a node graph: composed whole, the graph of 100,000 entries took 430 MB and 38 s with the pure-Python
parser. libyaml's parser is used when PyYAML has it (about 10x faster at scanning), the pure one otherwise.
A file of the plain shape most lists have, with nothing to report, is read faster still without a parser
(plainlist.py); any other file, and every file with a problem, is read as above.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer, ComposerError
from yaml.constructor import SafeConstructor
from yaml.events import (
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.resolver import Resolver

from digest.errors import ConfigError, UsageError
from digest.models import Problem, Subscriber
from digest.text import CONTROL, LANGUAGE_HINT, address_key, is_valid_language

from . import plainlist
from .schema import did_you_mean

if yaml.__with_libyaml__:
    from yaml._yaml import CParser

    class _CLoader(CParser, Composer, SafeConstructor, Resolver):
        """libyaml's events, composed one node tree at a time by PyYAML's own composer and constructor."""

        def __init__(self, text: str) -> None:
            CParser.__init__(self, text)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)

    _LOADER: type[Any] = _CLoader
else:  # PyYAML built without libyaml: the same events from the pure-Python parser
    _LOADER = yaml.SafeLoader

_STR_TAG = "tag:yaml.org,2002:str"
_MAP_TAG = "tag:yaml.org,2002:map"
FORMATS = ("html", "text")
TOP_KEYS = ("defaults", "subscribers")
DEFAULT_KEYS = ("format", "tags", "active", "language")
SUBSCRIBER_KEYS = ("email", "name", "tags", "format", "active", "language")
# A language tag as sites write them: "ko", "en", "zh-Hant", "pt_BR" (BCP 47 primary + optional subtags).
LANGUAGE = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*")


class _Reader:
    """Walks the node trees, collecting every problem as a ConfigError with its line."""

    def __init__(self, path: Path, loader: Any):
        self.source = str(path)
        self.loader = loader
        self.errors: list[ConfigError] = []
        # The file is read in one pass, but problems are listed as a whole-file reading finds them: the
        # file's keys, then the defaults, then the list (which matters only for ties on one line).
        self.phase = 0
        self.phases: list[int] = []

    def error(self, node: yaml.Node, message: str, hint: str, phase: int | None = None) -> None:
        self.errors.append(ConfigError(message, hint, source=self.source, line=node.start_mark.line + 1))
        self.phases.append(self.phase if phase is None else phase)

    def problems(self) -> list[ConfigError]:
        order = sorted(range(len(self.errors)), key=self.phases.__getitem__)
        return [self.errors[i] for i in order]

    def value(self, node: yaml.Node) -> Any:
        if node.tag == _STR_TAG and isinstance(node, yaml.ScalarNode):
            return node.value  # what the constructor returns for a string, without its bookkeeping
        return self.loader.construct_object(node, deep=True)

    def allowed(self, key_node: yaml.Node, key: Any, allowed: tuple[str, ...], seen: dict[str, Any], what: str) -> bool:
        """True for a known key not seen before; an unknown or repeated key is reported."""
        phase = 0 if what == "the file" else None
        if not isinstance(key, str) or key not in allowed:
            hint = (
                did_you_mean(key, allowed, "allowed keys")
                if isinstance(key, str)
                else "allowed keys: " + ", ".join(allowed)
            )
            self.error(key_node, f"unknown key {key!r} in {what}", hint, phase)
            return False
        if key in seen:
            self.error(key_node, f"key '{key}' appears twice in {what}", "keep one of them", phase)
            return False
        return True

    def mapping(self, node: yaml.MappingNode, allowed: tuple[str, ...], what: str) -> dict[str, tuple[yaml.Node, Any]]:
        """{key: (value node, value)}; unknown and repeated keys are reported and left out."""
        out: dict[str, tuple[yaml.Node, Any]] = {}
        for key_node, value_node in node.value:
            key = self.value(key_node)
            if self.allowed(key_node, key, allowed, out, what):
                out[key] = (value_node, self.value(value_node))
        return out

    def check(
        self, fields: dict[str, tuple[yaml.Node, Any]], key: str, convert: Callable[[Any], Any], hint: str
    ) -> Any:
        if key not in fields:
            return None
        node, raw = fields[key]
        try:
            return convert(raw)
        except ValueError as exc:
            self.error(node, f"{key}: {raw!r} {exc}", hint)
            return None


def _tags(raw: Any) -> tuple[str, ...]:
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not all(isinstance(t, str) and t.strip() for t in items):
        raise ValueError("is not a tag or a list of tags")
    return tuple(t.strip() for t in items)


def _format(raw: Any) -> str:
    if not isinstance(raw, str) or raw.lower() not in FORMATS:
        raise ValueError("is not a format")
    return raw.lower()


def _language(raw: Any) -> str:
    # The same check as a post's `lang`: a well-formed tag of a registered language ("zz" is neither)
    if not isinstance(raw, str) or not LANGUAGE.fullmatch(raw.strip()) or not is_valid_language(raw.strip()):
        raise ValueError("is not a language code")
    return raw.strip()


def subscriber_language(value: str, what: str = "--language") -> str:
    """A language given on the command line (`subscribers add --language`), checked as the file's are."""
    try:
        return _language(value) if value.strip() else ""
    except ValueError as exc:
        raise UsageError(f"{what} {value!r} {exc}", LANGUAGE_HINT) from exc


def _active(raw: Any) -> bool:
    if not isinstance(raw, bool):
        raise ValueError("is not true or false")
    return raw


def _name(raw: Any) -> str:
    if not isinstance(raw, str):
        raise ValueError("is not text")
    if CONTROL.search(raw):
        raise ValueError("contains line breaks or control characters")
    return raw.strip()


def _email(raw: Any) -> str:
    if not isinstance(raw, str):
        raise ValueError("is not an email address")
    address = raw.strip()
    local, _, domain = address.partition("@")
    # The common shape (a plain ASCII local part at a host name) is checked here against email_validator's
    # own rules, with each domain validated once: validate_email costs about 70 µs an address, 7 s for a
    # list of 100,000. Anything else, and every error, goes through validate_email itself.
    dot_atom_text, case_insensitive_names, max_length = _rules()
    known = _known_domain(domain) if _HOST.fullmatch(domain) and dot_atom_text.match(local) else None
    if known is not None and local.lower() not in case_insensitive_names:
        ascii_domain, normalised_length = known
        if len(local) + 1 + max(len(domain), len(ascii_domain), normalised_length) <= max_length:
            return f"{local}@{ascii_domain}"
    return _validated(address)


_HOST = re.compile(r"[A-Za-z0-9.-]+")


@lru_cache(maxsize=1)
def _rules() -> tuple[re.Pattern[str], Any, int]:
    """email_validator's rules, imported when the first address is checked: it compiles its grammar at import
    (about 0.1 s), which every command paid at start-up, a preview or a publish that reads no address too."""
    from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES, DOT_ATOM_TEXT, EMAIL_MAX_LENGTH

    return DOT_ATOM_TEXT, CASE_INSENSITIVE_MAILBOX_NAMES, EMAIL_MAX_LENGTH


@lru_cache(maxsize=4096)
def _known_domain(domain: str) -> tuple[str, int] | None:
    """(the domain's ASCII form, the UTF-8 length of its normalised form) when validate_email accepts an
    address at it, else None."""
    from email_validator import EmailNotValidError, validate_email

    try:
        result = validate_email(f"a@{domain}", check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError:
        return None
    return str(result.ascii_domain), len(str(result.domain).encode())


def _validated(address: str) -> str:
    from email_validator import EmailNotValidError, validate_email

    try:
        # Non-ASCII local parts need SMTPUTF8 end to end, which relays rarely promise: refuse them.
        result = validate_email(address, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise ValueError(f"is not a valid email address: {exc}") from exc
    return str(result.ascii_email or result.normalized)


def normalise_address(raw: Any) -> str:
    """One address checked and normalised as the subscribers file does it (ValueError when it is not one)."""
    return _email(raw)


DEFAULTS: dict[str, Any] = {"tags": (), "format": "html", "active": True, "language": ""}


def _read(path: Path, preset: dict[str, Any] | None = None) -> tuple[tuple[Subscriber, ...], list[ConfigError]]:
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read the subscribers file: {exc.strerror}", "check subscribers.file", source=str(path)
        ) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError("the subscribers file is not UTF-8", "save it as UTF-8", source=str(path)) from exc
    if preset is None:
        plain = _read_plain(text)
        if plain is not None:
            return plain, []
    loader = _LOADER(text)
    del text
    try:
        subscribers, errors, defaults = _parse(_Reader(path, loader), loader, preset or DEFAULTS)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or "syntax error"
        raise ConfigError(
            f"not valid YAML: {problem}",
            "fix the indentation or quoting",
            source=str(path),
            line=mark.line + 1 if mark else None,
        ) from exc
    finally:
        loader.dispose()
    if defaults is not None:  # 'defaults:' came after the list: read it again knowing them (rare)
        del subscribers
        return _read(path, defaults)
    return subscribers, errors


def _parse(
    reader: _Reader, loader: Any, preset: dict[str, Any]
) -> tuple[tuple[Subscriber, ...], list[ConfigError], dict[str, Any] | None]:
    """(subscribers, problems, the defaults when they came after the list and change it). The top-level
    mapping is read event by event, and a plain list under 'subscribers' item by item."""
    loader.get_event()  # the stream's start
    root: yaml.Node | None = None
    if not loader.check_event(StreamEndEvent):
        loader.get_event()  # the document's start
        if loader.check_event(MappingStartEvent) and loader.peek_event().anchor is None:
            root = yaml.MappingNode(_MAP_TAG, [], loader.get_event().start_mark, None)
        else:
            root = loader.compose_node(None, None)
    if root is None or not isinstance(root, yaml.MappingNode):
        _single_document(loader, root)
        raise ConfigError(
            "the subscribers file must be a mapping with a 'subscribers:' list",
            "see subscribers.example.yaml",
            source=reader.source,
            line=root.start_mark.line + 1 if root is not None else None,
        )
    top: dict[str, tuple[yaml.Node, Any]] = {}
    defaults = dict(preset)
    subscribers: tuple[Subscriber, ...] = ()
    listed = late = False
    for key_node, value in _pairs(loader, root):
        key = reader.value(key_node)
        if not reader.allowed(key_node, key, TOP_KEYS, top, "the file"):
            if isinstance(value, _Items):
                value.skip()
            continue
        if isinstance(value, _Items):  # the list, streamed
            top[key] = (key_node, value)
            subscribers = _subscribers(reader, value, defaults)
            listed = True
            continue
        top[key] = (value, reader.value(value))
        if key == "defaults":
            reader.phase = 1
            defaults = _defaults(reader, value)
            late = listed and defaults != preset
    _single_document(loader, root)
    reader.phase = 2
    if "subscribers" not in top:
        reader.error(root, "there is no 'subscribers:' list", "add one; see subscribers.example.yaml")
        return (), reader.problems(), None
    if late:
        return (), [], defaults
    node, value = top["subscribers"]
    if not listed:
        if isinstance(node, yaml.ScalarNode) and value is None:
            return (), reader.problems(), None  # "subscribers:" with nothing under it yet
        if not isinstance(node, yaml.SequenceNode):
            reader.error(node, "'subscribers' must be a list", "start each subscriber with '- email: …'")
            return (), reader.problems(), None
        subscribers = _subscribers(reader, node.value, defaults)
    return subscribers, reader.problems(), None


class _Items:
    """The subscribers' list as its entries are composed, one at a time; consumed once, in order."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader
        # An entry of plain keys and values is composed here as PyYAML's composer would (a third of the
        # time); anchors, aliases, tags and nested values go to the composer itself.
        self.lean = not loader.yaml_path_resolvers
        # What Resolver.resolve finds for most scalars, decided here: a quoted scalar, or a plain one whose
        # first character starts no implicit type (numbers, booleans, null …), is a string.
        resolvers = loader.yaml_implicit_resolvers
        self.typed_starts = None if None in resolvers else resolvers

    def __iter__(self) -> Iterator[yaml.Node]:
        loader = self.loader
        loader.get_event()  # the list's start
        while not loader.check_event(SequenceEndEvent):
            event = loader.peek_event()
            if self.lean and type(event) is MappingStartEvent and event.anchor is None and event.tag is None:
                yield self._mapping()
            else:
                yield loader.compose_node(None, None)
            loader.constructed_objects.clear()  # the constructor keeps every node it built otherwise
        loader.get_event()

    def _mapping(self) -> yaml.MappingNode:
        loader = self.loader
        start = loader.get_event()
        node = yaml.MappingNode(_MAP_TAG, [], start.start_mark, None, flow_style=start.flow_style)
        while not loader.check_event(MappingEndEvent):
            key = self._scalar() or loader.compose_node(node, None)
            node.value.append((key, self._scalar() or loader.compose_node(node, key)))
        node.end_mark = loader.get_event().end_mark
        return node

    def _scalar(self) -> yaml.ScalarNode | None:
        event: Any = self.loader.peek_event()
        kind = type(event)  # not narrowed: libyaml's marks are not the pure parser's class
        if kind is not ScalarEvent or event.anchor is not None:
            return None
        self.loader.get_event()
        tag, value = event.tag, event.value
        if tag is None or tag == "!":
            starts = self.typed_starts
            if starts is not None and (not event.implicit[0] or value[:1] not in starts):
                tag = _STR_TAG
            else:
                tag = self.loader.resolve(yaml.ScalarNode, value, event.implicit)
        return yaml.ScalarNode(tag, value, event.start_mark, event.end_mark, style=event.style)

    def skip(self) -> None:
        for _ in self:
            pass


def _pairs(loader: Any, root: yaml.MappingNode) -> Iterator[tuple[yaml.Node, yaml.Node | _Items]]:
    """The root mapping's (key, value) pairs; a plain list under 'subscribers' comes as _Items, to be
    consumed before the next pair is asked for."""
    if root.value or root.end_mark is not None:  # composed whole (an anchored root)
        yield from root.value
        return
    while not loader.check_event(MappingEndEvent):
        key = loader.compose_node(root, None)
        listed = isinstance(key, yaml.ScalarNode) and key.tag == _STR_TAG and key.value == "subscribers"
        if listed and loader.check_event(SequenceStartEvent) and loader.peek_event().anchor is None:
            yield key, _Items(loader)
        else:
            yield key, loader.compose_node(root, key)
    root.end_mark = loader.get_event().end_mark


def _single_document(loader: Any, root: yaml.Node | None) -> None:
    """What `get_single_node` checks after the document: its end, and no second document."""
    if root is None:
        return
    loader.get_event()  # the document's end
    if not loader.check_event(StreamEndEvent):
        event = loader.get_event()
        raise ComposerError(
            "expected a single document in the stream", root.start_mark, "but found another document",
            event.start_mark,
        )  # fmt: skip


def _defaults(reader: _Reader, node: yaml.Node) -> dict[str, Any]:
    defaults = dict(DEFAULTS)
    if isinstance(node, yaml.MappingNode):
        fields = reader.mapping(node, DEFAULT_KEYS, "defaults")
        for key, convert, hint in _CHECKS:
            if key in DEFAULT_KEYS and (value := reader.check(fields, key, convert, hint)) is not None:
                defaults[key] = value
    else:
        reader.error(node, "defaults must be a mapping", "write keys such as 'format: html' under it")
    return defaults


_CHECKS: tuple[tuple[str, Callable[[Any], Any], str], ...] = (
    ("email", _email, "write one address such as 'ana@example.com'"),
    ("name", _name, "write the name on one line"),
    ("tags", _tags, "write a tag or a list such as [python, 여행]"),
    ("format", _format, "use 'html' or 'text'"),
    ("active", _active, "use true or false"),
    ("language", _language, "use a language code such as 'ko' or 'en'"),
)


def _subscribers(reader: _Reader, items: Iterable[yaml.Node], defaults: dict[str, Any]) -> tuple[Subscriber, ...]:
    reader.phase = 3
    seen: dict[str, int] = {}
    out: list[Subscriber] = []
    tags, fmt, active, language = defaults["tags"], defaults["format"], defaults["active"], defaults["language"]
    for item in items:
        line = item.start_mark.line + 1
        if not isinstance(item, yaml.MappingNode):
            reader.error(item, "a subscriber must be a mapping", "write '- email: ana@example.com'")
            continue
        before = len(reader.errors)
        fields = reader.mapping(item, SUBSCRIBER_KEYS, "a subscriber")
        values = {key: reader.check(fields, key, convert, hint) for key, convert, hint in _CHECKS}
        if "email" not in fields:
            reader.error(item, "a subscriber without 'email'", "add 'email: …' or remove the entry")
        if len(reader.errors) > before:
            continue
        email = values["email"]
        key = address_key(email)
        if key in seen:
            reader.error(
                fields["email"][0], f"{email} is listed twice (first on line {seen[key]})", "remove one of them"
            )
            continue
        seen[key] = line
        out.append(
            Subscriber(
                email=email,
                name=values["name"] or "",
                tags=tags if values["tags"] is None else values["tags"],
                format=values["format"] or fmt,
                active=active if values["active"] is None else values["active"],
                line=line,
                language=values["language"] or language,
            )
        )
    reader.phase = 2
    return tuple(out)


def _read_plain(text: str) -> tuple[Subscriber, ...] | None:
    """The subscribers of a file of the plain shape (see plainlist) in which the YAML reader would find
    nothing to report, exactly as it reads them; None for any other file."""
    try:
        head, entries = plainlist.scan(text, _LOADER.yaml_implicit_resolvers)
        defaults = dict(DEFAULTS)
        for key, raw in head.items():
            if key not in DEFAULT_KEYS:
                return None
            defaults[key] = _CONVERT[key](raw)
        tags, fmt, active, language = defaults["tags"], defaults["format"], defaults["active"], defaults["language"]
        seen: set[str] = set()
        out: list[Subscriber] = []
        for line, fields in entries:
            if "email" not in fields or not _SUBSCRIBER_KEYS.issuperset(fields):
                return None
            email = _email(fields["email"])
            key = address_key(email)
            if key in seen:
                return None
            seen.add(key)
            get = fields.get
            name, raw_tags, raw_format, raw_active, raw_language = (
                get("name"), get("tags"), get("format"), get("active"), get("language")
            )  # fmt: skip
            out.append(
                Subscriber(
                    email,
                    "" if name is None else _name(name),
                    tags if raw_tags is None else _tags(raw_tags),
                    fmt if raw_format is None else _format(raw_format),
                    active if raw_active is None else _active(raw_active),
                    line,
                    language if raw_language is None else _language(raw_language),
                )
            )
    except (plainlist.NotPlain, ValueError):
        return None
    return tuple(out)


_CONVERT: dict[str, Callable[[Any], Any]] = {key: convert for key, convert, _ in _CHECKS}
_SUBSCRIBER_KEYS = frozenset(SUBSCRIBER_KEYS)


def load_subscribers(path: Path) -> tuple[Subscriber, ...]:
    """Every subscriber in the file; raises ConfigError for the first problem, saying how many more there
    are (`digest subscribers check` lists them all: one run shows every line to mend)."""
    subscribers, errors = _read(path)
    if errors:
        first = min(errors, key=lambda e: e.line or 0)
        if len(errors) > 1:
            more = f"{len(errors) - 1} more problem(s) in this file: `digest subscribers check` lists them all"
            first.hint = f"{first.hint}; {more}" if first.hint else more
        raise first
    return subscribers


def check_subscribers(path: Path) -> tuple[tuple[Subscriber, ...], list[Problem]]:
    """The valid subscribers and every problem (for `digest subscribers check`)."""
    try:
        subscribers, errors = _read(path)
    except ConfigError as exc:  # the file as a whole is unreadable
        errors, subscribers = [exc], ()
    problems = [
        Problem(source=e.source, message=f"{e.message} ({e.hint})" if e.hint else e.message, line=e.line)
        for e in sorted(errors, key=lambda e: e.line or 0)
    ]
    return subscribers, problems


def single_subscriber(address: str) -> Subscriber:
    """One address given on the command line (`digest send --to`)."""
    try:
        return Subscriber(email=_email(address))
    except ValueError as exc:
        raise UsageError(f"--to {address!r} {exc}", "give one plain address such as me@example.com") from exc
