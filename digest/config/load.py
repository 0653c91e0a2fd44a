"""Loading the settings once: digest.toml (TOML), the site's own config (Jekyll, Hugo) and DIGEST_*
environment variables for secrets, one function per section, every check made here."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from digest.errors import ConfigError
from digest.models import Site

from . import checks
from .folders import default_state_dir, earlier_state, owner_of
from .schema import WEEKDAYS, line_of, to_timezone, toml_fields, validate
from .settings import (
    MOVED,
    SECTIONS,
    BouncesSettings,
    DeliveryPolicy,
    DoctorSettings,
    EmailSettings,
    OutputSettings,
    ScheduleSettings,
    ServerSettings,
    SesSettings,
    Settings,
    SiteSection,
    SmtpSettings,
    SubscribeSettings,
)
from .sites import SiteDefaults, key_line, read_site_config

CONFIG_NAME = "digest.toml"
SECRET_ENV = "DIGEST_SECRET"  # HMAC key for signed links (unsubscribe, …)
OLD_SECRETS_ENV = "DIGEST_SECRET_OLD"  # retired keys, comma-separated: links they signed still verify
DATABASE_ENV = "DIGEST_DATABASE_URL"
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")

Values = dict[str, dict[str, Any]]


def read_toml(path: Path) -> tuple[str, dict[str, Any]]:
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the config file: {exc.strerror}", source=str(path)) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError("the config file is not UTF-8", "save it as UTF-8", source=str(path)) from exc
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise ConfigError(
            f"not valid TOML: {exc}", "see https://toml.io", source=str(path), line=int(m.group(1)) if m else None
        ) from exc


_KEY_MENTION = re.compile(r"\b([a-z]+)\.([a-z_0-9]+)\b")


def locate(exc: ConfigError, text: str, raw: Mapping[str, Any], source: str) -> ConfigError:
    """Give an error about digest.toml found after its keys were read (an address, a folder, a template)
    the line of the key it names (`email.from`, "fix site.source"), as the schema's own errors have."""
    if exc.line is not None or not source or exc.source != source:
        return exc
    for section, key in _KEY_MENTION.findall(f"{exc.message} {exc.hint}"):
        table = raw.get(section)
        owner = MOVED.get(f"{section}.{key}", section)
        if isinstance(table, dict) and key in table and key in toml_fields(SECTIONS.get(owner, object)):
            exc.line = line_of(text, key, section)
            break
    return exc


def line_in_config(path: Path | None, section: str, key: str) -> int | None:
    """The line of [section] key in a digest.toml (None when it is not written there), for an error found
    by a later stage (an unknown transport)."""
    if path is None:
        return None
    try:
        text, raw = read_toml(path)
    except ConfigError:
        return None
    table = raw.get(section)
    return line_of(text, key, section) if isinstance(table, dict) and key in table else None


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


class _Paths:
    """Relative paths in digest.toml are relative to the file (or the site folder without one)."""

    def __init__(self, base: Path):
        self.base = base

    def __call__(self, value: str | Path | None) -> Path | None:
        if value is None or value == "":
            return None
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.base / p


def load_settings(
    config: Path | None = None,
    site: Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    env = os.environ if env is None else env
    config_file, folder = find_config(config, site, cwd or Path.cwd())
    text, raw = read_toml(config_file) if config_file else ("", {})
    source = str(config_file or "")
    values = validate(raw, SECTIONS, source=source, text=text, aliases=MOVED)
    notices = tuple(
        f"{source}: [{section}] {key} is now [{MOVED[f'{section}.{key}']}] {key}; the old place still works"
        for section, table in raw.items()
        if isinstance(table, dict)
        for key in table
        if f"{section}.{key}" in MOVED
    )
    try:
        return _settings(values, config_file, folder, site is not None, env, notices)
    except ConfigError as exc:
        raise locate(exc, text, raw, source) from exc.__cause__


def _settings(
    values: Values,
    config_file: Path | None,
    folder: Path,
    site_flag: bool,
    env: Mapping[str, str],
    notices: tuple[str, ...],
) -> Settings:
    source = str(config_file or "")
    paths = _Paths(config_file.parent.resolve() if config_file else folder.resolve())
    site_model, defaults = _site(values["site"], folder.resolve(), site_flag, paths, source)
    notices += defaults.notices
    label = source or str(defaults.file or site_model.root)
    output = _output(values["output"], site_model, paths, label)
    email = _email(values["email"], site_model, paths, env, label)
    state = values["state"]
    state_dir = paths(state.get("dir")) or default_state_dir(paths.base, output.url, site_model.root, env)
    outbox = paths(values["outbox"].get("maildir")) or state_dir / "outbox"
    old_outbox = output.dir / "outbox"
    if outbox != old_outbox and (old_outbox / "new").is_dir():
        notices += (
            f"{old_outbox} is an outbox of an older digest inside the published output folder; new mail goes "
            f"to {outbox}: move or delete the old one",
        )
    subscribers_file = paths(values["subscribers"].get("file"))
    if subscribers_file is None and (paths.base / "subscribers.yaml").is_file():
        subscribers_file = paths.base / "subscribers.yaml"
    database_url = env.get(DATABASE_ENV) or state.get("database", "")
    checks.database_url(database_url, label)
    if not state.get("dir") and not database_url and state_dir.parent.name == "digest":
        found = earlier_state(state_dir, owner_of(config_file, site_model.root))
        where = str(config_file) if config_file else f"a digest.toml in {paths.base}"
        if found is not None and found[1]:
            raise ConfigError(
                f"{label}: the ledger, subscribers and unsubscribes of this newsletter are in {found[0]}, the state "
                f'folder of its earlier URL, and output.url is now {output.url}: set [state] dir = "{found[0]}" '
                f"in {where} to keep them (or move that folder away to start a new list)"
            )
        if found is not None:
            raise ConfigError(
                f"{label}: this newsletter has no state folder yet ({state_dir}), and {found[0]} holds the ledger of "
                "an older digest that does not say which newsletter it keeps: if it is this one's (its URL is now "
                f'{output.url}), set [state] dir = "{found[0]}" in {where} to keep its subscribers and '
                "unsubscribes; if it is another newsletter's, run any digest command of that one once (it marks "
                "the folder as its own), or move the folder away"
            )
    checks.folder_is_not_a_file(output.dir, "output.dir", label)
    checks.folder_is_not_a_file(state_dir, "state.dir", label)
    return Settings(
        site=site_model,
        output=output,
        email=email,
        smtp=_smtp(values["smtp"], env, label),
        ses=SesSettings(**values["ses"]),
        delivery=DeliveryPolicy(**values["delivery"]),
        schedule=ScheduleSettings(**values["schedule"]),
        server=ServerSettings(**values["server"]),
        doctor=DoctorSettings(**values["doctor"]),
        subscribers=subscribers_file,
        outbox=outbox,
        state_dir=state_dir,
        database_url=database_url,
        secret=checks.secret(env.get(SECRET_ENV, ""), SECRET_ENV),
        old_secrets=tuple(
            checks.secret(old.strip(), OLD_SECRETS_ENV)
            for old in env.get(OLD_SECRETS_ENV, "").split(",")
            if old.strip()
        ),
        # resolved: the caches key on the settings, and `--config digest.toml` in the site folder is the
        # same config as the full path a cron job gives
        config_file=config_file.resolve() if config_file else None,
        site_config_file=defaults.file,
        notices=notices,
        subscribe=_subscribe(values["subscribe"], env, label),
        bounces=_bounces(values["bounces"], paths, env, label),
    )


def _site(
    given: dict[str, Any], folder: Path, site_flag: bool, paths: _Paths, source: str
) -> tuple[Site, SiteDefaults]:
    section = SiteSection(**given)
    root = paths(section.root) if section.root and not site_flag else folder
    assert root is not None
    if not root.is_dir():
        raise ConfigError("site folder not found", "fix site.root", source=source or str(root))
    defaults = read_site_config(root)
    label = source or str(defaults.file or root)

    def pick(key: str, site_value: Any, fallback: Any) -> Any:
        return given.get(key, site_value or fallback)

    timezone = pick("timezone", defaults.timezone, "UTC")
    try:
        to_timezone(timezone)
    except ValueError as exc:  # digest.toml's own timezone was checked with its keys: this one is the site's
        raise ConfigError(
            f"timezone {timezone!r} is unknown",
            f"it must be {exc}",
            source=str(defaults.file or label),
            line=key_line(defaults.file, "TIMEZONE" if defaults.kind == "pelican" else "timezone"),
        ) from exc
    if defaults.kind == "jekyll" and not defaults.source and "source" not in given:
        raise ConfigError(
            "no _posts folder in the site", "write posts in _posts/ (at any depth) or set site.source", source=label
        )
    sources = pick("source", defaults.source, ("posts",) if (root / "posts").is_dir() else (".",))
    source_dirs = tuple((root / s).resolve() for s in sources)
    for d in source_dirs:
        if not d.is_dir():
            raise ConfigError(f"source folder {d.name!r} not found", "fix site.source", source=label)
    url = pick("url", defaults.url, "http://localhost:8080/")
    ignore = tuple(defaults.ignore) + section.ignore
    for pattern in ignore:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"ignore pattern {pattern!r} is not a regular expression: {exc}", source=label) from exc
    site = Site(
        title=pick("title", defaults.title, root.name),
        base_url=url.rstrip("/") + "/",
        root=root,
        source_dirs=source_dirs,
        timezone=timezone,
        permalink=pick("permalink", defaults.permalink, "/:year/:month/:day/:title/"),
        week_start_day=WEEKDAYS.index(section.week_start),
        week_start_hour=section.week_start_hour,
        ignore=ignore,
        description=pick("description", defaults.description, ""),
        language=pick("language", defaults.language, "en"),
        author=pick("author", defaults.author, ""),
        generator=defaults.generator,
    )
    return site, defaults


def _host(site: Site) -> str:
    return re.sub(r"^https?://([^/:]+).*$", r"\1", site.base_url)


def _output(given: dict[str, Any], site: Site, paths: _Paths, source: str) -> OutputSettings:
    output = OutputSettings(**given)
    templates = paths(output.templates)
    checks.template_folder(templates, source)
    out_dir = paths(output.dir)
    assert out_dir is not None
    return replace(
        output,
        dir=out_dir,
        url=(output.url or site.base_url + "newsletter/").rstrip("/") + "/",
        templates=templates,
    )


DEFAULT_SUBJECT = next(f.default for f in fields(EmailSettings) if f.name == "subject")


def _email(given: dict[str, Any], site: Site, paths: _Paths, env: Mapping[str, str], source: str) -> EmailSettings:
    email = EmailSettings(**given)
    host = _host(site)
    sender = email.sender or f"{site.title} <digest@{host}>"
    _, from_address = checks.single_address(sender, "from", source)
    if email.reply_to:
        checks.single_address(email.reply_to, "reply_to", source)
    checks.mailto(email.unsubscribe_mailto, from_address, source)
    checks.header_value(email.public_url, "public_url", source)
    if email.subject != DEFAULT_SUBJECT:  # the built-in one parses; checking it would import Jinja2 at every start
        checks.subject_template(email.subject, source)
    email = replace(
        email,
        sender=sender,
        list_id=checks.list_id(email.list_id or f"digest.{host}", source),
        dkim_key=paths(email.dkim_key),
        dkim_ed25519_key=paths(email.dkim_ed25519_key),
        dkim_domain=email.dkim_domain or checks.domain_of(email.sender) or host,
    )
    checks.dkim_key(email.dkim_key, email.dkim_selector, email.dkim_domain, source)
    if email.dkim_ed25519_key is not None:
        if email.dkim_key is None:
            raise ConfigError(
                "email.dkim_ed25519_key is a second signature next to the RSA one",
                "set email.dkim_key too: many receivers do not check Ed25519 signatures yet",
                source=source,
            )
        checks.dkim_key(email.dkim_ed25519_key, email.dkim_ed25519_selector, email.dkim_domain, source, "ed25519")
    if email.public_url and not env.get(SECRET_ENV):
        raise ConfigError(
            "one-click unsubscribe (email.public_url) needs a secret to sign the links",
            f"set the {SECRET_ENV} environment variable to a long random string",
            source=source,
        )
    return email


def _smtp(given: dict[str, Any], env: Mapping[str, str], source: str) -> SmtpSettings:
    smtp = SmtpSettings(**given)
    smtp = replace(smtp, password=env.get(smtp.password_env, ""))
    if smtp.host and smtp.mode == "plain" and not smtp.allow_plain and smtp.host not in LOCAL_HOSTS:
        raise ConfigError(
            f"smtp.mode = 'plain' sends the password and mail unencrypted to {smtp.host}",
            "use starttls or ssl, or set smtp.allow_plain = true",
            source=source,
        )
    return smtp


def _subscribe(given: dict[str, Any], env: Mapping[str, str], source: str) -> SubscribeSettings:
    section = SubscribeSettings(**given)
    secret = env.get(section.captcha_secret_env, "")
    if section.captcha and not secret:
        raise ConfigError(
            f"subscribe.captcha = {section.captcha!r} needs the provider's secret key",
            f"set the {section.captcha_secret_env} environment variable",
            source=source,
        )
    return replace(section, captcha_secret=secret)


def _bounces(given: dict[str, Any], paths: _Paths, env: Mapping[str, str], source: str) -> BouncesSettings:
    section = BouncesSettings(**given)
    if section.return_path:
        checks.single_address(section.return_path, "return_path", source, section="bounces")
    if section.imap_host and section.maildir:
        raise ConfigError(
            "[bounces] has both imap_host and maildir", "keep the one the bounces arrive in", source=source
        )
    if section.imap_host and not section.imap_user:
        raise ConfigError("bounces.imap_host needs bounces.imap_user", "set the mailbox's login", source=source)
    return replace(section, maildir=paths(section.maildir), imap_password=env.get(section.imap_password_env, ""))


def with_overrides(settings: Settings, **site_changes: Any) -> Settings:
    """A copy with some Site fields changed (used by tests)."""
    return replace(settings, site=replace(settings.site, **site_changes))
