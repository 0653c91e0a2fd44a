"""The owner's review before the automatic send (schedule.review)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from html import escape as html_escape
from typing import TYPE_CHECKING

from digest import templater
from digest.config import Settings
from digest.models import PREFERENCES_URL_MARK, RECIPIENT_EMAIL_MARK, UNSUBSCRIBE_URL_MARK, Week
from digest.pipeline.building import build, job_week, with_notes
from digest.pipeline.readers import _link
from digest.pipeline.state import open_store, transport_factory
from digest.records import Cycle, Review

if TYPE_CHECKING:
    from digest import sender
    from digest.sender import SendResult
else:
    from digest.pipeline._shared import sender


# -- the owner's review before the automatic send (schedule.review) --------------------------------------

REVIEW_PATH = "review"


def review_owner(settings: Settings) -> str:
    from email.utils import parseaddr

    return settings.schedule.review_to or parseaddr(settings.email.reply_to or settings.email.sender)[1]


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
    built = build(settings, now_at, week, carried=sender.read_carried(store, settings.site.language))
    result = with_notes(built, settings, sender.Reviews(store).notes())
    issue = result.issue
    link = review_link(settings, week.label, now_at)
    default = settings.schedule.review_default
    others = "".join(
        f"The {language} issue goes out with it (the same answer): {_entries(len(other.all_entries))}; "
        f"digest preview --lang {language} shows it.\n"
        for language, other in sorted(result.issues.items())
        if language and other.all_entries
    )
    head = (
        f"The issue of {week.label} goes out at {fire_at.isoformat()} "
        + ("unless you hold it" if default == "send" else "only once you approve it")
        + f": {_entries(len(issue.all_entries))}.\n{others}Approve or hold it here: {link}\n"
        "From the command line: digest approve / digest hold (--note adds an editor's note above the posts).\n"
    )
    text_part, html = head + "\nNo entries: with email.empty_week = skip nothing goes out.\n", ""
    if issue.all_entries:
        rendered = templater.render_email(issue, settings)
        # As the readers will see it, but for their own links: the owner's would unsubscribe the owner.
        html, plain = (
            part.replace(UNSUBSCRIBE_URL_MARK, hole)
            .replace(PREFERENCES_URL_MARK, hole)
            .replace(RECIPIENT_EMAIL_MARK, review_owner(settings))
            for part, hole in ((rendered.html, "#each-readers-own-link"), (rendered.text, "(each reader's own link)"))
        )
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


def _entries(count: int) -> str:
    return "1 entry" if count == 1 else f"{count} entries"


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


def review_of(settings: Settings, week_label: str, store: sender.Store | None = None) -> Review | None:
    """The owner's answer so far for a week's issue (None: not asked, or not answered)."""
    own = store is None
    store = store or open_store(settings)
    try:
        return sender.Reviews(store).get(week_label)
    finally:
        if own:
            store.close()


def waiting_hold(settings: Settings, now_at: datetime) -> str:
    """The week a plain `digest approve` releases: the newest one the owner held whose send time passed
    within `schedule.resume_days` (the service sends it once approved); "" when none waits."""
    since = now_at - timedelta(days=settings.schedule.resume_days)
    store = open_store(settings)
    try:
        cycles = sender.Cycles(store)
        found = [cycle for week in sender.Reviews(store).held() if (cycle := cycles.get(week)) is not None]
    finally:
        store.close()
    waiting = [c for c in found if c.state == "done" and c.note.startswith("held") and c.fire_at >= since]
    return max(waiting, key=lambda cycle: cycle.fire_at).week if waiting else ""


def held_by_owner(settings: Settings, week: Week, store: sender.Store | None = None) -> str:
    """Who held `week`'s issue ("" when nobody did, or reviews are off): `digest run` (cron) honours a hold
    as the service does."""
    if not settings.schedule.review or week.custom:
        return ""
    own = store is None
    store = store or open_store(settings)
    try:
        review = sender.Reviews(store).get(week.label)
    finally:
        if own:
            store.close()
    if review is None or review.state != "held" or review.decided_by == "default":
        return ""
    return review.decided_by


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
