"""Sender (stage 3): RenderedIssue x Subscribers -> Deliveries, exactly once, through the ledger.

This is the face of the package: the pipeline uses these names and nothing else of it.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from digest.records import DeliveryReport

    from .bounces import Returned, is_hard
    from .bounces import classify as classify_returned
    from .carried import (
        StoreView,
        read_carried,
        record_issue,
        remember_names,
    )
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
    from .transports import (
        REGISTRY,
        Transport,
        TransportFactory,
        describe,
        send_test_copy,
        transport_for,
        transport_kind,
    )

# Each name is imported from its module on first use: the ledger's modules bring SQLAlchemy, signing brings
# its crypto and DNS libraries (together about half a second), which a preview or a publish never needs.
_WHERE = {
    "Returned": (".bounces", "Returned"),
    "is_hard": (".bounces", "is_hard"),
    "classify_returned": (".bounces", "classify"),
    "StoreView": (".carried", "StoreView"),
    "read_carried": (".carried", "read_carried"),
    "record_issue": (".carried", "record_issue"),
    "remember_names": (".carried", "remember_names"),
    "parse_mapping": (".csvio", "parse_mapping"),
    "read_csv": (".csvio", "read_csv"),
    "write_export": (".csvio", "write_export"),
    "Cycles": (".cycles", "Cycles"),
    "STOP_REQUESTED": (".deliver", "STOP_REQUESTED"),
    "deliver": (".deliver", "deliver"),
    "is_dead_worker": (".deliver", "is_dead_worker"),
    "check_before_send": (".doctor", "check_before_send"),
    "diagnose": (".doctor", "diagnose"),
    "REMOVED": (".ledger", "REMOVED"),
    "Ledger": (".ledger", "Ledger"),
    "describe_mailbox": (".mailbox", "describe"),
    "read_mailbox": (".mailbox", "read"),
    "MessageFactory": (".message", "MessageFactory"),
    "Variant": (".message", "Variant"),
    "message_id_for": (".message", "message_id_for"),
    "build_notice": (".notices", "build_notice"),
    "DEFERRED": (".outcome", "DEFERRED"),
    "FAILED": (".outcome", "FAILED"),
    "SENT": (".outcome", "SENT"),
    "SendResult": (".outcome", "SendResult"),
    "classify": (".outcome", "classify"),
    "is_probe": (".probe", "is_probe"),
    "SnsPost": (".providers", "SnsPost"),
    "read_sns": (".providers", "read_sns"),
    "trusted_confirm_url": (".providers", "trusted_confirm_url"),
    "Reviews": (".reviews", "Reviews"),
    "Request": (".roster", "Request"),
    "Roster": (".roster", "Roster"),
    "SyncReport": (".roster", "SyncReport"),
    "SCHEMA_VERSION": (".store", "SCHEMA_VERSION"),
    "Store": (".store", "Store"),
    "open_store": (".store", "open_store"),
    "safe_url": (".store", "safe_url"),
    "Suppressions": (".suppressions", "Suppressions"),
    "link_url": (".tokens", "link_url"),
    "make_token": (".tokens", "make_token"),
    "tags_in": (".tokens", "tags_in"),
    "unsubscribe_url": (".tokens", "unsubscribe_url"),
    "verify_token": (".tokens", "verify_token"),
    "REGISTRY": (".transports", "REGISTRY"),
    "Transport": (".transports", "Transport"),
    "TransportFactory": (".transports", "TransportFactory"),
    "describe": (".transports", "describe"),
    "send_test_copy": (".transports", "send_test_copy"),
    "transport_for": (".transports", "transport_for"),
    "transport_kind": (".transports", "transport_kind"),
    "DeliveryReport": ("digest.records", "DeliveryReport"),
}


class _Face(types.ModuleType):
    """This package: importing a submodule sets the package's attribute of its name, and `deliver` is both
    a module and the function the pipeline calls; the function wins."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _WHERE and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Face


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(where[0], __name__), where[1])
    globals()[name] = value
    return value


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
    "StoreView",
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
    "remember_names",
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
