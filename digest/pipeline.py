"""The one place that runs the stages in order. Read this first.

    collect (posts -> entries)  ->  Issue of one week  ->  render (email variants, feeds, archive)
        ->  publish (files in the output folder)  ->  deliver (ledger + transport)

`run_cycle` is the weekly cycle, the same for `digest run`, `digest send` and the service. Everything
that touches the outside world (the clock, the transport, the state database) comes in as an argument,
so the CLI, the scheduler, the server and the tests drive the same code. The edges (cli, scheduler,
server) reach the stages only through the functions here.
"""

from __future__ import annotations

import errno
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from digest import collector, sender, templater, weeks
from digest.config import Settings, single_subscriber
from digest.config import check_subscribers as _check_subscribers
from digest.config import load_subscribers as _load_subscribers
from digest.errors import CollectError, ConfigError, DigestError, OutputError, UsageError
from digest.models import (
    RECIPIENT_EMAIL_MARK,
    UNSUBSCRIBE_URL_MARK,
    Collection,
    Cycle,
    CycleReport,
    Entry,
    Finding,
    Issue,
    IssueStatus,
    Problem,
    RenderedIssue,
    Subscriber,
    Week,
)
from digest.text import slugify

# Names of the stages the edges may use (they import nothing but this module of the stages).
Variant = sender.Variant
Store = sender.Store
Transport = sender.Transport
TransportFactory = sender.TransportFactory
SendResult = sender.SendResult
FEEDS = templater.FEEDS
safe_url = sender.safe_url
Clock = Callable[[], datetime]
EXAMPLE_SUBSCRIBER = Subscriber(email="subscriber@example.com", name="Example Subscriber")


@dataclass(frozen=True)
class Build:
    """One week's issue plus the recent issues the feeds and the archive list."""

    issue: Issue
    history: tuple[Issue, ...]  # newest first, this issue included when it has entries
    scanned: int


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


def problems_of(result: Build) -> tuple[Problem, ...]:
    return result.issue.problems


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
            entries = tuple(e for e in issue.entries if sub.wants(e))
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
            found.setdefault(slugify(tag), (shown, []))[1].append(Issue(issue.site, issue.week, tuple(entries)))
    return found


def site_files(build_result: Build, settings: Settings) -> dict[str, bytes]:
    history = build_result.history or (build_result.issue,)
    files = dict(templater.render_feeds(history, settings))
    if settings.output.tag_feeds:
        for slug, (tag, issues) in sorted(tag_issues(history).items()):
            title = f"{settings.site.title} · {tag}"
            files.update(templater.render_feeds(issues, settings, path=f"tags/{slug}/", title=title))
    files.update(templater.render_archive(history, settings))
    return files


def write_files(out_dir: Path, files: Mapping[str, bytes]) -> list[Path]:
    """Write atomically (tmp + rename) so a static host never serves half a file; a folder that cannot
    be written (permissions, a file in the way, a full disk) is one OutputError naming the path."""
    written = []
    for rel, data in sorted(files.items()):
        target = out_dir / rel
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_file() and target.read_bytes() == data:
                written.append(target)
                continue
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
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
        factory = sender.MessageFactory({EXAMPLE_SUBSCRIBER.variant: rendered}, settings, result.issue.updated_at)
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


# -- the state database ----------------------------------------------------------------------------


def open_store(settings: Settings) -> sender.Store:
    if not settings.database_url:
        settings.state_dir.mkdir(parents=True, exist_ok=True)
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
    """Suppress an address; True when it was not suppressed before."""
    return sender.Suppressions(store or open_store(settings)).add(email, now_at, reason)


def resubscribe(settings: Settings, email: str, store: sender.Store | None = None) -> bool:
    return sender.Suppressions(store or open_store(settings)).remove(email)


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
) -> CycleReport:
    """The weekly cycle: build the week's issue once; with `publish`, write the feeds and the archive; send
    the issue to every subscriber through the ledger (an issue already complete sends nothing, a partial
    one resumes)."""
    started = time.monotonic()
    result = build(settings, now_at, week, strict=strict)
    published = 0
    if publish and not dry_run:
        write_files(settings.output.dir, site_files(result, settings))
        published = len(result.history)
    entries = len(result.issue.entries)
    where = "nowhere (dry run)" if dry_run else sender.describe(settings)
    if not result.issue.entries and settings.email.empty_week == "skip":
        return CycleReport(week, entries, None, published, where, round(time.monotonic() - started, 3), dry_run)
    if subscribers is None:
        subscribers = load_subscribers(settings)
    variants, skipped = render_variants(result.issue, settings, subscribers)
    factory = sender.MessageFactory(variants, settings, now_at)
    own_store = store is None
    store = store or open_store(settings)
    try:
        delivery = sender.deliver(
            factory,
            subscribers,
            open_ledger(settings, store),
            transports or transport_factory(settings, dry_run=dry_run),
            settings.delivery,
            clock,
            issue_id=result.issue.id,
            skipped=skipped,
            dry_run=dry_run,
            progress=progress,
            stop=stop,
        )
    finally:
        if own_store:
            store.close()
    return CycleReport(week, entries, delivery, published, where, round(time.monotonic() - started, 3), dry_run)


# -- the weekly service ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceStep:
    """What the service did about one week in one tick."""

    week: Week
    report: CycleReport | None = None  # None when the cycle failed before it could report
    error: DigestError | None = None
    cycle: Cycle | None = None  # the cycle's record afterwards: done, or open with its next try


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
    try:
        report = run_cycle(settings, clock(), week, clock=clock, store=store, transports=transports, stop=stop)
    except DigestError as exc:
        now_at = clock()
        record = cycles.get(week.label)
        attempts = (record.attempts if record else 0) + 1
        cycle = cycles.retry(week.label, now_at, now_at + _backoff(settings, attempts), str(exc), failed=True)
        return ServiceStep(week, None, exc, cycle)
    now_at = clock()
    ledger = open_ledger(settings, store)
    left = ledger.open_rows(week.label)
    stopped = report.delivery.stopped if report.delivery else ""
    if stop is not None and stop.is_set() and left:
        cycle = cycles.retry(week.label, now_at, now_at, f"stopped with {left} to send", failed=False)
    elif stopped and left:  # the error budget ran out: the server refuses everything for now
        record = cycles.get(week.label)
        attempts = (record.attempts if record else 0) + 1
        cycle = cycles.retry(week.label, now_at, now_at + _backoff(settings, attempts), stopped, failed=True)
    elif left:
        retry_at = ledger.next_retry_at(week.label) or now_at + timedelta(seconds=settings.schedule.tick_seconds)
        cycle = cycles.retry(week.label, now_at, max(retry_at, now_at), f"{left} waiting for a retry", failed=False)
    else:
        cycles.finish(week.label, now_at)
        return ServiceStep(week, report, None, cycles.get(week.label))
    return ServiceStep(week, report, None, cycle)


def send_test_copy(settings: Settings, now_at: datetime, week: Week, address: str) -> sender.SendResult | None:
    """One copy of the issue to one address (`digest send --to`); the ledger is not touched."""
    result = build(settings, now_at, week)
    if not result.issue.entries:
        return None
    subscriber = single_subscriber(address)
    variants, _ = render_variants(result.issue, settings, [subscriber])
    message = sender.MessageFactory(variants, settings, now_at).build(subscriber)
    return sender.send_test_copy(message, transport_factory(settings)())


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


def _writable(folder: Path) -> str:
    """ "" when files can be written in `folder` (made if missing), else why not."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
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
            found.append(Finding(name, "fail", exc.message, exc.hint))

    config = str(settings.config_file or "none (defaults and the site's own config)")
    site_config = f"; site config {settings.site_config_file}" if settings.site_config_file else ""
    found.append(Finding("config", "ok", f"{config}{site_config}"))

    def posts() -> Finding:
        result = build(settings, now_at, select_week(settings, now_at, "last"))
        problems = result.issue.problems
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
        return Finding("subscribers", "ok", detail)

    def folders() -> Finding:
        for folder in (settings.output.dir, settings.state_dir):
            why = _writable(folder)
            if why:
                return Finding("folders", "fail", f"cannot write {why}", "fix the permissions or the path")
        return Finding("folders", "ok", f"output {settings.output.dir}; state {settings.state_dir}")

    def database() -> Finding:
        store = open_store(settings)
        store.close()
        return Finding("database", "ok", f"{safe_url(settings.db_url)} (schema {sender.SCHEMA_VERSION})")

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
    return found
