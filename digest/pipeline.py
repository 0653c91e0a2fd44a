"""The one place that runs the stages in order. Read this first.

    collect (posts -> entries)  ->  Issue of one week  ->  render (email variants, feeds, archive)
        ->  publish (files in the output folder)  ->  deliver (ledger + transport)

Everything that touches the outside world (the clock, the transport, the ledger) comes in as an
argument, so the CLI, the scheduler and the tests drive the same code.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parseaddr
from pathlib import Path

from digest import collector, templater, weeks
from digest.config import Settings
from digest.errors import CollectError
from digest.models import (
    RECIPIENT_EMAIL_MARK,
    UNSUBSCRIBE_URL_MARK,
    Collection,
    Entry,
    Issue,
    Problem,
    RenderedIssue,
    Subscriber,
    Week,
)
from digest.sender import deliver as delivery
from digest.sender.deliver import DeliveryReport
from digest.sender.ledger import Ledger
from digest.sender.message import MessageFactory
from digest.sender.outcome import SendResult
from digest.sender.subscribers import check_subscribers as _check_subscribers
from digest.sender.subscribers import load_subscribers as _load_subscribers
from digest.sender.subscribers import single_subscriber, wants
from digest.sender.transports import MaildirTransport, NullTransport, SmtpTransport, Transport
from digest.sender.transports import send_test_copy as _send_copy

Variant = tuple[tuple[str, ...], str]
EXAMPLE_SUBSCRIBER = Subscriber(email="subscriber@example.com", name="Example Subscriber")


@dataclass(frozen=True)
class Build:
    """One week's issue plus the recent issues the feeds and the archive list."""

    issue: Issue
    history: tuple[Issue, ...]  # newest first, this issue included when it has entries
    scanned: int


def select_week(
    settings: Settings,
    now_at: datetime,
    week: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> Week:
    site = settings.site
    if since:
        return weeks.window(since, until, site, now_at)
    if until:
        raise CollectError("--until needs --since", "give both, or use --week")
    return weeks.parse_week(week or "this", site, now_at)


def build(settings: Settings, now_at: datetime, week: Week, *, strict: bool = False) -> Build:
    # Only the weeks the feeds can show are rendered: the last `feed_issues` weeks up to this one.
    since_at = week.start_at - timedelta(days=7 * (settings.output.feed_issues - 1))
    collection: Collection = collector.collect(settings.site, now_at, since_at)
    if strict and collection.problems:
        first = collection.problems[0]
        raise CollectError(
            f"{first.message} ({len(collection.problems)} file(s) skipped)",
            "fix the file or run without --strict",
            source=first.source,
            line=first.line,
        )
    selected = tuple(e for e in collection.entries if week.contains(e.published_at))
    issue = Issue(site=settings.site, week=week, entries=selected, problems=collection.problems)
    # The other weeks in the window, each an issue of its own (newest first), for the feeds and the archive.
    by_week: dict[str, tuple[Week, list[Entry]]] = {}
    for entry in collection.entries:
        w = weeks.week_of(entry.published_at, settings.site)
        if w.start_at < week.start_at and w.label != week.label:
            by_week.setdefault(w.label, (w, []))[1].append(entry)
    history = [issue] if selected else []
    history += [Issue(settings.site, w, tuple(entries)) for w, entries in by_week.values()]
    history.sort(key=lambda i: i.week.start_at, reverse=True)
    return Build(issue=issue, history=tuple(history[: settings.output.feed_issues]), scanned=collection.scanned)


# -- rendering ------------------------------------------------------------------------------------


def render_variants(
    issue: Issue, settings: Settings, subscribers: Iterable[Subscriber]
) -> tuple[dict[Variant, RenderedIssue], dict[str, str]]:
    """Render each distinct (tag filter, format) once; return the variants and who is skipped why."""
    variants: dict[Variant, RenderedIssue] = {}
    skipped: dict[str, str] = {}
    by_filter: dict[tuple[str, ...], RenderedIssue | None] = {}
    for sub in subscribers:
        if not sub.active:  # deliver() records them as inactive
            continue
        tags, fmt = sub.variant
        if tags not in by_filter:
            entries = tuple(e for e in issue.entries if wants(sub, e))
            # An issue without any entry is the "no new posts" note (email.empty_week = "note"), for everyone.
            wanted = entries or not issue.entries
            variant_issue = Issue(issue.site, issue.week, entries, issue.problems)
            by_filter[tags] = templater.render_email(variant_issue, settings) if wanted else None
        rendered = by_filter[tags]
        if rendered is None:
            skipped[sub.key] = "no entries this week match the subscriber's tags"
            continue
        variants[(tags, fmt)] = rendered
    return variants, skipped


def site_files(build_result: Build, settings: Settings) -> dict[str, bytes]:
    history = build_result.history or (build_result.issue,)
    files = dict(templater.render_feeds(history, settings))
    files.update(templater.render_archive(history, settings))
    return files


def write_files(out_dir: Path, files: Mapping[str, bytes]) -> list[Path]:
    """Write atomically (tmp + rename) so a static host never serves half a file."""
    written = []
    for rel, data in sorted(files.items()):
        target = out_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_file() and target.read_bytes() == data:
            written.append(target)
            continue
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
        written.append(target)
    return written


@dataclass(frozen=True)
class Preview:
    build: Build
    rendered: RenderedIssue | None
    files: dict[str, Path]


def preview(settings: Settings, now_at: datetime, week: Week, *, strict: bool = False) -> Preview:
    result = build(settings, now_at, week, strict=strict)
    files = site_files(result, settings)
    rendered = None
    named: dict[str, Path] = {}
    if result.issue.entries:
        rendered = templater.render_email(result.issue, settings)
        # Dated from the entries, not the clock, so the preview files are byte-identical across builds.
        factory = MessageFactory({EXAMPLE_SUBSCRIBER.variant: rendered}, settings, result.issue.updated_at)
        example = factory.build(EXAMPLE_SUBSCRIBER)
        files["email.html"] = _personalise(rendered.html, EXAMPLE_SUBSCRIBER).encode()
        files["email.txt"] = _personalise(rendered.text, EXAMPLE_SUBSCRIBER).encode()
        files["email.eml"] = example.data
    for path in write_files(settings.output.dir, files):
        named[path.relative_to(settings.output.dir).as_posix()] = path
    return Preview(build=result, rendered=rendered, files=named)


def _personalise(text: str, subscriber: Subscriber) -> str:
    return text.replace(UNSUBSCRIBE_URL_MARK, "#unsubscribe").replace(RECIPIENT_EMAIL_MARK, subscriber.email)


def publish(settings: Settings, now_at: datetime, week: Week, *, strict: bool = False) -> Build:
    result = build(settings, now_at, week, strict=strict)
    write_files(settings.output.dir, site_files(result, settings))
    return result


# -- delivery -------------------------------------------------------------------------------------


def open_ledger(settings: Settings) -> Ledger:
    if not settings.database_url:
        settings.state_dir.mkdir(parents=True, exist_ok=True)
    smtp = settings.smtp
    return Ledger(settings.db_url, max_attempts=smtp.max_attempts, retry_base_seconds=smtp.retry_base_seconds)


def transport_factory(settings: Settings, *, dry_run: bool = False) -> Callable[[], Transport]:
    if dry_run:
        return NullTransport
    if settings.smtp.host:
        # the envelope sender is the From address: parsed once here, not from every message's bytes
        envelope_from = parseaddr(settings.email.sender)[1]
        return lambda: SmtpTransport(settings.smtp, envelope_from=envelope_from)
    return lambda: MaildirTransport(settings.outbox)


@dataclass(frozen=True)
class SendOutcome:
    build: Build
    report: DeliveryReport | None
    skipped: dict[str, str] = field(default_factory=dict)
    empty: bool = False


def send(
    settings: Settings,
    now_at: datetime,
    week: Week,
    *,
    ledger: Ledger,
    transports: Callable[[], Transport],
    clock: Callable[[], datetime],
    dry_run: bool = False,
    strict: bool = False,
    subscribers: tuple[Subscriber, ...] | None = None,
    progress: Callable[[int, int], None] | None = None,
    stop: threading.Event | None = None,
    publish: bool = False,
) -> SendOutcome:
    """Send the week's issue through the ledger; with `publish`, write feeds and archive first (one
    build for both: the weekly cycle)."""
    result = build(settings, now_at, week, strict=strict)
    if publish:
        write_files(settings.output.dir, site_files(result, settings))
    if not result.issue.entries and settings.email.empty_week == "skip":
        return SendOutcome(build=result, report=None, empty=True)
    if subscribers is None:
        subscribers = load_subscribers(settings)
    variants, skipped = render_variants(result.issue, settings, subscribers)
    factory = MessageFactory(variants, settings, now_at)
    report = delivery.deliver(
        factory,
        subscribers,
        ledger,
        transports,
        settings,
        clock,
        issue_id=result.issue.id,
        skipped=skipped,
        dry_run=dry_run,
        progress=progress,
        stop=stop,
    )
    return SendOutcome(build=result, report=report, skipped=skipped)


def send_test_copy(settings: Settings, now_at: datetime, week: Week, address: str) -> SendResult | None:
    """One copy of the issue to one address (`digest send --to`); the ledger is not touched."""
    result = build(settings, now_at, week)
    if not result.issue.entries:
        return None
    subscriber = single_subscriber(address)
    variants, _ = render_variants(result.issue, settings, [subscriber])
    message = MessageFactory(variants, settings, now_at).build(subscriber)
    return _send_copy(message, transport_factory(settings)())


def load_subscribers(settings: Settings) -> tuple[Subscriber, ...]:
    return _load_subscribers(require_subscribers(settings))


def check_subscribers(settings: Settings) -> tuple[tuple[Subscriber, ...], list[Problem]]:
    return _check_subscribers(require_subscribers(settings))


def require_subscribers(settings: Settings) -> Path:
    from digest.errors import ConfigError

    if settings.subscribers is None:
        raise ConfigError(
            "no subscribers file",
            "set [subscribers] file in digest.toml or put subscribers.yaml next to it",
            source=str(settings.config_file or settings.site.root),
        )
    return settings.subscribers


def problems_of(result: Build) -> tuple[Problem, ...]:
    return result.issue.problems
