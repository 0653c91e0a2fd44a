"""Sender (stage 3): RenderedIssue x Subscribers -> Deliveries, exactly once, through the ledger.

This is the face of the package: the pipeline uses these names and nothing else of it.
"""

from digest.models import DeliveryReport

from .bounces import Returned, is_hard
from .bounces import classify as classify_returned
from .carried import read_carried, record_issue
from .csvio import parse_mapping, read_csv, write_export
from .cycles import Cycles
from .deliver import STOP_REQUESTED, deliver, is_dead_worker
from .doctor import check_before_send, diagnose
from .ledger import REMOVED, Ledger
from .mailbox import describe as describe_mailbox
from .mailbox import read as read_mailbox
from .message import MessageFactory, Variant, message_id_for
from .notices import build_notice
from .outcome import DEFERRED, FAILED, SENT, SendResult, classify
from .probe import is_probe
from .providers import SnsPost, read_sns, trusted_confirm_url
from .reviews import Reviews
from .roster import Request, Roster, SyncReport
from .store import SCHEMA_VERSION, Store, open_store, safe_url
from .suppressions import Suppressions
from .tokens import link_url, make_token, tags_in, unsubscribe_url, verify_token
from .transports import REGISTRY, Transport, TransportFactory, describe, send_test_copy, transport_for, transport_kind

__all__ = [
    "DEFERRED",
    "FAILED",
    "REGISTRY",
    "REMOVED",
    "Cycles",
    "Reviews",
    "SCHEMA_VERSION",
    "SENT",
    "STOP_REQUESTED",
    "Ledger",
    "MessageFactory",
    "SendResult",
    "Store",
    "Suppressions",
    "Transport",
    "TransportFactory",
    "Variant",
    "check_before_send",
    "classify",
    "deliver",
    "DeliveryReport",
    "describe",
    "diagnose",
    "is_dead_worker",
    "is_probe",
    "make_token",
    "message_id_for",
    "open_store",
    "read_carried",
    "record_issue",
    "safe_url",
    "send_test_copy",
    "transport_for",
    "transport_kind",
    "unsubscribe_url",
    "verify_token",
    # readers: the subscriber store, its mails, bounces, import and export
    "Request",
    "Returned",
    "Roster",
    "SyncReport",
    "build_notice",
    "classify_returned",
    "read_sns",
    "trusted_confirm_url",
    "SnsPost",
    "is_hard",
    "describe_mailbox",
    "link_url",
    "parse_mapping",
    "read_csv",
    "read_mailbox",
    "tags_in",
    "write_export",
]
