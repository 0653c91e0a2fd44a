"""The data that flows between the stages: frozen dataclasses, no I/O.

collector -> tuple[Entry] + tuple[Problem]  (one Week)
pipeline  -> Issue
templater -> RenderedIssue (one per variant), Feeds/archive files
sender    -> OutgoingMessage per subscriber -> Delivery rows in the ledger
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urljoin
from zoneinfo import ZoneInfo

from digest.text import address_key, issue_language


@dataclass(frozen=True)
class Generator:
    """What the blog's generator says about its posts, read from the site's own config (digest.config.sites):
    where posts are, their language and their URLs. The defaults are those of a plain folder of Markdown."""

    kind: str = "plain"  # "jekyll" | "hugo" | "pelican" | "plain"
    languages: tuple[str, ...] = ()  # the languages the site is written in (config or language folders)
    default_language: str = ""  # Hugo defaultContentLanguage, Pelican DEFAULT_LANG, jekyll-polyglot default_lang
    disabled_languages: tuple[str, ...] = ()  # Hugo disableLanguages: their content is not published
    # Where a language's posts live on the web: (language, root relative to Site.base_url or absolute URL)
    language_roots: tuple[tuple[str, str], ...] = ()
    content_dirs: tuple[tuple[str, str], ...] = ()  # (folder relative to the site, its language or ""): Hugo, Pelican
    not_posts: tuple[str, ...] = ()  # folders relative to the site whose files are pages (Pelican PAGE_PATHS)
    permalinks: tuple[tuple[str, str], ...] = ()  # (Hugo section, URL pattern)
    lang_permalink: str = ""  # Pelican ARTICLE_LANG_URL: a post not in the default language
    default_category: str = ""  # Pelican DEFAULT_CATEGORY: the category of a post that names none
    category_from_folder: bool = False  # Pelican USE_FOLDER_AS_CATEGORY: else the folder's name is its category
    slug_from_file: bool = False  # Pelican SLUGIFY_SOURCE = "basename"
    filename_date: str = ""  # Pelican FILENAME_METADATA: a pattern whose `date` group dates an undated post
    defaults: str = ""  # Jekyll front matter defaults, as JSON: [[path, type, {key: value}], …]
    collections_dir: str = ""  # Jekyll collections_dir: the folder path categories are counted from
    language_titles: tuple[tuple[str, str], ...] = ()  # (language, the site's title in it): Hugo [languages.ko]
    lower_paths: bool = False  # Hugo: URL paths made from a pattern are lower-cased (unless disablePathToLower)
    # The generator gives headings an id, so the outline's links can jump to them: not Pelican without the
    # toc extension, kramdown with auto_ids: false or Hugo with autoHeadingID = false (an {#id} still does)
    heading_ids: bool = True


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
    generator: Generator = Generator()

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def in_language(self, language: str) -> Site:
        """The site as the issue of `language` shows it (a key of digest.text.issue_language; "" = the
        site's own): with the title its config gives that language, when it gives one."""
        title = _of_language(self.generator.language_titles, language, self.language) or self.title
        return self if title == self.title else replace(self, title=title)

    def home_in(self, language: str) -> str:
        """The blog's home page in `language`: its language root (Hugo's `/ko/`, jekyll-polyglot's), else
        the site's address."""
        root = _of_language(self.generator.language_roots, language, self.language)
        return urljoin(self.base_url, root) if root else self.base_url


def _of_language(pairs: tuple[tuple[str, str], ...], language: str, site_language: str) -> str:
    return next((value for tag, value in pairs if issue_language(tag, site_language) == language), "")


@dataclass(frozen=True)
class Week:
    """A half-open window [start_at, end_at) in the site's timezone."""

    start_at: datetime
    end_at: datetime
    label: str  # "2020-W27" when weeks start on Monday, else the start date "2020-07-05"
    custom: bool = False  # a --since/--until window: its issue is mailed, never published as a week

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
    language: str = ""  # the post's language (e.g. "ko"); "" = the site's language
    # A digest of everything the body is made from (the file as it is, the site, the posts it links to):
    # two entries of equal revision render alike, so a cached rendering can stand in for rendering it.
    # "" when unknown (then the body itself is compared). The collector may hand out entries whose body
    # is not rendered yet (body_html, summary_html and outline empty): see Renderer.
    revision: str = ""


class Memo(Protocol):
    """A private cache the pipeline lends a stage (digest.cache): values by kind and key, kept between
    runs. get() returns None for a value it does not have."""

    def get(self, kind: str, key: str) -> Any: ...

    def put(self, kind: str, key: str, value: Any) -> None: ...


# Fills in the bodies of entries the collector handed out unrendered (the same entries, in the same order).
Renderer = Callable[[Sequence[Entry]], tuple[Entry, ...]]


@dataclass(frozen=True)
class Problem:
    """A file that was skipped, with why; `--strict` makes these fatal."""

    source: str  # path relative to Site.root
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class Collection:
    """What the collector returns: every published entry (newest first) and what it skipped."""

    entries: tuple[Entry, ...]
    problems: tuple[Problem, ...] = ()
    scanned: int = 0  # files looked at


@dataclass(frozen=True)
class Issue:
    """One week's newsletter in one language: the single object every output is rendered from."""

    site: Site
    week: Week
    entries: tuple[Entry, ...]  # dated in the week
    problems: tuple[Problem, ...] = ()
    language: str = ""  # the language key (digest.text.language_key); "" = the site's language
    # entries dated before the week that no earlier issue carried (late, backdated, un-drafted posts)
    late: tuple[Entry, ...] = ()
    note_html: str = ""  # the editor's note shown above the posts (rendered Markdown), "" for none
    dated_at: datetime | None = None  # the date its feed entry was last published with: never earlier again

    @property
    def id(self) -> str:
        """The ledger's name of the issue: the week label for the site's language (as before languages
        existed, so older ledgers keep working), "ko/2026-W47" for another language."""
        return f"{self.language}/{self.week.label}" if self.language else self.week.label

    @property
    def lang(self) -> str:
        """The language the words around the posts are in (and the `lang` attribute)."""
        return self.language or self.site.language

    @property
    def prefix(self) -> str:
        """Where this language's feeds and archive live in the output folder: "" or "ko/"."""
        return f"{self.language}/" if self.language else ""

    @property
    def all_entries(self) -> tuple[Entry, ...]:
        return self.entries + self.late

    @property
    def updated_at(self) -> datetime:
        """Derived from the entries, never from the clock (feeds stay byte-identical); never before the
        start of the issue's week: an issue of late arrivals only (posts dated weeks back) is still newer
        than the issue before it, where feed readers sort it."""
        derived = self.derived_at
        if self.dated_at is None:
            return derived
        # the floor too stays within the week: one kept by an older digest may hold an edit's date
        return max(derived, min(self.dated_at, self.week.end_at - timedelta(seconds=1)))

    @property
    def published_at(self) -> datetime:
        """When its newest post was first published, within its week, and no later than updated_at: the
        feeds' `published` (RSS pubDate), which an edit (`updated`, `lastmod`) does not move."""
        last = self.week.end_at - timedelta(seconds=1)
        stamps = [min(e.published_at, last) for e in self.all_entries]
        first = max([*stamps, self.week.start_at]) if stamps else self.week.end_at
        return min(first, self.updated_at)

    @property
    def derived_at(self) -> datetime:
        """The date its entries give it (updated_at without the floor of an earlier publish): an entry's
        `updated` (Hugo's `lastmod`), else its date, but no later than the week's last second: a post mailed
        with this issue that was edited, or whose date was moved, weeks on since must not date the issue
        after the issues that followed it (feed readers sort by it: an old issue would come back on top)."""
        last = self.week.end_at - timedelta(seconds=1)
        stamps = [min(e.updated_at or e.published_at, last) for e in self.all_entries]
        return max([*stamps, self.week.start_at]) if stamps else self.week.end_at


@dataclass(frozen=True)
class Carried:
    """What the ledger knows about the issues already planned in one language: which entries they carried
    (by every key of digest.issues.entry_keys) and where the first one started."""

    entries: Mapping[str, str] = field(default_factory=dict)  # entry key -> id of the issue that carried it
    planned: Mapping[str, frozenset[str]] = field(default_factory=dict)  # issue id -> its entry keys
    first_start_at: datetime | None = None  # start of the first issue planned in this language
    windows: Mapping[str, tuple[datetime, datetime]] = field(default_factory=dict)  # issue id -> (start, end)
    sizes: Mapping[str, int] = field(default_factory=dict)  # issue id -> how many entries it carried
    items: Mapping[str, str] = field(default_factory=dict)  # a running log item's entry id -> its issue id


# The templater leaves these literal markers in the rendered HTML and text; the sender
# replaces them per subscriber on the prebuilt bytes. ASCII only, no characters that
# HTML escaping, CSS inlining or quoted-printable would change.
UNSUBSCRIBE_URL_MARK = "DIGESTUNSUBSCRIBEURL0MARK"
RECIPIENT_EMAIL_MARK = "DIGESTRECIPIENTEMAIL0MARK"
PREFERENCES_URL_MARK = "DIGESTPREFERENCESURL0MARK"


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
    html_size: int = 0  # bytes of UTF-8 HTML, each placeholder counted at its largest substitute
    omitted: int = 0  # entries left out (named by the "more in the archive" link) to stay under the limit


@dataclass(frozen=True, slots=True)
class Subscriber:
    email: str
    name: str = ""
    tags: tuple[str, ...] = ()  # receive only entries having one of these tags/categories; () = all
    format: str = "html"  # "html" (multipart/alternative) or "text"
    active: bool = True
    line: int | None = None  # line in the subscribers file, for messages
    language: str = ""  # the issue language they get (e.g. "ko"); "" = the site's language
    tag: str = ""  # the bounce tag of the subscriber store (VERP return path); "" = none

    @property
    def key(self) -> str:
        return address_key(self.email)

    @property
    def variant(self) -> tuple[tuple[str, ...], str]:
        return (tuple(sorted(t.lower() for t in self.tags)), self.format)

    def wants(self, entry: Entry) -> bool:
        """True when the subscriber takes every entry, or the entry has one of their tags or categories."""
        if not self.tags:
            return True
        labels = {label.casefold() for label in entry.tags + entry.categories}
        return any(tag.casefold() in labels for tag in self.tags)


@dataclass(frozen=True)
class OutgoingMessage:
    """A finished message for one subscriber: bytes ready for any transport."""

    issue_id: str
    recipient: str  # envelope recipient
    message_id: str  # "<…>", the same for the same issue and subscriber
    data: bytes = field(repr=False)
    envelope_from: str = ""  # the SMTP MAIL FROM of this message (VERP); "" = the transport's default
    # 7-bit, CRLF line ends, no line starting with a dot: SMTP's DATA as it is, without a scan per message
    wire_ready: bool = False


class State(StrEnum):
    """The state of one ledger row (one issue for one recipient)."""

    PENDING = "pending"  # planned, not yet claimed
    SENDING = "sending"  # claimed by one worker (its lease keeps it)
    SENT = "sent"
    DEFERRED = "deferred"  # a transient failure: retried after a back-off
    FAILED = "failed"  # refused for good, or out of attempts
    SKIPPED = "skipped"  # must not get this issue (the reason is kept)


# -- readers: the subscriber store ------------------------------------------------------------------


class Status(StrEnum):
    """Where a subscriber stands. Only `active` subscribers get issues; the last three are suppressed."""

    UNCONFIRMED = "unconfirmed"  # asked to subscribe, has not clicked the confirmation button yet
    ACTIVE = "active"
    INACTIVE = "inactive"  # `active: false` in the subscribers file, or removed from it
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"


SUPPRESSED = (Status.UNSUBSCRIBED, Status.BOUNCED, Status.COMPLAINED)
