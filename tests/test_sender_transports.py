"""Transports against real servers: SMTP (aiosmtpd or Mailpit, and a faulty server), Maildir, null."""

from __future__ import annotations

import mailbox
import smtplib
import threading
from pathlib import Path

import pytest

from digest.config import SmtpSettings
from digest.errors import DeliveryError
from digest.sender.outcome import classify
from digest.sender.transports import MaildirTransport, NullTransport, SmtpTransport, send_test_copy
from digest.sender.transports.smtp import _stuffed, envelope_sender, quoteaddr
from tests.support_smtp import AiosmtpdStore, Store, aiosmtpd_store, copies, fault_server, make_message, smtp_store

__all__ = ["aiosmtpd_store", "fault_server", "smtp_store"]  # fixtures


def plain(store: Store | AiosmtpdStore, **changes: object) -> SmtpSettings:
    values: dict[str, object] = {"host": store.host, "port": store.port, "mode": "plain", "timeout": 5.0, **changes}
    return SmtpSettings(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "address",
    [
        "reader@example.com",
        "First.Last+news@sub-domain.example.org",
        "a..b@c.d",
        "o'brien@example.ie",
        "x=y/z{w}|~#!%?^`&*$@example.com",
        "Reader <reader@example.com>",
        '"two words"@example.com',
        "  padded@example.com ",
        "<>",
        "",
        "사용자@example.kr",
        "user@[192.0.2.1]",
        "user@example.com (comment)",
    ],
)
def test_envelope_addresses_are_written_as_smtplib_writes_them(address: str) -> None:
    assert quoteaddr(address) == smtplib.quoteaddr(address)


@pytest.mark.parametrize(
    ("data", "wire"),
    [
        (b"plain\r\n", b"plain\r\n"),
        (b"no line end", b"no line end\r\n"),
        (b".first\r\nmiddle.dot\r\n.\r\n..two\r\n", b"..first\r\nmiddle.dot\r\n..\r\n...two\r\n"),
        (b"a\n.b", b"a\n..b\r\n"),
        (b".", b"..\r\n"),
        (b"", b"\r\n"),
    ],
)
def test_dot_stuffing_doubles_every_leading_dot(data: bytes, wire: bytes) -> None:
    assert _stuffed(data) == wire


@pytest.mark.parametrize(
    ("code", "status"),
    [(250, "sent"), (421, "deferred"), (450, "deferred"), (451, "deferred"), (452, "deferred"), (454, "deferred"),
     (471, "deferred"), (0, "deferred"), (550, "failed"), (552, "failed"), (554, "failed")],
)  # fmt: skip
def test_reply_codes_are_classified(code: int, status: str) -> None:
    result = classify(code, b"some\r\n reply")
    assert result.status == status
    assert result.reply == (f"{code} some reply" if code else "some reply")


@pytest.mark.parametrize(
    ("code", "reply", "status", "halts"),
    [
        (550, "5.7.26 This mail has been blocked because the sender is unauthenticated.", "failed", "Gmail"),
        (550, "5.7.26 Unauthenticated email from example.com is not accepted due to domain's DMARC policy",
         "failed", "Gmail"),
        (550, "5.7.515 Access denied, sending domain does not meet the required authentication level.", "failed",
         "Outlook.com"),
        (554, "Message rejected: 5.7.515 authentication", "failed", "Outlook.com"),
        (421, "4.7.26 Unauthenticated email from example.com: rate limited", "deferred", ""),
        (451, "4.7.515 try again", "deferred", ""),
        (550, "5.7.260 something else", "failed", ""),
        (550, "5.1.1 no such user 15.7.26", "failed", ""),
        (550, "5.7.1 rejected by policy", "failed", ""),
    ],
)  # fmt: skip
def test_unauthenticated_refusals_halt_the_run(code: int, reply: str, status: str, halts: str) -> None:
    result = classify(code, reply)
    assert result.status == status
    assert result.halt.startswith(halts) if halts else result.halt == ""
    if halts:
        assert reply[:40] in result.halt


def test_smtp_sends_many_messages_that_arrive_intact(smtp_store: Store) -> None:
    people = ["kim@example.com", "Lee@Example.com", "park@example.com"]
    with SmtpTransport(plain(smtp_store), local_hostname="localhost") as transport:
        results = [transport.send(make_message("2024-W10", p, size=5000)) for p in people]
    assert [r.status for r in results] == ["sent"] * 3
    assert all(r.reply.startswith("250") for r in results)
    assert copies(smtp_store) == {p.lower(): 1 for p in people}
    received = {m.recipients[0].lower(): m for m in smtp_store.messages()}
    msg = received["kim@example.com"].parse()
    assert msg["Message-ID"] == "<2024-W10.kim.example.com@digest.test>"
    body = msg.get_content()
    assert "이번 주 소식" in body and "\n.a line starting with a dot" in body  # dot-stuffing undone by the server
    assert received["kim@example.com"].mail_from == "digest@example.com"


def test_one_connection_serves_many_messages(aiosmtpd_store: AiosmtpdStore) -> None:
    sessions = []
    transport = SmtpTransport(plain(aiosmtpd_store), local_hostname="localhost")
    transport.open()
    for i in range(5):
        transport.send(make_message("w", f"p{i}@example.com"))
        sessions.append(id(transport._smtp))
    transport.close()
    assert len(set(sessions)) == 1
    assert len(aiosmtpd_store.messages()) == 5


@pytest.mark.parametrize(
    ("recipient", "status", "code", "reply_part"),
    [
        ("reject-me@example.com", "failed", 550, "mailbox unavailable"),
        ("busy@example.com", "deferred", 451, "try again later"),
        ("closing@example.com", "deferred", 421, "closing connection"),
        ("drop@example.com", "deferred", 0, "connection error"),
    ],
)
@pytest.mark.parametrize("ahead", [False, True], ids=["one-by-one", "next-envelope-ahead"])
def test_faults_are_classified_and_the_next_message_still_goes(
    fault_server: AiosmtpdStore, recipient: str, status: str, code: int, reply_part: str, ahead: bool
) -> None:
    transport = SmtpTransport(plain(fault_server), local_hostname="localhost")
    fine = make_message("w", "fine@example.com")
    first = transport.send(make_message("w", recipient), then=fine if ahead else None)
    after = transport.send(fine)
    again = transport.send(make_message("w", recipient))  # faults happen on the first try only
    transport.close()
    assert (first.status, first.code) == (status, code) and reply_part in first.reply
    assert after.status == "sent"
    assert again.status == ("failed" if status == "failed" else "sent")
    assert copies(fault_server)["fine@example.com"] == 1


def test_the_next_envelope_goes_with_the_final_dot(fault_server: AiosmtpdStore) -> None:
    """With PIPELINING, a message's envelope is written with the previous final dot; without, one by one:
    the same verdicts either way, and each message arrives once."""
    messages = [make_message("w", f"p{i}@example.com", size=3000) for i in range(4)]
    messages.insert(2, make_message("w", "reject-me@example.com"))
    transport = SmtpTransport(plain(fault_server), local_hostname="localhost")
    results = [transport.send(m, then=n) for m, n in zip(messages, [*messages[1:], None], strict=True)]
    assert transport._pipelining == fault_server.handler.pipelining
    transport.close()
    assert [r.status for r in results] == ["sent", "sent", "failed", "sent", "sent"]
    assert copies(fault_server) == {m.recipient: 1 for m in messages if "reject" not in m.recipient}


@pytest.mark.parametrize("ending", ["another message", "close"])
def test_an_envelope_sent_ahead_delivers_nothing_unless_its_message_is_sent(
    fault_server: AiosmtpdStore, ending: str
) -> None:
    """The envelope written ahead leaves the server waiting for that body; when the caller then sends
    something else, or closes, that DATA is never ended, so the message it began is not delivered."""
    transport = SmtpTransport(plain(fault_server), local_hostname="localhost")
    started = make_message("w", "started@example.com")
    first = transport.send(make_message("w", "first@example.com"), then=started)
    later = transport.send(make_message("w", "other@example.com")) if ending == "another message" else None
    transport.close()
    assert first.status == "sent" and (later is None or later.status == "sent")
    expected = {"first@example.com": 1} | ({"other@example.com": 1} if later else {})
    assert copies(fault_server) == expected
    again = transport.send(started)  # on a new connection, from its envelope on
    transport.close()
    assert again.status == "sent" and copies(fault_server)["started@example.com"] == 1


def test_a_dead_server_defers_and_open_reports_it(aiosmtpd_store: AiosmtpdStore) -> None:
    settings = plain(aiosmtpd_store)
    aiosmtpd_store.stop()
    transport = SmtpTransport(settings, local_hostname="localhost")
    assert transport.send(make_message("w", "a@example.com")).status == "deferred"
    with pytest.raises(DeliveryError, match="cannot connect"):
        transport.open()


@pytest.mark.parametrize(
    ("changes", "match"),
    [({"mode": "starttls"}, "STARTTLS"), ({"username": "digest", "password": "hunter2-secret"}, "no login")],
)
def test_tls_and_login_problems_stop_before_sending(
    aiosmtpd_store: AiosmtpdStore, changes: dict[str, str], match: str
) -> None:
    transport = SmtpTransport(plain(aiosmtpd_store, **changes), local_hostname="localhost")
    with pytest.raises(DeliveryError, match=match) as caught:
        transport.open()
    assert "hunter2" not in str(caught.value) and "hunter2" not in repr(transport.settings)
    assert aiosmtpd_store.messages() == []


def test_envelope_sender_comes_from_the_from_header() -> None:
    data = b"Subject: x\r\nFrom: =?utf-8?b?7ZWc6riA?= <news@example.org>\r\n\r\nFrom: body@example.com\r\n"
    assert envelope_sender(data) == "news@example.org"
    assert SmtpTransport(SmtpSettings(), envelope_from="bounce@example.org").envelope_from == "bounce@example.org"


def test_maildir_writes_one_parseable_file_per_message(tmp_path: Path) -> None:
    box = tmp_path / "out" / "outbox"
    transport = MaildirTransport(box)
    results = [transport.send(make_message("2024-W10", f"p{i}@example.com")) for i in range(3)]
    transport.close()
    assert [r.status for r in results] == ["sent"] * 3
    # made here: private, and a .gitignore keeps every subscriber's address out of `git add -A`
    assert {d.name for d in box.iterdir()} == {"cur", "new", "tmp", ".gitignore"}
    assert (box / ".gitignore").read_text() == "*\n" and box.stat().st_mode & 0o077 == 0
    messages = list(mailbox.Maildir(box, create=False))
    assert sorted(m["To"] for m in messages) == ["p0@example.com", "p1@example.com", "p2@example.com"]
    raw = next((box / "new").iterdir()).read_bytes()
    assert b"\r\n" not in raw and "이번 주 소식".encode() in raw


def test_null_transport_counts_and_sends_nothing() -> None:
    transport = NullTransport()
    result = transport.send(make_message("w", "a@example.com", size=1000))
    assert (result.status, transport.count) == ("sent", 1) and transport.bytes >= 900


def test_a_test_copy_goes_to_the_given_address(smtp_store: Store) -> None:
    result = send_test_copy(make_message("w", "me@example.com"), SmtpTransport(plain(smtp_store)))
    assert result.ok
    assert copies(smtp_store) == {"me@example.com": 1}


@pytest.mark.parametrize("made", ["empty folder", "nothing"])
def test_maildir_opened_by_several_workers_at_once_never_defers(tmp_path: Path, made: str) -> None:
    box = tmp_path / "outbox"
    if made == "empty folder":
        box.mkdir()  # an [outbox] maildir folder created by hand
    transports = [MaildirTransport(box) for _ in range(8)]
    results: list[str] = []
    barrier = threading.Barrier(len(transports))

    def work(transport: MaildirTransport, n: int) -> None:
        barrier.wait()
        transport.open()
        results.append(transport.send(make_message("w", f"p{n}@example.com")).status)
        transport.close()

    threads = [threading.Thread(target=work, args=(t, n)) for n, t in enumerate(transports)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["sent"] * len(transports)
    assert len(list(mailbox.Maildir(box, create=False))) == len(transports)
    # a folder the user made is theirs: nothing is added to it but the Maildir itself
    assert (box / ".gitignore").exists() is (made == "nothing")
