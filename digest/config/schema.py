"""How digest.toml keys are declared and checked: each key is a dataclass field whose metadata names its
TOML key and converter, so a key's default is written once, on its field, and the schema is read off
the dataclasses (`SCHEMA`)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from datetime import time as dt_time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from digest.errors import ConfigError
from digest.text import LANGUAGE_HINT, PERMALINK_TOKENS, is_valid_language, unknown_permalink_token

Converter = Callable[[Any], Any]
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def option(default: Any, convert: Converter, *, key: str = "", toml: bool = True) -> Any:
    """A settings field: its default, how a TOML value is converted, and its TOML name when it differs."""
    meta = {"convert": convert, "key": key, "toml": toml}
    if isinstance(default, list | dict):
        raise TypeError("use a tuple for a list default")
    return dataclasses.field(default=default, metadata=meta)


def toml_fields(cls: type) -> dict[str, dataclasses.Field[Any]]:
    """{TOML key: field} of a section dataclass."""
    found = {}
    for f in dataclasses.fields(cls):
        if f.metadata.get("toml"):
            found[f.metadata["key"] or f.name] = f
    return found


# -- converters: each returns the value or raises ValueError("what it must be") -------------------------


def to_str(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError("a string")
    return v


def to_int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ValueError("a whole number ≥ 0")
    return v


def to_pos_int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError("a whole number ≥ 1")
    return int(v)


def to_feed_issues(v: Any) -> int:
    # a bound where the weeks back still are dates (a million weeks is 19,000 years: an overflow)
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 10_000:
        raise ValueError("a whole number from 1 to 10,000")
    return int(v)


def to_float(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
        raise ValueError("a number ≥ 0")
    return float(v)


def to_pos_float(v: Any) -> float:
    if to_float(v) < 1:
        raise ValueError("a number ≥ 1")
    return float(v)


def to_domain_rates(kind: type) -> Converter:
    """A table of recipient domains (a key may name several, comma-separated, sharing one limit) to a
    positive rate: {"gmail.com" = 20, "outlook.com, hotmail.com, live.com" = 10}."""

    def convert(v: Any) -> tuple[tuple[str, Any], ...]:
        if not isinstance(v, dict):
            raise ValueError('a table such as { "gmail.com" = 20, "outlook.com, hotmail.com" = 10 }')
        pairs = []
        for domains, rate in v.items():
            names = [d.strip().lower() for d in str(domains).split(",")]
            if not all(re.fullmatch(r"[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?", n) for n in names):
                raise ValueError(f"domain names as keys ({domains!r} is not)")
            if isinstance(rate, bool) or not isinstance(rate, int | float) or rate <= 0:
                raise ValueError(f"a rate above 0 for each domain ({domains} = {rate!r})")
            if kind is int and rate != int(rate):
                raise ValueError(f"a whole number of messages for each domain ({domains} = {rate!r})")
            pairs.append((", ".join(names), kind(rate)))
        return tuple(pairs)

    return convert


def to_bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError("true or false")
    return v


def to_str_list(v: Any) -> tuple[str, ...]:
    if isinstance(v, str):
        return (v,)
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ValueError("a string or a list of strings")
    return tuple(v)


def choice(*allowed: str) -> Converter:
    def convert(v: Any) -> str:
        if not isinstance(v, str) or v.lower() not in allowed:
            raise ValueError("one of " + ", ".join(allowed))
        return v.lower()

    return convert


def to_auto_count(v: Any) -> int:
    """ "auto" (stored as -1) or a whole number ≥ 0."""
    if v == "auto":
        return -1
    try:
        return to_int(v)
    except ValueError as exc:
        raise ValueError('"auto" or a whole number ≥ 0') from exc


def to_switch(v: Any) -> str:
    """true, false or "auto" (stored as "on", "off", "auto")."""
    if isinstance(v, bool):
        return "on" if v else "off"
    if v == "auto":
        return "auto"
    raise ValueError('true, false or "auto"')


def to_ip_list(v: Any) -> tuple[str, ...]:
    import ipaddress

    items = to_str_list(v)
    try:
        return tuple(str(ipaddress.ip_address(item.strip())) for item in items)
    except ValueError as exc:
        raise ValueError('IP addresses such as ["192.0.2.1", "2001:db8::1"]') from exc


def to_port(v: Any) -> int:
    if to_pos_int(v) > 65535:
        raise ValueError("a port from 1 to 65535")
    return int(v)


def to_timezone(v: Any) -> str:
    try:
        ZoneInfo(to_str(v))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError("an IANA timezone name such as Asia/Seoul or UTC" + _zone_hint(v)) from exc
    return str(v)


def _zone_hint(v: Any) -> str:
    """ "; did you mean 'Asia/Seoul'?" for `asia/seoul` (zone names are case-sensitive on Linux)."""
    import zoneinfo

    if not isinstance(v, str):
        return ""
    by_case = {name.lower(): name for name in zoneinfo.available_timezones()}
    found = by_case.get(v.strip().lower())
    return f"; did you mean {found!r}?" if found else ""


def to_language(v: Any) -> str:
    if to_str(v) and not is_valid_language(v):
        raise ValueError(LANGUAGE_HINT.replace(" is expected", ""))
    return str(v)


def to_permalink(v: Any) -> str:
    token = unknown_permalink_token(to_str(v))
    if token:
        raise ValueError(f"made of known tokens: :{token} is not one; digest knows :" + ", :".join(PERMALINK_TOKENS))
    return str(v)


def to_hour(v: Any) -> int:
    if to_int(v) > 23:
        raise ValueError("an hour from 0 to 23")
    return int(v)


def to_hhmm(v: Any) -> str:
    if isinstance(v, dt_time) and v.tzinfo is None:  # TOML's own time, `time = 09:00:00` (no quotes)
        return v.isoformat(timespec="seconds")
    if not isinstance(v, str) or not re.fullmatch(r"([01]?\d|2[0-3]):[0-5]\d(:[0-5]\d)?", v):
        raise ValueError('a time "HH:MM" (or "HH:MM:SS") such as "09:00"')
    return v


def to_url(v: Any) -> str:
    if not isinstance(v, str) or (v and not re.match(r"https?://[^/\s]+", v)):
        raise ValueError('an absolute http(s) URL such as "https://example.com/"')
    return v


# -- reading a parsed TOML document ----------------------------------------------------------------------


def did_you_mean(word: str, choices: Any, allowed: str = "allowed") -> str:
    import difflib  # only for a mistake in the config, not on every start

    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"did you mean '{close[0]}'?" if close else f"{allowed}: " + ", ".join(sorted(choices))


def line_of(text: str, key: str, section: str = "") -> int | None:
    """The line of `key` (inside [section] when given), or of the section header."""
    start = 0
    if section:
        header = re.search(rf"^[ \t]*\[[ \t]*{re.escape(section)}[ \t]*\]", text, re.M)
        if header:
            start = header.start()
    # [ \t], not \s: \s after ^ would run over blank lines and give the line above the key
    pattern = re.compile(rf"^[ \t]*(\[[ \t]*)?{re.escape(key)}[ \t]*(=|\])", re.M)
    m = pattern.search(text, start) or pattern.search(text)
    return text.count("\n", 0, m.start()) + 1 if m else None


def validate(
    raw: Mapping[str, Any],
    sections: Mapping[str, type],
    *,
    source: str,
    text: str = "",
    aliases: Mapping[str, str] = {},
) -> dict[str, dict[str, Any]]:
    """{section: {field name: converted value}} for the keys given; unknown sections and keys are errors.

    `aliases` maps "section.key" to the section that now owns that key (renamed sections keep working).
    """
    values: dict[str, dict[str, Any]] = {s: {} for s in sections}
    for section, table in raw.items():
        if section not in sections:
            raise ConfigError(
                f"unknown section [{section}]",
                did_you_mean(section, sections),
                source=source,
                line=line_of(text, section),
            )
        if not isinstance(table, dict):
            raise ConfigError(f"[{section}] must be a table", source=source, line=line_of(text, section))
        known = toml_fields(sections[section])
        for key, value in table.items():
            owner = section
            if key not in known and f"{section}.{key}" in aliases:
                owner = aliases[f"{section}.{key}"]
                fields = toml_fields(sections[owner])
            else:
                fields = known
            if key not in fields:
                raise ConfigError(
                    f"unknown key '{key}' in [{section}]",
                    did_you_mean(key, known),
                    source=source,
                    line=line_of(text, key, section),
                )
            field = fields[key]
            try:
                converted = field.metadata["convert"](value)
            except ValueError as exc:
                raise ConfigError(
                    f"{section}.{key} = {value!r} is not allowed",
                    f"it must be {exc}",
                    source=source,
                    line=line_of(text, key, section),
                ) from exc
            if owner != section and field.name in values[owner]:
                continue  # the key in its new section wins over the old spelling
            values[owner][field.name] = converted
    return values
