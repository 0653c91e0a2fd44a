"""Reports -> text lines and JSON: the CLI prints them, the service logs them. Nothing here decides
anything; every number comes from the report objects in digest.records."""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from digest.models import Entry, Problem, RenderedIssue, State

if TYPE_CHECKING:  # only named here: a preview prints none of them, and needs no digest.records
    from digest.records import (
        BounceReport,
        CycleReport,
        DeliveryReport,
        Finding,
        ImportReport,
        IssueRun,
        IssueStatus,
        Review,
        SubscriberRecord,
    )


def display_width(text: str) -> int:
    """Columns `text` takes on a terminal: Korean, Chinese and Japanese characters take two, combining marks
    none."""
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _cut(text: str, width: int, keep_end: bool) -> str:
    """`text` in at most `width` columns, "…" where it was cut (its end kept for a path)."""
    if display_width(text) <= width:
        return text
    chars = list(reversed(text)) if keep_end else list(text)
    kept: list[str] = []
    used = 1  # the "…"
    for c in chars:
        used += display_width(c)
        if used > width:
            break
        kept.append(c)
    return "…" + "".join(reversed(kept)) if keep_end else "".join(kept) + "…"


def _pad(text: str, width: int) -> str:
    return text + " " * (width - display_width(text))


def table_lines(header: Sequence[str], rows: Sequence[Sequence[str]], width: int | None = None) -> list[str]:
    """The header line and one line a row, columns two spaces apart. Within `width` (a terminal's columns)
    the widest columns after the first are cut with "…" (a last column's start, which is a path, is cut
    first), to at least 12 columns each; with no width nothing is cut."""
    widths = [max([display_width(h)] + [display_width(r[i]) for r in rows]) for i, h in enumerate(header)]
    if width is not None:
        while sum(widths) + 2 * (len(widths) - 1) > width:
            shrinkable = [i for i in range(1, len(widths)) if widths[i] > 12]
            if not shrinkable:
                break
            widest = max(shrinkable, key=lambda i: (widths[i], i))  # a tie: the last column gives first
            widths[widest] -= 1
    last = len(widths) - 1
    lines = []
    for row in [tuple(header), *rows]:
        cells = [_cut(cell, widths[i], keep_end=i == last and i > 0) for i, cell in enumerate(row)]
        lines.append("  ".join(_pad(c, widths[i]) if i < last else c for i, c in enumerate(cells)))
    return lines


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
    verb = "would send" if report.dry_run else "sent"  # a dry run builds each message and sends none
    line = (
        f"{verb} {report.sent}, deferred {report.deferred}, failed {report.failed}, skipped {report.skipped} "
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


def counted(n: int, one: str, many: str) -> str:
    """ "1 entry", "2 entries"."""
    return f"{n} {one if n == 1 else many}"


def _entries_text(run: IssueRun) -> str:
    text = counted(len(run.entries) + len(run.late), "entry", "entries")
    return text + (f" ({len(run.late)} late)" if run.late else "")


def cycle_lines(report: CycleReport) -> list[str]:
    """The summary of one cycle: one line per language's issue (one line on a one-language site), plus
    where the mail went."""
    head = f"week {report.week.label}"
    lines = []
    for run in report.issues:
        name = head + (f" ({run.lang})" if run.language else "") + ": "
        if run.delivery is None:
            readers = f" to its {counted(run.readers, 'subscriber', 'subscribers')}" if run.readers else ""
            dry = " (dry run)" if report.dry_run else ""
            lines.append(name + f"no entries, nothing sent{readers} (email.empty_week = skip){dry}")
            continue
        line = name + f"{_entries_text(run)}; {delivery_line(run.delivery)}"
        lines.append(line + (" (dry run: nothing was sent)" if report.dry_run else ""))
    if not lines:
        dry = " (dry run)" if report.dry_run else ""
        return [head + f": no entries, nothing sent (email.empty_week = skip){dry}"]
    if report.delivery is not None and not report.dry_run:
        lines.append(f"delivered via {report.transport}")
    return lines


def cycle_log_line(report: CycleReport) -> str:
    """One line for the service log."""
    delivery = report.delivery
    line = f"week {report.week.label}: {counted(report.entries, 'entry', 'entries')}"
    late = sum(len(run.late) for run in report.issues)
    if late:
        line += f" ({late} late)"
    if len(report.issues) > 1:
        line += f" in {len(report.issues)} languages"
    if delivery is None:
        return line + f", published {report.published} issue(s) (no entries: nothing sent) in {report.duration:.1f} s"
    line += f", sent {delivery.sent}, deferred {delivery.deferred}, failed {delivery.failed} in {report.duration:.1f} s"
    if delivery.stopped:
        line += f" (stopped: {delivery.stopped}; {delivery.outstanding} left for the next run)"
    elif delivery.outstanding:
        line += f" ({delivery.outstanding} not sent yet)"
    return line


def size_line(rendered: RenderedIssue, limit_bytes: int) -> str:
    """What the size guard did, in the words `digest preview` prints."""
    line = f"email: {rendered.html_size / 1000:.1f} KB HTML (limit {limit_bytes / 1000:.0f} KB)"
    line += f", {len(rendered.text.encode()) / 1000:.1f} KB text"
    if rendered.omitted:
        shown = len(rendered.issue.all_entries)
        return (
            line
            + f" — over the limit with full posts and with summaries: summaries of {shown} entries, "
            + (f"{rendered.omitted} more left to the archive link")
        )
    if rendered.summarized:
        return line + " — over the limit with full posts: summaries instead"
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


def entry_json(entry: Entry) -> dict[str, str]:
    return {"id": entry.id, "title": entry.title, "date": entry.published_at.isoformat(), "url": entry.url}


def cycle_json(report: CycleReport) -> dict[str, Any]:
    """The cycle as JSON: the totals (as before languages existed) and each language's issue with the
    entries it carried, the late arrivals marked."""
    payload: dict[str, Any] = {
        "week": report.week.label,
        "entries": report.entries,
        "late": [entry_json(e) | {"language": run.lang} for run in report.issues for e in run.late],
        "dry_run": report.dry_run,
        "published": report.published,
        "transport": report.transport,
        "warnings": [{"source": p.source, "message": p.message} for p in report.problems],
    }
    if report.delivery is None:
        payload.update({"sent": 0, "note": "no entries: nothing sent"})
    else:
        payload.update(delivery_json(report.delivery))
    payload["issues"] = [
        {
            "issue": run.issue_id,
            "language": run.lang,
            "subscribers": run.readers,
            "entries": [entry_json(e) | {"late": False} for e in run.entries]
            + [entry_json(e) | {"late": True} for e in run.late],
        }
        | (delivery_json(run.delivery) if run.delivery else {"sent": 0, "note": "no entries: nothing sent"})
        for run in report.issues
    ]
    return payload


def status_lines(
    week_label: str,
    status: IssueStatus,
    others: Mapping[str, IssueStatus] | None = None,
    review: Review | None = None,
    *,
    reviewing: bool = False,
) -> list[str]:
    """`digest status`: the issue's counts, why some were skipped, its failures; then, when the ledger holds
    the same week in other languages, one line each, so a failure there is not out of sight. With reviews
    on (`reviewing`), the owner's answer first (`review`, None when there is none)."""
    lines = [f"issue {week_label}"]
    if reviewing:
        lines.append(f"  review    {review_words(review)}")
    lines += [f"  {name:<9} {count}" for name, count in sorted((str(k), v) for k, v in status.counts.items())]
    lines += [f"    skipped: {reason}: {count}" for reason, count in sorted(status.skipped.items())]
    if not status.total:
        lines.append(
            "  nothing recorded: no send of this issue yet (for a past week: its run was missed, or it had no"
            " posts; a later issue then carried them as late posts, `digest preview --week` says which)"
        )
    lines += [f"  {f.state}: {f.recipient}: {f.reply}" for f in status.failures]
    waiting = sum(status.counts.get(state, 0) for state in ("pending", "sending", "deferred"))
    if waiting:
        lines.append(
            f"  {waiting} not sent yet: a send under way, or one that stopped; the next `digest send` (or run, or"
            " the service) finishes them, each exactly once"
        )
    for issue_id, other in sorted((others or {}).items()):
        counts = ", ".join(
            f"{count} {name}" for name, count in sorted((str(k), v) for k, v in other.counts.items()) if count
        )
        language = issue_id.partition("/")[0] if "/" in issue_id else ""
        see = f"--lang {language}" if language else "without --lang"
        lines.append(f"also {issue_id}: {counts or 'nothing recorded yet'} (`digest status {see}`)")
    return lines


def review_words(review: Review | None) -> str:
    if review is None or review.state == "pending" or review.decided_at is None:
        return "not answered yet"
    said = f"{review.state} by {review.decided_by} at {review.decided_at.isoformat(timespec='minutes')}"
    return said + ("; with an editor's note" if review.note.strip() else "")


def status_json(issue_id: str, status: IssueStatus) -> dict[str, Any]:
    return {
        "week": issue_id.rsplit("/", 1)[-1],
        "issue": issue_id,
        "counts": {str(k): v for k, v in status.counts.items()},
        "skipped": dict(status.skipped),
        "failures": failures_json(status),
    }


# -- readers ------------------------------------------------------------------------------------------


def _when(moment: Any) -> str:
    return moment.isoformat(timespec="seconds") if moment else ""


def _paused(record: SubscriberRecord, now_at: Any) -> bool:
    """Paused now: a pause that has run out is kept in the record, and means nothing any more."""
    return record.paused_until is not None and (now_at is None or record.paused_until > now_at)


def subscriber_line(record: SubscriberRecord, now_at: Any = None) -> str:
    extra = [f"lang={record.language}"] if record.language else []
    extra += [f"tags={','.join(record.tags)}"] if record.tags else []
    until = record.paused_until
    if until is not None and _paused(record, now_at):
        # the day in now_at's zone (the site's), as the preference page and the ledger's reason give it
        day = until.astimezone(now_at.tzinfo) if now_at is not None and now_at.tzinfo is not None else until
        extra.append(f"paused until {day.date().isoformat()}")
    extra += ["in the file"] if record.in_file else []
    return "\t".join([record.email, record.name, record.status.value, record.format, " ".join(extra)]).rstrip()


def subscriber_lines(record: SubscriberRecord, now_at: Any = None) -> list[str]:
    """`digest subscribers show`: the record, its consent, its bounce counters and every change."""
    lines = [
        f"{record.email}" + (f" ({record.name})" if record.name else ""),
        f"  status        {record.status.value}",
        f"  format        {record.format}; language {record.language or '(the site default)'}",
        f"  topics        {', '.join(record.tags) or '(everything)'}",
        f"  added         {_when(record.created_at)} by {record.origin}"
        + ("; listed in the file" if record.in_file else ""),
        f"  consent       {_when(record.consent_at) or 'none yet'} {record.consent_method} "
        f"{record.consent_source}".rstrip(),
        f"  bounces       {record.hard_bounces} hard, {record.soft_bounces} soft; {record.complaints} complaint(s)",
    ]
    if record.consent_ip:
        lines.append(f"  consent IP    {record.consent_ip}")
    if record.paused_until:
        over = "" if _paused(record, now_at) else " (over)"
        lines.append(f"  paused until  {_when(record.paused_until)}{over}")
    lines.append("  history")
    for event in record.events:
        status = f" -> {event.status}" if event.status else ""
        lines.append(f"    {_when(event.at)}  {event.kind}{status}: {event.reason}".rstrip(": "))
    return lines


def subscriber_json(record: SubscriberRecord) -> dict[str, Any]:
    return {
        "email": record.email,
        "name": record.name,
        "status": record.status.value,
        "language": record.language,
        "tags": list(record.tags),
        "format": record.format,
        "origin": record.origin,
        "in_file": record.in_file,
        "consent": {
            "at": _when(record.consent_at),
            "method": record.consent_method,
            "source": record.consent_source,
            "ip": record.consent_ip,
        },
        "created_at": _when(record.created_at),
        "updated_at": _when(record.updated_at),
        "paused_until": _when(record.paused_until),
        "bounces": {"hard": record.hard_bounces, "soft": record.soft_bounces, "complaints": record.complaints},
        "events": [{"at": _when(e.at), "kind": e.kind, "status": e.status, "reason": e.reason} for e in record.events],
    }


def import_lines(result: ImportReport) -> list[str]:
    head = "would add" if result.dry_run else "added"
    lines = [
        f"{result.file}: {result.format} export; {head} {result.added}, updated {result.updated}, "
        f"unchanged {result.unchanged}, invalid {len(result.invalid)}"
    ]
    if result.to_confirm:
        verb = "would get" if result.dry_run else "get"
        lines.append(f"{result.to_confirm} without recorded consent {verb} the confirmation mail")
    if not result.dry_run and (result.to_confirm or result.confirmations):
        line = f"confirmation mails sent: {result.confirmations}"
        if result.confirmations > result.to_confirm:
            line += " (with those an earlier import still owed)"
        elif result.confirmations < result.to_confirm:
            line += " (the others are sent again by the next import or the service; see `digest status`)"
        lines.append(line)
    lines += [f"invalid: {problem}" for problem in result.invalid]
    lines += [f"repeated: {problem}" for problem in result.repeated]
    return lines


def import_json(result: ImportReport) -> dict[str, Any]:
    return {
        "file": result.file,
        "format": result.format,
        "dry_run": result.dry_run,
        "added": result.added,
        "updated": result.updated,
        "unchanged": result.unchanged,
        "to_confirm": result.to_confirm,
        "confirmations": result.confirmations,
        "invalid": [{"line": p.line, "message": p.message} for p in result.invalid],
        "repeated": [{"line": p.line, "message": p.message} for p in result.repeated],
    }


def bounce_lines(result: BounceReport) -> list[str]:
    lines = [bounce_log_line(result)]
    for f in result.findings:
        if f.kind == "ignored":
            continue
        who = f.email or "(no subscriber)"
        lines.append(f"  {f.kind:<11} {who}: {f.reason}" + (f" -> {f.status}" if f.status else ""))
    return lines


def bounce_log_line(result: BounceReport) -> str:
    counts: dict[str, int] = {}
    for f in result.findings:
        counts[f.kind] = counts.get(f.kind, 0) + 1
    changed = sum(1 for f in result.findings if f.status)
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "nothing"
    return (
        f"{result.source}: {result.messages} message(s): {kinds}; {changed} status change(s), {result.unknown} unknown"
    )


def bounce_json(result: BounceReport) -> dict[str, Any]:
    return {
        "mailbox": result.source,
        "messages": result.messages,
        "unknown": result.unknown,
        "findings": [
            {"kind": f.kind, "email": f.email, "reason": f.reason, "status": f.status} for f in result.findings
        ],
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
    "size_line",
    "status_json",
    "status_lines",
]
