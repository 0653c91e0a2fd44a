"""Settings, loaded once: the digest config file (TOML), the site's own config (Jekyll or Hugo)
and DIGEST_* environment variables for secrets; validated here and passed to every stage."""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from digest.errors import ConfigError
from digest.models import Site
from digest.siteconfig import read_site_config

CONFIG_NAME = "digest.toml"
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
SECRET_ENV = "DIGEST_SECRET"  # HMAC key for unsubscribe tokens
DATABASE_ENV = "DIGEST_DATABASE_URL"


@dataclass(frozen=True)
class OutputSettings:
    dir: Path  # where preview/publish write html, eml, feeds, archive
    url: str  # public URL of that folder (absolute, ends with "/"): archive pages and feeds live there
    feed_issues: int = 10  # issues kept in the feeds and the archive index
    templates: Path | None = None  # user's template folder; a file there wins by name
    max_html_bytes: int = 102_000  # Gmail clips larger messages: render summaries instead


@dataclass(frozen=True)
class EmailSettings:
    sender: str = "Digest <digest@localhost>"  # From
    reply_to: str = ""
    subject: str = "{{ site.title }}: {{ week.label }}"  # a Jinja2 template
    list_id: str = ""  # List-Id; defaults to the base URL's host
    unsubscribe_mailto: str = ""  # mailto address for List-Unsubscribe; defaults to From
    public_url: str = ""  # where `digest serve` is reachable: enables one-click unsubscribe
    empty_week: str = "skip"  # "skip" or "note"
    dkim_key: Path | None = None
    dkim_selector: str = ""
    dkim_domain: str = ""


@dataclass(frozen=True)
class SmtpSettings:
    host: str = ""  # empty: deliver to the Maildir outbox
    port: int = 587
    mode: str = "starttls"  # starttls | ssl | plain
    username: str = ""
    password: str = field(default="", repr=False)  # only ever from the environment
    password_env: str = "DIGEST_SMTP_PASSWORD"
    verify: bool = True  # verify the server's certificate
    timeout: float = 30.0
    allow_plain: bool = False  # plain (no TLS) to a host other than localhost
    connections: int = 4
    rate_per_second: float = 0.0  # 0 = unlimited
    rate_per_hour: int = 0
    max_attempts: int = 5  # for deferred (4xx) messages
    retry_base_seconds: float = 60.0  # back-off: base * 2**(attempts-1)
    error_budget: int = 50  # stop after this many consecutive failures


@dataclass(frozen=True)
class ScheduleSettings:
    day: str = "monday"
    time: str = "09:00"
    misfire_grace_hours: float = 24.0
    catch_up: bool = False  # True: one send per missed week instead of one in all


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080


@dataclass(frozen=True)
class Settings:
    site: Site
    output: OutputSettings
    email: EmailSettings = EmailSettings()
    smtp: SmtpSettings = SmtpSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    server: ServerSettings = ServerSettings()
    subscribers: Path | None = None
    outbox: Path = Path("outbox")  # Maildir used while smtp.host is empty
    state_dir: Path = Path(".digest")
    database_url: str = ""  # SQLAlchemy URL; default SQLite in state_dir
    secret: str = field(default="", repr=False)
    config_file: Path | None = None
    site_config_file: Path | None = None

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.state_dir / 'digest.sqlite3'}"


# ---------------------------------------------------------------------------------------------
# The schema of digest.toml: section -> key -> (kind, default). Kinds convert and validate.

Converter = Callable[[Any], Any]


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError("a string")
    return v


def _int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ValueError("a whole number ≥ 0")
    return v


def _pos_int(v: Any) -> int:
    if _int(v) < 1:
        raise ValueError("a whole number ≥ 1")
    return int(v)


def _float(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
        raise ValueError("a number ≥ 0")
    return float(v)


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError("true or false")
    return v


def _str_list(v: Any) -> tuple[str, ...]:
    if isinstance(v, str):
        return (v,)
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ValueError("a string or a list of strings")
    return tuple(v)


def _choice(*allowed: str) -> Converter:
    def convert(v: Any) -> str:
        if not isinstance(v, str) or v.lower() not in allowed:
            raise ValueError("one of " + ", ".join(allowed))
        return v.lower()

    return convert


def _timezone(v: Any) -> str:
    try:
        ZoneInfo(_str(v))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError("an IANA timezone name such as Asia/Seoul or UTC") from exc
    return str(v)


def _hour(v: Any) -> int:
    if _int(v) > 23:
        raise ValueError("an hour from 0 to 23")
    return int(v)


def _hhmm(v: Any) -> str:
    if not isinstance(v, str) or not re.fullmatch(r"([01]?\d|2[0-3]):[0-5]\d", v):
        raise ValueError('a time "HH:MM" such as "09:00"')
    return v


def _url(v: Any) -> str:
    if not isinstance(v, str) or (v and not re.match(r"https?://[^/\s]+", v)):
        raise ValueError('an absolute http(s) URL such as "https://example.com/"')
    return v


SCHEMA: dict[str, dict[str, tuple[Converter, Any]]] = {
    "site": {
        "root": (_str, ""),
        "title": (_str, ""),
        "url": (_url, ""),
        "source": (_str_list, ()),
        "timezone": (_timezone, ""),
        "week_start": (_choice(*WEEKDAYS), "monday"),
        "week_start_hour": (_hour, 0),
        "permalink": (_str, ""),
        "ignore": (_str_list, ()),
        "description": (_str, ""),
        "language": (_str, ""),
        "author": (_str, ""),
    },
    "output": {
        "dir": (_str, "_digest"),
        "url": (_url, ""),
        "feed_issues": (_pos_int, 10),
        "templates": (_str, ""),
        "max_html_kb": (_pos_int, 102),
    },
    "email": {
        "from": (_str, ""),
        "reply_to": (_str, ""),
        "subject": (_str, EmailSettings.subject),
        "list_id": (_str, ""),
        "unsubscribe_mailto": (_str, ""),
        "public_url": (_url, ""),
        "empty_week": (_choice("skip", "note"), "skip"),
        "dkim_key": (_str, ""),
        "dkim_selector": (_str, ""),
        "dkim_domain": (_str, ""),
    },
    "smtp": {
        "host": (_str, ""),
        "port": (_pos_int, 587),
        "mode": (_choice("starttls", "ssl", "plain"), "starttls"),
        "username": (_str, ""),
        "password_env": (_str, "DIGEST_SMTP_PASSWORD"),
        "verify": (_bool, True),
        "timeout": (_float, 30.0),
        "allow_plain": (_bool, False),
        "connections": (_pos_int, 4),
        "rate_per_second": (_float, 0.0),
        "rate_per_hour": (_int, 0),
        "max_attempts": (_pos_int, 5),
        "retry_base_seconds": (_float, 60.0),
        "error_budget": (_pos_int, 50),
    },
    "subscribers": {"file": (_str, "")},
    "outbox": {"maildir": (_str, "")},
    "state": {"dir": (_str, ".digest"), "database": (_str, "")},
    "schedule": {
        "day": (_choice(*WEEKDAYS), "monday"),
        "time": (_hhmm, "09:00"),
        "misfire_grace_hours": (_float, 24.0),
        "catch_up": (_bool, False),
    },
    "server": {"host": (_str, "127.0.0.1"), "port": (_pos_int, 8080)},
}


def _did_you_mean(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"did you mean '{close[0]}'?" if close else "allowed: " + ", ".join(sorted(choices))


def _line_of(text: str, key: str) -> int | None:
    pattern = re.compile(rf"^\s*(\[\s*)?{re.escape(key)}\s*(=|\])", re.M)
    m = pattern.search(text)
    return text.count("\n", 0, m.start()) + 1 if m else None


def _read_digest_toml(path: Path) -> dict[str, dict[str, Any]]:
    """Parse and validate digest.toml into {section: {key: converted value}} (defaults filled)."""
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the config file: {exc.strerror}", source=str(path)) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError("the config file is not UTF-8", "save it as UTF-8", source=str(path)) from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise ConfigError(
            f"not valid TOML: {exc}", "see https://toml.io", source=str(path), line=int(m.group(1)) if m else None
        ) from exc
    return validate(raw, source=str(path), text=text)


def validate(raw: Mapping[str, Any], *, source: str, text: str = "") -> dict[str, dict[str, Any]]:
    values: dict[str, dict[str, Any]] = {s: {} for s in SCHEMA}
    for section, table in raw.items():
        if section not in SCHEMA:
            raise ConfigError(
                f"unknown section [{section}]",
                _did_you_mean(section, SCHEMA),
                source=source,
                line=_line_of(text, section),
            )
        if not isinstance(table, dict):
            raise ConfigError(f"[{section}] must be a table", source=source, line=_line_of(text, section))
        for key, value in table.items():
            if key not in SCHEMA[section]:
                raise ConfigError(
                    f"unknown key '{key}' in [{section}]",
                    _did_you_mean(key, SCHEMA[section]),
                    source=source,
                    line=_line_of(text, key),
                )
            convert, _ = SCHEMA[section][key]
            try:
                values[section][key] = convert(value)
            except ValueError as exc:
                raise ConfigError(
                    f"{section}.{key} = {value!r} is not allowed",
                    f"it must be {exc}",
                    source=source,
                    line=_line_of(text, key),
                ) from exc
    return values


def _get(values: dict[str, dict[str, Any]], section: str, key: str) -> Any:
    return values[section].get(key, SCHEMA[section][key][1])


def _given(values: dict[str, dict[str, Any]], section: str, key: str) -> bool:
    return key in values[section]


# ---------------------------------------------------------------------------------------------


def find_config(config: Path | None, site: Path | None, cwd: Path) -> tuple[Path | None, Path]:
    """Return (digest config file or None, site folder) from --config / --site / the current folder."""
    if config is not None:
        if not config.is_file():
            raise ConfigError("config file not found", "check the path given to --config", source=str(config))
        return config, (site or config.parent)
    folder = site or cwd
    if not folder.is_dir():
        raise ConfigError("site folder not found", "check the path given to --site", source=str(folder))
    candidate = folder / CONFIG_NAME
    return (candidate if candidate.is_file() else None), folder


def load_settings(
    config: Path | None = None,
    site: Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    env = os.environ if env is None else env
    cwd = cwd or Path.cwd()
    config_file, folder = find_config(config, site, cwd)
    values = _read_digest_toml(config_file) if config_file else validate({}, source="")
    base = config_file.parent.resolve() if config_file else folder.resolve()

    def path(value: str, default: str | None = None) -> Path | None:
        value = value or (default or "")
        if not value:
            return None
        p = Path(value).expanduser()
        return p if p.is_absolute() else base / p

    root = path(_get(values, "site", "root")) if _given(values, "site", "root") and site is None else folder.resolve()
    assert root is not None
    if not root.is_dir():
        raise ConfigError("site folder not found", "fix site.root", source=str(config_file or root))
    defaults = read_site_config(root)
    source_label = str(config_file or defaults.file or root)

    def pick(key: str, site_value: Any, fallback: Any) -> Any:
        if _given(values, "site", key):
            return _get(values, "site", key)
        return site_value or fallback

    timezone = pick("timezone", defaults.timezone, "UTC")
    try:
        _timezone(timezone)
    except ValueError as exc:
        raise ConfigError(f"timezone {timezone!r} is unknown", f"it must be {exc}", source=source_label) from exc
    sources = pick("source", defaults.source, ("posts",) if (root / "posts").is_dir() else (".",))
    source_dirs = tuple((root / s).resolve() for s in sources)
    for d in source_dirs:
        if not d.is_dir():
            raise ConfigError(f"source folder {d.name!r} not found", "fix site.source", source=source_label)
    url = pick("url", defaults.url, "http://localhost:8080/")
    site_model = Site(
        title=pick("title", defaults.title, root.name),
        base_url=url.rstrip("/") + "/",
        root=root,
        source_dirs=source_dirs,
        timezone=timezone,
        permalink=pick("permalink", defaults.permalink, "/:year/:month/:day/:title/"),
        week_start_day=WEEKDAYS.index(_get(values, "site", "week_start")),
        week_start_hour=_get(values, "site", "week_start_hour"),
        ignore=tuple(defaults.ignore) + tuple(_get(values, "site", "ignore")),
        description=pick("description", defaults.description, ""),
        language=pick("language", defaults.language, "en"),
        author=pick("author", defaults.author, ""),
    )
    for pattern in site_model.ignore:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(
                f"ignore pattern {pattern!r} is not a regular expression: {exc}", source=source_label
            ) from exc

    out_dir = path(_get(values, "output", "dir"))
    assert out_dir is not None
    state_dir = path(_get(values, "state", "dir"))
    assert state_dir is not None
    smtp_values = {k: _get(values, "smtp", k) for k in SCHEMA["smtp"]}
    smtp = SmtpSettings(**smtp_values, password=env.get(smtp_values["password_env"], ""))
    if (
        smtp.host
        and smtp.mode == "plain"
        and not smtp.allow_plain
        and smtp.host not in ("localhost", "127.0.0.1", "::1")
    ):
        raise ConfigError(
            f"smtp.mode = 'plain' sends the password and mail unencrypted to {smtp.host}",
            "use starttls or ssl, or set smtp.allow_plain = true",
            source=source_label,
        )
    email_values = {k: _get(values, "email", k) for k in SCHEMA["email"]}
    host = re.sub(r"^https?://([^/:]+).*$", r"\1", site_model.base_url)
    email = EmailSettings(
        sender=email_values["from"] or f"{site_model.title} <digest@{host}>",
        reply_to=email_values["reply_to"],
        subject=email_values["subject"],
        list_id=email_values["list_id"] or f"digest.{host}",
        unsubscribe_mailto=email_values["unsubscribe_mailto"],
        public_url=email_values["public_url"],
        empty_week=email_values["empty_week"],
        dkim_key=path(email_values["dkim_key"]),
        dkim_selector=email_values["dkim_selector"],
        dkim_domain=email_values["dkim_domain"] or _domain_of(email_values["from"]) or host,
    )
    subscribers_file = path(_get(values, "subscribers", "file"))
    if subscribers_file is None and (base / "subscribers.yaml").is_file():
        subscribers_file = base / "subscribers.yaml"
    outbox = path(_get(values, "outbox", "maildir")) or out_dir / "outbox"
    return Settings(
        site=site_model,
        output=OutputSettings(
            dir=out_dir,
            url=(_get(values, "output", "url") or site_model.base_url + "newsletter/").rstrip("/") + "/",
            feed_issues=_get(values, "output", "feed_issues"),
            templates=path(_get(values, "output", "templates")),
            max_html_bytes=_get(values, "output", "max_html_kb") * 1000,
        ),
        email=email,
        smtp=smtp,
        schedule=ScheduleSettings(**{k: _get(values, "schedule", k) for k in SCHEMA["schedule"]}),
        server=ServerSettings(**{k: _get(values, "server", k) for k in SCHEMA["server"]}),
        subscribers=subscribers_file,
        outbox=outbox,
        state_dir=state_dir,
        database_url=env.get(DATABASE_ENV) or _get(values, "state", "database"),
        secret=env.get(SECRET_ENV, ""),
        config_file=config_file,
        site_config_file=defaults.file,
    )


def _domain_of(address: str) -> str:
    from email.utils import parseaddr

    return parseaddr(address)[1].rpartition("@")[2]


def with_overrides(settings: Settings, **site_changes: Any) -> Settings:
    """A copy with some Site fields changed (used by tests and --timezone style options)."""
    return replace(settings, site=replace(settings.site, **site_changes))
