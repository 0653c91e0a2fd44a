"""The settings every stage receives: one frozen dataclass per digest.toml section, each key's default
written once, on its field (see schema.option)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from digest.models import Site

from .folders import DATABASE_FILE
from .schema import (
    WEEKDAYS,
    choice,
    option,
    to_auto_count,
    to_bool,
    to_domain_rates,
    to_feed_issues,
    to_float,
    to_hhmm,
    to_hour,
    to_int,
    to_ip_list,
    to_language,
    to_permalink,
    to_port,
    to_pos_float,
    to_pos_int,
    to_str,
    to_str_list,
    to_switch,
    to_timezone,
    to_url,
    toml_fields,
)


@dataclass(frozen=True)
class SiteSection:
    """[site] as written; an empty value means "what the site's own config says" (see load.py)."""

    root: str = option("", to_str)
    title: str = option("", to_str)
    url: str = option("", to_url)
    source: tuple[str, ...] = option((), to_str_list)
    timezone: str = option("", to_timezone)
    week_start: str = option("monday", choice(*WEEKDAYS))
    week_start_hour: int = option(0, to_hour)
    permalink: str = option("", to_permalink)
    ignore: tuple[str, ...] = option((), to_str_list)
    description: str = option("", to_str)
    language: str = option("", to_language)
    author: str = option("", to_str)


@dataclass(frozen=True)
class OutputSettings:
    dir: Path = option(Path("_digest"), to_str)  # where preview/publish write html, eml, feeds, archive
    # public URL of that folder (absolute, ends with "/"); "" until load fills in <site.url>newsletter/
    url: str = option("", to_url)
    feed_issues: int = option(10, to_feed_issues)  # issues kept in the feeds and the archive index
    templates: Path | None = option(None, to_str)  # user's template folder; a file there wins by name
    # Gmail clips larger messages: render summaries instead (written in KB, kept in bytes)
    max_html_bytes: int = option(102_000, lambda v: to_pos_int(v) * 1000, key="max_html_kb")
    tag_feeds: bool = option(False, to_bool)  # also write tags/<tag>/atom.xml … for every tag
    # not a config key: the output URL the feeds' entry ids were first made from, kept in the state database
    # (pipeline.state.with_first_url); "" = `url`
    feed_id_url: str = ""


@dataclass(frozen=True)
class EmailSettings:
    sender: str = option("", to_str, key="from")  # From; "" until load fills in "<title> <digest@host>"
    reply_to: str = option("", to_str)
    subject: str = option("{{ site.title }}: {{ week.label }}", to_str)  # a Jinja2 template
    list_id: str = option("", to_str)  # List-Id; load fills in digest.<host>
    unsubscribe_mailto: str = option("", to_str)  # mailto address for List-Unsubscribe; "" = From
    public_url: str = option("", to_url)  # where `digest serve` is reachable: enables one-click unsubscribe
    empty_week: str = option("skip", choice("skip", "note"))
    dkim_key: Path | None = option(None, to_str)
    dkim_selector: str = option("", to_str)
    dkim_domain: str = option("", to_str)  # load fills in the From domain
    dkim_ed25519_key: Path | None = option(None, to_str)  # a second signature (RFC 8463) next to RSA's
    dkim_ed25519_selector: str = option("", to_str)


@dataclass(frozen=True)
class SesSettings:
    """[ses]: Amazon SES as the transport (the v2 API; credentials from the usual AWS environment/profile)."""

    region: str = option("", to_str)  # e.g. "eu-west-1"; set = SES is chosen by delivery.transport = "auto"
    endpoint_url: str = option("", to_url)  # another endpoint (a VPC endpoint, a local test server)
    configuration_set: str = option("", to_str)  # SES configuration set (event publishing to SNS)


@dataclass(frozen=True)
class SmtpSettings:
    host: str = option("", to_str)  # empty: deliver to the Maildir outbox
    port: int = option(587, to_pos_int)
    mode: str = option("starttls", choice("starttls", "ssl", "plain"))
    username: str = option("", to_str)
    password: str = field(default="", repr=False, metadata={"toml": False})  # only ever from the environment
    password_env: str = option("DIGEST_SMTP_PASSWORD", to_str)
    verify: bool = option(True, to_bool)  # verify the server's certificate
    timeout: float = option(30.0, to_float)
    allow_plain: bool = option(False, to_bool)  # plain (no TLS) to a host other than localhost


@dataclass(frozen=True)
class DeliveryPolicy:
    """[delivery]: how hard and how fast any transport is driven, and how failures are retried."""

    # a name from the transport registry; auto: SMTP if smtp.host is set, else SES if ses.region, else Maildir
    transport: str = option("auto", to_str)
    connections: int = option(4, to_pos_int)
    rate_per_second: float = option(0.0, to_float)  # 0 = unlimited
    rate_per_hour: int = option(0, to_int)
    max_attempts: int = option(5, to_pos_int)  # for deferred (4xx) messages
    retry_base_seconds: float = option(60.0, to_float)  # back-off: base * 2**(attempts-1)
    error_budget: int = option(50, to_pos_int)  # stop after this many consecutive failures
    # a claim of a sender that stops renewing it (its machine died) comes back to the others after this long
    lease_seconds: float = option(600.0, to_pos_float)
    # per recipient domain, on top of the limits above: {"gmail.com" = 20, "outlook.com, hotmail.com" = 10}
    domain_rate_per_second: tuple[tuple[str, float], ...] = option((), to_domain_rates(float))
    domain_rate_per_hour: tuple[tuple[str, int], ...] = option((), to_domain_rates(int))
    signing_processes: int = option(-1, to_auto_count)  # DKIM helper processes; -1 = "auto", one per CPU


@dataclass(frozen=True)
class SubscribersSection:
    file: Path | None = option(None, to_str)


@dataclass(frozen=True)
class OutboxSection:
    maildir: Path | None = option(None, to_str)


@dataclass(frozen=True)
class StateSection:
    dir: Path | None = option(None, to_str)  # None: see folders.default_state_dir
    database: str = option("", to_str)


@dataclass(frozen=True)
class ScheduleSettings:
    day: str = option("monday", choice(*WEEKDAYS))
    time: str = option("09:00", to_hhmm)
    misfire_grace_hours: float = option(24.0, to_float)
    catch_up: bool = option(False, to_bool)  # True: one send per missed week instead of one in all
    resume_days: float = option(6.0, to_float)  # an unfinished week is resumed this long after its time
    tick_seconds: float = option(60.0, to_pos_float)  # how often the service looks for work it owes
    review: bool = option(False, to_bool)  # the owner approves each issue before the service sends it
    review_hours: float = option(12.0, to_pos_float)  # the preview goes to the owner this long before the send
    review_default: str = option("send", choice("send", "hold"))  # at the send time, without an answer
    review_to: str = option("", to_str)  # the owner's address; "" = email.reply_to, else the From address


@dataclass(frozen=True)
class DoctorSettings:
    """[doctor]: where `digest doctor` (and the check before each weekly send) asks DNS, and the gate."""

    nameservers: tuple[str, ...] = option((), to_ip_list)  # () = the system's resolver
    port: int = option(53, to_port)
    timeout: float = option(5.0, to_float)  # seconds per DNS or HTTP question
    before_send: str = option("auto", to_switch)  # "auto": on when messages are DKIM-signed and go over SMTP
    sending_addresses: tuple[str, ...] = option((), to_ip_list)  # the relay's public IPs; () = smtp.host's


@dataclass(frozen=True)
class ServerSettings:
    host: str = option("127.0.0.1", to_str)
    port: int = option(8080, to_pos_int)


@dataclass(frozen=True)
class SubscribeSettings:
    """[subscribe]: the public subscribe form, double opt-in and its abuse limits."""

    double_opt_in: bool = option(True, to_bool)  # false: a form subscription is active at once (not advised)
    unconfirmed_days: int = option(7, to_pos_int)  # unconfirmed addresses are forgotten after this
    confirm_interval_hours: float = option(24.0, to_float)  # at most one confirmation mail per address per this
    client_limit: int = option(10, to_pos_int)  # subscribe requests per client per window
    client_window_minutes: int = option(60, to_pos_int)
    captcha: str = option("", choice("", "turnstile", "hcaptcha"))
    captcha_secret_env: str = option("DIGEST_CAPTCHA_SECRET", to_str)
    captcha_verify_url: str = option("", to_url)  # "" = the provider's siteverify URL
    store_ip: bool = option(False, to_bool)  # keep the client's IP address in the consent record
    welcome: bool = option(True, to_bool)  # the welcome email (with the latest issue) on confirmation
    captcha_secret: str = field(default="", repr=False, metadata={"toml": False})  # from the environment


@dataclass(frozen=True)
class BouncesSettings:
    """[bounces]: the VERP return path and the one mailbox where bounces, complaints and mailto
    unsubscribes come back (IMAP over TLS, or a Maildir folder)."""

    return_path: str = option("", to_str)  # "bounces@example.org": each message's envelope sender bounces+TAG@…
    maildir: Path | None = option(None, to_str)
    imap_host: str = option("", to_str)
    imap_port: int = option(993, to_pos_int)
    imap_mode: str = option("ssl", choice("ssl", "starttls"))
    imap_user: str = option("", to_str)
    imap_password_env: str = option("DIGEST_IMAP_PASSWORD", to_str)
    imap_folder: str = option("INBOX", to_str)
    imap_verify: bool = option(True, to_bool)
    soft_limit: int = option(5, to_pos_int)  # soft bounces …
    soft_days: int = option(30, to_pos_int)  # … within this many days make an address bounced
    check_minutes: int = option(15, to_pos_int)  # how often `digest schedule` reads the mailbox
    imap_password: str = field(default="", repr=False, metadata={"toml": False})  # from the environment


# digest.toml's sections, in the order the README documents them.
SECTIONS: dict[str, type] = {
    "site": SiteSection,
    "output": OutputSettings,
    "email": EmailSettings,
    "smtp": SmtpSettings,
    "ses": SesSettings,
    "delivery": DeliveryPolicy,
    "subscribers": SubscribersSection,
    "outbox": OutboxSection,
    "state": StateSection,
    "schedule": ScheduleSettings,
    "server": ServerSettings,
    "subscribe": SubscribeSettings,
    "bounces": BouncesSettings,
    "doctor": DoctorSettings,
}
# Keys that moved: the old spelling still works, with a one-line notice.
MOVED = {f"smtp.{key}": "delivery" for key in (
    "connections", "rate_per_second", "rate_per_hour", "max_attempts", "retry_base_seconds", "error_budget"
)}  # fmt: skip


@dataclass(frozen=True)
class Settings:
    site: Site
    output: OutputSettings = OutputSettings()
    email: EmailSettings = EmailSettings()
    smtp: SmtpSettings = SmtpSettings()
    ses: SesSettings = SesSettings()
    delivery: DeliveryPolicy = DeliveryPolicy()
    schedule: ScheduleSettings = ScheduleSettings()
    server: ServerSettings = ServerSettings()
    doctor: DoctorSettings = DoctorSettings()
    subscribers: Path | None = None
    outbox: Path = Path(".digest/outbox")  # Maildir used while no SMTP host is set
    state_dir: Path = Path(".digest")
    database_url: str = ""  # SQLAlchemy URL; default SQLite in state_dir
    secret: str = field(default="", repr=False)  # signs new links
    old_secrets: tuple[str, ...] = field(default=(), repr=False)  # retired keys: their links still verify
    config_file: Path | None = None
    site_config_file: Path | None = None
    notices: tuple[str, ...] = ()  # deprecations and other things worth one line, shown by the CLI
    subscribe: SubscribeSettings = SubscribeSettings()
    bounces: BouncesSettings = BouncesSettings()

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.state_dir / DATABASE_FILE}"


# {section: {key: default}}: what the README documents, read off the dataclasses.
SCHEMA: dict[str, dict[str, object]] = {
    name: {key: f.default for key, f in toml_fields(cls).items()} for name, cls in SECTIONS.items()
}
