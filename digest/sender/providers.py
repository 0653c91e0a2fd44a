"""Bounce and complaint events that a mail provider posts instead of returning mail: Amazon SES publishes
them to an SNS topic, which posts them to `digest serve` (an HTTPS subscription). Each becomes the same
`Returned` finding as a bounce read from the mailbox, so one policy (hard at once, soft N in M days,
complaint) applies to both."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from digest.sender.bounces import Returned


@dataclass(frozen=True)
class SnsPost:
    kind: str  # "confirm" (a new subscription to confirm), "events", "ignored"
    subscribe_url: str = ""
    findings: tuple[Returned, ...] = ()
    reason: str = ""


def trusted_confirm_url(url: str, endpoint_url: str = "") -> bool:
    """A SubscribeURL digest may open: AWS's own (https, *.amazonaws.com), or the configured endpoint's host
    (a local test server or a VPC endpoint)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme == "https" and host.endswith(".amazonaws.com"):
        return True
    if endpoint_url:
        endpoint = urlsplit(endpoint_url)
        return (parts.scheme, host, parts.port) == (endpoint.scheme, (endpoint.hostname or "").lower(), endpoint.port)
    return False


def _one_line(text: Any, limit: int = 300) -> str:
    return " ".join(str(text or "").split())[:limit]


def _ses_findings(event: dict[str, Any]) -> tuple[Returned, ...]:
    kind = str(event.get("notificationType") or event.get("eventType") or "")
    if kind == "Bounce":
        bounce = event.get("bounce") or {}
        hard = str(bounce.get("bounceType", "")) == "Permanent"
        found = []
        for recipient in bounce.get("bouncedRecipients") or []:
            address = str(recipient.get("emailAddress", ""))
            why = recipient.get("diagnosticCode") or f"{bounce.get('bounceType')}/{bounce.get('bounceSubType')}"
            found.append(Returned("hard" if hard else "soft", (), (address,), _one_line(f"SES: {why}")))
        return tuple(found)
    if kind == "Complaint":
        complaint = event.get("complaint") or {}
        feedback = complaint.get("complaintFeedbackType") or "abuse"
        return tuple(
            Returned("complaint", (), (str(r.get("emailAddress", "")),), _one_line(f"SES complaint: {feedback}"))
            for r in complaint.get("complainedRecipients") or []
        )
    return ()


def read_sns(body: bytes) -> SnsPost:
    """What one SNS HTTP(S) post says."""
    try:
        post = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return SnsPost("ignored", reason="not an SNS message (not JSON)")
    if not isinstance(post, dict):
        return SnsPost("ignored", reason="not an SNS message")
    kind = post.get("Type")
    if kind == "SubscriptionConfirmation":
        return SnsPost("confirm", subscribe_url=str(post.get("SubscribeURL", "")))
    if kind != "Notification":
        return SnsPost("ignored", reason=f"SNS message of type {kind!r}")
    message = post.get("Message")
    try:
        event = json.loads(message) if isinstance(message, str) else message
    except ValueError:
        return SnsPost("ignored", reason="an SNS notification that is not an SES event")
    if not isinstance(event, dict):
        return SnsPost("ignored", reason="an SNS notification that is not an SES event")
    findings = tuple(f for f in _ses_findings(event) if f.addresses and "@" in f.addresses[0])
    return SnsPost("events", findings=findings, reason="" if findings else "no bounce or complaint in it")
