"""Run deliver() once to an SMTP server, for the crash test (which SIGKILLs this process mid-run).

    python -m tests.crash_driver DB_URL PORT COUNT CLOCK_OFFSET_SECONDS

Sends issue "crash" to p0000@example.com … with 4 connections and the default record grouping; the clock
is shifted by CLOCK_OFFSET_SECONDS so a rerun can be placed after the lease of a killed run.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from digest.config import DeliveryPolicy, OutputSettings, Settings, SmtpSettings
from digest.models import Site, Subscriber
from digest.sender.deliver import deliver
from digest.sender.ledger import Ledger
from digest.sender.transports import SmtpTransport
from tests.support_smtp import SimpleFactory

CONNECTIONS = 4


def settings_for(port: int) -> Settings:
    site = Site("Crash", "http://localhost/", Path("."), (), "UTC", "/:title/")
    settings = Settings(site=site, output=OutputSettings(dir=Path("."), url="http://localhost/newsletter/"))
    smtp = SmtpSettings(host="127.0.0.1", port=port, mode="plain")
    return replace(settings, smtp=smtp, delivery=DeliveryPolicy(connections=CONNECTIONS))


def main(argv: list[str]) -> int:
    url, port, count, offset = argv[0], int(argv[1]), int(argv[2]), float(argv[3])
    settings = settings_for(port)
    people = [Subscriber(f"p{i:04}@example.com") for i in range(count)]

    def clock() -> datetime:
        return datetime.now(UTC) + timedelta(seconds=offset)

    report = deliver(
        SimpleFactory("crash", size=2000),
        people,
        Ledger(url),
        lambda: SmtpTransport(settings.smtp, local_hostname="localhost"),
        settings.delivery,
        clock,
        issue_id="crash",
    )
    print(f"sent={report.sent} deferred={report.deferred} outstanding={report.outstanding}", flush=True)
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
