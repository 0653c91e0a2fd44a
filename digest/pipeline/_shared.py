"""What every part of the pipeline shares: the sender imported on first use, the names the edges may use."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from digest import collector, templater
from digest.config import Settings
from digest.models import (
    Entry,
    Issue,
    Problem,
    Renderer,
    Site,
    Subscriber,
    Week,
)

if TYPE_CHECKING:
    from digest import sender

    # Names of the stages the edges may use (they import nothing but this module of the stages).
    Variant = sender.Variant
    Store = sender.Store
    Transport = sender.Transport
    TransportFactory = sender.TransportFactory
    SendResult = sender.SendResult
    safe_url = sender.safe_url
    is_probe = sender.is_probe
    Roster = sender.Roster
    Request = sender.Request
else:

    class _Sender:
        """The sender, imported on first use: it brings SQLAlchemy, dkimpy and dnspython (about half a
        second), which a preview or a publish without a ledger never needs."""

        def __getattr__(self, name: str) -> Any:
            import digest.sender

            return getattr(digest.sender, name)

    sender = _Sender()
    _SENDER_NAMES = (
        "Variant",
        "Store",
        "Transport",
        "TransportFactory",
        "SendResult",
        "safe_url",
        "is_probe",
        "Roster",
        "Request",
    )

    def __getattr__(name: str) -> Any:
        if name in _SENDER_NAMES:
            return getattr(sender, name)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


FEEDS = templater.FEEDS
labels_for = templater.labels_for
Clock = Callable[[], datetime]
EXAMPLE_SUBSCRIBER = Subscriber(email="subscriber@example.com", name="Example Subscriber")


@dataclass(frozen=True)
class Build:
    """One week's issue in every language found, the pool of entries they came from, and the recent issues
    the feeds and the archive list (per language)."""

    site: Site
    week: Week
    pools: Mapping[str, tuple[Entry, ...]]  # language key -> every entry collected in it, newest first
    issues: Mapping[str, Issue]  # language key -> the week's issue; the site's language ("") is always there
    history: Mapping[str, tuple[Issue, ...]]  # language key -> the last feed_issues weeks with entries
    problems: tuple[Problem, ...] = ()
    scanned: int = 0
    # language key -> the latest date its feeds had (the ledger's feed_dates table) up to this week: an issue that
    # lost its only post leaves the feeds, whose own date must not go back with it
    floors: Mapping[str, datetime] = field(default_factory=dict)
    # The pools hold entries whose bodies may not be rendered yet (only what an output shows is rendered:
    # see build's `languages`); this renders them, with the cache the build used.
    render: Renderer = field(default=collector.render_entries, compare=False, repr=False)

    @property
    def issue(self) -> Issue:
        """The issue in the site's language."""
        return self.issues[""]

    def issue_of(self, language: str) -> Issue:
        """The issue in `language` (a key from digest.text.issue_language); empty when it has no entries."""
        return self.issues.get(language) or Issue(
            self.site.in_language(language), self.week, (), self.problems, language
        )

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(sorted(self.pools))


def issue_id(settings: Settings, week: Week, language: str = "") -> str:
    """The ledger's name of the issue of `week` in `language` ("2026-W47", "ko/2026-W47")."""
    return Issue(settings.site, week, (), language=language).id
