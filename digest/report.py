"""Reports -> text lines and JSON: the CLI prints them, the service logs them. Nothing here decides
anything; every number comes from the report objects in digest.models."""

from __future__ import annotations

from typing import Any

from digest.models import CycleReport, DeliveryReport, Finding, IssueStatus, Problem, State


def problem_line(problem: Problem) -> str:
    return str(problem)


def finding_lines(findings: list[Finding]) -> list[str]:
    width = max((len(f.check) for f in findings), default=0)
    lines = []
    for f in findings:
        line = f"{f.level:<4}  {f.check:<{width}}  {f.detail}"
        lines.append(line + (f" — {f.fix}" if f.fix else ""))
    return lines


def findings_json(findings: list[Finding]) -> list[dict[str, str]]:
    return [{"check": f.check, "level": f.level, "detail": f.detail, "fix": f.fix} for f in findings]


def delivery_line(report: DeliveryReport) -> str:
    line = (
        f"sent {report.sent}, deferred {report.deferred}, failed {report.failed}, skipped {report.skipped} "
        f"in {report.elapsed:.1f} s ({report.rate:.0f}/s)"
    )
    if report.earlier > 0:
        line += f"; {report.earlier} had it already (each subscriber gets an issue once)"
    if report.earlier_failed > 0:
        line += f"; {report.earlier_failed} failed in an earlier run (see `digest status`)"
    if report.stopped:
        line += f"; stopped: {report.stopped}"
    if report.waiting:
        line += f"; {report.waiting} not delivered yet (see `digest status`)"
    return line


def cycle_lines(report: CycleReport) -> list[str]:
    """The summary of one cycle: one line, plus where the mail went."""
    head = f"week {report.week.label}: "
    if report.delivery is None:
        return [head + "no entries, nothing sent (email.empty_week = skip)"]
    lines = [head + f"{report.entries} entries; {delivery_line(report.delivery)}"]
    if report.dry_run:
        lines[0] += " (dry run: nothing was sent)"
    else:
        lines.append(f"delivered via {report.transport}")
    return lines


def cycle_log_line(report: CycleReport) -> str:
    """One line for the service log."""
    delivery = report.delivery
    line = f"week {report.week.label}: {report.entries} entries"
    if delivery is None:
        return line + f", published {report.published} issue(s) (no entries: nothing sent) in {report.duration:.1f} s"
    line += f", sent {delivery.sent}, deferred {delivery.deferred}, failed {delivery.failed} in {report.duration:.1f} s"
    if delivery.stopped:
        line += f" (stopped: {delivery.stopped}; {delivery.outstanding} left for the next run)"
    elif delivery.outstanding:
        line += f" ({delivery.outstanding} not sent yet)"
    return line


def failures_json(report: DeliveryReport | IssueStatus) -> list[dict[str, str]]:
    return [{"recipient": f.recipient, "state": str(f.state), "reply": f.reply} for f in report.failures]


def delivery_json(report: DeliveryReport) -> dict[str, Any]:
    return {
        "issue": report.issue_id,
        "sent": report.sent,
        "deferred": report.deferred,
        "failed": report.failed,
        "skipped": report.skipped,
        "earlier": report.earlier,
        "earlier_failed": report.earlier_failed,
        "waiting": report.waiting,
        "outstanding": report.outstanding,
        "seconds": round(report.elapsed, 3),
        "rate": round(report.rate, 1),
        "stopped": report.stopped,
        "failures": failures_json(report),
    }


def cycle_json(report: CycleReport) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "week": report.week.label,
        "entries": report.entries,
        "dry_run": report.dry_run,
        "published": report.published,
        "transport": report.transport,
    }
    if report.delivery is None:
        payload.update({"sent": 0, "note": "no entries: nothing sent"})
    else:
        payload.update(delivery_json(report.delivery))
    return payload


def status_lines(week_label: str, status: IssueStatus) -> list[str]:
    lines = [f"issue {week_label}"]
    lines += [f"  {name:<9} {count}" for name, count in sorted((str(k), v) for k, v in status.counts.items())]
    lines += [f"    skipped: {reason}: {count}" for reason, count in sorted(status.skipped.items())]
    if not status.total:
        lines.append("  nothing recorded yet")
    lines += [f"  {f.state}: {f.recipient}: {f.reply}" for f in status.failures]
    return lines


def status_json(week_label: str, status: IssueStatus) -> dict[str, Any]:
    return {
        "week": week_label,
        "counts": {str(k): v for k, v in status.counts.items()},
        "skipped": dict(status.skipped),
        "failures": failures_json(status),
    }


__all__ = [
    "State",
    "cycle_json",
    "cycle_lines",
    "cycle_log_line",
    "delivery_json",
    "delivery_line",
    "finding_lines",
    "findings_json",
    "problem_line",
    "status_json",
    "status_lines",
]
