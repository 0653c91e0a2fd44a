"""The one place that runs the stages in order. Read this first.

    collect (posts -> entries)  ->  Issue of one week  ->  render (email variants, feeds, archive)
        ->  publish (files in the output folder)  ->  deliver (ledger + transport)

`run_cycle` is the weekly cycle, the same for `digest run`, `digest send` and the service. Everything
that touches the outside world (the clock, the transport, the state database) comes in as an argument,
so the CLI, the scheduler, the server and the tests drive the same code. The edges (cli, scheduler,
server) reach the stages only through the functions here.
"""

from __future__ import annotations

import contextlib
import email
import email.message
import email.policy
import errno
import functools
import hashlib
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from html import escape as html_escape
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlsplit

from digest import cache, collector, issues, templater, text, weeks
from digest.cache import Cache
from digest.config import Settings, private_folder, single_subscriber
from digest.config import check_subscribers as _check_subscribers
from digest.config import load_subscribers as _load_subscribers
from digest.errors import CollectError, ConfigError, DigestError, OutputError, TokenError, UsageError
from digest.models import (
    BounceFinding,
    BounceReport,
    Carried,
    Cycle,
    CycleReport,
    DeliveryReport,
    Entry,
    Finding,
    ImportReport,
    Issue,
    IssueRun,
    IssueStatus,
    Memo,
    Problem,
    RenderedIssue,
    Renderer,
    Review,
    Site,
    State,
    Subscriber,
    SubscriberRecord,
    Week,
)
from digest.text import fingerprint, slugify

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
    # The pools hold entries whose bodies may not be rendered yet (only what an output shows is rendered:
    # see build's `languages`); this renders them, with the cache the build used.
    render: Renderer = field(default=collector.render_entries, compare=False, repr=False)

    @property
    def issue(self) -> Issue:
        """The issue in the site's language."""
        return self.issues[""]

    def issue_of(self, language: str) -> Issue:
        """The issue in `language` (a key from digest.text.issue_language); empty when it has no entries."""
        return self.issues.get(language) or Issue(self.site, self.week, (), self.problems, language)

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(sorted(self.pools))


# -- collecting and building -----------------------------------------------------------------------


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
        raise UsageError("--until needs --since", "give both, or use --week")
    return weeks.parse_week(week or "this", site, now_at)


def select_language(settings: Settings, language: str | None) -> str:
    """The language key of `--lang` ("" for the site's own language, also when it is written "ko-KR")."""
    return text.issue_language(language or "", settings.site.language)


def issue_id(settings: Settings, week: Week, language: str = "") -> str:
    """The ledger's name of the issue of `week` in `language` ("2026-W47", "ko/2026-W47")."""
    return Issue(settings.site, week, (), language=language).id


def feed_horizon(settings: Settings, now_at: datetime, week: Week) -> datetime:
    """The feeds and the archive show the weeks that ended by this moment: the end of last week, or of the
    selected week when it is later (`--week this`). Never earlier, so publishing or previewing an older week
    never takes newer issues out of them."""
    last = weeks.parse_week("last", settings.site, now_at)
    return max(last.end_at, weeks.week_of(week.end_at, settings.site).start_at)


@contextlib.contextmanager
def cached(settings: Settings) -> Iterator[Cache | None]:
    """The private cache in the state folder (see digest.cache), committed and closed at the end; None
    when the state folder cannot be made (the run goes on without it)."""
    try:
        private_folder(settings.state_dir)
    except OSError as exc:
        cache.unusable(settings.state_dir / cache.FILE_NAME, exc)
        yield None
        return
    memo = Cache(settings.state_dir / cache.FILE_NAME)
    try:
        yield memo
    finally:
        memo.close()


# The feeds need the last `feed_issues` weeks with entries of every language; when the first window does
# not hold them (a quiet blog, a rare language) the look-back goes further, each pass collecting only the
# period before the previous one: first as many weeks as are missing (twice, for the gaps), then twice as
# far each time nothing more turns up, down to the collector's "since the beginning".
_LOOKBACK_FLOOR_AT = datetime(1970, 1, 1, tzinfo=UTC)


def _gather(
    settings: Settings, now_at: datetime, since_at: datetime, horizon_at: datetime, memo: Memo | None
) -> tuple[list[Entry], tuple[Problem, ...], int]:
    site = settings.site
    count = settings.output.feed_issues
    found = collector.collect(site, now_at, since_at, memo=memo, render=False)
    entries = {e.id: e for e in found.entries}
    problems = dict.fromkeys(found.problems)
    low: datetime | None = since_at
    step = timedelta(0)
    while low is not None:
        missing = issues.weeks_missing(issues.by_language(entries.values(), site), site, horizon_at, count)
        if not missing:
            break
        step = max(step * 2, timedelta(weeks=2 * missing))
        earlier: datetime | None = low - step
        if earlier is not None and earlier < _LOOKBACK_FLOOR_AT:
            earlier = None
        before = len(entries)
        more = collector.collect(site, low - timedelta(microseconds=1), earlier, memo=memo, render=False)
        for entry in more.entries:
            entries.setdefault(entry.id, entry)
        problems.update(dict.fromkeys(more.problems))
        if len(entries) > before:
            step = timedelta(0)  # found some: the next step is sized by what is still missing
        low = earlier
    ordered = sorted(entries.values(), key=lambda e: (-e.published_at.timestamp(), e.source, e.id))
    return ordered, tuple(problems), found.scanned


def build(
    settings: Settings,
    now_at: datetime,
    week: Week,
    *,
    strict: bool = False,
    carried: Mapping[str, Carried] | None = None,
    languages: Iterable[str] | None = None,
    memo: Memo | None = None,
    history_bodies: bool = True,
) -> Build:
    """The week's issue in every language and the feeds' history. `carried` (what the ledger says about
    earlier issues, see digest.issues) adds the late arrivals and leaves out what earlier issues carried;
    without it every entry dated in the week is in its issue. Only the issues and the history of
    `languages` (language keys; None: every language) get their entries' bodies rendered: the others
    are there for their titles, dates and counts. `memo` keeps what was read and rendered for the next run.
    With `history_bodies` False the history is left unrendered too, for site_files to render what the
    cache does not hold (with Build.render)."""
    site = settings.site
    carried = carried or {}
    count = settings.output.feed_issues
    horizon_at = feed_horizon(settings, now_at, week)
    bounds = [c.first_start_at for c in carried.values() if c.first_start_at is not None]
    feeds_since_at = min([horizon_at - timedelta(weeks=count), *bounds])
    if languages is not None and week.end_at <= feeds_since_at:
        # A preview of an older week shows that week and the feeds' weeks: the posts between are not read.
        entries, problems, scanned = _gather(settings, now_at, feeds_since_at, horizon_at, memo)
        in_week = collector.collect(
            site, week.end_at - timedelta(microseconds=1), week.start_at, memo=memo, render=False, later=False
        )
        found = {e.id: e for e in entries} | {e.id: e for e in in_week.entries}
        entries = sorted(found.values(), key=lambda e: (-e.published_at.timestamp(), e.source, e.id))
        problems = tuple(dict.fromkeys(problems + in_week.problems))
    else:
        since_at = min(week.start_at, feeds_since_at)
        entries, problems, scanned = _gather(settings, now_at, since_at, horizon_at, memo)
    if strict and problems:
        first = problems[0]
        raise CollectError(
            f"{first.message} ({len(problems)} file(s) skipped)",
            "fix the file or run without --strict",
            source=first.source,
            line=first.line,
        )
    pools = issues.by_language(entries, site)
    pools.setdefault("", ())
    shown = set(pools) if languages is None else set(languages)
    render: Renderer = functools.partial(collector.render_entries, memo=memo)
    week_issues: dict[str, Issue] = {}
    history: dict[str, tuple[Issue, ...]] = {}
    picked = []
    for language, pool in pools.items():
        empty = Issue(site, week, (), problems, language)
        own, late = issues.select(pool, week, empty.id, carried.get(language, Carried()))
        picked.append((language, empty, own, late, issues.history(pool, site, horizon_at, count)))
    # Every body shown, rendered in one call first (a first run renders hundreds: the collector hands that
    # many to helper processes), so the calls below find them rendered.
    wanted: list[Entry] = []
    for language, _, own, late, past in picked:
        if language in shown:
            wanted += [*own, *late]
            wanted += [e for _, group in past for e in group] if history_bodies else []
    render(wanted)
    for language, empty, own, late, past in picked:
        if language in shown:
            own, late = render(own), render(late)
            past = [(w, render(group)) for w, group in past] if history_bodies else past
        week_issues[language] = replace(empty, entries=own, late=late)
        history[language] = tuple(Issue(site, w, group, (), language) for w, group in past)
    return Build(site, week, pools, week_issues, history, problems, scanned, render)


def problems_of(result: Build) -> tuple[Problem, ...]:
    return result.problems


# -- rendering and publishing ----------------------------------------------------------------------


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
            own = tuple(e for e in issue.entries if sub.wants(e))
            late = tuple(e for e in issue.late if sub.wants(e))
            # An issue without any entry is the "no new posts" note (email.empty_week = "note"), for everyone.
            wanted = own or late or not issue.all_entries
            variant_issue = replace(issue, entries=own, late=late)
            by_filter[tags] = templater.render_email(variant_issue, settings) if wanted else None
        rendered = by_filter[tags]
        if rendered is None:
            skipped[sub.key] = "no entries this week match the subscriber's tags"
            continue
        variants[(tags, fmt)] = rendered
    return variants, skipped


def tag_issues(history: Iterable[Issue]) -> dict[str, tuple[str, list[Issue]]]:
    """{tag slug: (tag as written, the issues narrowed to that tag's entries)} for the per-tag feeds."""
    found: dict[str, tuple[str, list[Issue]]] = {}
    for issue in history:
        by_tag: dict[str, list[Entry]] = {}
        for entry in issue.entries:
            for tag in dict.fromkeys(t.casefold() for t in entry.tags + entry.categories):
                by_tag.setdefault(tag, []).append(entry)
        for tag, entries in by_tag.items():
            shown = next(t for t in entries[0].tags + entries[0].categories if t.casefold() == tag)
            found.setdefault(slugify(tag), (shown, []))[1].append(replace(issue, entries=tuple(entries)))
    return found


def site_files(
    build_result: Build, settings: Settings, languages: Iterable[str] | None = None, memo: Memo | None = None
) -> dict[str, bytes]:
    render = build_result.render
    """The feeds and the archive of each language (the site's at the top of the output folder, the others
    in `<lang>/`): the last `output.feed_issues` weeks with entries, never a placeholder."""
    files: dict[str, bytes] = {}
    for language in build_result.languages if languages is None else languages:
        history = build_result.history.get(language, ())
        files.update(templater.render_feeds(history, settings, language=language, memo=memo, bodies=render))
        if settings.output.tag_feeds:
            for slug, (tag, tagged) in sorted(tag_issues(history).items()):
                title = f"{settings.site.title} · {tag}"
                path = f"tags/{slug}/"
                files.update(
                    templater.render_feeds(
                        tagged, settings, language=language, path=path, title=title, memo=memo, bodies=render
                    )
                )
        files.update(templater.render_archive(history, settings, language=language, memo=memo, bodies=render))
    return files


@functools.cache
def _public_mode() -> int:
    """0644 under the usual umask 022: what open() would give. mkstemp makes 0600, which a web server
    running as another user cannot read. Read once: os.umask can only be read by setting it, and two
    threads doing that at once could each see the other's 0."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def write_files(out_dir: Path, files: Mapping[str, bytes]) -> list[Path]:
    """Write atomically (tmp + rename) so a static host never serves half a file; a folder that cannot
    be written (permissions, a file in the way, a full disk) is one OutputError naming the path. Files are
    readable by everyone (0644 with the usual umask) and folders 0755: the output folder is published."""
    written = []
    mode = _public_mode()
    for rel, data in sorted(files.items()):
        target = out_dir / rel
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_file() and target.read_bytes() == data:
                if target.stat().st_mode & 0o777 != mode:
                    target.chmod(mode)  # written by an older version with 0600
                written.append(target)
                continue
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                os.chmod(tmp, mode)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise OutputError(
                f"cannot write {exc.filename or target}: {exc.strerror}",
                "check that output.dir is a folder you can write to and that the disk has room",
                transient=exc.errno in (errno.ENOSPC, errno.EDQUOT),
            ) from exc
        written.append(target)
    return written


PREVIEW_DIR = "preview"  # inside the output folder; `digest serve` never serves it


@dataclass(frozen=True)
class Preview:
    build: Build
    issue: Issue  # the previewed issue (the language asked for)
    rendered: RenderedIssue | None
    files: dict[str, Path]  # name relative to the preview folder -> path
    folder: Path


def preview(
    settings: Settings,
    now_at: datetime,
    week: Week,
    *,
    strict: bool = False,
    language: str = "",
    store: sender.Store | None = None,
) -> Preview:
    """Build the issue of `week` in `language` as it would be sent now (late arrivals included when the
    ledger exists) and write it, with the feeds and the archive it would give, into the preview folder,
    apart from the published files: a preview never changes what is published."""
    carried = read_carried(settings, store)
    with cached(settings) as memo:
        result = build(
            settings,
            now_at,
            week,
            strict=strict,
            carried=carried,
            languages=[language],
            memo=memo,
            history_bodies=False,
        )
        issue = result.issue_of(language)
        files = site_files(result, settings, [language], memo)
        rendered = None
        if issue.all_entries or settings.email.empty_week == "note":
            rendered = templater.render_email(issue, settings, memo=memo)
            files.update(_example_files(rendered, settings, memo))
    folder = settings.output.dir / PREVIEW_DIR
    named = {path.relative_to(folder).as_posix(): path for path in write_files(folder, files)}
    return Preview(build=result, issue=issue, rendered=rendered, files=named, folder=folder)


def _example_files(rendered: RenderedIssue, settings: Settings, memo: Memo | None) -> dict[str, bytes]:
    """email.html, email.txt and email.eml of a preview: the message the example subscriber gets. From the
    cache while the email and the settings (the secret that signs its links too) are unchanged: then a
    preview needs none of the sender's modules."""
    issue = rendered.issue
    key = fingerprint(settings, settings.secret, settings.old_secrets, rendered, issue.updated_at) if memo else ""
    if memo is not None:
        kept = memo.get("example", issue.id)
        if isinstance(kept, tuple) and len(kept) == 2 and kept[0] == key and isinstance(kept[1], dict):
            return dict(kept[1])
    # Dated from the entries, not the clock, so the preview files are byte-identical across builds.
    factory = sender.MessageFactory({EXAMPLE_SUBSCRIBER.variant: rendered}, settings, issue.updated_at)
    example = factory.build(EXAMPLE_SUBSCRIBER)
    html, plain = _parts_of(example.data)
    files = {
        issue.prefix + "email.html": html.encode(),
        issue.prefix + "email.txt": plain.encode(),
        issue.prefix + "email.eml": example.data,
    }
    if memo is not None:
        memo.put("example", issue.id, (key, files))
    return files


def _parts_of(data: bytes) -> tuple[str, str]:
    """The HTML and the text part of a built message, decoded: what the example subscriber reads."""
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    parts = [message.get_body(("html",)), message.get_body(("plain",))]
    html, plain = (str(p.get_content()) if isinstance(p, email.message.EmailMessage) else "" for p in parts)
    return html, plain


def publish(settings: Settings, now_at: datetime, week: Week, *, strict: bool = False) -> Build:
    with cached(settings) as memo:
        result = build(settings, now_at, week, strict=strict, memo=memo, history_bodies=False)
        if memo is not None:
            _render_in_two(result, settings, memo)
        write_files(settings.output.dir, site_files(result, settings, memo=memo))
    return result


# A rebuild of a long history with nothing kept (the first publish, or after an upgrade emptied the cache)
# renders every body, feed entry and archive page in one process: 10.7 s for bench_publish's 500 issues,
# where Hugo uses both CPUs. A forked helper renders the older half into a Recorder while this process
# renders the newer half into the cache; the helper's bodies, entries and pages join the cache, and
# site_files then makes every file from it as a run with a full cache does (the same code renders each
# piece, so the files are the same bytes; tests compare them). A helper that fails only costs time: what
# it did not bring is rendered here by site_files, which reports any error as a run without helper would.
PARALLEL_MIN_ISSUES = 64
_FROM_HELPER = frozenset({"body", "item", "page"})


def _cpus() -> int:
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 1


def _render_in_two(result: Build, settings: Settings, memo: Cache) -> None:
    import multiprocessing

    histories = {language: result.history.get(language, ()) for language in result.languages}
    total = sum(len(history) for history in histories.values())
    if total < PARALLEL_MIN_ISSUES or _cpus() < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return
    if memo.has("item"):  # an earlier run's entries are kept: the rebuild renders only what changed
        return
    from concurrent.futures import ProcessPoolExecutor

    newer = {language: history[: len(history) // 2] for language, history in histories.items()}
    older = {language: history[len(history) // 2 :] for language, history in histories.items()}
    try:
        # fork: the helper starts with the entries build() collected (and knows how to render them)
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
            helped = pool.submit(_render_share, settings, older, None)
            _render_share(settings, newer, memo)
            pickled = helped.result()
    except Exception:  # any failure: site_files renders what is missing, and reports it
        return
    memo.merge({key: blob for key, blob in pickled.items() if key[0] in _FROM_HELPER})


def _render_share(
    settings: Settings, histories: Mapping[str, tuple[Issue, ...]], memo: Cache | None
) -> dict[tuple[str, str], bytes]:
    """Render the feed entries and archive pages of `histories` into `memo` (a new Recorder when None, whose
    values are returned): what site_files then takes from the cache."""
    target: Cache | cache.Recorder = memo if memo is not None else cache.Recorder()
    bodies = functools.partial(collector.render_entries, memo=target)
    for language, history in histories.items():
        templater.render_feeds(history, settings, language=language, memo=target, bodies=bodies)
        templater.render_archive(history, settings, language=language, memo=target, bodies=bodies)
    return target.pickled if isinstance(target, cache.Recorder) else {}


# -- the state database ----------------------------------------------------------------------------


def open_store(settings: Settings) -> sender.Store:
    if not settings.database_url:
        private_folder(settings.state_dir)
    return sender.Store(settings.db_url)


def open_ledger(settings: Settings, store: sender.Store | None = None) -> sender.Ledger:
    policy = settings.delivery
    return sender.Ledger(
        store or open_store(settings),
        max_attempts=policy.max_attempts,
        retry_base_seconds=policy.retry_base_seconds,
        lease=timedelta(seconds=policy.lease_seconds),
    )


def issue_status(settings: Settings, issue_id: str, store: sender.Store | None = None) -> IssueStatus:
    return open_ledger(settings, store).status(issue_id)


def unsubscribe(
    settings: Settings, email: str, now_at: datetime, reason: str, store: sender.Store | None = None
) -> bool:
    """Suppress an address (and mark it unsubscribed in the subscriber store); True when it was not
    suppressed before."""
    return sender.Roster(store or open_store(settings)).unsubscribe(email, now_at, reason)


def resubscribe(
    settings: Settings, email: str, store: sender.Store | None = None, now_at: datetime | None = None
) -> bool:
    from datetime import UTC

    when = now_at or datetime.now(UTC)
    return sender.Roster(store or open_store(settings)).resubscribe(email, when, "resubscribed by hand")


def suppressed(settings: Settings, store: sender.Store | None = None) -> set[str]:
    return sender.Suppressions(store or open_store(settings)).all()


def address_of_token(settings: Settings, token: str, now_at: datetime) -> str:
    """The address an unsubscribe token was made for; TokenError when forged, damaged or expired."""
    return sender.verify_token(settings.secret, token, now_at, old_secrets=settings.old_secrets)


# -- delivery --------------------------------------------------------------------------------------


def transport_factory(settings: Settings, *, dry_run: bool = False) -> sender.TransportFactory:
    return sender.transport_for(settings, dry_run=dry_run)


def check_settings(settings: Settings) -> None:
    """The checks that need a stage's knowledge (config checked everything else at load)."""
    sender.transport_kind(settings)


def read_carried(settings: Settings, store: sender.Store | None = None) -> dict[str, Carried]:
    """What the ledger says about the issues planned so far ({} when there is no ledger yet: a preview
    never creates one)."""
    if store is not None:
        return sender.read_carried(store)
    if not settings.database_url and not (settings.state_dir / "digest.sqlite3").is_file():
        return {}
    opened = open_store(settings)
    try:
        return sender.read_carried(opened)
    finally:
        opened.close()


def run_cycle(
    settings: Settings,
    now_at: datetime,
    week: Week,
    *,
    clock: Clock,
    store: sender.Store | None = None,
    transports: sender.TransportFactory | None = None,
    publish: bool = True,
    dry_run: bool = False,
    strict: bool = False,
    subscribers: tuple[Subscriber, ...] | None = None,
    progress: Callable[[int, int], None] | None = None,
    stop: threading.Event | None = None,
    skipped: Mapping[str, str] | None = None,
    preflight: bool = False,
) -> CycleReport:
    """The weekly cycle: build the week's issues once; with `publish`, write the feeds and the archive; send
    each subscriber the issue in their language through the ledger (an issue already complete sends
    nothing, a partial one resumes with the same entries). With `preflight` (the service, `digest run`), DNS
    and the unsubscribe endpoint are checked first and a DeliverabilityError stops the send while DKIM or
    DMARC is broken (see doctor.before_send)."""
    started = time.monotonic()
    own_store = store is None
    store = store or open_store(settings)
    try:
        carried = sender.read_carried(store)
        published = 0
        with cached(settings) as memo:
            result = with_note(
                build(settings, now_at, week, strict=strict, carried=carried, memo=memo), settings, store
            )
            if publish and not dry_run:
                write_files(settings.output.dir, site_files(result, settings, memo=memo))
                published = sum(len(h) for h in result.history.values())
        where = "nowhere (dry run)" if dry_run else sender.describe(settings)

        def report(runs: list[IssueRun]) -> CycleReport:
            return CycleReport(
                week, tuple(runs), published, where, round(time.monotonic() - started, 3), dry_run, result.problems
            )

        skip_empty = settings.email.empty_week == "skip"
        if skip_empty and not any(i.all_entries for i in result.issues.values()):
            return report([])
        paused: dict[str, str] = {}
        if subscribers is None:  # the store, after bringing subscribers.yaml in
            subscribers, paused = send_list(settings, now_at, store)
        by_language: dict[str, list[Subscriber]] = {}
        languages: dict[str, str] = {}  # a subscriber's language -> its issue's: a few values over the list
        for sub in subscribers:
            language = languages.get(sub.language)
            if language is None:
                language = languages[sub.language] = text.issue_language(sub.language, settings.site.language)
            by_language.setdefault(language, []).append(sub)
        if preflight and not dry_run:
            sender.check_before_send(settings, now_at)
        runs = []
        for language in sorted(by_language):
            issue = result.issue_of(language)
            if not dry_run and (issue.all_entries or not skip_empty):
                # Recorded before anything is sent, once: a rerun sends these very entries.
                keys = sender.record_issue(store, issue, now_at)
                fixed = Carried(planned={issue.id: keys})
                own, late = issues.select(result.pools.get(language, ()), week, issue.id, fixed)
                issue = replace(issue, entries=result.render(own), late=result.render(late))
            delivery = None
            # one language: the list itself, not a copy of 100,000 references (nor a list of them kept)
            group = by_language.pop(language)
            readers = subscribers if len(group) == len(subscribers) else tuple(group)
            del group
            if issue.all_entries or not skip_empty:
                # paused readers are recorded (skipped, with the reason) in the first issue planned
                skipped, paused = paused, {}
                delivery = _deliver(settings, issue, readers, store, now_at, clock,
                                    transports, dry_run, progress, stop, skipped)  # fmt: skip
                if not dry_run and delivery.status is not None and delivery.status.counts.get("failed"):
                    record_refusals(settings, delivery.status, now_at, store)
            runs.append(IssueRun(issue.id, language, issue.lang, issue.entries, issue.late, delivery))
            if stop is not None and stop.is_set():
                break
        return report(runs)
    finally:
        if own_store:
            store.close()


def _deliver(
    settings: Settings,
    issue: Issue,
    subscribers: tuple[Subscriber, ...],
    store: sender.Store,
    now_at: datetime,
    clock: Clock,
    transports: sender.TransportFactory | None,
    dry_run: bool,
    progress: Callable[[int, int], None] | None,
    stop: threading.Event | None,
    skipped: Mapping[str, str] | None = None,
) -> DeliveryReport:
    variants, not_wanted = render_variants(issue, settings, subscribers)
    skipped = {**(skipped or {}), **not_wanted}
    factory = sender.MessageFactory(variants, settings, now_at)
    try:
        return sender.deliver(
            factory,
            subscribers,
            open_ledger(settings, store),
            transports or transport_factory(settings, dry_run=dry_run),
            settings.delivery,
            clock,
            issue_id=issue.id,
            skipped=skipped,
            dry_run=dry_run,
            progress=progress,
            stop=stop,
        )
    finally:
        factory.close()  # its DKIM signing helpers, if the send started any


# -- the weekly service ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceStep:
    """What the service did about one week in one tick."""

    week: Week
    report: CycleReport | None = None  # None when the cycle failed before it could report
    error: DigestError | None = None
    cycle: Cycle | None = None  # the cycle's record afterwards: done, or open with its next try
    quiet: bool = False  # nothing new to say (still waiting for the owner's approval)


def job_week(settings: Settings, fire_at: datetime) -> Week:
    """The week a scheduled run at `fire_at` sends: the last one that had fully ended at that time. The
    fire time, not the moment the run starts, decides: a run due Sunday 23:00 and started at 01:00 sends
    the same week it would have sent on time."""
    return select_week(settings, fire_at, "last")


def _week_of_issue(settings: Settings, issue_id: str) -> Week | None:
    label = issue_id.rsplit("/", 1)[-1]
    try:
        return weeks.parse_week(label, settings.site, datetime.now(settings.site.tz))
    except UsageError:
        return None  # a custom --since/--until window: not the service's to finish


def due_weeks(
    settings: Settings, now_at: datetime, fire_times: Iterable[datetime], store: sender.Store
) -> tuple[list[tuple[Week, datetime]], list[Week]]:
    """(the weeks the service owes at `now_at`, oldest first; the weeks it missed) from the scheduled times
    that have passed (`fire_times`, oldest first) and the state database:

    - a week never started whose scheduled time is within `schedule.misfire_grace_hours`: the newest such
      week only, or each of them with `schedule.catch_up`; the others are missed, recorded (and returned)
      once so the service logs each once;
    - a started week that is not finished (mail deferred, a server or database that was down, a stop or a
      crash in the middle), within `schedule.resume_days` of its scheduled time, once its retry time came;
    - an issue with rows still to send (a `digest send` stopped or killed by hand) within `resume_days`.
    """
    cycles = sender.Cycles(store)
    grace = timedelta(hours=settings.schedule.misfire_grace_hours)
    resume_from = now_at - timedelta(days=settings.schedule.resume_days)
    due: dict[str, tuple[Week, datetime]] = {}
    new: list[tuple[Week, datetime]] = []
    for fire_at in fire_times:
        week = job_week(settings, fire_at)
        cycle = cycles.get(week.label)
        if cycle is None:
            new.append((week, fire_at))
        elif cycle.state == "open" and fire_at >= resume_from and (cycle.next_try_at or now_at) <= now_at:
            due[week.label] = (week, fire_at)
    in_grace = [(w, f) for w, f in new if now_at - f <= grace]
    started = in_grace if settings.schedule.catch_up else in_grace[-1:]
    for week, fire_at in started:
        due.setdefault(week.label, (week, fire_at))
    missed = [
        week
        for week, fire_at in new
        if (week, fire_at) not in started and cycles.miss(week.label, fire_at, now_at, "the service was not running")
    ]
    for cycle in cycles.open_since(resume_from):
        found = _week_of_issue(settings, cycle.week)
        if found is not None and cycle.week not in due and (cycle.next_try_at or now_at) <= now_at:
            due[cycle.week] = (found, cycle.fire_at)
    for issue_id in open_ledger(settings, store).unfinished_issues(resume_from):
        found = _week_of_issue(settings, issue_id)
        if found is not None and found.label not in due and cycles.get(found.label) is None:
            due[found.label] = (found, found.end_at)
    return sorted(due.values(), key=lambda pair: pair[1]), missed


def _backoff(settings: Settings, attempts: int) -> timedelta:
    seconds = settings.delivery.retry_base_seconds * 2 ** max(0, attempts - 1)
    return timedelta(seconds=min(max(seconds, settings.schedule.tick_seconds), 3600))


def advance_cycle(
    settings: Settings,
    week: Week,
    fire_at: datetime,
    *,
    clock: Clock,
    store: sender.Store,
    transports: sender.TransportFactory | None = None,
    stop: threading.Event | None = None,
) -> ServiceStep:
    """One step of a week's cycle for the service: run it (a complete issue sends nothing, a partial one
    resumes), then record whether the week is finished or when to try again. A transient failure (a
    server, a database, a full disk) is retried with back-off; a config mistake too, since the config is
    read again at every tick; the week is never given up while it is within `schedule.resume_days`."""
    cycles = sender.Cycles(store)
    cycles.start(week.label, fire_at, clock())
    before = cycles.get(week.label)
    waiting = review_gate(settings, week, fire_at, clock(), store)
    if waiting is not None:
        return ServiceStep(week, None, None, waiting, quiet=before is not None and before.note == waiting.note)
    try:
        report = run_cycle(
            settings, clock(), week, clock=clock, store=store, transports=transports, stop=stop, preflight=True
        )
    except DigestError as exc:
        now_at = clock()
        record = cycles.get(week.label)
        attempts = (record.attempts if record else 0) + 1
        cycle = cycles.retry(week.label, now_at, now_at + _backoff(settings, attempts), str(exc), failed=True)
        return ServiceStep(week, None, exc, cycle)
    now_at = clock()
    ledger = open_ledger(settings, store)
    # every language's issue of the week: "2026-W47", "ko/2026-W47", …
    left = sum(ledger.open_rows(issue) for issue in {week.label, *(run.issue_id for run in report.issues)})
    stopped = report.delivery.stopped if report.delivery else ""
    if stop is not None and stop.is_set() and left:
        cycle = cycles.retry(week.label, now_at, now_at, f"stopped with {left} to send", failed=False)
    elif stopped and left:  # the error budget ran out: the server refuses everything for now
        record = cycles.get(week.label)
        attempts = (record.attempts if record else 0) + 1
        cycle = cycles.retry(week.label, now_at, now_at + _backoff(settings, attempts), stopped, failed=True)
    elif left:
        retries = [ledger.next_retry_at(run.issue_id) for run in report.issues] or [ledger.next_retry_at(week.label)]
        retry_at = min((r for r in retries if r), default=None) or now_at + timedelta(
            seconds=settings.schedule.tick_seconds
        )
        cycle = cycles.retry(week.label, now_at, max(retry_at, now_at), f"{left} waiting for a retry", failed=False)
    else:
        cycles.finish(week.label, now_at)
        return ServiceStep(week, report, None, cycles.get(week.label))
    return ServiceStep(week, report, None, cycle)


def send_test_copy(
    settings: Settings, now_at: datetime, week: Week, address: str, language: str = ""
) -> sender.SendResult | None:
    """One copy of the issue in `language` to one address (`digest send --to`); the ledger is not written."""
    result = build(settings, now_at, week, carried=read_carried(settings))
    issue = result.issue_of(language)
    if not issue.all_entries:
        return None
    subscriber = single_subscriber(address)
    variants, _ = render_variants(issue, settings, [subscriber])
    message = sender.MessageFactory(variants, settings, now_at).build(subscriber)
    return sender.send_test_copy(message, transport_factory(settings)())


# -- digest doctor ---------------------------------------------------------------------------------


def sample_issue(settings: Settings, week: Week) -> Issue:
    """An issue of one invented post, for `digest doctor` on a site that has no issue yet."""
    body = "<p>A sample post, so that digest doctor can build a message like the ones a send makes.</p>"
    entry = Entry(
        id="tag:digest,sample",
        title="A sample post",
        published_at=week.start_at,
        url=settings.site.base_url,
        source="(sample)",
        body_html=body,
        summary_html=body,
    )
    return Issue(site=settings.site, week=week, entries=(entry,))


def doctor(settings: Settings, now_at: datetime) -> list[Finding]:
    """`digest doctor`: DNS of the From domain, one real message of the latest issue (a sample when there is
    none) built as a send builds it, the one-click endpoint, and the volume at the big mailbox providers."""
    problems: list[Finding] = []
    message = None
    summarized = False
    try:
        week = select_week(settings, now_at, "last")
        history = build(settings, now_at, week).history  # the site's language first
        latest = [past[0] for _, past in sorted(history.items()) if past]
        issue = latest[0] if latest else sample_issue(settings, week)
        rendered = templater.render_email(issue, settings)
        factory = sender.MessageFactory({EXAMPLE_SUBSCRIBER.variant: rendered}, settings, now_at)
        message, summarized = factory.build(EXAMPLE_SUBSCRIBER), rendered.summarized
        factory.close()
    except DigestError as exc:
        problems.append(Finding("message", "fail", f"cannot build a message: {exc.message}", exc.hint))
    subscribers: list[Subscriber] | None = None
    gone: set[str] = set()
    try:
        subscribers, gone = _next_send_list(settings, now_at)
    except DigestError as exc:
        problems.append(Finding("volume", "fail", exc.message, exc.hint))
    found = sender.diagnose(settings, now_at, message, summarized=summarized, subscribers=subscribers, suppressed=gone)
    return found + problems


def _next_send_list(settings: Settings, now_at: datetime) -> tuple[list[Subscriber], set[str]]:
    """Who the next send would go to and who it skips, read without writing: the subscribers file, then the
    store (its statuses win: a bounced or paused address in the file gets nothing)."""
    listed = {s.key: s for s in (load_subscribers(settings) if settings.subscribers is not None else ())}
    store = open_store(settings)
    try:
        stored, skipped = sender.Roster(store).for_send(now_at)
        gone = suppressed(settings, store) | set(skipped)
    finally:
        store.close()
    listed.update((s.key, s) for s in stored)
    return list(listed.values()), gone


# -- subscribers -----------------------------------------------------------------------------------


def load_subscribers(settings: Settings) -> tuple[Subscriber, ...]:
    return _load_subscribers(require_subscribers(settings))


def check_subscribers(settings: Settings) -> tuple[tuple[Subscriber, ...], list[Problem]]:
    return _check_subscribers(require_subscribers(settings))


def require_subscribers(settings: Settings) -> Path:
    if settings.subscribers is None:
        raise ConfigError(
            "no subscribers file",
            "set [subscribers] file in digest.toml or put subscribers.yaml next to it",
            source=str(settings.config_file or settings.site.root),
        )
    return settings.subscribers


# -- digest check ----------------------------------------------------------------------------------


def _writable(folder: Path, private: bool = False) -> str:
    """ "" when files can be written in `folder` (made if missing), else why not."""
    try:
        private_folder(folder) if private else folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".check-"):
            pass
    except OSError as exc:
        return f"{folder}: {exc.strerror}"
    return ""


def check(settings: Settings, now_at: datetime, *, connect: bool = False) -> list[Finding]:
    """Everything a weekly run will need, each checked now: `digest check`. Loading the settings already
    checked the config, the addresses, the subject, the template folder and the DKIM key."""
    found: list[Finding] = []

    def attempt(name: str, step: Callable[[], Finding]) -> None:
        try:
            found.append(step())
        except DigestError as exc:
            where = (f"{exc.source}:{exc.line}: " if exc.line else f"{exc.source}: ") if exc.source else ""
            found.append(Finding(name, "fail", where + exc.message, exc.hint))

    config = str(settings.config_file or "none (defaults and the site's own config)")
    site_config = f"; site config {settings.site_config_file}" if settings.site_config_file else ""
    found.append(Finding("config", "ok", f"{config}{site_config}"))

    built: list[Build] = []

    def posts() -> Finding:
        result = build(settings, now_at, select_week(settings, now_at, "last"))
        built.append(result)
        problems = result.problems
        detail = f"{result.scanned} files in {len(settings.site.source_dirs)} folder(s); last week has "
        detail += f"{len(result.issue.entries)} entries; {len(problems)} file(s) skipped"
        if problems:
            first = problems[0]
            return Finding("posts", "warn", detail, f"first: {first.source}: {first.message}")
        return Finding("posts", "ok", detail)

    def templates() -> Finding:
        names = templater.check_templates(settings.output.templates)
        where = f" ({settings.output.templates} first)" if settings.output.templates else ""
        return Finding("templates", "ok", f"{len(names)} compiled{where}")

    def email() -> Finding:
        detail = f"From {settings.email.sender}; List-Id {settings.email.list_id}"
        if settings.email.dkim_key:
            detail += f"; DKIM {settings.email.dkim_selector}._domainkey.{settings.email.dkim_domain}"
        if settings.email.public_url:
            detail += f"; one-click unsubscribe at {settings.email.public_url}"
            return Finding("email", "ok", detail)
        return Finding("email", "warn", detail, "set email.public_url (and run digest serve) for one-click unsubscribe")

    def subscribers() -> Finding:
        subs, problems = check_subscribers(settings)
        detail = f"{settings.subscribers}: {len(subs)} ({sum(s.active for s in subs)} active)"
        if problems:
            return Finding("subscribers", "fail", detail + f"; {len(problems)} problem(s)", str(problems[0]))
        wanted = {text.issue_language(s.language, settings.site.language) for s in subs if s.active}
        if built and len(wanted | set(built[0].languages)) > 1:
            shown = ", ".join(lang or settings.site.language for lang in sorted(wanted))
            detail += f"; languages {shown}"
            unknown = sorted(wanted - set(built[0].languages))
            if unknown:
                return Finding(
                    "subscribers",
                    "warn",
                    detail,
                    f"no recent post is in {', '.join(unknown)}: those subscribers get nothing until one is "
                    "(check their `language`: a language tag such as ko or zh-Hant)",
                )
        return Finding("subscribers", "ok", detail)

    def folders() -> Finding:
        for folder, private in ((settings.output.dir, False), (settings.state_dir, True)):
            why = _writable(folder, private)
            if why:
                return Finding("folders", "fail", f"cannot write {why}", "fix the permissions or the path")
        return Finding("folders", "ok", f"output {settings.output.dir}; state {settings.state_dir}")

    def database() -> Finding:
        store = open_store(settings)
        store.close()
        return Finding("database", "ok", f"{sender.safe_url(settings.db_url)} (schema {sender.SCHEMA_VERSION})")

    def transport() -> Finding:
        where = sender.describe(settings)
        if not connect:
            return Finding("transport", "ok", f"{where} (not contacted; --connect tries it)")
        opened = transport_factory(settings)()
        opened.open()
        opened.close()
        return Finding("transport", "ok", f"{where}: connected")

    for name, step in (
        ("posts", posts),
        ("templates", templates),
        ("email", email),
        ("subscribers", subscribers),
        ("folders", folders),
        ("database", database),
        ("transport", transport),
    ):
        attempt(name, step)
    if sender.transport_kind(settings).name == "ses":
        if settings.email.public_url and settings.secret:
            url = provider_events_url(settings, now_at)
            found.append(Finding("ses events", "ok", f"subscribe the SES notification topic (HTTPS) to {url}"))
        else:
            found.append(
                Finding("ses events", "warn", "SES bounces and complaints are not read",
                        "set email.public_url and DIGEST_SECRET, then subscribe the SNS topic to the URL shown here")
            )  # fmt: skip
    return found


# -- readers: the subscriber store, the public side's flows, bounces, import and export ----------------
#
# The edges reach the subscriber store only through these functions. The weekly send reads the store
# (after bringing subscribers.yaml in); every change of status keeps the suppression list in step.

WELCOME_PREFIX = "welcome-"


def roster(settings: Settings, store: sender.Store | None = None) -> sender.Roster:
    return sender.Roster(store or open_store(settings))


def sync_subscribers(settings: Settings, now_at: datetime, store: sender.Store | None = None) -> sender.SyncReport:
    """Bring the subscribers file into the store (nothing to do without a file)."""
    if settings.subscribers is None:
        return sender.SyncReport()
    entries = _load_subscribers(settings.subscribers)
    return roster(settings, store).sync_file(entries, str(settings.subscribers), now_at)


def send_list(
    settings: Settings, now_at: datetime, store: sender.Store | None = None
) -> tuple[tuple[Subscriber, ...], dict[str, str]]:
    """Who the weekly send goes to, from the store after syncing the file; and why paused ones are skipped."""
    own = store is None
    store = store or open_store(settings)
    try:
        sync_subscribers(settings, now_at, store)
        found, skipped = sender.Roster(store).for_send(now_at)
    finally:
        if own:
            store.close()
    if not found and settings.subscribers is None:
        require_subscribers(settings)  # no file and nobody subscribed yet: say how to start
    return found, skipped


def record_refusals(settings: Settings, status: IssueStatus, now_at: datetime, store: sender.Store) -> int:
    """Apply the bounce policy to recipients the SMTP server refused for good during a send (5xx): today's
    refusals count like bounces, so a dead address is not tried every week. Each refusal counts once."""
    book = sender.Roster(store)
    policy = settings.bounces
    applied = 0
    for row in status.failures:
        if row.state != "failed" or row.reply[:1] != "5":
            continue
        key = hashlib.sha256(f"smtp\x00{status.issue_id}\x00{row.recipient}".encode()).hexdigest()
        if not book.first_time(key, now_at):
            continue
        kind = "hard" if sender.is_hard(row.reply[:3], row.reply) else "soft"
        book.record_bounce(
            row.recipient, kind, f"refused at send ({status.issue_id}): {row.reply}"[:300], now_at,
            soft_limit=policy.soft_limit, soft_days=policy.soft_days,
        )  # fmt: skip
        applied += 1
    return applied


def subscribe(
    settings: Settings,
    now_at: datetime,
    email: str,
    *,
    name: str = "",
    language: str = "",
    page: str = "",
    ip: str = "",
    store: sender.Store | None = None,
) -> sender.Request:
    """A subscribe request (the form): ConfigError for an address that is not one; otherwise which mail
    goes out now (at most one per address per subscribe.confirm_interval_hours)."""
    from digest.config import normalise_address

    try:
        address = normalise_address(email)
    except ValueError as exc:
        raise ConfigError(f"{email!r} {exc}", "give one address such as ana@example.com") from exc
    sub = Subscriber(email=address, name=" ".join(name.split())[:200], language=language)
    config = settings.subscribe
    return roster(settings, store).request(
        sub,
        now_at,
        page=page[:500],
        ip=ip if config.store_ip else "",
        double_opt_in=config.double_opt_in,
        interval=timedelta(hours=config.confirm_interval_hours),
    )


def client_allowed(settings: Settings, client: str, now_at: datetime, store: sender.Store | None = None) -> bool:
    """The per-client limit of subscribe requests; the client's address is kept only as a keyed hash."""
    import hashlib

    key = "client:" + hashlib.sha256(f"{settings.secret}\x00{client}".encode()).hexdigest()[:32]
    config = settings.subscribe
    window = timedelta(minutes=config.client_window_minutes)
    return roster(settings, store).client_allowed(key, config.client_limit, window, now_at)


CAPTCHA_URLS = {
    "turnstile": "https://challenges.cloudflare.com/turnstile/v0/siteverify",
    "hcaptcha": "https://api.hcaptcha.com/siteverify",
}
CAPTCHA_FIELDS = {"turnstile": "cf-turnstile-response", "hcaptcha": "h-captcha-response"}


@dataclass(frozen=True)
class CaptchaCheck:
    """The provider's verdict on a form's CAPTCHA answer."""

    passed: bool
    reachable: bool = True  # False: the provider could not be asked (down, slow, a garbled answer)
    detail: str = ""  # the provider's error codes, or why it could not be asked


def verify_captcha(settings: Settings, response: str, ip: str, *, timeout: float = 10.0) -> CaptchaCheck:
    """Ask the CAPTCHA provider whether the form's answer is good (passed when no CAPTCHA is configured).
    A provider that cannot be asked fails closed: nothing is let through while it is down.
    urllib, not a client library: one form POST with a timeout is all the providers' APIs need."""
    import json
    import urllib.parse
    import urllib.request

    config = settings.subscribe
    if not config.captcha:
        return CaptchaCheck(True)
    if not response:
        return CaptchaCheck(False, detail="no answer in the form")
    url = config.captcha_verify_url or CAPTCHA_URLS[config.captcha]
    body = urllib.parse.urlencode({"secret": config.captcha_secret, "response": response, "remoteip": ip}).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=timeout) as answer:  # noqa: S310
            verdict = json.loads(answer.read().decode("utf-8"))
    except (OSError, ValueError) as exc:  # refused, timed out, an HTTP error status, not JSON
        return CaptchaCheck(False, reachable=False, detail=f"{url.split('?', 1)[0]}: {exc}"[:300])
    if not isinstance(verdict, dict) or not isinstance(verdict.get("success"), bool):
        return CaptchaCheck(False, reachable=False, detail=f"{url.split('?', 1)[0]}: an answer without success")
    codes = verdict.get("error-codes") or []
    return CaptchaCheck(verdict["success"], detail=", ".join(str(c) for c in codes)[:300])


def _link(settings: Settings, path: str, payload: str, now_at: datetime, purpose: str) -> str:
    token = sender.make_token(settings.secret, payload, now_at, purpose)
    return sender.link_url(settings.email.public_url or settings.site.base_url, path, token)


def _send_notice(settings: Settings, to: str, notice: templater.Notice, now_at: datetime, kind: str) -> SendResult:
    message = sender.build_notice(settings, to, notice.subject, notice.text, notice.html, now_at, kind=kind)
    return sender.send_test_copy(message, transport_factory(settings)())


def send_reader_mail(
    settings: Settings, request: sender.Request, now_at: datetime, *, clock: Clock, store: sender.Store | None = None
) -> SendResult | None:
    """The mail a subscribe request leads to: the confirmation, the "already subscribed" notice with the
    preference link, or (without double opt-in) the welcome email."""
    if request.mail == "confirm":
        link = _link(settings, "confirm", request.email, now_at, "confirm")
        notice = templater.render_notice(settings, "confirm", request.language, link)
        return _send_notice(settings, request.email, notice, now_at, "confirm")
    if request.mail == "notice":
        link = _link(settings, "preferences", request.email, now_at, "preferences")
        notice = templater.render_notice(settings, "notice", request.language, link)
        return _send_notice(settings, request.email, notice, now_at, "notice")
    if request.mail == "welcome":
        send_welcome(settings, request.email, now_at, clock=clock, store=store)
    return None


def reader_of_token(settings: Settings, token: str, now_at: datetime, purpose: str) -> str:
    """The address (or "old\\nnew" for a change) a signed link was made for; TokenError otherwise."""
    return sender.verify_token(settings.secret, token, now_at, purpose=purpose, old_secrets=settings.old_secrets)


def confirm(settings: Settings, email: str, now_at: datetime, store: sender.Store | None = None) -> str:
    """The confirmation page's button: "confirmed", "already" or "expired"."""
    return roster(settings, store).confirm(email, now_at, settings.subscribe.unconfirmed_days)


def welcome_id(email: str) -> str:
    import hashlib

    return WELCOME_PREFIX + hashlib.sha256(email.strip().lower().encode()).hexdigest()[:24]


def send_welcome(
    settings: Settings,
    email: str,
    now_at: datetime,
    *,
    clock: Clock,
    store: sender.Store | None = None,
    transports: sender.TransportFactory | None = None,
) -> sender.DeliveryReport | None:
    """The welcome email with the latest issue (narrowed to the reader's topics), through the ledger under
    an id of its own, so it goes out exactly once per address however often this is called."""
    if not settings.subscribe.welcome:
        return None
    own = store is None
    store = store or open_store(settings)
    try:
        record = sender.Roster(store).get(email, events=False)
        if record is None or record.status != "active":
            return None
        sub = record.subscriber()
        language = text.issue_language(sub.language, settings.site.language)
        latest = build(settings, now_at, select_week(settings, now_at, "last")).history.get(language, ())
        issue = None
        if latest:  # the latest issue in the reader's language
            entries = tuple(e for e in latest[0].entries if sub.wants(e))
            issue = replace(latest[0], entries=entries) if entries else None
        week = issue.week if issue else select_week(settings, now_at, "this")
        rendered = templater.render_welcome(issue, week, settings, sub.language)
        ident = welcome_id(sub.email)
        factory = sender.MessageFactory({sub.variant: rendered}, settings, now_at, issue_id=ident)
        return sender.deliver(
            factory,
            [sub],
            open_ledger(settings, store),
            transports or transport_factory(settings),
            settings.delivery,
            clock,
            issue_id=ident,
        )
    finally:
        if own:
            store.close()


@dataclass(frozen=True)
class Preferences:
    email: str
    record: SubscriberRecord
    topics: tuple[str, ...]
    languages: dict[str, str]


def preferences(
    settings: Settings, email: str, now_at: datetime, store: sender.Store | None = None
) -> Preferences | None:
    record = roster(settings, store).get(email, events=False)
    if record is None:
        return None
    return Preferences(record.email, record, site_topics(settings, now_at), templater.languages())


_TOPICS: dict[str, tuple[float, tuple[str, ...]]] = {}


def site_topics(settings: Settings, now_at: datetime) -> tuple[str, ...]:
    """The site's tags and categories (cached for ten minutes: the preference page asks on every view)."""
    key = str(settings.site.root)
    cached = _TOPICS.get(key)
    if cached is None or time.monotonic() - cached[0] > 600:
        cached = (time.monotonic(), collector.topics(settings.site, now_at))
        _TOPICS[key] = cached
    return cached[1]


def save_preferences(
    settings: Settings,
    email: str,
    now_at: datetime,
    *,
    language: str,
    topics: Iterable[str],
    fmt: str,
    pause_weeks: int,
    store: sender.Store | None = None,
) -> bool:
    offered = {t.casefold(): t for t in site_topics(settings, now_at)}
    chosen = [offered[t.casefold()] for t in topics if t.casefold() in offered]
    language = language if language in templater.languages() else ""
    return roster(settings, store).update_preferences(
        email,
        now_at,
        language=language,
        tags=chosen,
        fmt=fmt if fmt in ("html", "text") else "html",
        pause_weeks=max(-1, min(pause_weeks, 52)),
    )


def request_address_change(
    settings: Settings, email: str, new_email: str, now_at: datetime, store: sender.Store | None = None
) -> bool:
    """Mail a confirmation link to the new address (False when one went out too recently)."""
    from digest.config import normalise_address

    try:
        new = normalise_address(new_email)
    except ValueError as exc:
        raise ConfigError(f"{new_email!r} {exc}", "give one address such as ana@example.com") from exc
    book = roster(settings, store)
    interval = timedelta(hours=settings.subscribe.confirm_interval_hours)
    record = book.get(email, events=False)
    if record is None or not book.request_change(email, new, now_at, interval):
        return False
    link = _link(settings, "change", f"{record.email}\n{new}", now_at, "change")
    notice = templater.render_notice(settings, "change", record.language, link, old=record.email)
    _send_notice(settings, new, notice, now_at, "change")
    return True


def change_address(settings: Settings, payload: str, now_at: datetime, store: sender.Store | None = None) -> str:
    old, _, new = payload.partition("\n")
    return roster(settings, store).change_address(old, new, now_at)


def read_bounces(settings: Settings, now_at: datetime, store: sender.Store | None = None) -> BounceReport:
    """Read the bounce mailbox once and apply what it holds (`digest bounces`, and the service's tick)."""
    own = store is None
    store = store or open_store(settings)
    book = sender.Roster(store)
    config = settings.bounces
    mailto = settings.email.unsubscribe_mailto.removeprefix("mailto:") or _address_of(settings.email.sender)
    findings: list[BounceFinding] = []
    counts = {"messages": 0, "unknown": 0}

    def handle(raw: bytes) -> None:
        import hashlib

        counts["messages"] += 1
        returned = sender.classify_returned(raw, config.return_path, mailto)
        if returned.kind == "ignored":
            findings.append(BounceFinding("ignored", "", returned.reason))
            return
        by_address = next((a for a in returned.addresses if book.known(a)), "")
        owner = by_address if returned.kind == "unsubscribe" else book.tag_owner(returned.tags) or by_address
        if not owner:
            counts["unknown"] += 1
            findings.append(BounceFinding(returned.kind, "", f"no subscriber found: {returned.reason}"))
            return
        if not book.first_time(hashlib.sha256(raw).hexdigest(), now_at):
            return  # applied by an earlier run that stopped before marking it read
        status = book.record_bounce(
            owner, returned.kind, returned.reason, now_at, soft_limit=config.soft_limit, soft_days=config.soft_days
        )
        findings.append(BounceFinding(returned.kind, owner, returned.reason, status))

    try:
        sender.read_mailbox(config, handle)
    finally:
        if own:
            store.close()
    return BounceReport(sender.describe_mailbox(config), counts["messages"], tuple(findings), counts["unknown"])


def _address_of(mailbox: str) -> str:
    from email.utils import parseaddr

    return parseaddr(mailbox)[1]


def bounces_configured(settings: Settings) -> bool:
    return bool(settings.bounces.imap_host or settings.bounces.maildir)


class ReadersTick(NamedTuple):
    """What one readers' tick of the service did."""

    bounces: BounceReport | None  # None without a bounce mailbox
    expired: int  # unconfirmed addresses forgotten
    welcomes: int  # welcome emails sent again after the transport deferred them


def readers_tick(
    settings: Settings, now_at: datetime, store: sender.Store | None = None, *, clock: Clock | None = None
) -> ReadersTick:
    """What the service does between weekly runs: read the bounce mailbox (when one is configured), send
    again the welcome emails the transport deferred, and forget addresses that never confirmed. The
    scheduler calls this on its tick."""
    own = store is None
    store = store or open_store(settings)
    try:
        report = read_bounces(settings, now_at, store) if bounces_configured(settings) else None
        welcomes = retry_welcomes(settings, now_at, store, clock=clock or (lambda: now_at))
        expired = sender.Roster(store).expire_unconfirmed(now_at, settings.subscribe.unconfirmed_days)
    finally:
        if own:
            store.close()
    return ReadersTick(report, expired, welcomes)


def retry_welcomes(settings: Settings, now_at: datetime, store: sender.Store, *, clock: Clock) -> int:
    """Send the welcome emails whose row the ledger still holds open (deferred by the server, or left by a
    stop) once their retry time has come; how many went out. The ledger keeps each one to a single copy."""
    ledger = open_ledger(settings, store)
    since_at = now_at - timedelta(days=settings.schedule.resume_days)
    sent = 0
    for issue_id in ledger.unfinished_issues(since_at):
        if not issue_id.startswith(WELCOME_PREFIX) or not ledger.due(issue_id, now_at):
            continue
        for row in ledger.deliveries(issue_id):
            if row.state not in (State.PENDING, State.DEFERRED, State.SENDING):
                continue
            report = send_welcome(settings, row.recipient, now_at, clock=clock, store=store)
            if report is None:  # left (or welcomes turned off) since: the row is closed, not retried forever
                ledger.skip(issue_id, [row.recipient], "no longer an active subscriber", now_at)
            else:
                sent += report.sent
    return sent


def import_subscribers(
    settings: Settings,
    path: Path,
    now_at: datetime,
    *,
    mapping: str = "",
    dry_run: bool = False,
    clock: Clock,
    store: sender.Store | None = None,
) -> ImportReport:
    """Read a CSV export and add its people with the consent it records; those without consent get the
    confirmation mail (not in a dry run)."""
    fmt, rows, invalid = sender.read_csv(path, sender.parse_mapping(mapping) if mapping else None)
    own = store is None
    store = store or open_store(settings)
    try:
        added, updated, unchanged, to_confirm = sender.Roster(store).apply_import(
            rows, now_at, source=f"{path.name} ({fmt} export)", dry_run=dry_run
        )
        if not dry_run:
            for email in to_confirm:
                send_reader_mail(settings, sender.Request("confirm", email), now_at, clock=clock, store=store)
    finally:
        if own:
            store.close()
    return ImportReport(str(path), fmt, added, updated, unchanged, len(to_confirm), tuple(invalid), dry_run)


def export_subscribers(settings: Settings, out: Any, kind: str, statuses: Iterable[str] = ()) -> int:
    store = open_store(settings)
    try:
        return sender.write_export(sender.Roster(store).records(tuple(statuses)), out, kind)
    finally:
        store.close()


def render_reader_page(settings: Settings, name: str, language: str, context: Mapping[str, Any]) -> str:
    return templater.render_page(settings, name, language, context)


def reader_words(language: str) -> Any:
    """The labels of the readers' pages in a language (English for any language without its own)."""
    return templater.texts(language)


def reader_language(settings: Settings, email: str, store: sender.Store | None = None) -> str:
    """The language a subscriber's pages and mails use ("" = the site's; also for an unknown address)."""
    record = roster(settings, store).get(email, events=False)
    return record.language if record is not None else ""


def reader_link(settings: Settings, path: str, email: str, now_at: datetime) -> str:
    return _link(settings, path, email, now_at, path)


def reader_token(settings: Settings, email: str, now_at: datetime) -> str:
    """An unsubscribe token (the preference page's unsubscribe button posts to /unsubscribe with it)."""
    return sender.make_token(settings.secret, email, now_at)


def add_subscriber(
    settings: Settings,
    email: str,
    now_at: datetime,
    *,
    name: str = "",
    tags: Iterable[str] = (),
    language: str = "",
    fmt: str = "html",
    confirm: bool = False,
    clock: Clock,
) -> tuple[bool, str]:
    """`digest subscribers add`: (added, status now)."""
    from digest.config import normalise_address
    from digest.models import Status

    try:
        address = normalise_address(email)
    except ValueError as exc:
        raise ConfigError(f"{email!r} {exc}", "give one address such as ana@example.com") from exc
    sub = Subscriber(address, " ".join(name.split()), tuple(tags), fmt, True, None, language)
    store = open_store(settings)
    try:
        book = sender.Roster(store)
        if confirm:
            asked = book.request(
                sub, now_at, page="digest subscribers add --confirm", ip="", double_opt_in=True,
                interval=timedelta(hours=settings.subscribe.confirm_interval_hours),
            )  # fmt: skip
            if asked.mail:
                send_reader_mail(settings, asked, now_at, clock=clock, store=store)
            record = book.get(address, events=False)
            return asked.mail == "confirm", record.status.value if record else ""
        added = book.add(sub, now_at, status=Status.ACTIVE, method="cli", source="digest subscribers add")
        record = book.get(address, events=False)
        return added, record.status.value if record else ""
    finally:
        store.close()


# -- provider events (SES through SNS) -------------------------------------------------------------

EVENTS_PATH = "events/ses"


def _events_payload(settings: Settings) -> str:
    return "events@" + (urlsplit(settings.site.base_url).hostname or "localhost")


def provider_events_url(settings: Settings, now_at: datetime) -> str:
    """The URL to subscribe an SNS topic to (HTTPS), for SES bounce and complaint events; signed, so only
    whoever knows it can post."""
    return _link(settings, EVENTS_PATH, _events_payload(settings), now_at, "events")


def provider_events(
    settings: Settings, token: str, body: bytes, now_at: datetime, store: sender.Store | None = None
) -> tuple[sender.SnsPost, list[BounceFinding]]:
    """One SNS post: a subscription to confirm (opened if it is AWS's, or the configured SES endpoint's), or
    SES bounce and complaint events, applied with the same policy as the bounce mailbox."""
    payload = sender.verify_token(settings.secret, token, now_at, purpose="events", old_secrets=settings.old_secrets)
    if payload != _events_payload(settings):
        raise TokenError("the events URL is not this site's", "subscribe the topic to the URL digest check prints")
    post = sender.read_sns(body)
    findings: list[BounceFinding] = []
    if post.kind == "confirm":
        if not sender.trusted_confirm_url(post.subscribe_url, settings.ses.endpoint_url):
            return replace(post, kind="ignored", reason="a SubscribeURL that is not AWS's"), findings
        import urllib.request

        with urllib.request.urlopen(post.subscribe_url, timeout=10) as answer:  # noqa: S310 - host checked above
            answer.read()
        return post, findings
    if post.kind != "events":
        return post, findings
    own = store is None
    store = store or open_store(settings)
    try:
        book = sender.Roster(store)
        config = settings.bounces
        for found in post.findings:
            address = found.addresses[0]
            status = book.record_bounce(
                address, found.kind, found.reason, now_at, soft_limit=config.soft_limit, soft_days=config.soft_days
            )
            findings.append(BounceFinding(found.kind, address if book.known(address) else "", found.reason, status))
    finally:
        if own:
            store.close()
    return post, findings


# -- the owner's review before the automatic send (schedule.review) --------------------------------------

REVIEW_PATH = "review"


def review_owner(settings: Settings) -> str:
    from email.utils import parseaddr

    return settings.schedule.review_to or parseaddr(settings.email.reply_to or settings.email.sender)[1]


def with_note(result: Build, settings: Settings, store: sender.Store) -> Build:
    """The week's issues (every language, and their archive pages) with the editor's note, if there is one."""
    review = sender.Reviews(store).get(result.week.label)
    if review is None or not review.note.strip():
        return result
    note = collector.note_html(review.note, settings.site.base_url)
    issues_ = {lang: replace(issue, note_html=note) for lang, issue in result.issues.items()}
    history = {
        lang: tuple(replace(i, note_html=note) if i.week.label == result.week.label else i for i in past)
        for lang, past in result.history.items()
    }
    return replace(result, issues=issues_, history=history)


def review_link(settings: Settings, week: str, now_at: datetime) -> str:
    return _link(settings, REVIEW_PATH, f"{week}\n{review_owner(settings)}", now_at, "review")


def review_of_token(settings: Settings, token: str, now_at: datetime) -> str:
    """The week a review link is for; TokenError when forged, damaged or older than 30 days."""
    payload = sender.verify_token(settings.secret, token, now_at, purpose="review", old_secrets=settings.old_secrets)
    return payload.partition("\n")[0]


def request_reviews(
    settings: Settings, now_at: datetime, fire_times: Iterable[datetime], store: sender.Store
) -> list[tuple[Week, SendResult]]:
    """For each coming send (`fire_times`, within schedule.review_hours), mail the owner a preview of the
    issue with Approve and Hold links, once per week. Returns what was mailed."""
    if not settings.schedule.review:
        return []
    book = sender.Reviews(store)
    mailed = []
    for fire_at in fire_times:
        week = job_week(settings, fire_at)
        if book.get(week.label) is not None or not book.ask(week.label, now_at):
            continue
        mailed.append((week, _mail_review(settings, week, fire_at, now_at, store)))
    return mailed


def _mail_review(
    settings: Settings, week: Week, fire_at: datetime, now_at: datetime, store: sender.Store
) -> SendResult:
    # the issue as it stands now (the send at `fire_at` builds it again, with whatever is published meanwhile)
    result = with_note(build(settings, now_at, week, carried=sender.read_carried(store)), settings, store)
    issue = result.issue
    link = review_link(settings, week.label, now_at)
    default = settings.schedule.review_default
    head = (
        f"The issue of {week.label} goes out at {fire_at.isoformat()} "
        + ("unless you hold it" if default == "send" else "only once you approve it")
        + f": {len(issue.all_entries)} entries.\nApprove or hold it here: {link}\n"
        "From the command line: digest approve / digest hold (--note adds an editor's note above the posts).\n"
    )
    text_part, html = head + "\nNo entries: with email.empty_week = skip nothing goes out.\n", ""
    if issue.all_entries:
        owner = Subscriber(email=review_owner(settings))
        rendered = templater.render_email(issue, settings)
        factory = sender.MessageFactory({owner.variant: rendered}, settings, now_at)
        html, plain = _parts_of(factory.build(owner).data)
        text_part = head + "\n" + plain
        banner = (
            f'<div style="padding:12px;border:2px solid #0b57d0;margin:12px">{html_escape(head)}'
            f'<p><a href="{html_escape(link)}">Approve or hold this issue</a></p></div>'
        )
        html = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + banner, html, count=1)
    notice = sender.build_notice(
        settings, review_owner(settings), f"Review: {settings.site.title} {week.label}", text_part, html, now_at,
        kind="review",
    )  # fmt: skip
    return sender.send_test_copy(notice, transport_factory(settings)())


def decide_review(
    settings: Settings, week_label: str, action: str, now_at: datetime, *, by: str, note: str | None = None,
    store: sender.Store | None = None,
) -> Review:  # fmt: skip
    """Approve or hold a week's issue (a link or the command line); `note` is the editor's note (Markdown)."""
    state = {"approve": "approved", "hold": "held"}[action]
    store = store or open_store(settings)
    review = sender.Reviews(store).decide(week_label, state, by, now_at, note)
    cycles = sender.Cycles(store)
    held = cycles.get(week_label)
    if state == "approved" and held is not None and held.state == "done" and held.note.startswith("held"):
        cycles.retry(week_label, now_at, now_at, "approved after a hold", failed=False)  # the service sends it
    return review


def review_gate(
    settings: Settings, week: Week, fire_at: datetime, now_at: datetime, store: sender.Store
) -> Cycle | None:
    """None when the week may go out now; else its cycle, waiting (for an answer) or finished (held)."""
    if not settings.schedule.review:
        return None
    cycles = sender.Cycles(store)
    review = sender.Reviews(store).get(week.label)
    state = review.state if review else "pending"
    if state == "approved" or (state == "pending" and settings.schedule.review_default == "send"):
        return None
    if state == "held" and review is not None and review.decided_by != "default":
        cycles.finish(week.label, now_at, note=f"held by the owner ({review.decided_by})")
        return cycles.get(week.label)
    retry_at = now_at + timedelta(seconds=settings.schedule.tick_seconds)
    return cycles.retry(week.label, now_at, retry_at, "waiting for the owner's approval", failed=False)
