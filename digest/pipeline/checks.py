"""`digest doctor` and `digest check`."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from digest import templater, text
from digest.config import Settings, private_folder
from digest.errors import DigestError
from digest.models import Entry, Issue, Subscriber, Week
from digest.pipeline._shared import EXAMPLE_SUBSCRIBER, Build
from digest.pipeline.building import build, select_week
from digest.pipeline.events import provider_events_url
from digest.pipeline.state import check_subscribers, load_subscribers, open_store, suppressed, transport_factory
from digest.records import Finding

if TYPE_CHECKING:
    from digest import sender
else:
    from digest.pipeline._shared import sender


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
        stored, skipped = sender.Roster(store).for_send(now_at.astimezone(settings.site.tz))
        gone = suppressed(settings, store) | set(skipped)
    finally:
        store.close()
    listed.update((s.key, s) for s in stored)
    return list(listed.values()), gone


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
    host = (urlsplit(settings.site.base_url).hostname or "").lower()
    if host in ("localhost", "127.0.0.1", "::1") or host.endswith(".localhost"):
        found.append(
            Finding(
                "config",
                "warn",
                f"{config}{site_config}; posts link to {settings.site.base_url}",
                "set the site's public URL (Hugo baseURL, Jekyll url, Pelican SITEURL, or site.url in digest.toml):"
                " every link mailed would point at this machine",
            )
        )
    else:
        found.append(Finding("config", "ok", f"{config}{site_config}"))

    built: list[Build] = []

    def posts() -> Finding:
        result = build(settings, now_at, select_week(settings, now_at, "last"))
        built.append(result)
        problems = result.problems
        detail = f"{result.scanned} files in {len(settings.site.source_dirs)} folder(s); last week has "
        detail += f"{len(result.issue.entries)} entries; {len(problems)} problem(s) (a file skipped, or a post"
        detail += " kept with a warning)"
        if problems:
            first = problems[0]
            return Finding("posts", "warn", detail, f"first: {first.source}: {first.message}")
        return Finding("posts", "ok", detail)

    def templates() -> Finding:
        names = templater.check_templates(settings.output.templates)
        where = f" ({settings.output.templates} first)" if settings.output.templates else ""
        # Compiling finds syntax errors only: an unknown variable, a part included but missing, a removed
        # unsubscribe link or a frame over output.max_html_kb show when a template is rendered. The email of
        # each language's latest issue (a sample one where it has none) is rendered as a send renders it.
        languages = sorted(built[0].languages) if built else []
        emails = {}
        for language in languages:
            past = built[0].history.get(language, ())
            issue = past[0] if past else replace(sample_issue(settings, built[0].issue.week), language=language)
            emails[issue.lang] = templater.render_email(issue, settings).html
        rendered = f"; the email rendered in {len(languages)} language(s)" if languages else ""
        detail = f"{len(names)} compiled{where}{rendered}"
        folder = settings.output.templates
        if folder is None:
            return Finding("templates", "ok", detail)
        spoken = {settings.site.language, *emails}
        found = templater.lint(folder, spoken, emails)
        if found:
            what, fix = found[0]
            more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
            return Finding("templates", "warn", f"{detail}; {what}{more}", fix)
        return Finding("templates", "ok", detail)

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
        gone: set[str] = set()
        if subs:
            try:  # the store's own check is "database", below
                store = open_store(settings)
                try:
                    gone = suppressed(settings, store)
                finally:
                    store.close()
            except DigestError:
                pass
            left = sum(1 for sub in subs if sub.active and sub.key in gone)
            if left:
                detail += f"; {left} of them left (unsubscribed, bounced or complained): the file never overrides that"
        if problems:
            more = "; `digest subscribers check` lists them all" if len(problems) > 1 else ""
            return Finding("subscribers", "fail", detail + f"; {len(problems)} problem(s)", str(problems[0]) + more)
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
        if settings.db_url.startswith("postgresql"):  # sends on PostgreSQL keep an outcome journal there
            why = _writable(settings.state_dir / "journal")
            if why:
                return Finding(
                    "folders",
                    "warn",
                    f"cannot write the outcome journal {why}: sends record each message in PostgreSQL first (slower)",
                    "remove what is in its place or fix the permissions",
                )
        return Finding("folders", "ok", f"output {settings.output.dir}; state {settings.state_dir}")

    def database() -> Finding:
        store = open_store(settings)
        try:
            damage = store.damage()  # a damaged page fails only the commands that read it
        finally:
            store.close()
        where = sender.safe_url(settings.db_url)
        if damage:
            return Finding("database", "fail", f"{where} is damaged: {damage}", "restore it from a backup")
        return Finding("database", "ok", f"{where} (schema {sender.SCHEMA_VERSION})")

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
