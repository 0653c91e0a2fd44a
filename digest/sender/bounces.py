"""What a message in the bounce mailbox says: a delivery status notification (RFC 3464), a complaint
(ARF, RFC 5965), a mail to the List-Unsubscribe address, or nothing we act on (auto-replies, delays).

flufl.bounce finds the failed recipients in DSNs and in the non-standard shapes some MTAs still send
(Exim's plain-text bounces, Microsoft's); the hard/soft decision is ours and rests on the enhanced status
code (RFC 3463): a bad address (5.1.x), a disabled mailbox (5.2.1) or an unroutable domain (5.4.4) is hard;
everything else — a full mailbox (5.2.2), a policy or spam block (5.7.x), a temporary failure (4.x.x) — is
soft, because such addresses usually work again, and unsubscribing them is the top complaint about other
tools. The subscriber is found by the VERP tag in the return path (bounces+TAG@…), which the receiving
side cannot garble the way it rewrites or redacts addresses; the addresses the report names are a fallback.
"""

from __future__ import annotations

import email
import email.header
import email.policy
import email.utils
import re
from dataclasses import dataclass
from email.message import Message

from flufl.bounce import all_failures as _all_failures

from digest.sender.tokens import tags_in

STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
HARD_WORDS = re.compile(
    r"user unknown|unknown user|no such user|does not exist|doesn't exist|mailbox not found|recipient not found|"
    r"invalid recipient|address rejected|mailbox unavailable|no mailbox",
    re.I,
)
UNSUBSCRIBE_WORDS = re.compile(r"unsubscribe|구독\s*해지|수신\s*거부|구독\s*취소", re.I)
RECIPIENT_HEADERS = ("to", "delivered-to", "x-original-to", "envelope-to", "x-envelope-to", "x-failed-recipients")
DAEMONS = re.compile(r"mailer-daemon|postmaster|^<?>?$", re.I)


@dataclass(frozen=True)
class Returned:
    kind: str  # hard | soft | complaint | unsubscribe | ignored
    tags: tuple[str, ...]  # VERP tags found, best first
    addresses: tuple[str, ...]  # addresses the message names (failed recipients, the sender of a mailto)
    reason: str


def is_hard(status: str, diagnostic: str = "") -> bool:
    found = STATUS.search(status) or STATUS.search(diagnostic)
    if found is None:
        return bool(re.match(r"\s*(smtp;\s*)?55[0-3]\b", diagnostic)) and bool(HARD_WORDS.search(diagnostic))
    klass, subject, detail = found.groups()
    if klass != "5":
        return False
    code = f"{subject}.{detail}"
    if subject == "1" or code in ("2.1", "4.4"):
        return True
    return code == "0.0" and bool(HARD_WORDS.search(diagnostic))


def all_failures(msg: Message) -> tuple[frozenset[bytes], frozenset[bytes]]:
    """flufl.bounce's (temporary, permanent) failures; none when one of its detectors fails on the message
    (its Sina detector calls .lower() on a From header of raw UTF-8, which the parser leaves a Header)."""
    try:
        return _all_failures(msg)
    except Exception:  # noqa: BLE001 - a detector's bug is no reason to stop reading the mailbox
        return frozenset(), frozenset()


def _header(msg: Message, name: str) -> str:
    """A header as text: encoded words decoded, and raw UTF-8 (as mail from an internationalised address
    comes) read as UTF-8 rather than turned into replacement characters."""
    value = msg.get(name, "")
    if isinstance(value, str) and "=?" not in value:
        return value
    decoded = email.header.decode_header(value)
    return "".join(
        part.decode(charset if charset and charset != "unknown-8bit" else "utf-8", "replace")
        if isinstance(part, bytes)
        else part
        for part, charset in decoded
    )


def _text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        return payload.decode(part.get_content_charset() or "utf-8", "replace")
    return str(part.get_payload())


def _one_line(text: str, limit: int = 300) -> str:
    return " ".join(text.split())[:limit]


def _addresses(values: set[bytes] | frozenset[bytes]) -> list[str]:
    return [v.decode("ascii", "replace").strip("<>") for v in values if b"@" in v]


def _recipient_tags(msg: Message, raw: bytes, return_path: str) -> tuple[str, ...]:
    if not return_path:
        return ()
    head = "\n".join(f"{k}: {v}" for k, v in msg.items() if k.lower() in RECIPIENT_HEADERS)
    found = tags_in(head, return_path)
    # the returned copy of our message (or its headers) carries the Return-Path it was sent with
    found += [t for t in tags_in(raw.decode("latin-1"), return_path) if t not in found]
    return tuple(found)


def _delivery_blocks(msg: Message) -> list[Message]:
    blocks: list[Message] = []
    for part in msg.walk():
        if part.get_content_type() == "message/delivery-status" and part.is_multipart():
            blocks += [b for b in part.get_payload() if isinstance(b, Message)]
    return blocks


def _dsn(msg: Message, tags: tuple[str, ...]) -> Returned:
    failed: list[tuple[str, str, str]] = []  # (recipient, status, diagnostic)
    delayed = 0
    for block in _delivery_blocks(msg):
        action = str(block.get("action", "")).lower().strip()
        recipient = str(block.get("final-recipient", "") or block.get("original-recipient", ""))
        recipient = recipient.split(";", 1)[-1].strip().strip("<>")
        if action.startswith(("failed", "error")):
            failed.append((recipient, str(block.get("status", "")), _one_line(str(block.get("diagnostic-code", "")))))
        elif action.startswith("delayed"):
            delayed += 1
    temporary, permanent = all_failures(msg)
    addresses = [r for r, _, _ in failed if "@" in r] + _addresses(permanent) + _addresses(temporary)
    unique = tuple(dict.fromkeys(a.lower() for a in addresses))
    if failed:
        recipient, status, diagnostic = failed[0]
        hard = any(is_hard(st, diag) for _, st, diag in failed)
        reason = f"{status or 'no status'} {diagnostic}".strip()
        return Returned("hard" if hard else "soft", tags, unique, reason)
    if permanent:  # a report flufl understood and we did not: the body says why
        return _plain(msg, tags, unique)
    why = "delivery delayed, the server is still trying" if delayed or temporary else "a report without failures"
    return Returned("ignored", tags, unique, why)


def _plain(msg: Message, tags: tuple[str, ...], addresses: tuple[str, ...]) -> Returned:
    """A non-standard bounce (Exim's plain text, older Postfix and Exchange): the first status code or
    SMTP reply in the body decides."""
    body = "\n".join(_text(p) for p in msg.walk() if p.get_content_maintype() == "text")
    line = next((ln for ln in body.splitlines() if STATUS.search(ln) or re.match(r"\s*[45]\d\d[ -]", ln)), "")
    reason = _one_line(line) or "a permanent failure (no status given)"
    status = STATUS.search(line)
    hard = is_hard(status.group(0) if status else "", line) if line else bool(HARD_WORDS.search(body))
    return Returned("hard" if hard else "soft", tags, addresses, reason)


def _complaint(msg: Message, tags: tuple[str, ...]) -> Returned:
    addresses: list[str] = []
    feedback, agent = "abuse", ""
    for part in msg.walk():
        kind = part.get_content_type()
        if kind == "message/feedback-report":
            fields = part.get_payload()
            report = fields[0] if isinstance(fields, list) and fields else None
            if isinstance(report, Message):
                feedback = str(report.get("feedback-type", feedback))
                agent = str(report.get("user-agent", ""))
                addresses += [str(v).strip().strip("<>") for v in report.get_all("original-rcpt-to", [])]
            else:
                text = _text(part)
                if m := re.search(r"(?im)^feedback-type:\s*(\S+)", text):
                    feedback = m.group(1)
                addresses += re.findall(r"(?im)^original-rcpt-to:\s*<?([^\s>]+)>?", text)
        elif kind in ("message/rfc822", "text/rfc822-headers"):
            inner = part.get_payload()
            original = inner[0] if isinstance(inner, list) and inner else None
            if not isinstance(original, Message):
                original = email.message_from_string(_text(part))
            addresses += [a for _, a in email.utils.getaddresses(original.get_all("to", []))]
    unique = tuple(dict.fromkeys(a.lower() for a in addresses if "@" in a))
    return Returned("complaint", tags, unique, f"{feedback} report" + (f" from {agent}" if agent else ""))


def _is_auto(msg: Message) -> bool:
    auto = str(msg.get("auto-submitted", "no")).lower()
    precedence = str(msg.get("precedence", "")).lower()
    return auto != "no" or precedence in ("bulk", "junk", "auto_reply") or bool(msg.get("x-autoreply"))


def classify(raw: bytes, return_path: str = "", unsubscribe_address: str = "") -> Returned:
    """Read one message of the bounce mailbox."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    tags = _recipient_tags(msg, raw, return_path)
    report = str(msg.get_param("report-type", "", header="content-type") or "").lower()
    if msg.get_content_type() == "multipart/report" and report == "feedback-report":
        return _complaint(msg, tags)
    if msg.get_content_type() == "multipart/report" and report == "delivery-status" or _delivery_blocks(msg):
        return _dsn(msg, tags)
    sender = email.utils.parseaddr(_header(msg, "from"))[1]
    temporary, permanent = all_failures(msg)
    if permanent or (DAEMONS.search(sender or "<>") and temporary):
        found = tuple(dict.fromkeys(a.lower() for a in _addresses(permanent) + _addresses(temporary)))
        if not permanent:
            return Returned("ignored", tags, found, "delivery delayed, the server is still trying")
        return _plain(msg, tags, found)
    if _is_auto(msg) or not sender or DAEMONS.search(sender):
        return Returned("ignored", tags, (), "an automatic reply")
    to = " ".join(str(v) for k, v in msg.items() if k.lower() in RECIPIENT_HEADERS).lower()
    subject = _header(msg, "subject")
    body = next((_text(p) for p in msg.walk() if p.get_content_type() == "text/plain"), "")
    to_list = bool(unsubscribe_address) and unsubscribe_address.lower() in to
    if to_list and (UNSUBSCRIBE_WORDS.search(subject) or UNSUBSCRIBE_WORDS.search(body[:500])):
        return Returned(
            "unsubscribe", tags, (sender.lower(),), f"mail to {unsubscribe_address}: {_one_line(subject, 80)}"
        )
    return Returned("ignored", tags, (), "not a bounce, a complaint or an unsubscribe request")
