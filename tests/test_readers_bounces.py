"""Bounces, complaints and mailto unsubscribes: real samples (in the shapes Postfix, Exim, Gmail and Outlook
produce) through a Maildir and through Dovecot over IMAPS; the statuses change as the policy says, every
change is recorded with its reason, and the next send skips the address."""

from __future__ import annotations

import imaplib
import ssl
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from digest import pipeline
from digest.config import BouncesSettings, Settings
from digest.errors import DigestError
from digest.models import Status
from digest.sender.bounces import classify, is_hard
from digest.sender.roster import Roster
from digest.sender.store import Store
from digest.sender.suppressions import Suppressions
from tests.support_readers import RETURN_PATH, Dovecot, dovecot, drop_in_maildir, sample
from tests.support_service import Post, maildir_messages, settings_for, text_of, write_site
from tests.support_smtp import AiosmtpdStore, fault_server, smtp_settings

__all__ = ["dovecot", "fault_server"]

NOW_AT = datetime(2026, 11, 23, 9, 0, tzinfo=ZoneInfo("Asia/Seoul"))
READER = "reader@example.net"
TAG = "abcdefghijklm"


@pytest.mark.parametrize(
    ("name", "kind", "reason"),
    [
        ("postfix_user_unknown", "hard", "5.1.1"),
        ("gmail_does_not_exist", "hard", "5.1.1"),
        ("exim_mailbox_full", "soft", "5.2.2"),
        ("outlook_policy_block", "soft", "5.7.1"),
        ("outlook_arf_complaint", "complaint", "abuse"),
        ("mailto_unsubscribe", "unsubscribe", "unsubscribe"),
        ("delayed", "ignored", "delayed"),
        ("vacation", "ignored", "automatic"),
    ],
)
def test_each_sample_is_read_as_what_it_is(name: str, kind: str, reason: str) -> None:
    found = classify(sample(name, READER, TAG), RETURN_PATH, "digest@notes.example.org")
    assert found.kind == kind
    assert reason in found.reason
    if kind in ("hard", "soft", "complaint"):
        assert found.tags[0] == TAG
    if kind in ("hard", "soft", "unsubscribe"):
        assert READER in found.addresses


@pytest.mark.parametrize(
    ("status", "diagnostic", "hard"),
    [
        ("5.1.1", "", True),
        ("5.1.10", "", True),
        ("5.2.1", "mailbox disabled", True),
        ("5.2.2", "mailbox full", False),
        ("5.7.1", "blocked", False),
        ("4.2.2", "", False),
        ("", "smtp; 550 no such user here", True),
        ("", "smtp; 554 rejected for policy reasons", False),
    ],
)
def test_hard_or_soft(status: str, diagnostic: str, hard: bool) -> None:
    assert is_hard(status, diagnostic) is hard


def _site(tmp_path: Path, **bounces: object) -> Settings:
    posts = [
        Post("spring", "봄 소식 · spring news", NOW_AT - timedelta(days=3)),
        Post("summer", "여름 소식 · summer news", NOW_AT + timedelta(days=3)),
    ]
    settings = settings_for(write_site(tmp_path, posts, [READER, "stays@example.org"]))
    email = replace(settings.email, unsubscribe_mailto="digest@notes.example.org")
    return replace(settings, email=email, bounces=BouncesSettings(return_path=RETURN_PATH, **bounces))  # type: ignore[arg-type]


def _tag_of(settings: Settings, email: str) -> str:
    record = Roster(settings.db_url).get(email)
    assert record is not None
    return record.tag


def test_the_weekly_message_carries_the_verp_return_path(tmp_path: Path) -> None:
    settings = _site(tmp_path)
    pipeline.run_cycle(settings, NOW_AT, pipeline.select_week(settings, NOW_AT, "last"), clock=lambda: NOW_AT)
    paths = {m["To"]: m["Return-Path"] for m in maildir_messages(settings.outbox)}
    assert paths[READER] == f"<bounces+{_tag_of(settings, READER)}@notes.example.org>"
    text = text_of(maildir_messages(settings.outbox)[0])
    assert "/preferences?token=" in text and "/unsubscribe?token=" in text


@pytest.mark.parametrize(
    ("samples", "status"),
    [
        (["postfix_user_unknown"], Status.BOUNCED),
        (["gmail_does_not_exist"], Status.BOUNCED),
        (["exim_mailbox_full"] * 4, Status.ACTIVE),  # four soft bounces: not yet
        (["exim_mailbox_full", "outlook_policy_block"] * 2 + ["exim_mailbox_full"], Status.BOUNCED),  # five
        (["outlook_arf_complaint"], Status.COMPLAINED),
        (["mailto_unsubscribe"], Status.UNSUBSCRIBED),
        (["delayed", "vacation"], Status.ACTIVE),
    ],
)
def test_the_maildir_changes_statuses_and_the_next_send_skips(
    tmp_path: Path, samples: list[str], status: Status
) -> None:
    settings = _site(tmp_path, maildir=tmp_path / "bounces")
    week = pipeline.select_week(settings, NOW_AT, "last")
    pipeline.run_cycle(settings, NOW_AT, week, clock=lambda: NOW_AT)
    tag = _tag_of(settings, READER)
    # each soft bounce a day apart, as they come from weekly sends; a repeated message differs by a header
    messages = [b"X-Seq: %d\r\n" % n + sample(name, READER, tag) for n, name in enumerate(samples)]
    drop_in_maildir(tmp_path / "bounces", messages)
    report = pipeline.read_bounces(settings, NOW_AT)
    assert report.messages == len(samples)
    record = Roster(settings.db_url).get(READER)
    assert record is not None and record.status == status
    if status != Status.ACTIVE:
        assert record.events[-1].status == status.value and record.events[-1].reason
        assert READER in Suppressions(settings.db_url).all()
    # read again: everything is marked read, nothing counts twice
    assert pipeline.read_bounces(settings, NOW_AT).messages == 0
    later = NOW_AT + timedelta(days=7)
    result = pipeline.run_cycle(settings, later, pipeline.select_week(settings, later, "last"), clock=lambda: later)
    got = [m["To"] for m in maildir_messages(settings.outbox)]
    assert got.count(READER) == (2 if status == Status.ACTIVE else 1)
    assert result.delivery is not None


def test_soft_bounces_older_than_the_window_do_not_count(tmp_path: Path) -> None:
    settings = _site(tmp_path)
    pipeline.sync_subscribers(settings, NOW_AT)
    book = Roster(settings.db_url)
    for day in range(5):  # one every 10 days: never 5 within 30
        book.record_bounce(
            READER, "soft", "552 5.2.2 full", NOW_AT + timedelta(days=10 * day), soft_limit=5, soft_days=30
        )
    record = book.get(READER)
    assert record is not None and record.status == Status.ACTIVE and record.soft_bounces == 5


def test_a_message_applied_before_a_crash_is_not_counted_again(tmp_path: Path) -> None:
    settings = _site(tmp_path, maildir=tmp_path / "bounces")
    pipeline.sync_subscribers(settings, NOW_AT)
    raw = sample("exim_mailbox_full", READER, _tag_of(settings, READER))
    drop_in_maildir(tmp_path / "bounces", [raw])
    Roster(settings.db_url).first_time(__import__("hashlib").sha256(raw.replace(b"\r\n", b"\n")).hexdigest(), NOW_AT)
    pipeline.read_bounces(settings, NOW_AT)
    record = Roster(settings.db_url).get(READER)
    assert record is not None
    assert record.soft_bounces <= 1


def test_an_smtp_refusal_at_send_time_counts_as_a_hard_bounce(tmp_path: Path, fault_server: AiosmtpdStore) -> None:
    server = fault_server
    posts = [Post("spring", "spring news", NOW_AT - timedelta(days=3))]
    settings = settings_for(write_site(tmp_path, posts, ["reject-me@example.net", "stays@example.org"]))
    settings = smtp_settings(settings, server.host, server.port)
    week = pipeline.select_week(settings, NOW_AT, "last")
    pipeline.run_cycle(settings, NOW_AT, week, clock=lambda: NOW_AT)
    record = Roster(settings.db_url).get("reject-me@example.net")
    assert record is not None and record.status == Status.BOUNCED
    assert "refused at send" in record.events[-1].reason


def test_imap_over_tls_through_dovecot(tmp_path: Path, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(dovecot.cert))  # verification stays on: we trust the test CA
    settings = _site(tmp_path, imap_host=dovecot.host, imap_port=dovecot.port, imap_user=dovecot.user, imap_verify=True)
    settings = replace(settings, bounces=replace(settings.bounces, imap_password=dovecot.password))
    pipeline.sync_subscribers(settings, NOW_AT)
    tag = _tag_of(settings, READER)
    other_tag = _tag_of(settings, "stays@example.org")
    context = ssl.create_default_context(cafile=str(dovecot.cert))
    with imaplib.IMAP4_SSL(dovecot.host, dovecot.port, ssl_context=context, timeout=10) as imap:
        imap.login(dovecot.user, dovecot.password)
        for raw in (
            sample("gmail_does_not_exist", READER, tag),
            sample("outlook_arf_complaint", "stays@example.org", other_tag),
            sample("vacation", READER, tag),
        ):
            imap.append("INBOX", "", imaplib.Time2Internaldate(datetime.now(UTC)), raw)
    report = pipeline.read_bounces(settings, NOW_AT)
    assert report.messages == 3
    book = Roster(settings.db_url)
    assert book.get(READER).status == Status.BOUNCED  # type: ignore[union-attr]
    assert book.get("stays@example.org").status == Status.COMPLAINED  # type: ignore[union-attr]
    assert pipeline.read_bounces(settings, NOW_AT).messages == 0  # marked \\Seen
    later = NOW_AT + timedelta(days=7)
    result = pipeline.run_cycle(settings, later, pipeline.select_week(settings, later, "last"), clock=lambda: later)
    assert result.delivery is not None and result.delivery.sent == 0


def test_a_wrong_imap_password_is_one_line(tmp_path: Path, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(dovecot.cert))
    settings = _site(tmp_path, imap_host=dovecot.host, imap_port=dovecot.port, imap_user=dovecot.user)
    with pytest.raises(DigestError, match="refused the login") as caught:
        pipeline.read_bounces(settings, NOW_AT)
    assert dovecot.password not in str(caught.value)


def test_an_untrusted_imap_certificate_is_refused(tmp_path: Path, dovecot: Dovecot) -> None:
    settings = _site(tmp_path, imap_host=dovecot.host, imap_port=dovecot.port, imap_user=dovecot.user)
    with pytest.raises(DigestError, match="cannot be verified"):
        pipeline.read_bounces(settings, NOW_AT)


def test_store_is_shared(tmp_path: Path) -> None:
    settings = _site(tmp_path)
    store = Store(settings.db_url)
    assert pipeline.sync_subscribers(settings, NOW_AT, store).added == 2
    assert pipeline.sync_subscribers(settings, NOW_AT, store).added == 0


def test_a_mailto_unsubscribe_from_an_international_domain_finds_its_reader(tmp_path: Path) -> None:
    settings = _site(tmp_path, maildir=tmp_path / "bounces")
    pipeline.add_subscriber(settings, "jimin@한국.example", NOW_AT, clock=lambda: NOW_AT)  # as the form stores it
    drop_in_maildir(tmp_path / "bounces", [sample("mailto_unsubscribe", "jimin@한국.example", TAG)])
    report = pipeline.read_bounces(settings, NOW_AT)
    assert [(f.kind, f.email) for f in report.findings] == [("unsubscribe", "jimin@xn--3e0b707e.example")]
    record = Roster(settings.db_url).get("jimin@xn--3e0b707e.example")
    assert record is not None and record.status == Status.UNSUBSCRIBED


def test_a_late_bounce_for_an_old_address_leaves_the_new_one_alone(tmp_path: Path) -> None:
    """A reader changes address (the old mailbox is closing); a bounce of an issue mailed before the change
    comes back later, with the reader's VERP tag and the old address as its recipient: the new address
    stays active. A bounce of the new address itself still counts."""
    settings = _site(tmp_path, maildir=tmp_path / "bounces")
    pipeline.run_cycle(settings, NOW_AT, pipeline.select_week(settings, NOW_AT, "last"), clock=lambda: NOW_AT)
    tag = _tag_of(settings, READER)
    new = "reader.moved@example.org"
    assert pipeline.request_address_change(settings, READER, new, NOW_AT) == "sent"
    assert pipeline.change_address(settings, f"{READER}\n{new}", NOW_AT) == "changed"
    drop_in_maildir(tmp_path / "bounces", [sample("postfix_user_unknown", READER, tag)])
    report = pipeline.read_bounces(settings, NOW_AT + timedelta(hours=1))
    assert [(f.kind, f.email) for f in report.findings] == [("ignored", READER)]
    record = Roster(settings.db_url).get(new)
    assert record is not None and record.status == Status.ACTIVE and record.hard_bounces == 0
    drop_in_maildir(tmp_path / "bounces", [b"X-Seq: 2\r\n" + sample("postfix_user_unknown", new, tag)])
    pipeline.read_bounces(settings, NOW_AT + timedelta(hours=2))
    record = Roster(settings.db_url).get(new)
    assert record is not None and record.status == Status.BOUNCED
