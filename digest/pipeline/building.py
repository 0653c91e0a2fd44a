"""Collecting the week's entries, building an issue, rendering and publishing it."""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from digest import cache, collector, issues, templater, text, weeks
from digest.cache import Cache
from digest.config import Settings, private_folder
from digest.errors import CollectError, OutputError, UsageError
from digest.models import (
    Carried,
    Entry,
    Issue,
    Memo,
    Problem,
    RenderedIssue,
    Renderer,
    Subscriber,
    Week,
)
from digest.pipeline._shared import EXAMPLE_SUBSCRIBER, Build
from digest.pipeline.state import check_clock, feed_floors, ledger_view, with_first_url
from digest.text import fingerprint, slugify

if TYPE_CHECKING:
    from digest import sender
    from digest.sender import Variant
else:
    from digest.pipeline._shared import sender


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


def language_warning(settings: Settings, language: str, now_at: datetime) -> str:
    """For a command's `--lang` (a key from select_language): "" when the site has a post in that language
    or its config lists it, else a line naming the site's languages. Not an error: a subscriber may read a
    language nobody writes in, and the preview of their (empty) issue, or its ledger, is what they get."""
    if not language:
        return ""
    site = settings.site
    known = {text.issue_language(lang, site.language) for lang in site.generator.languages}
    known.add(text.issue_language(site.generator.default_language, site.language))
    if language not in known:
        with cached(settings) as memo:
            found = collector.collect(site, now_at, None, memo=memo, render=False)
        known |= set(issues.by_language(found.entries, site))
    if language in known:
        return ""
    names = ", ".join(dict.fromkeys([site.language or "the site's own"] + sorted(k for k in known if k)))
    return f"--lang {language}: the site has no posts in that language (its languages: {names})"


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
        until_at = low - timedelta(microseconds=1)
        more = collector.collect(site, now_at, earlier, memo=memo, render=False, until_at=until_at)
        for entry in more.entries:
            entries.setdefault(entry.id, entry)
        problems.update(dict.fromkeys(more.problems))
        if len(entries) > before:
            step = timedelta(0)  # found some: the next step is sized by what is still missing
        low = earlier
    ordered = sorted(entries.values(), key=lambda e: (-e.published_at.timestamp(), e.source, e.id))
    return ordered, tuple(problems), found.scanned


def _with_mailed_earlier(
    settings: Settings, now_at: datetime, entries: list[Entry], carried: Mapping[str, Carried], memo: Memo | None
) -> list[Entry]:
    """`entries` and the late arrivals that issues among them carried although dated before every one of
    them (the archive and the feeds list an entry with the issue that mailed it: issues.history). Looked for
    only when an issue the entries reach has fewer of them than it carried: a late arrival from far back,
    or a post deleted since."""
    if not entries or not carried:
        return entries
    low = min(e.published_at for e in entries)
    found = {k: e for e in entries for k in issues.entry_keys(e)}
    short = False
    bound = None
    for mailed in carried.values():
        for issue_id, (start_at, _) in mailed.windows.items():
            if start_at < low:
                continue
            keys = mailed.planned.get(issue_id, frozenset())
            if len({id(found[k]) for k in keys if k in found}) < mailed.sizes.get(issue_id, 0):
                short = True
        if mailed.first_start_at is not None:
            bound = mailed.first_start_at if bound is None else min(bound, mailed.first_start_at)
    if not short or bound is None or bound >= low:
        return entries
    earlier = collector.collect(
        settings.site, now_at, bound, memo=memo, render=False, until_at=low - timedelta(microseconds=1)
    )
    known = {k for mailed in carried.values() for k in mailed.entries}
    more = [e for e in earlier.entries if issues.entry_keys(e) & known]
    if not more:
        return entries
    return sorted([*entries, *more], key=lambda e: (-e.published_at.timestamp(), e.source, e.id))


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
    dated: Mapping[str, datetime] | None = None,
) -> Build:
    """The week's issue in every language and the feeds' history (each issue of it never dated earlier than
    `dated` says its feed entry was last published with). `carried` (what the ledger says about
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
            site,
            now_at,
            week.start_at,
            memo=memo,
            render=False,
            later=False,
            until_at=week.end_at - timedelta(microseconds=1),
        )
        found = {e.id: e for e in entries} | {e.id: e for e in in_week.entries}
        entries = sorted(found.values(), key=lambda e: (-e.published_at.timestamp(), e.source, e.id))
        problems = tuple(dict.fromkeys(problems + in_week.problems))
    else:
        since_at = min(week.start_at, feeds_since_at)
        entries, problems, scanned = _gather(settings, now_at, since_at, horizon_at, memo)
    entries = _with_mailed_earlier(settings, now_at, entries, carried, memo)
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
        empty = Issue(site.in_language(language), week, (), problems, language)
        own, late = issues.select(pool, week, empty.id, carried.get(language, Carried()))
        mailed = carried.get(language, Carried())
        if late and not week.custom:  # this issue carries them: they are listed with it, as it mails them
            mailed = replace(
                mailed,
                entries={**mailed.entries, **{k: empty.id for e in late for k in issues.entry_keys(e)}},
                windows={**mailed.windows, empty.id: (week.start_at, week.end_at)},
            )
        picked.append((language, empty, own, late, issues.history(pool, site, horizon_at, count, mailed)))
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
        history[language] = tuple(
            Issue(empty.site, w, group, (), language, dated_at=_dated(dated, language, w)) for w, group in past
        )
    return Build(site, week, pools, week_issues, history, problems, scanned, _floors(dated, week), render)


def _floors(dated: Mapping[str, datetime] | None, week: Week) -> dict[str, datetime]:
    """{language key: the latest date kept of its issues up to `week`} (an issue's feed date lies in its own
    week, so a later week's issue is later than `week`'s end, and a preview of an older week skips it)."""
    floors: dict[str, datetime] = {}
    for issue_id, at in (dated or {}).items():
        language = issue_id.rpartition("/")[0]
        if at <= week.end_at and (language not in floors or at > floors[language]):
            floors[language] = at
    return floors


def _dated(dated: Mapping[str, datetime] | None, language: str, week: Week) -> datetime | None:
    return dated.get(f"{language}/{week.label}" if language else week.label) if dated else None


def with_notes(result: Build, settings: Settings, notes: Mapping[str, str]) -> Build:
    """The issues with the editor's note of their week (`notes`, from the owner's reviews), in every
    language: the week's own, and each earlier one on its archive page and in the feeds, for good."""
    rendered = {week: collector.note_html(note, settings.site.base_url) for week, note in notes.items() if note.strip()}
    if not rendered:
        return result

    def noted(issue: Issue) -> Issue:
        note = rendered.get(issue.week.label, "")
        return replace(issue, note_html=note) if note and note != issue.note_html else issue

    return replace(
        result,
        issues={language: noted(issue) for language, issue in result.issues.items()},
        history={language: tuple(noted(issue) for issue in past) for language, past in result.history.items()},
    )


def feed_dates(result: Build) -> dict[str, datetime]:
    """{issue id: its feed entry's date} of every issue the feeds and the archive show: kept after a publish
    (LedgerView.record_feed_dates) as the floor of the next one."""
    return {issue.id: issue.updated_at for history in result.history.values() for issue in history}


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
    """The feeds and the archive of each language (the site's at the top of the output folder, the others
    in `<lang>/`): the last `output.feed_issues` weeks with entries, never a placeholder."""
    render = build_result.render
    files: dict[str, bytes] = {}
    for language in build_result.languages if languages is None else languages:
        history = build_result.history.get(language, ())
        floor_at = build_result.floors.get(language)
        files.update(
            templater.render_feeds(history, settings, language=language, memo=memo, bodies=render, floor_at=floor_at)
        )
        if settings.output.tag_feeds:
            for slug, (tag, tagged) in sorted(tag_issues(history).items()):
                title = f"{settings.site.in_language(language).title} · {tag}"
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
    removed: tuple[str, ...] = ()  # files of an earlier preview that this one does not write, removed


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
    carried: dict[str, Carried] = {}
    dated: dict[str, datetime] = {}
    notes: dict[str, str] = {}
    with ledger_view(settings, store) as ledger:  # None before any publish or send: a preview makes none
        if ledger is not None:
            settings = with_first_url(settings, ledger.feed_id_url())
            carried, dated, notes = (
                ledger.carried(settings.site.language),
                feed_floors(settings, ledger),
                ledger.notes(),
            )
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
            dated=dated,
        )
        result = with_notes(result, settings, notes)
        issue = result.issue_of(language)
        files = site_files(result, settings, [language], memo)
        rendered = None
        if issue.all_entries or settings.email.empty_week == "note":
            rendered = templater.render_email(issue, settings, memo=memo)
            files.update(_example_files(rendered, settings, memo))
    folder = settings.output.dir / PREVIEW_DIR
    earlier = _preview_manifest(folder, issue.prefix)
    # Listed before writing: a preview stopped halfway still leaves every file it may have written listed,
    # so the next preview can remove those it does not write.
    _write_manifest(folder, earlier | set(files))
    named = {path.relative_to(folder).as_posix(): path for path in write_files(folder, files)}
    removed = _remove_stale(folder, earlier - set(files))
    _write_manifest(folder, set(files))
    return Preview(build=result, issue=issue, rendered=rendered, files=named, folder=folder, removed=removed)


PREVIEW_MANIFEST = ".digest-files"  # in the preview folder: what the last preview wrote, one path a line
EMAIL_FILES = ("email.html", "email.txt", "email.eml")


def _preview_manifest(folder: Path, prefix: str) -> set[str]:
    """The files the previous preview wrote. A folder written before the list was kept: its email files,
    the ones an empty week must not leave behind."""
    try:
        text = (folder / PREVIEW_MANIFEST).read_text("utf-8")
    except FileNotFoundError:
        return {prefix + name for name in EMAIL_FILES}
    except (OSError, UnicodeDecodeError):
        return set()  # unreadable: remove nothing rather than guess
    return {line for line in text.splitlines() if line.strip()}


def _write_manifest(folder: Path, names: set[str]) -> None:
    write_files(folder, {PREVIEW_MANIFEST: "".join(f"{n}\n" for n in sorted(names)).encode()})


def _remove_stale(folder: Path, names: set[str]) -> tuple[str, ...]:
    """Remove files of an earlier preview that this one did not write, and the folders that leaves empty;
    only inside the preview folder, and never a path the list names outside it (an edited list)."""
    root = folder.resolve()
    removed = []
    for name in sorted(names):
        target = folder / name
        if target.is_symlink() or not target.is_file() or not target.resolve().is_relative_to(root):
            continue
        try:
            target.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise OutputError(
                f"cannot remove {target}, left by an earlier preview: {exc.strerror}",
                "check that the preview folder is one you can write to",
            ) from exc
        removed.append(name)
        parent = target.parent
        while parent != folder and parent.resolve().is_relative_to(root):
            try:
                parent.rmdir()  # only when empty: files put there by hand stay, with their folder
            except OSError:
                break
            parent = parent.parent
    return tuple(removed)


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
    import email  # the email package (20 ms) only when an example message is made, not for a cached preview
    import email.message
    import email.policy

    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    parts = [message.get_body(("html",)), message.get_body(("plain",))]
    html, plain = (str(p.get_content()) if isinstance(p, email.message.EmailMessage) else "" for p in parts)
    return html, plain


def publish(settings: Settings, now_at: datetime, week: Week, *, strict: bool = False) -> Build:
    # What the ledger says was mailed places each entry in the archive and the feeds (issues.history): a
    # publish and a run must make the same files.
    # the feeds' dates are kept in the ledger: a publish never dates an entry earlier
    with ledger_view(settings, create=True) as ledger:
        assert ledger is not None  # create=True
        settings = with_first_url(settings, ledger.feed_id_url())
        check_clock(settings, ledger, now_at)
        carried = ledger.carried(settings.site.language)
        dated, notes = feed_floors(settings, ledger), ledger.notes()
        with cached(settings) as memo:
            result = build(
                settings, now_at, week, strict=strict, carried=carried, memo=memo, history_bodies=False, dated=dated
            )
            result = with_notes(result, settings, notes)
            if memo is not None:
                _render_in_two(result, settings, memo)
            write_files(settings.output.dir, site_files(result, settings, memo=memo))
        ledger.record_feed_dates(feed_dates(result), settings.output.url)
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
    histories = {language: result.history.get(language, ()) for language in result.languages}
    total = sum(len(history) for history in histories.values())
    if total < PARALLEL_MIN_ISSUES or _cpus() < 2:
        return
    import multiprocessing  # 5 ms: only a publish of many issues pays for it

    if "fork" not in multiprocessing.get_all_start_methods():
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
    # No helper processes of its own: the publish runs this in two processes already. Inside it, the 250
    # bodies of a 500-issue rebuild started a forkserver (this process has the pool's threads by then) and
    # took 0.5 s longer (bench_publish's full rebuild 3.7-4.2 s against 3.2 s).
    bodies = functools.partial(collector.render_entries, memo=target, helpers=False)
    for language, history in histories.items():
        templater.render_feeds(history, settings, language=language, memo=target, bodies=bodies)
        templater.render_archive(history, settings, language=language, memo=target, bodies=bodies)
    return target.pickled if isinstance(target, cache.Recorder) else {}


def job_week(settings: Settings, fire_at: datetime) -> Week:
    """The week a scheduled run at `fire_at` sends: the last one that had fully ended at that time. The
    fire time, not the moment the run starts, decides: a run due Sunday 23:00 and started at 01:00 sends
    the same week it would have sent on time."""
    return select_week(settings, fire_at, "last")
