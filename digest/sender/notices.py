"""The short mails of the readers' side (confirm your subscription, you are already subscribed, confirm
your new address): one message each, built with the email package; they are rare, so no skeletons."""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

from digest.config import Settings, checks
from digest.models import OutgoingMessage
from digest.sender.mimebits import clean, mailbox
from digest.sender.signing import DkimSigner


def build_notice(
    settings: Settings, to: str, subject: str, text: str, html: str, now_at: datetime, *, kind: str, name: str = ""
) -> OutgoingMessage:
    sender, from_address = checks.single_address(settings.email.sender, "from")
    domain = from_address.rsplit("@", 1)[1].lower()
    msg = EmailMessage(policy=SMTP)
    msg["From"] = sender
    msg["To"] = mailbox(name, to)
    msg["Subject"] = clean(subject)
    msg["Date"] = format_datetime(now_at)
    msg["Message-ID"] = make_msgid(kind, domain)
    # tells vacation responders not to answer (RFC 3834)
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(text, cte="quoted-printable")
    msg.add_alternative(html, subtype="html", cte="quoted-printable")
    data = msg.as_bytes()
    email = settings.email
    if email.dkim_key is not None:
        signer = DkimSigner(email, int(now_at.timestamp()), processes=0)  # one message: no helper processes
        data = signer.sign(data) + data
    return OutgoingMessage(
        issue_id=kind,
        recipient=to,
        message_id=str(msg["Message-ID"]),
        data=data,
        envelope_from=settings.bounces.return_path.strip(),
    )
