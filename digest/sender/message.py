"""Message bytes per subscriber: one skeleton per variant built with the email package, then the
address, name, Message-ID and unsubscribe token put into prebuilt bytes for each subscriber.

The email package needs several milliseconds for a 40 KB message; the skeleton turns that into one
bytes join per subscriber. Per-subscriber headers (To, Message-ID, List-Unsubscribe) are written in
front of the skeleton's own headers; the bodies are quoted-printable with the placeholders on lines
of their own (see mimebits), so any value fits without re-encoding the body.
"""

from __future__ import annotations

import hashlib
import html
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

from digest.config import Settings, checks
from digest.errors import ConfigError, DeliveryError
from digest.models import (
    PREFERENCES_URL_MARK,
    RECIPIENT_EMAIL_MARK,
    UNSUBSCRIBE_URL_MARK,
    Issue,
    OutgoingMessage,
    RenderedIssue,
    Subscriber,
)
from digest.sender.dkimsign import Prepared
from digest.sender.mimebits import Piece, clean, mailbox, merge, qp_segments, qp_value, wire_safe
from digest.sender.signing import DkimSigner
from digest.sender.tokens import LinkTokens, link_url, unsubscribe_url, verp_address
from digest.text import ADDRESS, address_key

Variant = tuple[tuple[str, ...], str]

# Slots filled per subscriber.
HEAD, URL, EMAIL_TEXT, EMAIL_HTML, PREFS = range(5)
TEXT_MARKS = {UNSUBSCRIBE_URL_MARK: URL, RECIPIENT_EMAIL_MARK: EMAIL_TEXT, PREFERENCES_URL_MARK: PREFS}
HTML_MARKS = {UNSUBSCRIBE_URL_MARK: URL, RECIPIENT_EMAIL_MARK: EMAIL_HTML, PREFERENCES_URL_MARK: PREFS}
# Stand-ins for the bodies while the email package writes the structure; replaced by our own encoding.
TEXT_BODY = b"DIGESTBODYTEXT0MARK"
HTML_BODY = b"DIGESTBODYHTML0MARK"
PER_SUBSCRIBER_HEADERS = ("To", "Message-ID", "List-Unsubscribe")
# What bulk senders are expected to carry (mailbox providers' sender guidelines): the list's archive and help
# (RFC 2369), markers that keep auto-replies and out-of-office notices away (RFC 3834, Exchange), and
# Gmail's Feedback-ID, which names the issue, the list and the site, never a recipient.
BULK_HEADERS = {"Precedence": "bulk", "Auto-Submitted": "auto-generated", "X-Auto-Response-Suppress": "OOF, AutoReply"}


def message_id_for(issue_id: str, email: str, domain: str) -> str:
    """The same "<…@domain>" every time this issue is built for this address (ignoring case)."""
    digest = hashlib.sha256(f"{issue_id}\x00{address_key(email)}\x00{domain.lower()}".encode()).hexdigest()
    return f"<{digest[:32]}@{domain}>"


@dataclass(frozen=True)
class _Skeleton:
    pieces: tuple[Piece, ...]  # literal bytes and slot numbers
    issue_id: str
    language: str  # the issue's, for the unsubscribe page
    dkim: Prepared | None = None  # the skeleton canonicalised for DKIM, when messages are signed
    # the pieces as one getter over (literal pieces + the slots' values): a message is one join of what it returns
    literals: tuple[bytes, ...] = ()
    order: Callable[[tuple[bytes, ...]], tuple[bytes, ...]] = tuple
    # its literal pieces keep SMTP's DATA rules (mimebits.wire_safe), and so does every value put between
    # them (ASCII headers, quoted-printable values that never start a line with a dot), so the transport
    # need not scan each 40 KB message for lines to dot-stuff (about 100 µs a message)
    wire_ready: bool = False

    @classmethod
    def of(cls, pieces: tuple[Piece, ...], issue: Issue, issue_id: str, dkim: Prepared | None) -> _Skeleton:
        literals = tuple(p for p in pieces if isinstance(p, bytes))
        where, n = [], 0
        for piece in pieces:
            if isinstance(piece, bytes):
                where.append(n)
                n += 1
            else:
                where.append(len(literals) + piece)
        if len(where) < 2:  # itemgetter of one index gives the item, not a tuple
            raise ValueError("a message skeleton has a slot and a literal at least")
        last = pieces[-1]
        wire_ready = isinstance(last, bytes) and last.endswith(b"\r\n") and all(map(wire_safe, literals))
        return cls(pieces, issue_id, issue.language, dkim, literals, operator.itemgetter(*where), wire_ready)


_PER_READER = re.compile(r"([a-z]+)-[0-9a-f]{24}")  # a welcome's or a confirmation's issue: one per reader
FEEDBACK_MARK = b"DIGESTFEEDBACKID0MARK"


def feedback_id(issue_id: str, list_id: str, site_url: str) -> str:
    """Gmail's Feedback-ID, "issue:list:site:digest" (colons inside a field would shift the fields). It
    groups complaints by its fields, so none is per reader: a welcome's is "welcome", not its issue id."""
    host = site_url.split("://", 1)[-1].split("/", 1)[0]
    per_reader = _PER_READER.fullmatch(issue_id)
    campaign = per_reader.group(1) if per_reader else issue_id
    return ":".join(part.replace(":", "-") for part in (campaign, list_id, host, "digest"))


class MessageFactory:
    """Builds each variant once; build() then costs one bytes join (plus a DKIM signature if configured)."""

    def __init__(
        self, variants: Mapping[Variant, RenderedIssue], settings: Settings, now_at: datetime, *, issue_id: str = ""
    ):
        if now_at.tzinfo is None:
            raise ValueError("now_at must be timezone-aware")
        config = settings.email
        self._now_at = now_at
        self._date = format_datetime(now_at)
        # checked when the settings were loaded; repeated here for settings made by hand
        self._from, from_address = checks.single_address(config.sender, "from")
        self._domain = from_address.rsplit("@", 1)[1].lower()
        self._reply_to = checks.single_address(config.reply_to, "reply_to")[0] if config.reply_to else ""
        self._list_id = checks.list_id(config.list_id)
        self._mailto = checks.mailto(config.unsubscribe_mailto, from_address)
        self._public_url = checks.header_value(config.public_url, "public_url")
        if self._public_url and not settings.secret:
            raise ConfigError(
                "one-click unsubscribe (email.public_url) needs a secret to sign the links",
                "set the DIGEST_SECRET environment variable to a long random string",
            )
        self._secret = settings.secret
        # the two signed links of each message: the same secret and day for all of them
        self._links: tuple[LinkTokens, LinkTokens] | None = None
        if self._public_url:
            self._links = (LinkTokens(self._secret, now_at), LinkTokens(self._secret, now_at, "preferences"))
        self._unsubscribe_at = unsubscribe_url(self._public_url, "")
        self._preferences_at = link_url(self._public_url, "preferences", "")
        self._variants: dict[tuple[tuple[str, ...], str], Variant] = {}  # (tags, format) -> variant
        # each message's envelope sender: bounces+TAG@… (VERP) ties a bounce to its subscriber
        self._return_path = settings.bounces.return_path.strip()
        self._fixed_id = issue_id
        self._archive_url = checks.header_value(settings.output.url, "output.url")
        reply_address = checks.single_address(config.reply_to, "reply_to")[1] if config.reply_to else ""
        self._list_help = f"<mailto:{reply_address or from_address}?subject=help>"
        self._site_url = settings.site.base_url
        self._rendered = dict(variants)
        self._signer: DkimSigner | None = None
        if config.dkim_key is not None:
            self._signer = DkimSigner(config, int(now_at.timestamp()), settings.delivery.signing_processes)
        self._skeletons: dict[Variant, _Skeleton] = {}
        for key in variants:
            self._skeleton(key)

    def close(self) -> None:
        """Stop the DKIM signing processes, if a large send started any."""
        if self._signer is not None:
            self._signer.close()

    # ---- once per variant ------------------------------------------------------------------

    def _skeleton(self, variant: Variant) -> _Skeleton:
        if variant in self._skeletons:
            return self._skeletons[variant]
        tags, fmt = variant
        rendered = self._rendered.get(variant)
        if rendered is None:  # the other format of the same filter renders the same text
            rendered = self._rendered.get((tags, "html" if fmt == "text" else "text"))
        if rendered is None:
            raise DeliveryError(
                f"no rendered issue for the variant tags={list(tags)} format={fmt}",
                "render every variant of the subscribers before building messages",
            )
        msg = EmailMessage(policy=SMTP)
        msg["From"] = self._from
        if self._reply_to:
            msg["Reply-To"] = self._reply_to
        msg["Subject"] = clean(rendered.subject)
        msg["Date"] = self._date
        if self._list_id:
            msg["List-Id"] = f"<{self._list_id}>"
        if self._public_url:
            msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        if self._archive_url:
            # the archive of the issue's language ("ko/" beside the site language's)
            archive = self._archive_url + rendered.issue.prefix
            msg["List-Archive"] = f"<{archive}>"
            msg["List-Help"] = f"<{archive}>, {self._list_help}"
        else:
            msg["List-Help"] = self._list_help
        for name, value in BULK_HEADERS.items():
            msg[name] = value
        feedback = feedback_id(self._fixed_id or rendered.issue.id, self._list_id, self._site_url)
        # One token with no space to fold at: the email package would make a longer one (a long site host)
        # RFC 2047 encoded words, which Gmail does not read. Written as one line after it (at most 998).
        plain_feedback = feedback.isascii() and len(feedback) <= 900
        msg["Feedback-ID"] = FEEDBACK_MARK.decode() if plain_feedback else feedback
        msg.set_content(TEXT_BODY.decode(), cte="quoted-printable")
        if fmt != "text":
            msg.add_alternative(HTML_BODY.decode(), subtype="html", cte="quoted-printable")
            # "=_" can never appear in quoted-printable text, so this boundary is safe and stable.
            msg.set_boundary("=_digest_" + hashlib.sha256(rendered.html.encode()).hexdigest()[:24])
        raw = msg.as_bytes()
        if plain_feedback:
            raw = raw.replace(FEEDBACK_MARK, feedback.encode(), 1)
        pieces: list[Piece] = [HEAD]
        text_at = raw.index(TEXT_BODY)
        pieces.append(raw[:text_at])
        pieces += qp_segments(rendered.text, TEXT_MARKS)
        if fmt == "text":
            pieces.append(raw[text_at + len(TEXT_BODY) :])
        else:
            html_at = raw.index(HTML_BODY)
            pieces.append(raw[text_at + len(TEXT_BODY) : html_at])
            pieces += qp_segments(rendered.html, HTML_MARKS)
            pieces.append(raw[html_at + len(HTML_BODY) :])
        merged = tuple(merge(pieces))
        issue = self._issue(variant)
        skeleton = _Skeleton.of(
            merged, issue, self._fixed_id or issue.id, self._signer.prepare(merged) if self._signer else None
        )
        self._skeletons[variant] = skeleton
        return skeleton

    # ---- once per subscriber ---------------------------------------------------------------

    def build(self, subscriber: Subscriber) -> OutgoingMessage:
        # Each line below is done once per message of a send; what is the same for every message of a
        # variant was done in _skeleton().
        variant = self._variants.get((subscriber.tags, subscriber.format))
        if variant is None:
            variant = self._variants[(subscriber.tags, subscriber.format)] = subscriber.variant
        skeleton = self._skeletons.get(variant) or self._skeleton(variant)
        email = subscriber.email.strip()
        if not ADDRESS.fullmatch(email):
            raise DeliveryError(f"{email!r} is not an address that can be put in a header", "fix the subscribers file")
        issue_id = skeleton.issue_id
        message_id = message_id_for(issue_id, email, self._domain)
        prefs = ""
        if self._links is not None:
            unsubscribe, preferences = self._links
            url = (
                self._unsubscribe_at + unsubscribe(email) + (f"&lang={skeleton.language}" if skeleton.language else "")
            )
            list_unsubscribe = f"<{self._mailto}>,\r\n <{url}>"
            prefs = self._preferences_at + preferences(email)
        else:
            url = self._mailto
            list_unsubscribe = f"<{url}>"
        to = mailbox(subscriber.name, email)
        head = f"To: {to}\r\nMessage-ID: {message_id}\r\nList-Unsubscribe: {list_unsubscribe}\r\n"
        quoted = qp_value(email)
        escaped = html.escape(email)
        values = (
            head.encode("ascii"),
            qp_value(url),
            quoted,
            quoted if escaped == email else qp_value(escaped),
            qp_value(prefs),
        )
        data = b"".join(skeleton.order(skeleton.literals + values))
        if skeleton.dkim is not None:
            data = skeleton.dkim.sign(values) + data
        envelope = verp_address(self._return_path, subscriber.tag)
        return OutgoingMessage(
            issue_id=issue_id,
            recipient=email,
            message_id=message_id,
            data=data,
            envelope_from=envelope,
            wire_ready=skeleton.wire_ready,
        )

    @property
    def issue_id(self) -> str:
        return self._fixed_id or (next(iter(self._rendered.values())).issue.id if self._rendered else "")

    def _issue(self, variant: Variant) -> Issue:
        rendered = self._rendered.get(variant) or next(iter(self._rendered.values()))
        return rendered.issue
