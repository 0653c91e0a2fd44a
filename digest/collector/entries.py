"""From posts to entries: URLs, rendered bodies, running-log items, the window filter, the order.

Two steps, so that a run renders only the entries it shows: `collect` gives every entry of the window with
its title, date, URL and labels but, with ``render=False``, no body yet, and `render_entries` renders the
bodies of the entries asked for. With a `memo` (digest.cache) both survive the process: a file whose size,
times and inode are unchanged is not read again, an entry whose revision is unchanged is not rendered
again. An entry's revision is made of the file's text, the site config, and, for a post that links to
other posts (`{% post_url %}`, `{{< ref >}}`, Pelican's `{filename}`), the stamps of every post of the
site: a renamed or edited target can move its links, so such posts are rendered again whenever any post
changes (the simple rule; few posts link to others).
"""

from __future__ import annotations

import functools
import re
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from digest.models import Collection, Entry, Heading, Memo, Problem, Site
from digest.text import file_stamp, fingerprint, xml_safe

from . import meta as m
from . import workers
from .crossrefs import PostLinks, Resolver, links_others
from .layout import Found, Walk, walk
from .permalink import file_slug
from .reader import (
    Kept,
    Post,
    Stamp,
    _path_exclusion,
    is_kept,
    keep_read,
    maybe_log,
    quick_date,
    read_file,
    read_kept,
    read_post,
)
from .runlog import LogItem, split_items
from .urls import categories, entry_language, post_url, tags, unwritable_in_url

if TYPE_CHECKING:
    from .links import Linker


@dataclass(frozen=True)
class _Record:
    """What one file gave, kept (in the memo) while the file, the site config and, for a post that links
    to others, the site's posts are unchanged."""

    stamp: Stamp
    site: str  # digest of the Site it was read for
    refs: str = ""  # digest of every post of the site, for a post that links to others
    problem: Problem | None = None  # the file cannot be read (parsed False) or its front matter is broken
    warning: Problem | None = None  # a post read all the same, with something to fix (a bad `lang`)
    quick: float | None = None  # the time its date line gives, for the quick window check
    maybe_log: bool = False  # it may be a running log: items can be newer than the post
    parsed: bool = False  # False: only its date line was read (it was before the window)
    excluded: str = ""  # why it is no post
    published_at: datetime | None = None
    expires_at: datetime | None = None  # Hugo's expiryDate: shown by no collect from then on
    # every entry of the post (a running log: every item, with its slug), not rendered
    entries: tuple[tuple[Entry, str], ...] = ()

    def before(self, low: float | None) -> bool:
        """Its date line puts it before a window starting at `low`, and it cannot be a running log: the
        reader neither parses it nor reports its problems (see reader.scan)."""
        return low is not None and not self.maybe_log and self.quick is not None and self.quick < low

    def after(self, high: float | None) -> bool:
        """Its date line puts it after `high` (a window whose later posts are read by another pass)."""
        return high is not None and not self.maybe_log and self.quick is not None and self.quick > high


@dataclass(frozen=True)
class _Source:
    """Where an unrendered entry comes from, for render_entries."""

    site: Site
    found: Found
    site_key: str  # the site's files at render time are _FILES[site_key]: the last collect's
    item: str  # the running-log item's slug, "" for a whole post
    # the post as collect read it and its URL: rendering the same post again needs no second URL
    post: Post | None = None
    url: str = ""


Body = tuple[str, str, tuple[Heading, ...]]  # body_html, summary_html, outline
# Entries handed out unrendered (by revision) and the rendered body of each post and item (by its file and
# item, with the revision it was rendered at): the same process (the weekly service, `preview --serve`)
# renders an unchanged entry once, and holds one body per post and item.
_SOURCES: dict[str, _Source] = {}
# The revision each post and item was last handed out at, so that the weekly service (one process for years)
# holds one source per post and item, not one per revision ever seen; and each site's files as last walked
# (a source would otherwise keep the whole walk of its week alive).
_HANDED: dict[str, str] = {}
_FILES: dict[str, tuple[Found, ...]] = {}
# The site's files and their stamps, walked once per run (per cache lent by the pipeline): a build collects
# several windows (the feeds' weeks, a look-back, an older week).
_SCANS: weakref.WeakKeyDictionary[Any, tuple[Site, Walk, dict[str, Stamp | None]]] = weakref.WeakKeyDictionary()
_BODIES: dict[str, tuple[str, Body]] = {}


def collect(
    site: Site,
    now_at: datetime,
    since_at: datetime | None = None,
    *,
    memo: Memo | None = None,
    render: bool = True,
    later: bool = True,
    until_at: datetime | None = None,
) -> Collection:
    """Every entry with since_at <= published_at <= until_at (since_at None: all; until_at None: now_at),
    newest first, of the posts published by now_at; with ``render=False`` their bodies are left for
    render_entries. With ``later=False`` the posts whose date line puts them after until_at are not parsed
    either (nor their problems reported): a window in the past, next to a pass that reads the later posts.

    A window in the past needs ``until_at`` rather than an earlier ``now_at``: a running log is dated when
    it was last updated (its file name, say), after the items it has held for months, and the post itself
    is left out only when it is dated after now."""
    kept = _SCANS.get(memo) if memo is not None else None
    if kept is not None and kept[0] == site:
        _, found, stamps = kept
    else:
        found = walk(site)
        stamps = {f.path: file_stamp(f.path) for f in found.files}
        if memo is not None:
            _SCANS[memo] = (site, found, stamps)
    files = tuple(found.files)
    site_key = fingerprint(site)
    _FILES[site_key] = files
    files_key = fingerprint(site_key, [(f.source, stamps[f.path]) for f in files])
    resolver = Resolver(site, list(files))
    tz = ZoneInfo(site.timezone)
    low = since_at.timestamp() if since_at is not None else None
    now = now_at.timestamp()
    high = min(now, until_at.timestamp()) if until_at is not None else now
    cut = None if later else high
    entries: list[Entry] = []
    problems = list(found.problems)
    ignore = [re.compile(p) for p in site.ignore]
    kept_records: dict[str, _Record | None] = {}
    for file in files:
        reason = file.place.not_a_post or _path_exclusion(file.source, file.in_folder, ignore)
        if not reason:
            kept_records[file.path] = _cached(memo, file, stamps[file.path], site_key, files_key, low, cut)
    windowed = low is not None or cut is not None or memo is not None
    job = _Job(site, site_key, files_key, low, cut, high, now, windowed)
    cold = [
        file
        for file in files
        if file.path in kept_records and kept_records[file.path] is None and not _read_here(file, stamps[file.path])
    ]
    # A cold collect of many posts that renders them reads and renders them in helper processes.
    helped = render and len(cold) >= workers.START and workers.cpus() > 1
    read = _read_helped(job, cold, stamps, memo) if helped else {}
    for file in files:
        if file.path not in kept_records:
            continue
        stamp = stamps[file.path]
        record = kept_records[file.path]
        post: Post | None = None
        url = ""
        if record is None:
            made = read.get(file.path)
            record, post, url = made or _record(job, file, stamp, resolver, tz)
            if memo is not None and stamp is not None:
                memo.put("post", file.path, record)
        if record.problem is not None and not record.parsed:
            problems.append(record.problem)
            continue
        for entry, item in _shown(record, low, cut, high, now):
            _hand_out(entry.revision, _Source(site, file, site_key, item, post, url))
            entries.append(entry)
        for problem in (record.problem, record.warning):
            if problem is not None and not record.before(low) and not record.after(cut):
                problems.append(problem)
    if memo is not None and hasattr(memo, "keep_only"):
        paths = {f.path for f in files}
        memo.keep_only("post", paths)
        memo.keep_only("body", paths)
    entries.sort(key=lambda e: (-e.published_at.timestamp(), e.source, e.id))
    if render:
        entries = list(render_entries(entries, memo))
    return Collection(tuple(entries), tuple(problems), len(files))


def _read_here(file: Found, stamp: Stamp | None) -> bool:
    """This process read the file as it is now (a long-running one without a memo)."""
    return stamp is not None and is_kept(file.path, stamp)


@dataclass(frozen=True)
class _Job:
    """What reading one file of a collect depends on besides the file."""

    site: Site
    site_key: str
    files_key: str
    low: float | None
    cut: float | None
    high: float
    now: float
    windowed: bool  # the date line is wanted: for this window, or a later one through the memo


def _shown(record: _Record, low: float | None, cut: float | None, high: float, now: float) -> list[tuple[Entry, str]]:
    """The entries of ``record`` a collect of [low, high] at ``now`` shows (none when it has a problem).
    The post's own date is held against now, not against high: a running log dated after high still holds
    the items dated in the window."""
    if record.problem is not None or record.before(low) or record.after(cut):
        return []
    if record.excluded or record.published_at is None or record.published_at.timestamp() > now:
        return []  # no post, or dated in the future
    if record.expires_at is not None and record.expires_at.timestamp() <= now:
        return []  # Hugo has taken it off the site
    shown = []
    for entry, item in record.entries:
        when = entry.published_at.timestamp()
        if (low is None or low <= when) and when <= high:
            shown.append((entry, item))
    return shown


Read = tuple[_Record, "Post | None", str]


def _read_helped(job: _Job, cold: list[Found], stamps: dict[str, Stamp | None], memo: Memo | None) -> dict[str, Read]:
    """The records of the ``cold`` files, read and their shown entries rendered in helper processes. The
    bodies are kept here as if rendered here; without a memo to keep the records for the next collect,
    so is what the helpers read of each file (the reader's cache: a long-running process re-reads only
    what changed)."""
    helpers = workers.Helpers(_read_and_render, _prepare, _share_files, ({job.site_key: _FILES[job.site_key]},))
    hand_back = memo is None
    for file in cold:
        helpers.add(job, file, stamps[file.path], hand_back)
    read: dict[str, Read] = {}
    for file, (record, kept, bodies) in zip(cold, helpers.results(), strict=True):
        # The post itself stays in the helper (the reader's cache holds it when handed back): its bodies
        # are rendered already, and sending it costs as much again as the rest.
        read[file.path] = (record, None, "")
        if kept is not None:
            keep_read(file.path, kept)
        for (entry, item), body in zip(_shown(record, job.low, job.cut, job.high, job.now), bodies, strict=True):
            _keep(f"{file.path}#{item}", entry.revision, body, memo)
    return read


def _share_files(files: dict[str, tuple[Found, ...]]) -> None:
    """A helper's start: each site's files, for the posts that link to others."""
    _FILES.update(files)


_RESOLVER: list[tuple[str, Resolver]] = []


def _read_and_render(
    job: _Job, file: Found, stamp: Stamp | None, hand_back: bool
) -> tuple[_Record, Kept | None, list[Body]]:
    """In a helper: what _record gives for ``file``, what the reader kept of it (with ``hand_back``), and
    the bodies of the entries the collect shows, each made by the functions the serial path uses."""
    if not _RESOLVER or _RESOLVER[0][0] != job.site_key:
        _RESOLVER[:] = [(job.site_key, Resolver(job.site, list(_FILES.get(job.site_key, ()))))]
    record, post, url = _record(job, file, stamp, _RESOLVER[0][1], ZoneInfo(job.site.timezone))
    bodies = []
    if post is not None:
        for _, item in _shown(record, job.low, job.cut, job.high, job.now):
            bodies.append(render_post(job.site, post, url, item, _files_for(job.site, post, job.site_key)))
    return record, read_kept(file.path) if hand_back else None, bodies


def _hand_out(revision: str, source: _Source) -> None:
    slot = f"{source.found.path}#{source.item}"
    before = _HANDED.get(slot)
    if before is not None and before != revision:
        _SOURCES.pop(before, None)
    _HANDED[slot] = revision
    _SOURCES[revision] = source


def render_entries(entries: Sequence[Entry], memo: Memo | None = None, *, helpers: bool = True) -> tuple[Entry, ...]:
    """The same entries with their bodies rendered (from the memo when their revision is unchanged).
    Entries collect() did not hand out (made elsewhere, or rendered already) are returned as they are.
    Many bodies to render (a first run without the cache) are rendered in helper processes, unless
    `helpers` is False (a caller that has split the work between processes already)."""
    found: list[tuple[Entry, _Source | None, str, Body | None]] = []
    missing: dict[str, _Source] = {}
    for entry in entries:
        source = _SOURCES.get(entry.revision) if entry.revision else None
        if source is None:
            found.append((entry, None, "", None))
            continue
        key = f"{source.found.path}#{source.item}"
        body = _rendered(key, entry.revision, memo)
        if body is None:
            missing[entry.revision] = source
        found.append((entry, source, key, body))
    made: dict[str, Body] = {}
    if helpers and len(missing) >= workers.START and workers.cpus() > 1:
        shared = {s.site_key: _FILES.get(s.site_key, ()) for s in missing.values()}
        pool = workers.Helpers(_render_body, _prepare, _share_files, (shared,))
        for source in missing.values():
            pool.add(replace(source, post=None, url=""))  # the helper reads the post: cheaper than sending it
        made = dict(zip(missing, pool.results(), strict=True))
    done = []
    for entry, source, key, body in found:
        if source is None:
            done.append(entry)
            continue
        if body is None:
            body = made.get(entry.revision) or _render_body(source)
            body = _keep(key, entry.revision, body, memo)
        _BODIES[key] = (entry.revision, body)
        done.append(replace(entry, body_html=body[0], summary_html=body[1], outline=body[2]))
    return tuple(done)


def _rendered(key: str, revision: str, memo: Memo | None) -> Body | None:
    """The body of post or item ``key`` at ``revision``, kept here or in the memo; None when it is not."""
    kept = _BODIES.get(key)
    if (kept is None or kept[0] != revision) and memo is not None:
        kept = memo.get("body", key)
    if isinstance(kept, tuple) and len(kept) == 2 and kept[0] == revision:
        body: Body = kept[1]
        return body
    return None


def _keep(key: str, revision: str, body: Body, memo: Memo | None) -> Body:
    if memo is not None:
        memo.put("body", key, (revision, body))
    _BODIES[key] = (revision, body)
    return body


def _cached(
    memo: Memo | None,
    file: Found,
    stamp: Stamp | None,
    site_key: str,
    files_key: str,
    low: float | None,
    cut: float | None,
) -> _Record | None:
    if memo is None or stamp is None:
        return None
    record = memo.get("post", file.path)
    if not isinstance(record, _Record) or record.stamp != stamp or record.site != site_key:
        return None
    if record.refs and record.refs != files_key:
        return None
    if not record.parsed and record.problem is None and not record.before(low) and not record.after(cut):
        return None  # read only far enough for an earlier window: this one needs the whole post
    return record


def _record(job: _Job, file: Found, stamp: Stamp | None, resolver: Resolver, tz: ZoneInfo) -> Read:
    """What ``file`` gives, and the post and its URL when it is one."""
    site, site_key, files_key, low, cut = job.site, job.site_key, job.files_key, job.low, job.cut
    info = read_file(file.path, file.source, stamp)
    stamp = stamp or (0, 0, 0, 0)
    if isinstance(info, Problem):
        return _Record(stamp, site_key, problem=info), None, ""
    # The date line is for windows: this one's, or a later run's through the memo.
    quick = quick_date(info, file.source, tz) if job.windowed else None
    seen = _Record(stamp, site_key, quick=quick, maybe_log=info.maybe_log)
    if seen.before(low) or seen.after(cut):
        return seen, None, ""  # not parsed: its problems, if any, are reported by a run whose window it may be in
    post = read_post(site, file, info)
    if isinstance(post, Problem):
        return replace(seen, parsed=True, problem=post), None, ""
    if isinstance(post, str):
        return replace(seen, parsed=True, excluded=post), None, ""
    linking = links_others(site, post.body)
    refs = files_key if linking else ""
    links = resolver.for_post(post) if linking else None
    body = _resolved(site, post, links)
    warning = post.warning
    if warning is None and links is not None and links.missing:
        name = links.missing[0]
        warning = Problem(
            post.source,
            f"{{% post_url {name} %}} names no post: its link is a guess; fix the name (Jekyll would stop there)",
        )

    # By what the file says, not by its stamp: a file touched, checked out again or restored from a backup
    # with the same text keeps its rendered bodies (a weekly job on a fresh clone with a kept state folder).
    content = fingerprint(info.part.kind, info.part.header, info.part.body)

    def revision(item: str) -> str:
        return fingerprint(site_key, content, refs, post.source, item)

    # The reader looked for dated bullets in the body as written: none there, none after resolving nothing.
    items = _items(body, post, tz) if info.maybe_log or links else []
    cats = categories(site, post)
    url = post_url(site, post, cats)
    unwritable = unwritable_in_url(site, post, cats) if warning is None else ""
    if unwritable:
        warning = Problem(
            post.source,
            f"Pelican makes this post's URL from its {unwritable}, which has no letter digest can write in a URL "
            "(Pelican transliterates it): its link is a guess; give the post a `Slug:` in ASCII, or its `URL:`",
        )
    if items:
        entries = tuple((_item_entry(site, post, url, item, revision(item.slug), cats), item.slug) for item in items)
    else:
        entries = ((_post_entry(site, post, url, body, revision(""), cats), ""),)
    record = _Record(
        stamp,
        site_key,
        refs=refs,
        quick=quick,
        maybe_log=info.maybe_log,
        parsed=True,
        published_at=post.shown_at,
        expires_at=post.expires_at,
        entries=entries,
        warning=warning,
    )
    return record, post, url


def _items(body: str, post: Post, tz: ZoneInfo) -> list[LogItem]:
    return split_items(body, post.published_at, tz) if "---" in body and maybe_log(body) else []


def _resolved(site: Site, post: Post, links: PostLinks | None) -> str:
    """The body with the site generator's link tags and attribute lists resolved."""
    if not links:
        return post.body
    # The Markdown modules (markdown-it and its parsers) are imported by the runs that render or parse
    # something, not by one that finds everything in the cache.
    from .attributes import strip_extensions
    from .liquid import strip_templates

    return strip_extensions(strip_templates(post.body, site.generator.kind, links))


def _render_body(source: _Source) -> Body:
    site, file = source.site, source.found
    post = read_post(site, file)
    if not isinstance(post, Post):  # the file changed or went since it was collected: what it says now
        return ("", "", ())
    url = source.url if post is source.post else post_url(site, post)
    return render_post(site, post, url, source.item, _files_for(site, post, source.site_key))


def _files_for(site: Site, post: Post, site_key: str) -> tuple[Found, ...]:
    """The site's files when ``post`` may link to others (see _record), else none."""
    return _FILES.get(site_key, ()) if links_others(site, post.body) else ()


def render_post(site: Site, post: Post, url: str, item: str, files: tuple[Found, ...]) -> Body:
    """The body of ``post`` (or of its running-log item ``item``) at ``url``; ``files``: the site's files
    for its links to other posts. The serial path and the helper processes both render with this."""
    from .markdown import render

    tz = ZoneInfo(site.timezone)
    links = Resolver(site, list(files)).for_post(post) if links_others(site, post.body) else None
    body = _resolved(site, post, links)
    if item:
        found = next((i for i in _items(body, post, tz) if i.slug == item), None)
        if found is None:
            return ("", "", ())
        rendered = render(
            found.markdown,
            f"{url}#{found.slug}",
            links=_linker(site, post, url, links),
            heading_ids=site.generator.heading_ids,
        )
        return (rendered.html, rendered.summary_html, rendered.outline)
    rendered = render(body, url, post.meta, _linker(site, post, url, links), heading_ids=site.generator.heading_ids)
    return (rendered.html, xml_safe(rendered.summary_html), rendered.outline)


def _prepare() -> None:
    """What the helpers need, imported before they are forked."""
    from . import links, markdown  # noqa: F401


def _page_base(post: Post, url: str) -> str:
    """Page bundles keep their images next to index.md, so relative links resolve inside the folder."""
    if post.source.rsplit("/", 1)[-1].rsplit(".", 1)[0] == "index" and not url.endswith("/"):
        return url + "/"
    return url


def _tag_id(site: Site, when: datetime, source: str, fragment: str = "") -> str:
    host = _host(site.base_url)
    return f"tag:{host},{when.date().isoformat()}:/{source}" + (f"#{fragment}" if fragment else "")


@functools.lru_cache(maxsize=16)
def _host(base_url: str) -> str:
    return urlsplit(base_url).hostname or "localhost"


def _common(site: Site, post: Post, cats: tuple[str, ...]) -> dict[str, object]:
    return {
        "source": post.source,
        "authors": _safe(m.authors(post.meta) or ((site.author,) if site.author else ())),
        "categories": _safe(cats),
        "tags": _safe(tags(site, post)),
        "updated_at": post.updated_at,
        "language": entry_language(site, post),
    }


def _safe(values: tuple[str, ...]) -> tuple[str, ...]:
    # Escapes in quoted YAML ("\x01") produce characters the file text itself did not contain.
    return tuple(xml_safe(v) for v in values)


def _linker(site: Site, post: Post, url: str, links: PostLinks | None) -> Linker:
    from .links import Linker

    special = links.pelican if links is not None and site.generator.kind == "pelican" else None
    return Linker(_page_base(post, url), site.base_url, special)


def _post_entry(site: Site, post: Post, url: str, body: str, revision: str, cats: tuple[str, ...]) -> Entry:
    return Entry(
        id=_tag_id(site, post.published_at, post.source),
        title=xml_safe(m.title(post.meta, body, file_slug(post.source))),
        published_at=post.shown_at,
        url=url,
        body_html="",
        summary_html="",
        revision=revision,
        **_common(site, post, cats),  # type: ignore[arg-type]
    )


def _item_entry(site: Site, post: Post, post_url: str, item: LogItem, revision: str, cats: tuple[str, ...]) -> Entry:
    return Entry(
        id=_tag_id(site, item.published_at, post.source, item.slug),
        title=item.title,
        published_at=item.published_at,
        url=f"{post_url}#{item.slug}",
        body_html="",
        summary_html="",
        revision=revision,
        **_common(site, post, cats),  # type: ignore[arg-type]
    )
