"""Readers: the subscriber store, the public side's flows, bounces, import and export."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from digest import collector, config, templater, text
from digest.config import Settings
from digest.errors import ConfigError, DigestError
from digest.models import OutgoingMessage, Problem, State, Subscriber
from digest.pipeline._shared import Clock
from digest.pipeline.building import build, select_week, with_notes
from digest.pipeline.state import open_ledger, open_store, require_subscribers, transport_factory
from digest.records import BounceFinding, BounceReport, ImportReport, ImportRow, IssueStatus, SubscriberRecord

if TYPE_CHECKING:
    from digest import sender
    from digest.sender import SendResult
else:
    from digest.pipeline._shared import sender


# -- readers: the subscriber store, the public side's flows, bounces, import and export ----------------
#
# The edges reach the subscriber store only through these functions. The weekly send reads the store
# (after bringing subscribers.yaml in); every change of status keeps the suppression list in step.

WELCOME_PREFIX = "welcome-"
IN_WELCOME = "in the welcome email"  # the ledger's reply on a reader's row of the issue their welcome carried


def roster(settings: Settings, store: sender.Store | None = None) -> sender.Roster:
    return sender.Roster(store or open_store(settings))


def sync_subscribers(settings: Settings, now_at: datetime, store: sender.Store | None = None) -> sender.SyncReport:
    """Bring the subscribers file into the store (nothing to do without a file)."""
    if settings.subscribers is None:
        return sender.SyncReport()
    entries = config.load_subscribers(settings.subscribers)
    book = roster(settings, store)
    if not entries and not _EMPTY_LIST.search(settings.subscribers.read_text("utf-8")):
        # `subscribers:` with nothing under it, a file cut by mistake: syncing it would make every reader
        # it listed inactive, unsaid. An empty list has to be written as one.
        listed = book.listed_in_file()
        if listed:
            raise ConfigError(
                f"the file lists nobody, while {listed} active subscriber(s) came from it: each would be made inactive",
                "put them back; to remove everyone from the file, write `subscribers: []`",
                source=str(settings.subscribers),
            )
    return book.sync_file(entries, str(settings.subscribers), now_at)


_EMPTY_LIST = re.compile(r"^subscribers:\s*\[\s*\]", re.MULTILINE)


def send_list(
    settings: Settings, now_at: datetime, store: sender.Store | None = None
) -> tuple[tuple[Subscriber, ...], dict[str, str]]:
    """Who the weekly send goes to, from the store after syncing the file; and why paused ones are skipped."""
    own = store is None
    store = store or open_store(settings)
    try:
        sync_subscribers(settings, now_at, store)
        found, skipped = sender.Roster(store).for_send(now_at.astimezone(settings.site.tz))
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
    # A language tag from the form as anyone may post it: one that names no language is the site's (the
    # subscribers file and `subscribers add` refuse it; a reader of the form gets mail all the same).
    language = language.strip()[:35]
    language = language if language and text.is_valid_language(language) else ""
    sub = Subscriber(email=address, name=text.plain_name(name), language=language)
    config = settings.subscribe
    # A confirmation is planned in the ledger with the request, under an issue of its own (a send of one
    # issue skips its other rows): sent at once by send_reader_mail, or by the next housekeeping when the
    # process stopped first.
    stamp = now_at.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    plan = f"{CONFIRM_PREFIX}{stamp}-{hashlib.sha256(sub.key.encode()).hexdigest()[:12]}"
    return roster(settings, store).request(
        sub,
        now_at,
        page=page[:500],
        ip=ip if config.store_ip else "",
        double_opt_in=config.double_opt_in,
        interval=timedelta(hours=config.confirm_interval_hours),
        plan=plan,
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


def _send_notice(
    settings: Settings, to: str, notice: templater.Notice, now_at: datetime, kind: str, name: str = ""
) -> SendResult:
    message = sender.build_notice(settings, to, notice.subject, notice.text, notice.html, now_at, kind=kind, name=name)
    return sender.send_test_copy(message, transport_factory(settings)())


def send_reader_mail(
    settings: Settings, request: sender.Request, now_at: datetime, *, clock: Clock, store: sender.Store | None = None
) -> SendResult | None:
    """The mail a subscribe request leads to: the confirmation, the "already subscribed" notice with the
    preference link, or (without double opt-in) the welcome email. A confirmation or notice that could not
    be sent gives its mail slot back (roster.free_mail_slot), so the reader is not left without one for
    `subscribe.confirm_interval_hours`."""
    if request.mail == "confirm" and request.planned:
        return _send_planned_confirmation(settings, request, now_at, clock, store)
    if request.mail in ("confirm", "notice"):
        purpose = "confirm" if request.mail == "confirm" else "preferences"
        link = _link(settings, purpose, request.email, now_at, purpose)
        notice = templater.render_notice(settings, request.mail, request.language, link)
        try:
            result = _send_notice(settings, request.email, notice, now_at, request.mail, request.name)
        except DigestError:
            roster(settings, store).free_mail_slot(request.email, now_at)
            raise
        if not result.ok:
            roster(settings, store).free_mail_slot(request.email, now_at)
        return result
    if request.mail == "welcome":
        send_welcome(settings, request.email, now_at, clock=clock, store=store)
    return None


def _send_planned_confirmation(
    settings: Settings, request: sender.Request, now_at: datetime, clock: Clock, store: sender.Store | None
) -> SendResult:
    """The confirmation `request` planned in the ledger, sent now through it: exactly once, whether this
    call, the housekeeping of another process, or both get to it. One the server does not take now stays
    owed there, and the housekeeping sends it when its retry time has come."""
    own = store is None
    store = store or open_store(settings)
    try:
        reader = Subscriber(email=request.email, name=request.name, language=request.language)
        report = sender.deliver(
            _ConfirmMails(settings, now_at, request.planned),
            [reader],
            open_ledger(settings, store),
            transport_factory(settings),
            settings.delivery,
            clock,
            issue_id=request.planned,
        )
    finally:
        if own:
            store.close()
    if report.sent or report.earlier:
        return sender.SendResult(State.SENT)
    why = report.failures[0].reply if report.failures else report.stopped
    return sender.SendResult(
        State.DEFERRED, reply=f"{why or 'not sent'}; owed in the ledger, sent by the next housekeeping"
    )


def reader_of_token(settings: Settings, token: str, now_at: datetime, purpose: str) -> str:
    """The address (or "old\\nnew" for a change) a signed link was made for; TokenError otherwise."""
    return sender.verify_token(settings.secret, token, now_at, purpose=purpose, old_secrets=settings.old_secrets)


def confirm(settings: Settings, email: str, now_at: datetime, store: sender.Store | None = None) -> str:
    """The confirmation page's button: "confirmed", "already" or "expired"."""
    return roster(settings, store).confirm(email, now_at, settings.subscribe.unconfirmed_days)


def welcome_id(email: str, consent_at: datetime | None = None) -> str:
    """The ledger's issue id of the welcome of `email`'s subscription given at `consent_at`: one welcome per
    confirmation, so a reader who left and came back is welcomed again (the page says the issue is on its
    way). Without `consent_at`, the id every welcome had before (one per address)."""
    import hashlib

    key = email.strip().lower() + (f"|{consent_at.astimezone(UTC).isoformat()}" if consent_at else "")
    return WELCOME_PREFIX + hashlib.sha256(key.encode()).hexdigest()[:24]


def send_welcome(
    settings: Settings,
    email: str,
    now_at: datetime,
    *,
    clock: Clock,
    store: sender.Store | None = None,
    transports: sender.TransportFactory | None = None,
    owed: str = "",
) -> sender.DeliveryReport | None:
    """The welcome email with the latest issue (narrowed to the reader's topics), through the ledger under
    an id of its own per confirmation, so it goes out exactly once however often this is called. `owed`:
    the id of a welcome the ledger still owes (retry_welcomes); None when that one is no longer the
    reader's (they left, or confirmed again since and have the newer one)."""
    if not settings.subscribe.welcome:
        return None
    own = store is None
    store = store or open_store(settings)
    try:
        record = sender.Roster(store).get(email, events=False)
        if record is None or record.status != "active":
            return None
        ident = welcome_id(record.email, record.consent_at)
        if owed and owed not in (ident, welcome_id(record.email)):
            return None
        ident = owed or ident
        sub = record.subscriber()
        language = text.issue_language(sub.language, settings.site.language)
        # the latest issue that went out in the reader's language, each entry with the issue that mailed it
        # (the ledger's); not a week whose send is still to come, which would bring the reader its posts again
        carried = sender.read_carried(store, settings.site.language)
        last = select_week(settings, now_at, "last")
        built = with_notes(build(settings, now_at, last, carried=carried), settings, sender.Reviews(store).notes())
        history = built.history.get(language, ())
        sent = carried[language].planned if language in carried else {}
        latest = next((i for i in history if i.id in sent), None)
        issue = None
        if latest is not None:
            entries = tuple(e for e in latest.entries if sub.wants(e))
            issue = replace(latest, entries=entries) if entries else None
            if issue is not None and not open_ledger(settings, store).carry(latest.id, sub.email, IN_WELCOME, now_at):
                issue = None  # that issue's own send has this reader (they confirmed while it ran): it brings it
        week = issue.week if issue else select_week(settings, now_at, "this")
        rendered = templater.render_welcome(issue, week, settings, sub.language)
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
    offered = offered_languages(settings, now_at, record.language)
    return Preferences(record.email, record, site_topics(settings, now_at), offered)


_FACTS: dict[str, tuple[float, tuple[str, ...], tuple[str, ...]]] = {}


def _site_facts(settings: Settings, now_at: datetime) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(tags and categories, languages) of the site's posts, cached for ten minutes: the preference page
    asks on every view."""
    key = str(settings.site.root)
    cached = _FACTS.get(key)
    if cached is None or time.monotonic() - cached[0] > 600:
        site = settings.site
        cached = (time.monotonic(), collector.topics(site, now_at), collector.languages(site, now_at))
        _FACTS[key] = cached
    return cached[1], cached[2]


def site_topics(settings: Settings, now_at: datetime) -> tuple[str, ...]:
    """The site's tags and categories."""
    return _site_facts(settings, now_at)[0]


def offered_languages(settings: Settings, now_at: datetime, current: str = "") -> dict[str, str]:
    """{tag: name} a reader may choose on the preference page: the languages digest has words for, those
    the site writes in (by their tag, when digest has no name for them) and the reader's own, so that no
    reader's language is missing from the list (a form without it would send the site's instead)."""
    offered = dict(templater.languages())
    covered = {text.language_key(tag) for tag in offered}
    for tag in _site_facts(settings, now_at)[1]:
        if text.language_key(tag) not in covered:
            offered[tag] = tag
            covered.add(text.language_key(tag))
    if current and current not in offered:
        offered[current] = current
    return offered


PAUSE_CHOICES = (1, 2, 4, 8, 12)  # the pauses the preference page offers, in weeks
MAX_PAUSE_WEEKS = max(PAUSE_CHOICES)


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
    book = roster(settings, store)
    record = book.get(email, events=False)
    language = language if language in offered_languages(settings, now_at, record.language if record else "") else ""
    return book.update_preferences(
        email,
        now_at,
        language=language,
        tags=chosen,
        fmt=fmt if fmt in ("html", "text") else "html",
        pause_weeks=max(-1, min(pause_weeks, MAX_PAUSE_WEEKS)),
    )


def request_address_change(
    settings: Settings, email: str, new_email: str, now_at: datetime, store: sender.Store | None = None
) -> str:
    """Mail a confirmation link to the new address: "sent", "wait" (one went out too recently) or "taken"
    (the new address is someone's on the list: refused before any mail, as the change would be)."""
    from digest.config import normalise_address

    try:
        new = normalise_address(new_email)
    except ValueError as exc:
        raise ConfigError(f"{new_email!r} {exc}", "give one address such as ana@example.com") from exc
    book = roster(settings, store)
    interval = timedelta(hours=settings.subscribe.confirm_interval_hours)
    record = book.get(email, events=False)
    if record is not None and book.address_taken(new):
        return "taken"
    if record is None or not book.request_change(email, new, now_at, interval):
        return "wait"
    link = _link(settings, "change", f"{record.email}\n{new}", now_at, "change")
    notice = templater.render_notice(settings, "change", record.language, link, old=record.email)
    _send_notice(settings, new, notice, now_at, "change")
    return "sent"


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
        by_address = next((a for a in map(_stored_form, returned.addresses) if book.known(a)), "")
        owner = by_address if returned.kind == "unsubscribe" else book.tag_owner(returned.tags) or by_address
        if not owner:
            counts["unknown"] += 1
            findings.append(BounceFinding(returned.kind, "", f"no subscriber found: {returned.reason}"))
            return
        former = (
            book.former_address(map(_stored_form, returned.addresses), owner) if returned.kind != "unsubscribe" else ""
        )
        if former:  # mailed before the change of address, bounced by the old mailbox: the new one is fine
            findings.append(
                BounceFinding("ignored", former, f"for {former}, since moved to {owner}: {returned.reason}")
            )
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


def _stored_form(address: str) -> str:
    """An address from a mail (a mailto unsubscribe's From, a bounce's recipient) as the store keeps it: an
    international domain in its ASCII form; as it came when it is no valid address."""
    from digest.config import normalise_address

    try:
        return normalise_address(address)
    except ValueError:
        return address


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
    confirmations: int = 0  # confirmation mails an import still owed, sent now


def readers_tick(
    settings: Settings, now_at: datetime, store: sender.Store | None = None, *, clock: Clock | None = None
) -> ReadersTick:
    """What the service does between weekly runs: read the bounce mailbox (when one is configured), send
    again the welcome emails the transport deferred, forget addresses that never confirmed, and send the
    confirmation mails an import still owes (one stopped before mailing, or deferred by the server). The
    scheduler calls this on its tick."""
    own = store is None
    store = store or open_store(settings)
    try:
        report = read_bounces(settings, now_at, store) if bounces_configured(settings) else None
        return readers_housekeeping(settings, now_at, store, clock=clock)._replace(bounces=report)
    finally:
        if own:
            store.close()


def readers_housekeeping(
    settings: Settings, now_at: datetime, store: sender.Store | None = None, *, clock: Clock | None = None
) -> ReadersTick:
    """The readers' tick without the bounce mailbox: deferred welcomes, unconfirmed addresses forgotten,
    confirmations owed. `digest run` (the weekly job of a cron) does it too."""
    own = store is None
    store = store or open_store(settings)
    try:
        welcomes = retry_welcomes(settings, now_at, store, clock=clock or (lambda: now_at))
        expired = sender.Roster(store).expire_unconfirmed(now_at, settings.subscribe.unconfirmed_days)
        confirmations = send_confirmations(settings, now_at, store, clock=clock or (lambda: now_at))
    finally:
        if own:
            store.close()
    return ReadersTick(None, expired, welcomes, confirmations)


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
            report = send_welcome(settings, row.recipient, now_at, clock=clock, store=store, owed=issue_id)
            if report is None:  # left, welcomed again, or welcomes turned off since: closed, not retried forever
                ledger.skip(issue_id, [row.recipient], "no longer owed (left, or confirmed again since)", now_at)
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
    confirmation mail (not in a dry run). What that mail needs (the secret, the templates, the transport)
    is checked before the store changes; confirmations an earlier import still owes go out too."""
    fmt, read, invalid = sender.read_csv(path, sender.parse_mapping(mapping) if mapping else None)
    repeated: list[Problem] = []

    def noting(rows: Iterable[ImportRow]) -> Iterator[ImportRow]:
        """The rows, each address after its first line noted (the roster keeps the first line's)."""
        first: dict[str, int] = {}
        for row in rows:
            key = text.address_key(row.email)
            if key in first:
                said = f"{row.email} repeats line {first[key]}: that line is kept"
                repeated.append(Problem(str(path), said, row.line))
            else:
                first[key] = row.line
            yield row

    rows = noting(read)
    own = store is None
    store = store or open_store(settings)
    try:
        book = sender.Roster(store)
        checked: list[bool] = []

        def ready() -> None:
            if not checked:
                confirmations_ready(settings, now_at, connect=not dry_run)
                checked.append(True)

        days = settings.subscribe.unconfirmed_days
        if not dry_run and (book.owes_confirmations(now_at, days) or _open_confirmations(settings, store, now_at)):
            ready()
        added, updated, unchanged, to_confirm = book.apply_import(
            rows, now_at, source=f"{path.name} ({fmt} export)", dry_run=dry_run, before_mail=ready
        )
        mailed = 0 if dry_run else send_confirmations(settings, now_at, store, clock=clock)
    finally:
        if own:
            store.close()
    unchanged -= len(repeated)  # the roster counts a repeated line as unchanged: here it is counted apart
    return ImportReport(
        str(path), fmt, added, updated, unchanged, len(to_confirm), tuple(invalid), dry_run, mailed, tuple(repeated)
    )


CONFIRM_PREFIX = "confirm-"


def confirmations_ready(settings: Settings, now_at: datetime, *, connect: bool = True) -> None:
    """Everything a confirmation mail needs, checked without sending one: the secret its link is signed
    with, the templates, the From address and DKIM key (one message built), and (`connect`) the transport."""
    _ConfirmMails(settings, now_at, CONFIRM_PREFIX).build(Subscriber("check@example.invalid"))
    if connect:
        transport = transport_factory(settings)()
        transport.open()
        transport.close()


class _ConfirmMails:
    """The confirmation mails of one ledger issue, built per recipient (each link is signed for its address)."""

    def __init__(self, settings: Settings, now_at: datetime, issue_id: str) -> None:
        self.settings = settings
        self.now_at = now_at
        self.issue_id = issue_id

    def build(self, subscriber: Subscriber) -> OutgoingMessage:
        settings, email = self.settings, subscriber.key
        link = _link(settings, "confirm", email, self.now_at, "confirm")
        notice = templater.render_notice(settings, "confirm", subscriber.language, link)
        message = sender.build_notice(
            settings, email, notice.subject, notice.text, notice.html, self.now_at, kind="confirm", name=subscriber.name
        )
        return replace(message, issue_id=self.issue_id)


def _open_confirmations(settings: Settings, store: sender.Store, now_at: datetime) -> list[str]:
    since_at = now_at - timedelta(days=max(settings.subscribe.unconfirmed_days, settings.schedule.resume_days))
    return [i for i in open_ledger(settings, store).unfinished_issues(since_at) if i.startswith(CONFIRM_PREFIX)]


def send_confirmations(settings: Settings, now_at: datetime, store: sender.Store, *, clock: Clock) -> int:
    """Send the confirmation mails imported addresses are owed, through the ledger: those never planned
    (an import stopped between storing its people and mailing them) are planned first, then every planned
    one not sent yet goes out, once, when its retry time has come. Someone who confirmed, left or was
    forgotten meanwhile is skipped. Returns how many went out."""
    days = settings.subscribe.unconfirmed_days
    ledger = open_ledger(settings, store)
    book = sender.Roster(store)
    book.plan_confirmations(CONFIRM_PREFIX + now_at.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ"), now_at, days)
    sent = 0
    for issue_id in _open_confirmations(settings, store, now_at):
        if not ledger.due(issue_id, now_at):
            continue
        rows = [r.recipient for r in ledger.deliveries(issue_id)]
        waiting = book.awaiting_confirmation(rows, now_at, days)
        keys = {sub.key for sub in waiting}
        gone = {r: "no longer waiting to confirm" for r in rows if r not in keys}
        report = sender.deliver(
            _ConfirmMails(settings, now_at, issue_id),
            waiting,
            ledger,
            transport_factory(settings),
            settings.delivery,
            clock,
            issue_id=issue_id,
            skipped=gone,
        )
        sent += report.sent
    return sent


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
    from digest.config import normalise_address, subscriber_language
    from digest.models import Status

    try:
        address = normalise_address(email)
    except ValueError as exc:
        raise ConfigError(f"{email!r} {exc}", "give one address such as ana@example.com") from exc
    language = subscriber_language(language)
    # checked before anything is stored: the address would wait for a confirmation it could never make
    if confirm and not settings.secret:
        raise ConfigError(
            "--confirm mails a confirmation link signed with DIGEST_SECRET, which is not set; nothing was stored",
            "set the DIGEST_SECRET environment variable to a long random string, or add the reader without --confirm",
        )
    if confirm and not settings.email.public_url:
        raise ConfigError(
            "--confirm mails a link to the confirmation page of `digest serve`, and email.public_url (where it "
            "answers) is not set; nothing was stored",
            "set [email] public_url and run `digest serve`, or add the reader without --confirm",
            source=str(settings.config_file or settings.site.root),
        )
    sub = Subscriber(address, " ".join(name.split()), tuple(tags), fmt, True, None, language)
    store = open_store(settings)
    try:
        book = sender.Roster(store)
        if confirm:
            asked = book.request(
                sub, now_at, page="digest subscribers add --confirm", ip="", double_opt_in=True,
                interval=timedelta(hours=settings.subscribe.confirm_interval_hours), method="cli",
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
