"""Settings, loaded and checked once (digest.toml, the site's own config, the environment) and passed
to every stage; the subscribers file is read here too."""

from .folders import private_folder
from .load import CONFIG_NAME, DATABASE_ENV, SECRET_ENV, find_config, load_settings, with_overrides
from .schema import validate as validate_sections
from .settings import (
    MOVED,
    SCHEMA,
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
    SmtpSettings,
    SubscribeSettings,
)
from .sites import SiteDefaults, read_site_config
from .subscribers import check_subscribers, load_subscribers, normalise_address, single_subscriber


def validate(raw: dict[str, object], *, source: str = "", text: str = "") -> dict[str, dict[str, object]]:
    """Check a parsed digest.toml: {section: {field: value}} of the keys given."""
    return validate_sections(raw, SECTIONS, source=source, text=text, aliases=MOVED)


__all__ = [
    "CONFIG_NAME",
    "DATABASE_ENV",
    "SCHEMA",
    "SECRET_ENV",
    "SECTIONS",
    "DeliveryPolicy",
    "DoctorSettings",
    "EmailSettings",
    "OutputSettings",
    "ScheduleSettings",
    "ServerSettings",
    "SesSettings",
    "Settings",
    "SiteDefaults",
    "SmtpSettings",
    "SubscribeSettings",
    "BouncesSettings",
    "check_subscribers",
    "find_config",
    "load_subscribers",
    "load_settings",
    "normalise_address",
    "read_site_config",
    "single_subscriber",
    "validate",
    "private_folder",
    "with_overrides",
]
