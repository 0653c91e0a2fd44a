"""The command line: parse, call the pipeline, print, pick the exit code.

Exit codes: 0 done; 1 an error (bad config, posts, subscribers, database, transport); 2 usage;
3 the send finished but some messages were deferred or failed; 130 interrupted.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from digest.errors import DigestError, UsageError

if TYPE_CHECKING:
    from digest import pipeline, report
    from digest.config import Settings
    from digest.models import Entry, Problem, Week
    from digest.records import Finding
else:

    class _Lazy:
        """A module imported on first use: `digest --help` and a usage error need none of the stages, and
        importing them (SQLAlchemy, premailer, markdown-it, …) took over a second."""

        def __init__(self, name: str) -> None:
            self._name = name

        def __getattr__(self, attr: str) -> Any:
            return getattr(importlib.import_module(self._name), attr)

    pipeline = _Lazy("digest.pipeline")
    report = _Lazy("digest.report")

NOW_ENV = "DIGEST_NOW"  # pins the clock (ISO 8601 with offset): reproducible runs and tests
EXIT_PARTIAL = 3


class _Output:
    """Lines to stdout or stderr, bold on a terminal. rich's Console did this until a measured figure said
    otherwise: importing it took 65 ms and printing the preview's table 15 ms, an eighth of a preview
    served from the cache, for one bold line and one table (digest.report.table_lines). The progress bar
    of `digest send` on a terminal is still rich's (`real`)."""

    def __init__(self, stderr: bool = False) -> None:
        self._stderr = stderr
        self._console: Any = None

    @property
    def stream(self) -> Any:
        return sys.stderr if self._stderr else sys.stdout  # looked up each time: click's test runner swaps them

    def is_terminal(self) -> bool:
        isatty = getattr(self.stream, "isatty", None)
        return bool(isatty and isatty())

    def styled(self) -> bool:
        """Bold allowed: a terminal that is not `dumb`, and no NO_COLOR (FORCE_COLOR forces it), as rich did."""
        if os.environ.get("NO_COLOR"):
            return False
        if os.environ.get("FORCE_COLOR"):
            return True
        return self.is_terminal() and os.environ.get("TERM") != "dumb"

    def width(self) -> int | None:
        """The terminal's columns, or None when the output is a file or a pipe (nothing is cut)."""
        if not self.is_terminal():
            return None
        import shutil

        return shutil.get_terminal_size().columns

    def print(self, text: object = "", style: str | None = None) -> None:
        line = str(text)
        if style == "bold" and self.styled():
            line = f"\033[1m{line}\033[0m"
        stream = self.stream
        try:
            try:
                stream.write(line + "\n")
            except UnicodeEncodeError:  # a terminal in a legacy encoding: a title it cannot show is escaped
                encoding = getattr(stream, "encoding", None) or "ascii"
                stream.write((line + "\n").encode(encoding, "backslashreplace").decode(encoding))
            stream.flush()
        except BrokenPipeError:
            # `digest send | head`: the reader left. The command goes on (a send stopped by a pager would
            # leave its week half sent) and says nothing more there.
            _silence(stream)

    def real(self) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(highlight=False, soft_wrap=True, markup=False, stderr=self._stderr)
        return self._console


def _reader_left(stream: Any) -> bool:
    """The stream is a pipe whose reading end is closed (not a socket that broke while sending mail)."""
    import select

    try:
        poller = select.poll()
        poller.register(stream.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


def _silence(stream: Any) -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no file descriptor (a test runner's buffer)
        pass


out = _Output()
err = _Output(stderr=True)


_STARTED = time.monotonic()


def clock() -> datetime:
    """Now; with DIGEST_NOW, the pinned moment plus the time this process has run, so that leases, back-off
    and rate limits still see time pass."""
    pinned = os.environ.get(NOW_ENV)
    if pinned:
        try:
            moment = datetime.fromisoformat(pinned)
        except ValueError as exc:
            raise DigestError(
                f"{NOW_ENV}={pinned!r} is not an ISO 8601 date-time", "e.g. 2026-11-22T09:00:00+09:00"
            ) from exc
        if moment.tzinfo is None:
            raise DigestError(f"{NOW_ENV} needs an offset", "e.g. 2026-11-22T09:00:00+09:00")
        if not 1971 <= moment.year <= 9000:  # weeks, feeds and leases reach years around it
            raise DigestError(f"{NOW_ENV}={pinned!r} is out of range", "give a year from 1971 to 9000")
        return moment + timedelta(seconds=time.monotonic() - _STARTED)
    return datetime.now(UTC)


class Context:
    def __init__(self, config: Path | None, site: Path | None):
        self.config = config
        self.site = site
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from digest.config import load_settings

            self._settings = load_settings(self.config, self.site)
            pipeline.check_settings(self._settings)
            for notice in self._settings.notices:
                err.print(f"notice: {notice}")
        return self._settings


def site_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--config and --site on every command (they may also be given before the command)."""

    @wraps(func)
    def wrapper(ctx: click.Context, config: Path | None, site: Path | None, **kwargs: Any) -> Any:
        parent: Context = ctx.obj or Context(None, None)
        ctx.obj = Context(config or parent.config, site or parent.site)
        return func(ctx.obj, **kwargs)

    with_context: Callable[..., Any] = click.pass_context(wrapper)
    with_context = click.option(
        "--site", "site", type=click.Path(path_type=Path, file_okay=False), help="The site folder."
    )(with_context)
    return click.option(
        "--config", "config", type=click.Path(path_type=Path, dir_okay=False), help="digest.toml to use."
    )(with_context)


def week_options(default: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--week (its default named in the help, as the command applies it), --since and --until."""
    others = [w for w in ('"last"', '"this"') if w != f'"{default}"']
    week_help = f'"2020-W27", "{default}" (default), {others[0]} or a date in the week.'

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        func = click.option("--until", help="End of a custom window (date or ISO date-time), with --since.")(func)
        func = click.option("--since", help="Start of a custom window instead of a week.")(func)
        return click.option("--week", "week", help=week_help)(func)

    return decorate


def pick_week(ctx: Context, now_at: datetime, week: str | None, since: str | None, until: str | None) -> Week:
    return pipeline.select_week(ctx.settings, now_at, week, since, until)


# the subscriber statuses (digest.models.Status, not imported here: it would cost every start-up, --help too)
STATUSES = ("unconfirmed", "active", "inactive", "unsubscribed", "bounced", "complained")


status_option = click.option(
    "--status", "statuses", multiple=True, type=click.Choice(STATUSES), help="Only these statuses (repeat the option)."
)


def one_window(week: str | None, since: str | None) -> None:
    """--week and --since name two different issues: one of them would be ignored without a word."""
    if week and since:
        raise UsageError(f"--week {week} and --since {since} together", "give a week, or a --since/--until window")


def fail_on_error(func: Callable[..., Any]) -> Callable[..., Any]:
    """A DigestError is the user's to fix: one line, no traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except DigestError as exc:
            err.print(f"error: {exc}")
            sys.exit(exc.exit_code)
        except OSError as exc:  # the machine, not digest: a folder, a disk, a socket — one line, no traceback
            if isinstance(exc, BrokenPipeError) and _reader_left(sys.stdout):
                _silence(sys.stdout)  # `digest subscribers export | head`: the reader has what it wanted
                sys.exit(0)
            where = f"{exc.filename}: " if exc.filename else ""
            err.print(f"error: {where}{exc.strerror or exc} (check the path, its permissions and free space)")
            sys.exit(1)
        except KeyboardInterrupt:
            err.print("interrupted")
            sys.exit(130)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="digest", prog_name="digest")
@click.option("--config", type=click.Path(path_type=Path, dir_okay=False), help="digest.toml to use.")
@click.option("--site", type=click.Path(path_type=Path, file_okay=False), help="The site folder.")
@click.pass_context
def main(ctx: click.Context, config: Path | None, site: Path | None) -> None:
    """A weekly newsletter from a folder of Markdown posts."""
    ctx.obj = Context(config, site)


# -- preview ----------------------------------------------------------------------------------------


def warning_lines(problems: tuple[Problem, ...]) -> list[str]:
    return [report.problem_line(p) for p in problems]


def warn_language(settings: Settings, language: str) -> None:
    """A `--lang` the site writes nothing in is allowed (a subscriber may read it), and said on stderr."""
    note = pipeline.language_warning(settings, language, clock())
    if note:
        err.print(f"warning: {note}")


def print_warnings(problems: tuple[Problem, ...]) -> None:
    """Skipped files, one line each on stderr (stdout stays the summary, or JSON)."""
    for line in warning_lines(problems):
        err.print(f"warning: {line}")


def entry_json(entry: Entry, late: bool) -> dict[str, Any]:
    return {
        "title": entry.title,
        "date": entry.published_at.isoformat(),
        "url": entry.url,
        "tags": list(entry.tags),
        "categories": list(entry.categories),
        "source": entry.source,
        "language": entry.language,
        "late": late,
    }


def summary_json(result: pipeline.Preview, settings: Settings) -> dict[str, Any]:
    issue = result.issue
    rendered = result.rendered
    return {
        "week": issue.week.label,
        "language": issue.lang,
        "issue": issue.id,
        "start": issue.week.start_at.isoformat(),
        "end": issue.week.end_at.isoformat(),
        "entries": [entry_json(e, False) for e in issue.entries] + [entry_json(e, True) for e in issue.late],
        "languages": [lang or settings.site.language for lang in result.build.languages],
        "warnings": [{"source": p.source, "message": p.message} for p in result.build.problems],
        "summarized": bool(rendered and rendered.summarized),
        "omitted": rendered.omitted if rendered else 0,
        "html_kb": round(rendered.html_size / 1000, 1) if rendered else 0,
        "max_html_kb": settings.output.max_html_bytes // 1000,
        "folder": str(result.folder),
        "files": {name: str(path) for name, path in sorted(result.files.items())},
        "sizes": {name: path.stat().st_size for name, path in sorted(result.files.items())},
        "removed": list(result.removed),
    }


def print_summary(result: pipeline.Preview, settings: Settings) -> None:
    issue = result.issue
    week = issue.week
    language = f" ({issue.lang})" if issue.language else ""
    kind = "window" if week.custom else "week"
    out.print(f"{issue.site.title} — {kind} {week.label}{language}", style="bold")
    out.print(f"window: {week.start_at.isoformat()} → {week.end_at.isoformat()} (end excluded)")
    if issue.all_entries:
        rows = [(e.published_at.strftime("%Y-%m-%d %H:%M %z"), e.title, e.source) for e in issue.entries]
        rows += [(e.published_at.strftime("%Y-%m-%d %H:%M %z"), f"{e.title} (late)", e.source) for e in issue.late]
        header, *lines = report.table_lines(("date", "title", "source"), rows, out.width())
        out.print(header, style="bold")
        for line in lines:
            out.print(line)
        if issue.late:
            # not "published after an earlier issue was sent": last week's may not be sent yet (it then takes
            # them); not "in no issue sent so far" either: a week already sent may be previewed again
            out.print(f"{len(issue.late)} late: dated before this week, in no earlier issue")
    else:
        mailed = [e for e in result.build.pools.get(issue.language, ()) if week.contains(e.published_at)]
        if mailed:  # dated in it, but carried by an issue planned before (the ledger says which)
            ids = {e.id for e in mailed}
            history = result.build.history.get(issue.language, ())
            carriers = sorted({i.week.label for i in history if any(e.id in ids for e in i.all_entries)})
            where = f"in {', '.join(carriers)}" if carriers else "in another issue"
            see = f"`digest status --week {carriers[0]}`" if len(carriers) == 1 else "`digest status`"
            out.print(f"no entries in this {kind} to send: its {len(mailed)} post(s) went out {where} ({see})")
        else:
            out.print(f"no entries in this {kind}: nothing would be sent")
    others = [lang for lang in result.build.languages if lang != issue.language]
    if others:
        shown = ", ".join(lang or settings.site.language for lang in others)
        out.print(f"other languages: {shown} (--lang)")
    print_warnings(result.build.problems)
    if result.rendered:
        out.print(report.size_line(result.rendered, settings.output.max_html_bytes))
    gone = f"; {len(result.removed)} of an earlier preview removed" if result.removed else ""
    out.print(f"{len(result.files)} files written to {result.folder}{gone} (previews never touch the published files)")


@main.command()
@site_options
@week_options("this")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.option("--open", "open_browser", is_flag=True, help="Open the HTML email in a browser.")
@click.option("--text", "show_text", is_flag=True, help="Print the plain-text version.")
@click.option(
    "--serve",
    "serve_port",
    type=int,
    metavar="[PORT]",
    is_flag=False,
    flag_value=8000,
    default=None,
    help="Serve the preview folder on 127.0.0.1 (default port 8000) and rebuild when a post changes.",
)
@click.option("--lang", "language", help="The issue in this language (default: the site's language).")
@click.option("--strict", is_flag=True, help="Skipped files are an error (exit 1).")
@fail_on_error
def preview(
    ctx: Context,
    week: str | None,
    since: str | None,
    until: str | None,
    as_json: bool,
    open_browser: bool,
    show_text: bool,
    serve_port: int | None,
    language: str | None,
    strict: bool,
) -> None:
    """Build this week's issue into the preview folder and summarise it."""
    one_window(week, since)
    settings = ctx.settings
    lang = pipeline.select_language(settings, language)
    warn_language(settings, lang)

    def once() -> pipeline.Preview:
        now_at = clock()
        return pipeline.preview(
            settings, now_at, pick_week(ctx, now_at, week, since, until), strict=strict, language=lang
        )

    result = once()
    email_file = result.issue.prefix + "email"
    if as_json:
        click.echo(json.dumps(summary_json(result, settings), ensure_ascii=False, indent=2))
    elif show_text:
        text_file = result.files.get(email_file + ".txt")
        click.echo(text_file.read_text("utf-8") if text_file else "(no entries this week)")
    else:
        print_summary(result, settings)
    if open_browser and email_file + ".html" in result.files:
        import webbrowser  # on first use: 10–20 ms of every start-up, for one option

        webbrowser.open(result.files[email_file + ".html"].resolve().as_uri())
    if serve_port is not None:
        # the email when this week has one, else the archive page the preview wrote (the folder's index)
        page = email_file + ".html" if email_file + ".html" in result.files else ""
        serve_preview(result.folder, serve_port, page, settings.site.source_dirs, once)


def serve_preview(
    folder: Path, port: int, page: str, sources: tuple[Path, ...], rebuild: Callable[[], pipeline.Preview]
) -> None:
    """Serve the preview folder alone: the outbox and the published files are never reachable from it."""
    import functools
    import http.server

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    out.print(f"serving {folder} on http://127.0.0.1:{port}/{page} — Ctrl-C to stop")

    def snapshot() -> dict[Path, float]:
        return {p: p.stat().st_mtime for d in sources for p in d.rglob("*") if p.is_file()}

    seen = snapshot()
    try:
        while True:
            time.sleep(1.0)
            now = snapshot()
            if now != seen:
                seen = now
                try:
                    result = rebuild()
                    out.print(f"rebuilt: {len(result.issue.all_entries)} entries")
                except DigestError as exc:
                    err.print(f"error: {exc}")
    finally:
        server.shutdown()


# -- publish / send / run -----------------------------------------------------------------------------


@main.command()
@site_options
@week_options("last")
@click.option("--strict", is_flag=True, help="Skipped files are an error (exit 1).")
@fail_on_error
def publish(ctx: Context, week: str | None, since: str | None, until: str | None, strict: bool) -> None:
    """Write the feeds and the archive of every language into the output folder."""
    one_window(week, since)
    now_at = clock()
    result = pipeline.publish(ctx.settings, now_at, pick_week(ctx, now_at, week or "last", since, until), strict=strict)
    print_warnings(result.problems)
    for language in result.languages:
        where = ctx.settings.output.dir / language if language else ctx.settings.output.dir
        shown = f" ({language})" if language else ""
        out.print(f"published {len(result.history[language])} issue(s){shown} to {where}")


def _cycle(
    ctx: Context,
    week_spec: str,
    since: str | None,
    until: str | None,
    *,
    dry_run: bool,
    strict: bool,
    as_json: bool,
    publish_too: bool,
) -> int:
    settings = ctx.settings
    now_at = clock()
    week = pick_week(ctx, now_at, week_spec, since, until)
    if week.end_at > now_at:
        # allowed (an issue may go out early), but its later posts then wait for the next issue
        kind = "window" if week.custom else "week"
        err.print(
            f"warning: the {kind} {week.label} has not ended (it ends {week.end_at.isoformat()}): a post dated "
            "later in it goes out with the next issue, as a late one"
        )
    if publish_too and not dry_run and (holder := pipeline.held_by_owner(settings, week)):
        # the weekly cycle of cron: a week the owner held (schedule.review) is not sent, as by the service
        out.print(f"week {week.label}: held by the owner ({holder}); nothing published or sent (`digest approve "
                  f"--week {week.label}` lets it go)")  # fmt: skip
        return 0
    subscribers, paused = pipeline.send_list(settings, now_at)
    stop = threading.Event()
    # SIGTERM/SIGINT: finish and record the messages in flight, then exit (exit code 3: not all sent).
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    progress = ProgressBar(enabled=not as_json and sys.stderr.isatty())
    try:
        result = pipeline.run_cycle(
            settings,
            now_at,
            week,
            clock=clock,
            publish=publish_too,
            dry_run=dry_run,
            strict=strict,
            subscribers=subscribers,
            progress=progress.update,
            stop=stop,
            skipped=paused,
            preflight=publish_too,  # `digest run` is the weekly cycle: checked like the service's
        )
    finally:
        progress.close()
    print_warnings(result.problems)
    if as_json:
        click.echo(json.dumps(report.cycle_json(result), ensure_ascii=False))
    else:
        for line in report.cycle_lines(result):
            out.print(line)
    if publish_too and not dry_run and not stop.is_set():
        _housekeeping(ctx, now_at, quiet=as_json)
    return result.exit_code


def _housekeeping(ctx: Context, now_at: datetime, *, quiet: bool) -> None:
    """What the service does on its tick, for a weekly `digest run` from cron: welcomes the server
    deferred, unconfirmed addresses forgotten, confirmations owed. A failure here is a warning: the week's
    issue went out."""
    try:
        done = pipeline.readers_housekeeping(ctx.settings, now_at, clock=clock)
    except DigestError as exc:
        err.print(f"warning: readers' housekeeping: {exc}")
        return
    said = [
        f"{n} {what}"
        for n, what in (
            (done.expired, "unconfirmed address(es) forgotten"),
            (done.welcomes, "deferred welcome(s) sent"),
            (done.confirmations, "owed confirmation(s) sent"),
        )
        if n
    ]
    if said and not quiet:
        out.print("readers: " + ", ".join(said))


@main.command()
@site_options
@week_options("last")
@click.option("--dry-run", is_flag=True, help="Build every message, send none, leave the ledger alone.")
@click.option("--to", "to", help="Send one test copy to this address; the ledger is left alone.")
@click.option("--lang", "language", help="With --to: the issue in this language (default: the site's).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--strict", is_flag=True, help="Skipped files are an error (exit 1).")
@fail_on_error
def send(
    ctx: Context,
    week: str | None,
    since: str | None,
    until: str | None,
    dry_run: bool,
    to: str | None,
    language: str | None,
    as_json: bool,
    strict: bool,
) -> None:
    """Send the week's issue (default: last week) to every subscriber, in their language, once."""
    one_window(week, since)
    if to:
        sys.exit(_send_test_copy(ctx, week or "last", since, until, to, language))
    if language:
        raise click.UsageError("--lang goes with --to; subscribers get the issue of their own language")
    sys.exit(
        _cycle(ctx, week or "last", since, until, dry_run=dry_run, strict=strict, as_json=as_json, publish_too=False)
    )


def _send_test_copy(
    ctx: Context, week_spec: str, since: str | None, until: str | None, to: str, language: str | None
) -> int:
    now_at = clock()
    week = pick_week(ctx, now_at, week_spec, since, until)
    lang = pipeline.select_language(ctx.settings, language)
    warn_language(ctx.settings, lang)
    result = pipeline.send_test_copy(ctx.settings, now_at, week, to, lang)
    if result is None:
        out.print(f"week {week.label}: no entries, nothing to send")
        return 0
    out.print(f"test copy to {to}: {result.status} {result.reply}".rstrip())
    return 0 if result.ok else EXIT_PARTIAL


@main.command()
@site_options
@week_options("last")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--strict", is_flag=True, help="Skipped files are an error (exit 1).")
@fail_on_error
def run(ctx: Context, week: str | None, since: str | None, until: str | None, as_json: bool, strict: bool) -> None:
    """One weekly cycle now: publish feeds and archive, then send (default: last week)."""
    one_window(week, since)
    sys.exit(_cycle(ctx, week or "last", since, until, dry_run=False, strict=strict, as_json=as_json, publish_too=True))


class ProgressBar:
    """A rich progress bar on a terminal; silent otherwise."""

    def __init__(self, enabled: bool):
        self._progress: Any = None
        self._task: Any = None
        if enabled:
            from rich.progress import Progress

            self._progress = Progress(console=err.real(), transient=True)
            self._progress.start()

    def update(self, done: int, total: int) -> None:
        if self._progress is None:
            return
        if self._task is None:
            self._task = self._progress.add_task("sending", total=total)
        self._progress.update(self._task, completed=done, total=total)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


# -- ledger, subscribers, unsubscribe ------------------------------------------------------------------


@main.command()
@site_options
@click.option("--week", "week", help='The issue: "2020-W27", "last" (default), "this" or a date.')
@click.option("--lang", "language", help="The issue in this language (default: the site's language).")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@fail_on_error
def status(ctx: Context, week: str | None, language: str | None, as_json: bool) -> None:
    """Show the ledger of an issue: counts per state and the failures with the server's replies."""
    now_at = clock()
    issue_week = pick_week(ctx, now_at, week or "last", None, None)
    lang = pipeline.select_language(ctx.settings, language)
    warn_language(ctx.settings, lang)
    issue_id = pipeline.issue_id(ctx.settings, issue_week, lang)
    state = pipeline.issue_status(ctx.settings, issue_id)
    if as_json:
        click.echo(json.dumps(report.status_json(issue_id, state), ensure_ascii=False))
        return
    others = {
        other: pipeline.issue_status(ctx.settings, other)
        for other in pipeline.week_issues(ctx.settings, issue_week.label)
        if other != issue_id
    }
    reviewing = ctx.settings.schedule.review
    review = pipeline.review_of(ctx.settings, issue_week.label) if reviewing else None
    if review is not None and review.decided_at is not None:  # in the site's time, as every date it prints
        from dataclasses import replace

        review = replace(review, decided_at=review.decided_at.astimezone(ctx.settings.site.tz))
    for line in report.status_lines(issue_id, state, others, review, reviewing=reviewing):
        out.print(line)


@main.group(invoke_without_command=True)
@click.option("--config", type=click.Path(path_type=Path, dir_okay=False), help="digest.toml to use.")
@click.option("--site", type=click.Path(path_type=Path, file_okay=False), help="The site folder.")
@click.pass_context
def subscribers(click_ctx: click.Context, config: Path | None, site: Path | None) -> None:
    """List subscribers (suppressed ones marked); `check` validates the file."""
    parent: Context = click_ctx.obj or Context(None, None)
    click_ctx.obj = Context(config or parent.config, site or parent.site)
    if click_ctx.invoked_subcommand is None:
        click_ctx.invoke(list_subscribers)


@subscribers.command("list")
@site_options
@status_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per subscriber in a list.")
@fail_on_error
def list_subscribers(ctx: Context, statuses: tuple[str, ...], as_json: bool) -> None:
    """List the subscribers of the store (after bringing the subscribers file in), with their status."""
    settings = ctx.settings
    now_at = clock()
    pipeline.sync_subscribers(settings, now_at)
    book = pipeline.roster(settings)
    if as_json:
        click.echo(json.dumps([report.subscriber_json(r) for r in book.records(statuses)], ensure_ascii=False))
        return
    for record in book.records(statuses):
        out.print(report.subscriber_line(record, now_at.astimezone(settings.site.tz)))
    counts = book.counts()
    out.print(", ".join(f"{n} {status}" for status, n in counts.items() if n) or "no subscribers yet")


@subscribers.command("show")
@site_options
@click.argument("email")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@fail_on_error
def show_subscriber(ctx: Context, email: str, as_json: bool) -> None:
    """One subscriber: status, consent, bounce counters and every change with its reason."""
    email = _address(email, loose=True)
    now_at = clock()
    pipeline.sync_subscribers(ctx.settings, now_at)
    record = pipeline.roster(ctx.settings).get(email)
    if record is None:
        raise DigestError(f"{email} is not a subscriber", "see `digest subscribers list`")
    if as_json:
        click.echo(json.dumps(report.subscriber_json(record), ensure_ascii=False))
        return
    for line in report.subscriber_lines(record, now_at):
        out.print(line)


@subscribers.command("add")
@site_options
@click.argument("email")
@click.option("--name", default="", help="The subscriber's name.")
@click.option("--tag", "tags", multiple=True, help="Only entries with this tag (repeat the option).")
@click.option("--language", default="", help="Language code of the pages and mails (en, ko).")
@click.option("--format", "fmt", type=click.Choice(["html", "text"]), default="html", help="html or text.")
@click.option("--confirm", "ask", is_flag=True, help="Send the confirmation mail instead of adding as active.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@fail_on_error
def add_subscriber(
    ctx: Context, email: str, name: str, tags: tuple[str, ...], language: str, fmt: str, ask: bool, as_json: bool
) -> None:
    """Add one subscriber by hand: active (you have their consent) or, with --confirm, asked to confirm."""
    settings = ctx.settings
    now_at = clock()
    added, status = pipeline.add_subscriber(
        settings, email, now_at, name=name, tags=tags, language=language, fmt=fmt, confirm=ask, clock=clock
    )
    if as_json:
        click.echo(json.dumps({"email": email, "added": added, "status": status}))
        return
    out.print(f"{email}: {'added, ' + status if added else 'already a subscriber (' + status + ')'}")


@subscribers.command("remove")
@site_options
@click.argument("email")
@click.option("--forget", is_flag=True, help="Delete everything kept about the address, even its suppression.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@fail_on_error
def remove_subscriber(ctx: Context, email: str, forget: bool, as_json: bool) -> None:
    """Unsubscribe an address (kept as unsubscribed so nothing reaches it), or --forget it entirely."""
    email = _address(email, loose=forget)
    settings = ctx.settings
    if forget:
        changed = pipeline.roster(settings).forget(email)
        what = "forgotten" if changed else "not known"
    else:
        now_at = clock()
        pipeline.sync_subscribers(settings, now_at)
        if pipeline.roster(settings).get(email) is None and email.strip().lower() not in pipeline.suppressed(settings):
            # as `show`: nothing to unsubscribe (`digest unsubscribe` suppresses an address never subscribed)
            raise DigestError(f"{email} is not a subscriber", "see `digest subscribers list`")
        changed = pipeline.unsubscribe(settings, email, now_at, "removed by hand (digest subscribers remove)")
        what = "unsubscribed" if changed else "already unsubscribed"
    if as_json:
        click.echo(json.dumps({"email": email, "changed": changed, "result": what}))
        return
    out.print(f"{email}: {what}")


@subscribers.command("import")
@site_options
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--map", "mapping", default="", help="Columns of another CSV: email=COL,name=COL,consent=COL,tags=COL.")
@click.option("--dry-run", is_flag=True, help="Read and count; change nothing, send nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@fail_on_error
def import_subscribers(ctx: Context, file: Path, mapping: str, dry_run: bool, as_json: bool) -> None:
    """Import a CSV export (Mailchimp, Substack, Buttondown, listmonk, Ghost, digest, or --map); consent is kept."""
    result = pipeline.import_subscribers(ctx.settings, file, clock(), mapping=mapping, dry_run=dry_run, clock=clock)
    if as_json:
        click.echo(json.dumps(report.import_json(result), ensure_ascii=False))
    else:
        for line in report.import_lines(result):
            out.print(line)
    sys.exit(1 if result.invalid else 0)


@subscribers.command("export")
@site_options
@click.option("--format", "kind", type=click.Choice(["csv", "json"]), default="csv", help="csv (default) or json.")
@click.option("--json", "as_json", is_flag=True, help="The same as --format json.")
@status_option
@click.option("--output", "-o", "output", type=click.Path(path_type=Path, dir_okay=False), help="Write to a file.")
@fail_on_error
def export_subscribers(ctx: Context, kind: str, as_json: bool, statuses: tuple[str, ...], output: Path | None) -> None:
    """Write every subscriber with status and consent as CSV or JSON (to stdout or --output)."""
    kind = "json" if as_json else kind
    pipeline.sync_subscribers(ctx.settings, clock())
    if output is None:
        pipeline.export_subscribers(ctx.settings, sys.stdout, kind, statuses)
        return
    with output.open("w", encoding="utf-8", newline="") as fh:
        count = pipeline.export_subscribers(ctx.settings, fh, kind, statuses)
    err.print(f"{count} subscribers written to {output}")


@subscribers.command("check")
@site_options
@fail_on_error
def check_subscribers_cmd(ctx: Context) -> None:
    """Validate the subscribers file: counts and every problem; exit 1 when there is one."""
    path = pipeline.require_subscribers(ctx.settings)
    subs, problems = pipeline.check_subscribers(ctx.settings)
    by_format: dict[str, int] = {}
    for s in subs:
        by_format[s.format] = by_format.get(s.format, 0) + 1
    if subs or not problems:  # a file that gave nobody (unreadable, every entry wrong): only its errors
        formats = "".join(f", {n} {f}" for f, n in sorted(by_format.items()))
        out.print(f"{path}: {len(subs)} subscribers ({sum(s.active for s in subs)} active{formats})")
    for line in warning_lines(tuple(problems)):
        err.print(f"error: {line}")
    sys.exit(1 if problems else 0)


def _address(email: str, *, loose: bool = False) -> str:
    """EMAIL as the store keeps it (an international domain in its ASCII form, the domain in lower case), as
    the sign-up form and the subscribers file write it; `loose` keeps what is no address as typed (to forget
    a row stored before addresses were checked)."""
    from digest.config import normalise_address

    try:
        return normalise_address(email)
    except ValueError as exc:
        if loose:
            return email.strip()
        raise UsageError(f"{email!r} {exc}", "give one email address, like reader@example.com") from exc


@main.command()
@site_options
@click.argument("email")
@click.option("--undo", is_flag=True, help="Remove the address from the suppression list.")
@fail_on_error
def unsubscribe(ctx: Context, email: str, undo: bool) -> None:
    """Suppress an address by hand (e.g. after a mailto unsubscribe)."""
    email = _address(email)
    if undo:
        changed = pipeline.resubscribe(ctx.settings, email, now_at=clock())
        out.print(f"{email}: {'resubscribed' if changed else 'was not suppressed'}")
    else:
        changed = pipeline.unsubscribe(ctx.settings, email, clock(), "by hand (digest unsubscribe)")
        out.print(f"{email}: {'unsubscribed' if changed else 'already unsubscribed'}")


@main.command()
@site_options
@click.option("--connect", is_flag=True, help="Also connect to the transport (SMTP login, Maildir folder).")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@fail_on_error
def check(ctx: Context, connect: bool, as_json: bool) -> None:
    """Check everything a weekly run needs: config, posts, templates, subscribers, folders, database, transport."""
    _print_findings(pipeline.check(ctx.settings, clock(), connect=connect), as_json)


@main.command()
@site_options
@click.option("--json", "as_json", is_flag=True, help="Print what was found as JSON.")
@fail_on_error
def bounces(ctx: Context, as_json: bool) -> None:
    """Read the bounce mailbox once and apply it: bounces, complaints, mailto unsubscribes."""
    result = pipeline.read_bounces(ctx.settings, clock())
    if as_json:
        click.echo(json.dumps(report.bounce_json(result), ensure_ascii=False))
        return
    for line in report.bounce_lines(result):
        out.print(line)


def _review_week(ctx: Context, week: str | None) -> tuple[str, datetime]:
    """The week of the next send (whose preview the owner reviews), or the one --week names."""
    from digest import scheduler

    now_at = clock()
    if week:
        return pick_week(ctx, now_at, week, None, None).label, now_at
    coming = scheduler.next_runs(ctx.settings, 1, now_at)
    return pipeline.job_week(ctx.settings, coming[0] if coming else now_at).label, now_at


@main.command()
@site_options
@click.option("--week", "week", help="The issue; default: a held one the service can still send, else the next send's.")
@click.option("--note", help="An editor's note (Markdown) shown above the posts.")
@click.option("--note-file", type=click.Path(path_type=Path, dir_okay=False, exists=True), help="The note from a file.")
@fail_on_error
def approve(ctx: Context, week: str | None, note: str | None, note_file: Path | None) -> None:
    """Approve an issue for the service to send (schedule.review), with an optional editor's note."""
    if note_file is not None:
        note = note_file.read_text("utf-8")
    label, now_at = _review_week(ctx, week)
    held = "" if week else pipeline.waiting_hold(ctx.settings, now_at)
    label = held or label  # the hold `digest hold` told to undo this way, while the service can still send it
    review = pipeline.decide_review(ctx.settings, label, "approve", now_at, by="command line", note=note)
    released = "; released from the hold, the service sends it at its next tick" if held else ""
    out.print(f"week {label}: approved" + ("; with an editor's note" if review.note.strip() else "") + released)
    if review.note.strip() and ctx.settings.email.empty_week == "skip":
        issues = pipeline.build(ctx.settings, now_at, pick_week(ctx, now_at, label, None, None)).issues
        if not any(issue.all_entries for issue in issues.values()):
            err.print(
                f'warning: week {label} has no posts so far: with email.empty_week = "skip" nothing goes out for it, '
                "nor the note, unless posts dated in it are published before its send"
            )


@main.command()
@site_options
@click.option("--week", "week", help="The issue; default: the one the next scheduled send sends.")
@fail_on_error
def hold(ctx: Context, week: str | None) -> None:
    """Hold an issue: the service does not send it (schedule.review); `digest approve` undoes it."""
    label, now_at = _review_week(ctx, week)
    pipeline.decide_review(ctx.settings, label, "hold", now_at, by="command line")
    out.print(f"week {label}: held; the service will not send it")


@main.command()
@site_options
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@fail_on_error
def doctor(ctx: Context, as_json: bool) -> None:
    """Check that mail will land in the inbox: DNS (SPF, DKIM, DMARC, MX), one real message, the one-click
    unsubscribe endpoint, the volume at Gmail, Outlook and Yahoo."""
    _print_findings(pipeline.doctor(ctx.settings, clock()), as_json)


def _print_findings(findings: list[Finding], as_json: bool) -> NoReturn:
    """The findings of `digest check` or `digest doctor`, as lines or JSON; exit 1 when any failed."""
    if as_json:
        click.echo(json.dumps(report.findings_json(findings), ensure_ascii=False, indent=2))
    else:
        for line in report.finding_lines(findings):
            out.print(line)
    sys.exit(1 if any(f.level == "fail" for f in findings) else 0)


# -- the service -------------------------------------------------------------------------------------


@main.command()
@site_options
@click.option("--show", is_flag=True, help="Print the next run times and exit.")
@click.option(
    "--count", default=5, show_default=True, type=click.IntRange(min=1), help="How many run times --show prints."
)
@fail_on_error
def schedule(ctx: Context, show: bool, count: int) -> None:
    """Run the weekly service: publish and send every week at the configured day and time."""
    from digest import scheduler

    if show:
        for moment in scheduler.next_runs(ctx.settings, count, clock()):
            out.print(f"{moment.isoformat()}  sends {scheduler.job_week(ctx.settings, moment).label}")
        return
    if os.environ.get(NOW_ENV):
        # the service waits for real times: with a pinned clock it would send the real week, not the pinned one
        raise UsageError(
            f"{NOW_ENV} is set, and `digest schedule` runs on the real clock",
            f"unset {NOW_ENV}, or run one weekly cycle at the pinned moment with `digest run`",
        )
    sys.exit(scheduler.serve_forever(ctx.settings))


@main.command()
@site_options
@click.option("--host", help="The address to listen on (default: server.host, 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), help="The port to listen on (default: server.port, 8080).")
@fail_on_error
def serve(ctx: Context, host: str | None, port: int | None) -> None:
    """Serve one-click unsubscribe, the archive and the feeds over HTTP."""
    from dataclasses import replace

    from digest import server

    settings = ctx.settings
    if host is not None or port is not None:
        listen = replace(settings.server, host=host or settings.server.host, port=port or settings.server.port)
        settings = replace(settings, server=listen)
    sys.exit(server.serve(settings, clock))


if __name__ == "__main__":  # pragma: no cover
    main()
