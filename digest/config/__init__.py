"""Settings, loaded and checked once (digest.toml, the site's own config, the environment) and passed
to every stage; the subscribers file is read here too."""

from typing import TYPE_CHECKING

from .folders import lost_ledger, mark_owner, owner_of, private_folder
from .load import CONFIG_NAME, DATABASE_ENV, SECRET_ENV, find_config, line_in_config, load_settings, with_overrides
from .schema import WEEKDAYS
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

# The subscribers file's reader (and its fast line reader) is imported on first use: previews and
# publishes never read the list, and importing it took a fiftieth of a second of every start-up.
_SUBSCRIBERS = (
    "check_subscribers",
    "load_subscribers",
    "normalise_address",
    "single_subscriber",
    "subscriber_language",
)
if TYPE_CHECKING:
    from .subscribers import (
        check_subscribers,
        load_subscribers,
        normalise_address,
        single_subscriber,
        subscriber_language,
    )


def __getattr__(name: str) -> object:
    if name in _SUBSCRIBERS:
        from . import subscribers

        return getattr(subscribers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def validate(raw: dict[str, object], *, source: str = "", text: str = "") -> dict[str, dict[str, object]]:
    """Check a parsed digest.toml: {section: {field: value}} of the keys given."""
    return validate_sections(raw, SECTIONS, source=source, text=text, aliases=MOVED)


__all__ = [
    "CONFIG_NAME",
    "DATABASE_ENV",
    "SCHEMA",
    "SECRET_ENV",
    "SECTIONS",
    "WEEKDAYS",
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
    "line_in_config",
    "load_subscribers",
    "load_settings",
    "normalise_address",
    "read_site_config",
    "single_subscriber",
    "subscriber_language",
    "validate",
    "lost_ledger",
    "mark_owner",
    "owner_of",
    "private_folder",
    "with_overrides",
]
