"""`digest doctor`: will this list land in the inbox? DNS (dnscheck.py), one real message, the one-click
endpoint (probe.py) and the volume the bulk-sender rules count; and the check the weekly service makes
before each send, which refuses to send while DKIM or DMARC is broken.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Collection, Iterable
from datetime import datetime
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default
from email.utils import parseaddr
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from digest.config import Settings, checks
from digest.errors import DeliverabilityError
from digest.models import OutgoingMessage, Subscriber
from digest.records import Finding
from digest.sender.probe import PROBE_ADDRESS, probe_unsubscribe
from digest.sender.signing import dkim_keys
from digest.sender.tokens import make_token, unsubscribe_url
from digest.sender.transports import transport_kind
from digest.text import address_key

if TYPE_CHECKING:  # the DNS libraries load in about a second: only when a check runs, never for other commands
    from digest.sender.dkimsign import DkimKey
    from digest.sender.dnscheck import Dns, Identity

LOG = logging.getLogger("digest.doctor")

# Gmail, Microsoft and Yahoo apply their bulk-sender rules (SPF and DKIM passing, DMARC aligned, one-click
# unsubscribe, few complaints) to senders of about 5,000 messages a day to their users.
BULK_LIMIT = 5000
PROVIDERS = {
    "Gmail": ("gmail.com", "googlemail.com"),
    "Outlook": ("outlook.com", "hotmail.com", "live.com", "msn.com", "hotmail.co.uk", "hotmail.fr", "live.co.uk",
                "outlook.kr", "hotmail.de", "live.jp", "outlook.jp"),
    "Yahoo": ("yahoo.com", "ymail.com", "rocketmail.com", "aol.com", "yahoo.co.uk", "yahoo.fr", "yahoo.de",
              "yahoo.co.kr"),
}  # fmt: skip
# A broken DKIM record or DMARC makes receivers refuse or bin every message: the service does not send.
# (A broken Ed25519 record is not among them: the RSA signature next to it still passes.)
BLOCKING = frozenset({"dmarc", "dmarc alignment", "dkim record"})
REQUIRED_HEADERS = (
    "From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "List-Id", "List-Unsubscribe", "List-Archive",
    "List-Help", "Precedence", "Auto-Submitted", "X-Auto-Response-Suppress", "Feedback-ID",
)  # fmt: skip
MUST_BE_SIGNED = ("from", "list-unsubscribe", "list-unsubscribe-post")


def _domain(address: str) -> str:
    return address.rpartition("@")[2].lower().rstrip(".")


def identity(settings: Settings) -> Identity:
    """What receivers look at, from the settings: the envelope sender (MAIL FROM, the Return-Path) is
    bounces.return_path's VERP address when set, else the From address; SPF and the bounce MX are checked
    at its domain."""
    from digest.sender.dnscheck import Identity

    email = settings.email
    from_address = checks.single_address(email.sender, "from")[1]
    mailto = checks.mailto(email.unsubscribe_mailto, from_address)
    unsubscribe_address = parseaddr(mailto.removeprefix("mailto:").split("?", 1)[0])[1]
    kind = transport_kind(settings).name
    relay = settings.smtp.host if kind == "smtp" else "" if kind == "maildir" else kind
    return_path = settings.bounces.return_path.strip()
    return Identity(
        from_domain=_domain(from_address),
        envelope_domain=_domain(return_path or from_address),
        keys=tuple(dkim_keys(email)),
        unsubscribe_domain=_domain(unsubscribe_address),
        relay=relay,
        sending_addresses=settings.doctor.sending_addresses,
    )


# -- the message ------------------------------------------------------------------------------------


def _parse(data: bytes) -> EmailMessage:
    message = BytesParser(policy=default).parsebytes(data)
    assert isinstance(message, EmailMessage)
    return message


def check_headers(message: EmailMessage, settings: Settings) -> Finding:
    required = list(REQUIRED_HEADERS) + (["List-Unsubscribe-Post"] if settings.email.public_url else [])
    missing = [name for name in required if not message.get_all(name)]
    twice = [name for name in required if len(message.get_all(name) or []) > 1]
    if missing or twice:
        problems = ([f"missing {', '.join(missing)}"] if missing else []) + (
            [f"more than once: {', '.join(twice)}"] if twice else []
        )
        return Finding("message headers", "fail", "; ".join(problems), "a replaced template or relay changed them")
    links = re.findall(r"<([^>]+)>", str(message["List-Unsubscribe"]))
    if not settings.email.public_url:
        return Finding(
            "message headers",
            "warn",
            f"every required header; List-Unsubscribe has only {links[0] if links else 'nothing'}: no one-click",
            "set email.public_url and run `digest serve`: Gmail and Yahoo require one-click of bulk senders",
        )
    if not any(link.startswith("https://") or _is_local(link) for link in links):
        return Finding("message headers", "warn", "List-Unsubscribe has no https URL", "make email.public_url https")
    return Finding("message headers", "ok", f"{len(required)} required headers, each once; one-click unsubscribe")


def _is_local(url: str) -> bool:
    return urlsplit(url).hostname in ("localhost", "127.0.0.1", "::1")


def check_size(message: EmailMessage, data: bytes, settings: Settings, summarized: bool) -> Finding:
    part = message.get_body(("html",))
    html_bytes = len(part.get_content().encode("utf-8")) if part is not None else 0
    limit = settings.output.max_html_bytes
    detail = f"HTML {html_bytes / 1000:.1f} KB after inlining (Gmail clips above {limit / 1000:.0f} KB); "
    detail += f"message {len(data) / 1000:.1f} KB"
    if summarized:
        detail += "; summaries instead of full posts, to fit"
    if html_bytes > limit:
        return Finding("message size", "fail", detail, "shorten the email template or the posts: Gmail will clip it")
    return Finding("message size", "ok", detail)


def _signed_names(signature: str) -> set[str]:
    found = re.search(r"\bh=([^;]+)", re.sub(r"\s", "", signature))
    return {name.lower() for name in found.group(1).split(":")} if found else set()


def check_dkim_signatures(
    data: bytes, message: EmailMessage, keys: tuple[DkimKey, ...], resolver: Dns
) -> list[Finding]:
    """Each signature verified by dkimpy twice: against the key the config holds (is the signature right?)
    and against DNS (will receivers find that key?); and what the signature covers."""
    if not keys:
        return [
            Finding(
                "message dkim",
                "warn",
                "the message is not DKIM-signed here (email.dkim_key is not set)",
                "sign (email.dkim_key) unless your relay signs with a key of the From domain",
            )
        ]
    signatures = [str(s) for s in message.get_all("DKIM-Signature") or []]
    present = {name.lower() for name in message}
    findings = []
    for index, key in enumerate(keys):
        check = "message dkim" if index == 0 else f"message dkim {key.algorithm.split('-')[0]}"
        if index >= len(signatures):
            findings.append(Finding(check, "fail", f"no {key.algorithm} signature", "report this as a bug"))
        else:
            findings.append(_check_signature(check, data, index, key, resolver, present, signatures[index]))
    return findings


def _check_signature(
    check: str, data: bytes, index: int, key: DkimKey, resolver: Dns, present: set[str], signature: str
) -> Finding:
    def own_key(name: bytes, timeout: int = 5) -> bytes | None:
        return key.record.encode() if name.decode().rstrip(".") == key.record_name else None

    if not _verify(data, index, own_key):
        return Finding(check, "fail", f"the {key.algorithm} signature does not verify with its own key", "a bug")
    failed: list[str] = []

    from digest.sender.dnscheck import LookupFailed

    def from_dns(name: bytes, timeout: int = 5) -> bytes | None:
        try:
            found = resolver.txt(name.decode("ascii").rstrip("."))
        except LookupFailed as exc:
            failed.append(str(exc))
            return None
        return found[0].encode() if found else None

    if not _verify(data, index, from_dns):
        if failed:
            return Finding(check, "warn", f"could not check: {failed[0]}")
        return Finding(
            check,
            "fail",
            f"the {key.algorithm} signature does not verify with the key published at {key.record_name}",
            f'publish "{key.record}" there',
        )
    missing = [name for name in MUST_BE_SIGNED if name in present and name not in _signed_names(signature)]
    if missing:
        return Finding(check, "fail", f"the signature does not cover {', '.join(missing)}", "a bug")
    covered = "List-Unsubscribe and List-Unsubscribe-Post" if "list-unsubscribe-post" in present else "From"
    return Finding(
        check, "ok", f"{key.algorithm} d={key.domain} s={key.selector} verifies with the key in DNS; covers {covered}"
    )


def _verify(data: bytes, index: int, dnsfunc: object) -> bool:
    import dkim

    try:
        return bool(dkim.DKIM(data).verify(idx=index, dnsfunc=dnsfunc))
    except dkim.DKIMException:
        return False


# -- the volume -----------------------------------------------------------------------------------


def bulk_volume(subscribers: Iterable[Subscriber], suppressed: Collection[str]) -> Finding:
    provider_of = {domain: name for name, domains in PROVIDERS.items() for domain in domains}
    counts: Counter[str] = Counter()
    for sub in subscribers:
        if sub.active and sub.key not in suppressed:
            name = provider_of.get(_domain(sub.email))
            if name:
                counts[name] += 1
    total = sum(counts.values())
    detail = f"{total:,} active addresses at Gmail, Outlook and Yahoo"
    if counts:
        detail += " (" + ", ".join(f"{name} {n:,}" for name, n in counts.most_common()) + ")"
    if total > BULK_LIMIT:
        return Finding(
            "volume",
            "warn",
            f"{detail}: more than {BULK_LIMIT:,}, so their bulk-sender rules apply",
            "every check above must pass, keep spam complaints under 0.3 % (Google Postmaster Tools), and "
            "honour unsubscribes within 2 days",
        )
    return Finding("volume", "ok", f"{detail}: below the {BULK_LIMIT:,} of the bulk-sender rules")


# -- the whole run ------------------------------------------------------------------------------------


def _endpoint(settings: Settings, now_at: datetime) -> list[Finding]:
    if not settings.email.public_url:
        return [
            Finding(
                "unsubscribe post",
                "warn",
                "email.public_url is not set: no one-click unsubscribe to probe",
                "set email.public_url and run `digest serve`: Gmail and Yahoo require it of bulk senders",
            )
        ]
    url = unsubscribe_url(settings.email.public_url, make_token(settings.secret, PROBE_ADDRESS, now_at))
    return probe_unsubscribe(url, settings.doctor.timeout)


def diagnose(
    settings: Settings,
    now_at: datetime,
    message: OutgoingMessage | None,
    *,
    summarized: bool = False,
    subscribers: Iterable[Subscriber] | None = None,
    suppressed: Collection[str] = (),
) -> list[Finding]:
    """Every check of `digest doctor`, in the order a reader fixes them."""
    from digest.sender.dnscheck import Dns, check_dns

    who = identity(settings)
    findings = check_dns(settings.doctor, who)
    if message is not None:
        parsed = _parse(message.data)
        findings += check_dkim_signatures(message.data, parsed, who.keys, Dns(settings.doctor))
        findings.append(check_headers(parsed, settings))
        findings.append(check_size(parsed, message.data, settings, summarized))
    findings += _endpoint(settings, now_at)
    if subscribers is not None:
        findings.append(bulk_volume(subscribers, {address_key(a) for a in suppressed}))
    return findings


def gate_on(settings: Settings) -> bool:
    """doctor.before_send: "auto" checks when messages are DKIM-signed here and leave the machine (SMTP or
    a provider such as SES: there is then a key and a domain to check, and receivers to refuse the mail);
    true and false force it."""
    switch = settings.doctor.before_send
    if switch != "auto":
        return switch == "on"
    return settings.email.dkim_key is not None and transport_kind(settings).name != "maildir"


def check_before_send(settings: Settings, now_at: datetime) -> list[Finding]:
    """The DNS and endpoint checks before a weekly send: DeliverabilityError when DKIM or DMARC is broken
    (the service retries later); other failures are logged and do not stop the send."""
    if not gate_on(settings):
        return []
    from digest.sender.dnscheck import check_dns

    findings = check_dns(settings.doctor, identity(settings)) + _endpoint(settings, now_at)
    blocking = [f for f in findings if f.level == "fail" and f.check in BLOCKING]
    if blocking:
        first = blocking[0]
        raise DeliverabilityError(
            f"not sending: {first.check}: {first.detail}",
            f"{first.fix}; `digest doctor` lists every check (doctor.before_send = false turns this off)",
        )
    for finding in findings:
        if finding.level == "fail":
            LOG.warning("before sending: %s: %s (%s)", finding.check, finding.detail, finding.fix)
    return findings
