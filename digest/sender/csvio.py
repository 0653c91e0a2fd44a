"""Subscribers in and out as CSV or JSON: the exports of Mailchimp, Substack, Buttondown, listmonk and Ghost
are recognised by their headers, and so is this tool's own export (CSV or JSON, read back with its statuses
and consent records); anything else is read through a column mapping.

Each format says in its own way whether a person consented and whether they left; that decides their
status here (see Roster.apply_import), so nobody is mailed who did not ask for it.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from digest.config import normalise_address, subscriber_language
from digest.errors import ConfigError, UsageError
from digest.models import Problem, Status
from digest.records import ImportRow, SubscriberRecord
from digest.text import plain_name

TRUE = {"1", "true", "yes", "y", "t", "subscribed", "opted in", "confirmed", "enabled", "on"}
# what a file may say about someone who must not be mailed (Roster.apply_import maps each to a status)
LEFT = ("unsubscribed", "cleaned", "bounced", "undeliverable", "complained", "blocklisted", "inactive")
MAP_KEYS = ("email", "name", "first_name", "last_name", "consent", "consent_at", "tags", "status", "language")


@dataclass(frozen=True)
class Format:
    name: str
    recognise: Callable[[set[str]], bool]
    columns: Mapping[str, str]  # our field -> the file's column (lower case)
    consent: Callable[[Mapping[str, str]], bool]
    status: Callable[[Mapping[str, str]], str]


def _truthy(value: str) -> bool:
    return value.strip().lower() in TRUE


def _mailchimp_status(row: Mapping[str, str]) -> str:
    if row.get("clean_time"):
        return "cleaned"
    if row.get("unsub_time"):
        return "unsubscribed"
    return "subscribed"


def _buttondown_status(row: Mapping[str, str]) -> str:
    # older exports name the column subscriber_type, newer ones type (as the API renamed it)
    kind = (row.get("subscriber_type") or row.get("type") or "").lower()
    if kind in ("unsubscribed", "removed", "spammy"):  # spammy: flagged as a fake sign-up, never mailed
        return "unsubscribed"
    if kind in ("undeliverable", "complained", "unactivated"):
        return kind
    return "subscribed"


def _is_buttondown(h: set[str]) -> bool:
    return ("email" in h and "subscriber_type" in h) or ({"email_address", "type", "creation_date"} <= h)


FORMATS: tuple[Format, ...] = (
    Format(
        "digest",  # this tool's own export (EXPORT_FIELDS)
        lambda h: {"email", "status", "consent_method", "consent_source"} <= h,
        {
            "email": "email",
            "name": "name",
            "tags": "tags",
            "language": "language",
            "format": "format",
            "consent_at": "consent_at",
            "consent_method": "consent_method",
            "consent_source": "consent_source",
            "origin": "origin",
            "created_at": "created_at",
            "paused_until": "paused_until",
        },
        lambda r: r.get("status", "") == "active",
        lambda r: r.get("status", ""),
    ),
    Format(
        "mailchimp",
        lambda h: "email address" in h and bool({"member_rating", "optin_time", "confirm_time"} & h),
        {
            "email": "email address",
            "first_name": "first name",
            "last_name": "last name",
            "tags": "tags",
            "consent_at": "confirm_time|optin_time",
        },
        # Mailchimp keeps only people who opted in; CONFIRM_TIME (or OPTIN_TIME) records when
        lambda r: bool(r.get("confirm_time") or r.get("optin_time")) and _mailchimp_status(r) == "subscribed",
        _mailchimp_status,
    ),
    Format(
        "substack",
        lambda h: "email" in h and bool({"active_subscription", "email_disabled"} & h),
        {"email": "email", "name": "name", "consent_at": "created_at"},
        lambda r: not _truthy(r.get("email_disabled", "")),
        lambda r: "unsubscribed" if _truthy(r.get("email_disabled", "")) else "subscribed",
    ),
    Format(
        "buttondown",
        _is_buttondown,
        {"email": "email|email_address", "tags": "tags", "consent_at": "creation_date"},
        lambda r: _buttondown_status(r) == "subscribed",
        _buttondown_status,
    ),
    Format(
        "listmonk",
        lambda h: {"uuid", "email", "attributes", "status"} <= h,
        {"email": "email", "name": "name", "consent_at": "created_at"},
        lambda r: r.get("status", "").lower() == "enabled",
        lambda r: "blocklisted" if r.get("status", "").lower() == "blocklisted" else "subscribed",
    ),
    Format(
        "ghost",
        lambda h: "email" in h and "subscribed_to_emails" in h,
        {"email": "email", "name": "name", "tags": "labels", "consent_at": "created_at"},
        lambda r: _truthy(r.get("subscribed_to_emails", "")),
        lambda r: "subscribed" if _truthy(r.get("subscribed_to_emails", "")) else "unsubscribed",
    ),
)


def parse_mapping(text: str) -> dict[str, str]:
    """`email=E-mail,name=Full name,consent=Opted in` -> {"email": "e-mail", …}."""
    found: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        ours, sep, theirs = part.partition("=")
        ours = ours.strip().lower()
        fields = "fields: " + ", ".join(MAP_KEYS)
        if not sep or not theirs.strip():
            raise UsageError(f"--map {part!r} is not FIELD=COLUMN", fields)
        if ours not in MAP_KEYS:
            raise UsageError(f"--map {part!r}: {ours!r} is not a field digest knows", fields)
        found[ours] = theirs.strip().lower()
    if "email" not in found:
        raise UsageError("--map needs email=COLUMN", "name the column holding the addresses")
    return found


def _mapped(columns: Mapping[str, str]) -> Format:
    consent = columns.get("consent", "")
    status = columns.get("status", "")

    def consented(row: Mapping[str, str]) -> bool:
        value = row.get(consent, "").strip()
        return bool(consent) and (_truthy(value) or _looks_like_date(value))

    def state(row: Mapping[str, str]) -> str:
        value = row.get(status, "").strip().lower()
        return value if value in LEFT else "subscribed"

    return Format("mapped", lambda h: True, columns, consented, state)


def _looks_like_date(value: str) -> bool:
    return _date(value) is not None


def _date(value: str) -> datetime | None:
    value = value.strip()
    if not value:
        return None
    for candidate in (value, value.replace(" ", "T", 1), value[:19]):
        try:
            moment = datetime.fromisoformat(candidate.replace("Z", "+00:00"))
        except ValueError:
            continue
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # the services export UTC
    return None


def _tags(value: str) -> tuple[str, ...]:
    value = value.strip().strip("[]")
    parts = value.split(",") if "," in value else value.split(";") if ";" in value else [value]
    return tuple(dict.fromkeys(p.strip().strip('"') for p in parts if p.strip().strip('"')))


def read_csv(path: Path, mapping: Mapping[str, str] | None = None) -> tuple[str, Iterator[ImportRow], list[Problem]]:
    """(format name, rows, invalid lines) of one CSV export (or this tool's JSON export, by its .json name);
    ConfigError when it cannot be read at all. The rows are read from the file as they are consumed (a list
    of 100,000 is never held whole); the invalid lines are known once they have all been read."""
    source = str(path)
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            sample = fh.read(4096)
            if path.suffix.lower() == ".json":
                text = sample + fh.read()
            else:
                try:
                    sniffed: Any = csv.Sniffer().sniff(sample, delimiters=",;\t")
                except csv.Error:
                    sniffed = csv.excel
                # The delimiter is what the sniffer is for. It often guesses that a doubled quote (RFC 4180,
                # as every spreadsheet and mailing-list export writes one: "Doe, John ""JJ""") is not one,
                # and a name came out as `John "JJ"" Smith"`: the quoting is Excel's, always.
                keep = {"delimiter": sniffed.delimiter, "skipinitialspace": sniffed.skipinitialspace}
                dialect: Any = type("Sniffed", (csv.excel,), keep)
                fh.seek(0)
                header = [h.strip().lower() for h in next(csv.reader(fh, dialect), [])]
    except OSError as exc:
        raise ConfigError(f"cannot read the file: {exc.strerror}", "check the path", source=source) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError("the file is not UTF-8", "export it again as UTF-8 CSV", source=source) from exc
    problems: list[Problem] = []
    if path.suffix.lower() == ".json":
        if mapping:
            raise ConfigError("--map is for CSV files", "leave it out for a JSON export", source=source)
        return "digest", _rows(_json_records(text, source), FORMATS[0], source, problems), problems
    if not header:
        raise ConfigError("the file is empty", "export the list again", source=source)
    names = set(header)
    if mapping:
        fmt = _mapped(mapping)
        missing = [c for c in mapping.values() if c not in names]
        if missing:
            raise ConfigError(
                f"--map names column(s) {', '.join(missing)} that the file does not have",
                "columns: " + ", ".join(header),
                source=source,
                line=1,
            )
    else:
        found = next((f for f in FORMATS if f.recognise(names)), None)
        if found is None:
            raise ConfigError(
                "the columns match no known export (Mailchimp, Substack, Buttondown, listmonk, Ghost, digest)",
                "give --map email=COLUMN[,name=COLUMN,consent=COLUMN,tags=COLUMN]",
                source=source,
                line=1,
            )
        fmt = found
    return fmt.name, _rows(_csv_records(path, dialect, header), fmt, source, problems), problems


def _csv_records(path: Path, dialect: Any, header: list[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, {column: value}) of every non-empty line after the header, read as they are asked for."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh, dialect)
            next(reader, None)
            while True:
                line = reader.line_num + 1  # where the record starts (a quoted value may span lines)
                values = next(reader, None)
                if values is None:
                    return
                if any(v.strip() for v in values):
                    yield line, {header[i]: v.strip() for i, v in enumerate(values) if i < len(header)}
    except OSError as exc:
        raise ConfigError(f"cannot read the file: {exc.strerror}", "check the path", source=str(path)) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError("the file is not UTF-8", "export it again as UTF-8 CSV", source=str(path)) from exc


def _json_records(text: str, source: str) -> Iterator[tuple[int, dict[str, str]]]:
    """This tool's JSON export: (entry number, its fields as text) per entry."""
    try:
        items = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"not JSON: {exc}", "give the file `digest subscribers export --format json` wrote",
                          source=source) from exc  # fmt: skip
    if not isinstance(items, list):
        raise ConfigError("the JSON is not a list of subscribers", "give a JSON export of digest", source=source)
    for number, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            yield number, {}
            continue
        tags = item.get("tags") or []
        fields = {str(k): "" if v is None else str(v) for k, v in item.items() if k != "tags"}
        yield number, fields | {"tags": ", ".join(str(t) for t in tags) if isinstance(tags, list) else str(tags)}


def _cell(row: Mapping[str, str], columns: Mapping[str, str], field: str) -> str:
    """The first non-empty of the columns a field may have (`a|b`: exports that renamed a column)."""
    return next((row[c] for c in columns.get(field, "").split("|") if row.get(c)), "")


def _rows(
    records: Iterable[tuple[int, Mapping[str, str]]], fmt: Format, source: str, problems: list[Problem]
) -> Iterator[ImportRow]:
    """The valid lines as ImportRows; each invalid one is added to `problems` as it is met."""
    cols = fmt.columns
    for number, row in records:
        raw = _cell(row, cols, "email")
        try:
            address = normalise_address(raw)
        except ValueError as exc:
            problems.append(Problem(source, f"{raw!r} {exc}" if raw else "no address", number))
            continue
        name = _cell(row, cols, "name")
        if not name:
            name = " ".join(p for p in (_cell(row, cols, "first_name"), _cell(row, cols, "last_name")) if p)
        fmt_value = _cell(row, cols, "format").lower()
        try:  # checked as the subscribers file and `subscribers add` check it
            language = subscriber_language(_cell(row, cols, "language"), "language")
        except UsageError as exc:
            problems.append(Problem(source, f"{exc.message} ({exc.hint}; or leave it empty)", number))
            continue
        wrong = _wrong_value(row, fmt)
        if wrong:  # a value the line cannot mean: guessed, it made up a consent date or mailed a confirmation
            problems.append(Problem(source, wrong, number))
            continue
        yield ImportRow(
            line=number,
            email=address,
            name=plain_name(name),
            tags=_tags(_cell(row, cols, "tags")),
            consented=fmt.consent(row),
            # a mapped consent column may hold the date itself
            consent_at=_date(_cell(row, cols, "consent_at")) or _date(_cell(row, cols, "consent")),
            status=fmt.status(row),
            language=language,
            format=fmt_value if fmt_value in ("html", "text") else "",
            consent_method=_cell(row, cols, "consent_method"),
            consent_source=_cell(row, cols, "consent_source"),
            origin=_cell(row, cols, "origin"),
            created_at=_date(_cell(row, cols, "created_at")),
            paused_until=_date(_cell(row, cols, "paused_until")),
        )


STATUSES = frozenset(status.value for status in Status)
DATED = ("consent_at", "created_at", "paused_until")


def _wrong_value(row: Mapping[str, str], fmt: Format) -> str:
    """What is wrong with a line's format, dates or (in this tool's own export) status, or ""."""
    cols = fmt.columns
    value = _cell(row, cols, "format")
    if value and value.lower() not in ("html", "text"):
        return f"format: {value!r} is not a format (html or text; or leave it empty)"
    for field in DATED:
        value = _cell(row, cols, field)
        if value and _date(value) is None:
            return f"{field}: {value!r} is not a date (ISO 8601, such as 2026-11-30T09:00:00+00:00; or leave it empty)"
    value = row.get("status", "")
    if fmt.name == "digest" and value not in STATUSES:
        return f"status: {value!r} is not a status ({', '.join(sorted(STATUSES))})"
    return ""


EXPORT_FIELDS = (
    "email", "name", "status", "language", "tags", "format", "origin", "consent_at", "consent_method",
    "consent_source", "created_at", "paused_until",
)  # fmt: skip


def record_dict(record: SubscriberRecord) -> dict[str, Any]:
    def when(moment: datetime | None) -> str:
        return moment.isoformat() if moment else ""

    return {
        "email": record.email,
        "name": record.name,
        "status": record.status.value,
        "language": record.language,
        "tags": list(record.tags),
        "format": record.format,
        "origin": record.origin,
        "consent_at": when(record.consent_at),
        "consent_method": record.consent_method,
        "consent_source": record.consent_source,
        "created_at": when(record.created_at),
        "paused_until": when(record.paused_until),
    }


def write_export(records: Iterable[SubscriberRecord], out: IO[str], kind: str) -> int:
    """Stream the records as CSV (tags joined with ", ") or as a JSON array; how many were written."""
    count = 0
    if kind == "csv":
        writer = csv.DictWriter(out, fieldnames=EXPORT_FIELDS, lineterminator="\n")
        writer.writeheader()
        for record in records:
            row = record_dict(record)
            writer.writerow(row | {"tags": ", ".join(row["tags"])})
            count += 1
        return count
    out.write("[")
    for record in records:
        out.write(("\n  " if not count else ",\n  ") + json.dumps(record_dict(record), ensure_ascii=False))
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count
