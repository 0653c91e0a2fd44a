"""What runs report and what the stores keep: the ledger's rows and an issue's status, the reports of a
send, a cycle, an import and a bounce pass, `digest check`'s findings, the service's cycles and reviews, and
the subscriber store's records. Frozen dataclasses, no I/O.

Apart from digest.models, which every stage needs at every start: a preview or a publish makes none of
these, and making the classes (Python builds each dataclass's methods from source) cost 20 ms of every
start-up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from digest.models import Entry, Problem, State, Status, Subscriber, Week


@dataclass(frozen=True)
class Delivery:
    """One row of the ledger."""

    issue_id: str
    recipient: str
    state: State
    attempts: int = 0
    message_id: str = ""
    reply: str = ""  # the server's reply or the reason for a skip
    updated_at: datetime | None = None
    next_attempt_at: datetime | None = None


@dataclass(frozen=True)
class IssueStatus:
    """The ledger of one issue: counts per state, the rows that went wrong, the reasons for skips."""

    issue_id: str
    counts: Mapping[str, int]  # every state, 0 when absent
    failures: tuple[Delivery, ...] = ()  # failed and deferred rows with the server's reply
    skipped: Mapping[str, int] = field(default_factory=dict)  # reason -> count

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def unfinished(self) -> int:
        """Rows that still need work: pending, claimed, deferred or failed."""
        return sum(self.counts.get(s, 0) for s in (State.PENDING, State.SENDING, State.DEFERRED, State.FAILED))


@dataclass(frozen=True)
class DeliveryReport:
    """What one delivery run did to one issue, and where the issue stands after it."""

    issue_id: str
    sent: int = 0  # in this run (built, for a dry run)
    deferred: int = 0
    failed: int = 0
    skipped: int = 0  # in the ledger for this issue
    elapsed: float = 0.0  # seconds
    stopped: str = ""  # why the run ended early; "" when it ran out of work
    dry_run: bool = False
    outstanding: int = 0  # rows of this issue not sent yet (pending, sending, deferred, failed)
    failures: tuple[Delivery, ...] = field(default=(), repr=False)
    status: IssueStatus | None = field(default=None, repr=False)

    @property
    def rate(self) -> float:
        """Messages per second in this run."""
        return self.sent / self.elapsed if self.elapsed > 0 else 0.0

    def _count(self, state: State) -> int:
        return self.status.counts.get(state, 0) if self.status else 0

    @property
    def earlier(self) -> int:
        """Subscribers who had the issue before this run."""
        return max(0, self._count(State.SENT) - self.sent)

    @property
    def earlier_failed(self) -> int:
        """Failures recorded by earlier runs (shown in the summary; they do not make this run fail)."""
        return max(0, self._count(State.FAILED) - self.failed)

    @property
    def waiting(self) -> int:
        """Rows that still need a send: deferred (retried after their back-off), or pending after a stop."""
        return self._count(State.DEFERRED) + (self._count(State.PENDING) if self.stopped else 0)

    @property
    def exit_code(self) -> int:
        """3 when this run leaves work that needs a person: rows still deferred (or pending after a stop),
        or failures recorded by this run; 0 otherwise, also when another sender is finishing the issue."""
        if self.dry_run:
            return 0
        return 3 if (self.failed or self.waiting) else 0


@dataclass(frozen=True)
class IssueRun:
    """One language's issue in a cycle: the entries it carried and what delivery did with it."""

    issue_id: str
    language: str  # the language key; "" = the site's language
    lang: str  # the language itself, for people ("ko", or the site's "en")
    entries: tuple[Entry, ...] = ()  # dated in the week
    late: tuple[Entry, ...] = ()  # late arrivals
    delivery: DeliveryReport | None = None  # None: nothing to send (empty, email.empty_week = "skip")
    readers: int = 0  # readers of this language the issue would go to (active, not paused)


@dataclass(frozen=True)
class CycleReport:
    """One weekly cycle (or one `digest send`): the issue of each language that has subscribers, what was
    published, what delivery did."""

    week: Week
    issues: tuple[IssueRun, ...] = ()  # the site's language first
    published: int = 0  # issues written to the feeds and the archive (0: not published in this cycle)
    transport: str = ""  # where mail went, e.g. "SMTP mail.example.org:587" or "Maildir /path"
    duration: float = 0.0  # seconds, the whole cycle
    dry_run: bool = False
    problems: tuple[Problem, ...] = ()  # files skipped while collecting, each shown as one warning line

    @property
    def entries(self) -> int:
        """Entries mailed in this cycle's issues, every language, late arrivals included."""
        return sum(len(run.entries) + len(run.late) for run in self.issues)

    @property
    def delivery(self) -> DeliveryReport | None:
        """The delivery of the one issue sent, or the sums over the languages' issues; None: nothing sent."""
        done = [run.delivery for run in self.issues if run.delivery is not None]
        if len(done) <= 1:
            return done[0] if done else None
        return DeliveryReport(
            issue_id=self.week.label,
            sent=sum(d.sent for d in done),
            deferred=sum(d.deferred for d in done),
            failed=sum(d.failed for d in done),
            skipped=sum(d.skipped for d in done),
            elapsed=sum(d.elapsed for d in done),
            stopped=next((d.stopped for d in done if d.stopped), ""),
            dry_run=self.dry_run,
            outstanding=sum(d.outstanding for d in done),
            failures=tuple(f for d in done for f in d.failures),
        )

    @property
    def empty(self) -> bool:
        return self.delivery is None

    @property
    def exit_code(self) -> int:
        return max((run.delivery.exit_code for run in self.issues if run.delivery), default=0)


@dataclass(frozen=True)
class Finding:
    """One check of `digest check`: what was checked, how it went, and what to do when it is not ok."""

    check: str  # "subscribers", "database", …
    level: str  # "ok" | "warn" | "fail"
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class Cycle:
    """The service's record of one weekly cycle (a week and the scheduled time it belongs to)."""

    week: str  # the week's label
    fire_at: datetime  # the scheduled time that made it due
    state: str  # "open" (work left or retrying), "done", "missed" (beyond the grace time, never started)
    attempts: int = 0
    next_try_at: datetime | None = None
    note: str = ""  # the last error, or what it waits for


@dataclass(frozen=True)
class SubscriberEvent:
    """One change of a subscriber, with its reason: `digest subscribers show` lists them."""

    at: datetime
    kind: str  # "subscribed", "confirmed", "status", "bounce", "preferences", …
    status: str  # the status after the event ("" when it did not change)
    reason: str


@dataclass(frozen=True)
class SubscriberRecord:
    """A subscriber as the store keeps it (for show, list and export)."""

    email: str
    name: str
    language: str
    tags: tuple[str, ...]
    format: str
    status: Status
    origin: str  # file | form | import | cli
    in_file: bool
    consent_at: datetime | None
    consent_method: str  # file | form | import | cli
    consent_source: str  # the form's page, the imported file and its format, the subscribers file
    consent_ip: str
    created_at: datetime
    updated_at: datetime
    paused_until: datetime | None = None
    soft_bounces: int = 0  # in the policy's window
    hard_bounces: int = 0
    complaints: int = 0
    last_bounce_at: datetime | None = None
    events: tuple[SubscriberEvent, ...] = ()
    tag: str = field(default="", repr=False)  # the VERP bounce tag

    def subscriber(self) -> Subscriber:
        return Subscriber(self.email, self.name, self.tags, self.format, True, None, self.language, self.tag)


@dataclass(frozen=True)
class ImportRow:
    """One subscriber read from an imported CSV file."""

    line: int
    email: str
    name: str = ""
    tags: tuple[str, ...] = ()
    consented: bool = False
    consent_at: datetime | None = None
    status: str = ""  # what the file says: subscribed, unsubscribed, cleaned, …
    language: str = ""
    format: str = ""  # html | text ("" = html)
    # this tool's own export carries the consent record as it was; other exports leave these empty (the
    # consent is then the import itself)
    consent_method: str = ""
    consent_source: str = ""
    origin: str = ""  # how they first came (file, form, import, cli), as that export says
    created_at: datetime | None = None
    paused_until: datetime | None = None


@dataclass(frozen=True)
class ImportReport:
    """What `digest subscribers import` did (or would do, with --dry-run)."""

    file: str
    format: str  # digest | mailchimp | substack | buttondown | listmonk | ghost | mapped
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    to_confirm: int = 0  # added without consent in the file: they get the confirmation mail
    invalid: tuple[Problem, ...] = ()
    dry_run: bool = False
    confirmations: int = 0  # confirmation mails sent by this run (an earlier import's owed ones included)
    repeated: tuple[Problem, ...] = ()  # lines whose address an earlier line of the file has: the first is kept


@dataclass(frozen=True)
class BounceFinding:
    """What one message in the bounce mailbox says about one subscriber."""

    kind: str  # hard | soft | complaint | unsubscribe | ignored
    email: str  # the subscriber it was tied to ("" when none)
    reason: str
    status: str = ""  # the status it led to ("" = no change)


@dataclass(frozen=True)
class BounceReport:
    """One reading of the bounce mailbox."""

    source: str  # "imaps://host/INBOX" or the Maildir path
    messages: int = 0
    findings: tuple[BounceFinding, ...] = ()
    unknown: int = 0  # messages tied to no subscriber


@dataclass(frozen=True)
class Review:
    """The owner's answer about one week's issue before the service sends it."""

    week: str
    state: str  # "pending" (the preview went out), "approved", "held"
    requested_at: datetime | None = None
    decided_at: datetime | None = None
    decided_by: str = ""  # "link", "command line", or "default" (the deadline passed)
    note: str = ""  # the editor's note (Markdown), shown above the posts
