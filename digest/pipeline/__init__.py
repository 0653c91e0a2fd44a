"""The one place that runs the stages in order. Read this first.

    collect (posts -> entries)  ->  Issue of one week  ->  render (email variants, feeds, archive)
        ->  publish (files in the output folder)  ->  deliver (ledger + transport)

`run_cycle` (delivery.py) is the weekly cycle, the same for `digest run`, `digest send` and the service. Everything
that touches the outside world (the clock, the transport, the state database) comes in as an argument,
so the CLI, the scheduler, the server and the tests drive the same code. The edges (cli, scheduler,
server) reach the stages only through the functions here.

The parts import one way: _shared <- state <- building <- readers <- review <- delivery <- service,
then events and checks. The edges import this package and use the names below.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from digest.pipeline._shared import (
        EXAMPLE_SUBSCRIBER,
        FEEDS,
        Build,
        Request,
        Roster,
        SendResult,
        Store,
        Transport,
        TransportFactory,
        Variant,
        is_probe,
        issue_id,
        labels_for,
        safe_url,
    )
    from digest.pipeline.building import (
        Preview,
        build,
        job_week,
        language_warning,
        preview,
        publish,
        render_variants,
        select_language,
        select_week,
        site_files,
    )
    from digest.pipeline.checks import (
        check,
        doctor,
        sample_issue,
    )
    from digest.pipeline.delivery import (
        run_cycle,
    )
    from digest.pipeline.events import (
        EVENTS_PATH,
        provider_events,
        provider_events_url,
    )
    from digest.pipeline.readers import (
        CAPTCHA_FIELDS,
        PAUSE_CHOICES,
        add_subscriber,
        change_address,
        client_allowed,
        confirm,
        export_subscribers,
        import_subscribers,
        preferences,
        read_bounces,
        reader_language,
        reader_link,
        reader_of_token,
        reader_token,
        reader_words,
        readers_housekeeping,
        readers_tick,
        render_reader_page,
        request_address_change,
        roster,
        save_preferences,
        send_list,
        send_reader_mail,
        send_welcome,
        subscribe,
        sync_subscribers,
        verify_captcha,
        welcome_id,
    )
    from digest.pipeline.review import (
        REVIEW_PATH,
        decide_review,
        request_reviews,
        review_of_token,
        review_owner,
    )
    from digest.pipeline.service import (
        ServiceStep,
        advance_cycle,
        due_weeks,
        send_test_copy,
    )
    from digest.pipeline.state import (
        address_of_token,
        check_settings,
        check_subscribers,
        issue_status,
        open_ledger,
        open_store,
        require_subscribers,
        resubscribe,
        suppressed,
        unsubscribe,
        week_issues,
    )

# Each name is imported from its part on first use: a preview needs _shared, state and building, not the
# readers' pages, the review, the delivery or the service (about 20 ms of every start-up).
_HOMES = {
    "EXAMPLE_SUBSCRIBER": "_shared",
    "FEEDS": "_shared",
    "Build": "_shared",
    "issue_id": "_shared",
    "labels_for": "_shared",
    "Request": "_shared",
    "Roster": "_shared",
    "SendResult": "_shared",
    "Store": "_shared",
    "Transport": "_shared",
    "TransportFactory": "_shared",
    "Variant": "_shared",
    "is_probe": "_shared",
    "safe_url": "_shared",
    "Preview": "building",
    "build": "building",
    "job_week": "building",
    "language_warning": "building",
    "preview": "building",
    "publish": "building",
    "render_variants": "building",
    "select_language": "building",
    "select_week": "building",
    "site_files": "building",
    "check": "checks",
    "doctor": "checks",
    "sample_issue": "checks",
    "check_settings": "state",
    "run_cycle": "delivery",
    "EVENTS_PATH": "events",
    "provider_events": "events",
    "provider_events_url": "events",
    "CAPTCHA_FIELDS": "readers",
    "PAUSE_CHOICES": "readers",
    "add_subscriber": "readers",
    "change_address": "readers",
    "client_allowed": "readers",
    "confirm": "readers",
    "export_subscribers": "readers",
    "import_subscribers": "readers",
    "preferences": "readers",
    "read_bounces": "readers",
    "reader_language": "readers",
    "reader_link": "readers",
    "reader_of_token": "readers",
    "reader_token": "readers",
    "reader_words": "readers",
    "readers_housekeeping": "readers",
    "readers_tick": "readers",
    "render_reader_page": "readers",
    "request_address_change": "readers",
    "roster": "readers",
    "save_preferences": "readers",
    "send_list": "readers",
    "send_reader_mail": "readers",
    "send_welcome": "readers",
    "subscribe": "readers",
    "sync_subscribers": "readers",
    "verify_captcha": "readers",
    "welcome_id": "readers",
    "REVIEW_PATH": "review",
    "decide_review": "review",
    "request_reviews": "review",
    "review_of_token": "review",
    "review_owner": "review",
    "ServiceStep": "service",
    "advance_cycle": "service",
    "due_weeks": "service",
    "send_test_copy": "service",
    "address_of_token": "state",
    "check_subscribers": "state",
    "issue_status": "state",
    "week_issues": "state",
    "open_ledger": "state",
    "open_store": "state",
    "require_subscribers": "state",
    "resubscribe": "state",
    "suppressed": "state",
    "unsubscribe": "state",
}


_PARTS = frozenset({"_shared", *_HOMES.values()})


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is not None:
        value = getattr(importlib.import_module(f"digest.pipeline.{home}"), name)
        globals()[name] = value
        return value
    if name in _PARTS:  # `from digest.pipeline import building` before anything imported it
        return importlib.import_module(f"digest.pipeline.{name}")
    shared = importlib.import_module("digest.pipeline._shared")
    return getattr(shared, name)  # the sender's names, imported on first use there


__all__ = [
    "Build",
    "CAPTCHA_FIELDS",
    "PAUSE_CHOICES",
    "EVENTS_PATH",
    "EXAMPLE_SUBSCRIBER",
    "FEEDS",
    "Preview",
    "REVIEW_PATH",
    "Request",
    "Roster",
    "SendResult",
    "ServiceStep",
    "Store",
    "Transport",
    "TransportFactory",
    "Variant",
    "add_subscriber",
    "address_of_token",
    "advance_cycle",
    "build",
    "change_address",
    "check",
    "check_settings",
    "check_subscribers",
    "client_allowed",
    "confirm",
    "decide_review",
    "doctor",
    "due_weeks",
    "export_subscribers",
    "import_subscribers",
    "is_probe",
    "issue_id",
    "issue_status",
    "week_issues",
    "job_week",
    "labels_for",
    "open_ledger",
    "open_store",
    "preferences",
    "preview",
    "provider_events",
    "provider_events_url",
    "publish",
    "read_bounces",
    "reader_language",
    "reader_link",
    "reader_of_token",
    "reader_token",
    "reader_words",
    "readers_housekeeping",
    "readers_tick",
    "render_reader_page",
    "render_variants",
    "request_address_change",
    "request_reviews",
    "require_subscribers",
    "resubscribe",
    "review_of_token",
    "review_owner",
    "roster",
    "run_cycle",
    "safe_url",
    "sample_issue",
    "save_preferences",
    "language_warning",
    "select_language",
    "select_week",
    "send_list",
    "send_reader_mail",
    "send_test_copy",
    "send_welcome",
    "site_files",
    "subscribe",
    "suppressed",
    "sync_subscribers",
    "unsubscribe",
    "verify_captcha",
    "welcome_id",
]
