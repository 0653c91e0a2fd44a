"""The data that flows between the stages: frozen dataclasses, no I/O.

collector -> tuple[Entry] + tuple[Problem]  (one Week)
pipeline  -> Issue
templater -> RenderedIssue (one per variant), Feeds/archive files
sender    -> OutgoingMessage per subscriber -> Delivery rows in the ledger
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from digest.text import address_key


@dataclass(frozen=True)
class Site:
    """What the collector and the templater know about the blog."""

    title: str
    base_url: str  # absolute, always ends with "/"
    root: Path  # the site folder; Entry.source is relative to it
    source_dirs: tuple[Path, ...]  # absolute folders holding posts
    timezone: str  # IANA name
    permalink: str  # Jekyll-style pattern, e.g. "/:year/:month/:day/:title/"
    week_start_day: int = 0  # 0 = Monday … 6 = Sunday
    week_start_hour: int = 0
    ignore: tuple[str, ...] = ()  # regular expressions matched against the path relative to root
    description: str = ""
    language: str = "en"
    author: str = ""

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class Week:
    """A half-open window [start_at, end_at) in the site's timezone."""

    start_at: datetime
    end_at: datetime
    label: str  # "2020-W27" when weeks start on Monday, else the start date "2020-07-05"

    def contains(self, moment: datetime) -> bool:
        return self.start_at <= moment < self.end_at


@dataclass(frozen=True)
class Heading:
    level: int  # 2 for "##", 3 for "###"
    text: str
    anchor: str  # absolute URL to the heading (entry url + "#slug")


@dataclass(frozen=True)
class Entry:
    """One post, or one dated item of a running-log post."""

    id: str  # stable tag-URI, independent of build time
    title: str
    published_at: datetime  # timezone-aware
    url: str  # absolute
    source: str  # path relative to Site.root, POSIX separators
    body_html: str  # rendered, links absolute, XML-safe
    summary_html: str
    authors: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    outline: tuple[Heading, ...] = ()
    updated_at: datetime | None = None


@dataclass(frozen=True)
class Problem:
    """A file that was skipped, with why; `--strict` makes these fatal."""

    source: str  # path relative to Site.root
    message: str
    line: int | None = None


@dataclass(frozen=True)
class Collection:
    """What the collector returns: every published entry (newest first) and what it skipped."""

    entries: tuple[Entry, ...]
    problems: tuple[Problem, ...] = ()
    scanned: int = 0  # files looked at


@dataclass(frozen=True)
class Issue:
    """One week's newsletter: the single object every output is rendered from."""

    site: Site
    week: Week
    entries: tuple[Entry, ...]
    problems: tuple[Problem, ...] = ()

    @property
    def id(self) -> str:
        return self.week.label

    @property
    def updated_at(self) -> datetime:
        """Derived from the entries, never from the clock (feeds stay byte-identical)."""
        stamps = [e.updated_at or e.published_at for e in self.entries]
        return max(stamps) if stamps else self.week.end_at


# The templater leaves these literal markers in the rendered HTML and text; the sender
# replaces them per subscriber on the prebuilt bytes. ASCII only, no characters that
# HTML escaping, CSS inlining or quoted-printable would change.
UNSUBSCRIBE_URL_MARK = "DIGESTUNSUBSCRIBEURL0MARK"
RECIPIENT_EMAIL_MARK = "DIGESTRECIPIENTEMAIL0MARK"


@dataclass(frozen=True)
class RenderedIssue:
    """One variant of an issue as email: HTML (CSS inlined) and text, with placeholders."""

    issue: Issue
    subject: str
    html: str
    text: str
    preheader: str
    archive_url: str  # the "view in browser" page
    summarized: bool = False  # full bodies replaced by summaries because of the size limit
    html_size: int = 0  # bytes of UTF-8 HTML


@dataclass(frozen=True, slots=True)
class Subscriber:
    email: str
    name: str = ""
    tags: tuple[str, ...] = ()  # receive only entries having one of these tags/categories; () = all
    format: str = "html"  # "html" (multipart/alternative) or "text"
    active: bool = True
    line: int | None = None  # line in the subscribers file, for messages

    @property
    def key(self) -> str:
        return address_key(self.email)

    @property
    def variant(self) -> tuple[tuple[str, ...], str]:
        return (tuple(sorted(t.lower() for t in self.tags)), self.format)


@dataclass(frozen=True)
class OutgoingMessage:
    """A finished message for one subscriber: bytes ready for any transport."""

    issue_id: str
    recipient: str  # envelope recipient
    message_id: str  # "<…>", the same for the same issue and subscriber
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class Delivery:
    """One row of the ledger."""

    issue_id: str
    recipient: str
    state: str  # pending | sending | sent | deferred | failed | skipped
    attempts: int = 0
    message_id: str = ""
    reply: str = ""  # the server's reply or the reason for a skip
    updated_at: datetime | None = None
    next_attempt_at: datetime | None = None
