"""Sender (stage 3): RenderedIssue x Subscribers -> Deliveries, exactly once, through the ledger.

This is the face of the package: the pipeline uses these names and nothing else of it.
"""

from .cycles import Cycles
from .deliver import STOP_REQUESTED, deliver, is_dead_worker
from .ledger import REMOVED, Ledger
from .message import MessageFactory, Variant, message_id_for
from .outcome import DEFERRED, FAILED, SENT, SendResult, classify
from .store import SCHEMA_VERSION, Store, open_store, safe_url
from .suppressions import Suppressions
from .tokens import make_token, unsubscribe_url, verify_token
from .transports import REGISTRY, Transport, TransportFactory, describe, send_test_copy, transport_for, transport_kind

__all__ = [
    "DEFERRED",
    "FAILED",
    "REGISTRY",
    "REMOVED",
    "Cycles",
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
    "classify",
    "deliver",
    "describe",
    "is_dead_worker",
    "make_token",
    "message_id_for",
    "open_store",
    "safe_url",
    "send_test_copy",
    "transport_for",
    "transport_kind",
    "unsubscribe_url",
    "verify_token",
]
