"""Subscribers in and out as CSV (and JSON out): the exports of Mailchimp, Substack, Buttondown, listmonk and
Ghost are recognised by their headers; anything else is read through a column mapping.

Each format says in its own way whether a person consented and whether they left; that decides their
status here (see Roster.apply_import), so nobody is mailed who did not ask for it.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from digest.config import normalise_address
from digest.errors import ConfigError
from digest.models import ImportRow, Problem, SubscriberRecord

TRUE = {"1", "true", "yes", "y", "t", "subscribed", "opted in", "confirmed", "enabled", "on"}
LEFT = ("unsubscribed", "cleaned", "bounced", "complained", "blocklisted")
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
    kind = row.get("subscriber_type", "").lower()
    if kind in ("unsubscribed", "removed", "spammy"):
        return "unsubscribed" if kind != "spammy" else "complained"
    return "unactivated" if kind == "unactivated" else "subscribed"


FORMATS: tuple[Format, ...] = (
    Format(
        "mailchimp",
        lambda h: "email address" in h and bool({"member_rating", "optin_time", "confirm_time"} & h),
        {
            "email": "email address",
            "first_name": "first name",
            "last_name": "last name",
            "tags": "tags",
            "consent_at": "confirm_time",
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
        lambda h: "email" in h and "subscriber_type" in h,
        {"email": "email", "tags": "tags", "consent_at": "creation_date"},
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
        if not sep or ours not in MAP_KEYS or not theirs.strip():
            raise ConfigError(f"--map {part!r} is not FIELD=COLUMN", "fields: " + ", ".join(MAP_KEYS), source="--map")
        found[ours] = theirs.strip().lower()
    if "email" not in found:
        raise ConfigError("--map needs email=COLUMN", "name the column holding the addresses", source="--map")
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


def read_csv(path: Path, mapping: Mapping[str, str] | None = None) -> tuple[str, list[ImportRow], list[Problem]]:
    """(format name, rows, invalid lines) of one CSV export; ConfigError when it cannot be read at all."""
    source = str(path)
    try:
        text = path.read_text("utf-8-sig")
    except OSError as exc:
        raise ConfigError(f"cannot read the file: {exc.strerror}", "check the path", source=source) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError("the file is not UTF-8", "export it again as UTF-8 CSV", source=source) from exc
    try:
        dialect: Any = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    header = [h.strip().lower() for h in next(reader, [])]
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
                "the columns match no known export (Mailchimp, Substack, Buttondown, listmonk, Ghost)",
                "give --map email=COLUMN[,name=COLUMN,consent=COLUMN,tags=COLUMN]",
                source=source,
                line=1,
            )
        fmt = found
    rows: list[ImportRow] = []
    problems: list[Problem] = []
    for number, values in enumerate(reader, start=2):
        if not any(v.strip() for v in values):
            continue
        row = {header[i]: v.strip() for i, v in enumerate(values) if i < len(header)}
        cols = fmt.columns
        raw = row.get(cols["email"], "")
        try:
            address = normalise_address(raw)
        except ValueError as exc:
            problems.append(Problem(source, f"{raw!r} {exc}" if raw else "no address", number))
            continue
        name = row.get(cols.get("name", ""), "")
        if not name and ("first_name" in cols or "last_name" in cols):
            name = " ".join(
                p for p in (row.get(cols.get("first_name", ""), ""), row.get(cols.get("last_name", ""), "")) if p
            )
        rows.append(
            ImportRow(
                line=number,
                email=address,
                name=" ".join(name.split()),
                tags=_tags(row.get(cols.get("tags", ""), "")),
                consented=fmt.consent(row),
                consent_at=_date(row.get(cols.get("consent_at", ""), "")),
                status=fmt.status(row),
                language=row.get(cols.get("language", ""), ""),
            )
        )
    return fmt.name, rows, problems


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
