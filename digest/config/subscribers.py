"""The subscribers file (YAML): read, validate with line numbers, and the per-entry tag filter.

The file is composed into a node tree first (not `safe_load`) so every error can name the line
of the offending subscriber or key.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from email_validator import EmailNotValidError, validate_email

from digest.errors import ConfigError, UsageError
from digest.models import Problem, Subscriber
from digest.text import CONTROL, address_key

from .schema import did_you_mean

FORMATS = ("html", "text")
TOP_KEYS = ("defaults", "subscribers")
DEFAULT_KEYS = ("format", "tags", "active", "language")
SUBSCRIBER_KEYS = ("email", "name", "tags", "format", "active", "language")
# A language tag as sites write them: "ko", "en", "zh-Hant", "pt_BR" (BCP 47 primary + optional subtags).
LANGUAGE = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*")


class _Reader:
    """Walks the node tree, collecting every problem as a ConfigError with its line."""

    def __init__(self, path: Path, loader: yaml.SafeLoader):
        self.source = str(path)
        self.loader = loader
        self.errors: list[ConfigError] = []

    def error(self, node: yaml.Node, message: str, hint: str) -> None:
        self.errors.append(ConfigError(message, hint, source=self.source, line=node.start_mark.line + 1))

    def value(self, node: yaml.Node) -> Any:
        return self.loader.construct_object(node, deep=True)

    def mapping(self, node: yaml.MappingNode, allowed: tuple[str, ...], what: str) -> dict[str, tuple[yaml.Node, Any]]:
        """{key: (value node, value)}; unknown and repeated keys are reported and left out."""
        out: dict[str, tuple[yaml.Node, Any]] = {}
        for key_node, value_node in node.value:
            key = self.value(key_node)
            if not isinstance(key, str) or key not in allowed:
                hint = (
                    did_you_mean(key, allowed, "allowed keys")
                    if isinstance(key, str)
                    else "allowed keys: " + ", ".join(allowed)
                )
                self.error(key_node, f"unknown key {key!r} in {what}", hint)
            elif key in out:
                self.error(key_node, f"key '{key}' appears twice in {what}", "keep one of them")
            else:
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
    if not isinstance(raw, str) or not LANGUAGE.fullmatch(raw.strip()):
        raise ValueError("is not a language code")
    return raw.strip()


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
    try:
        # Non-ASCII local parts need SMTPUTF8 end to end, which relays rarely promise: refuse them.
        result = validate_email(raw.strip(), check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise ValueError(f"is not a valid email address: {exc}") from exc
    return str(result.ascii_email or result.normalized)


def normalise_address(raw: Any) -> str:
    """One address checked and normalised as the subscribers file does it (ValueError when it is not one)."""
    return _email(raw)


def _read(path: Path) -> tuple[tuple[Subscriber, ...], list[ConfigError]]:
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read the subscribers file: {exc.strerror}", "check subscribers.file", source=str(path)
        ) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError("the subscribers file is not UTF-8", "save it as UTF-8", source=str(path)) from exc
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or "syntax error"
        raise ConfigError(
            f"not valid YAML: {problem}",
            "fix the indentation or quoting",
            source=str(path),
            line=mark.line + 1 if mark else None,
        ) from exc
    finally:
        loader.dispose()
    reader = _Reader(path, loader)
    if root is None or not isinstance(root, yaml.MappingNode):
        raise ConfigError(
            "the subscribers file must be a mapping with a 'subscribers:' list",
            "see subscribers.example.yaml",
            source=str(path),
            line=root.start_mark.line + 1 if root is not None else None,
        )
    top = reader.mapping(root, TOP_KEYS, "the file")
    defaults: dict[str, Any] = {"tags": (), "format": "html", "active": True, "language": ""}
    if "defaults" in top:
        node = top["defaults"][0]
        if isinstance(node, yaml.MappingNode):
            fields = reader.mapping(node, DEFAULT_KEYS, "defaults")
            for key, convert, hint in _CHECKS:
                if key in DEFAULT_KEYS and (value := reader.check(fields, key, convert, hint)) is not None:
                    defaults[key] = value
        else:
            reader.error(node, "defaults must be a mapping", "write keys such as 'format: html' under it")
    if "subscribers" not in top:
        reader.error(root, "there is no 'subscribers:' list", "add one; see subscribers.example.yaml")
        return (), reader.errors
    node = top["subscribers"][0]
    if isinstance(node, yaml.ScalarNode) and top["subscribers"][1] is None:
        return (), reader.errors  # "subscribers:" with nothing under it yet
    if not isinstance(node, yaml.SequenceNode):
        reader.error(node, "'subscribers' must be a list", "start each subscriber with '- email: …'")
        return (), reader.errors
    return _subscribers(reader, node, defaults), reader.errors


_CHECKS: tuple[tuple[str, Callable[[Any], Any], str], ...] = (
    ("email", _email, "write one address such as 'ana@example.com'"),
    ("name", _name, "write the name on one line"),
    ("tags", _tags, "write a tag or a list such as [python, 여행]"),
    ("format", _format, "use 'html' or 'text'"),
    ("active", _active, "use true or false"),
    ("language", _language, "use a language code such as 'ko' or 'en'"),
)


def _subscribers(reader: _Reader, node: yaml.SequenceNode, defaults: dict[str, Any]) -> tuple[Subscriber, ...]:
    seen: dict[str, int] = {}
    out: list[Subscriber] = []
    for item in node.value:
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
        if address_key(email) in seen:
            reader.error(
                fields["email"][0],
                f"{email} is listed twice (first on line {seen[address_key(email)]})",
                "remove one of them",
            )
            continue
        seen[address_key(email)] = line
        out.append(
            Subscriber(
                email=email,
                name=values["name"] or "",
                tags=defaults["tags"] if values["tags"] is None else values["tags"],
                format=values["format"] or defaults["format"],
                active=defaults["active"] if values["active"] is None else values["active"],
                line=line,
                language=values["language"] or defaults["language"],
            )
        )
    return tuple(out)


def load_subscribers(path: Path) -> tuple[Subscriber, ...]:
    """Every subscriber in the file; raises ConfigError for the first problem."""
    subscribers, errors = _read(path)
    if errors:
        raise min(errors, key=lambda e: e.line or 0)
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
