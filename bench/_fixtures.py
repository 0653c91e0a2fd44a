"""Invented inputs for the benchmarks: a site folder with a digest.toml, a ~40 KB issue, subscribers.

Everything here is made up for the benchmarks (English and Korean sentences written for this file);
nothing is read from real blogs.
"""

from __future__ import annotations

import html
import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from digest.models import (
    RECIPIENT_EMAIL_MARK,
    UNSUBSCRIBE_URL_MARK,
    Entry,
    Issue,
    RenderedIssue,
    Site,
    Subscriber,
    Week,
)

BASE_URL = "https://bench.example.com/"
SECRET = "bench-secret-not-for-production-0123456789"
TZ = "Asia/Seoul"
NOW_AT = datetime(2024, 3, 11, 9, 0, tzinfo=ZoneInfo(TZ))
WEEK = Week(
    start_at=datetime(2024, 3, 4, tzinfo=ZoneInfo(TZ)),
    end_at=datetime(2024, 3, 11, tzinfo=ZoneInfo(TZ)),
    label="2024-W10",
)

_EN = (
    "The greenhouse thermometer finally stopped lying about the night frost.",
    "We rewired the porch lamp so it no longer hums when the kettle boils.",
    "A small parser for recipe cards turned out to need three kinds of fractions.",
    "Most of the week went into moving old photos onto the spare disk.",
    "The bicycle bell is louder than the bicycle now, which feels right.",
    "Batch jobs run at dawn because that is when the neighbours sleep.",
    "Tea notes: roasted barley wins over cinnamon for rainy afternoons.",
    "I tried writing the changelog first and the code second; it helped.",
)
_KO = (
    "이번 주에는 베란다 화분에 물 주는 타이머를 새로 달았습니다.",
    "작은 스크립트 하나로 사진 폴더를 날짜별로 정리했어요.",
    "비 오는 날에는 보리차가 계피차보다 잘 어울린다는 결론입니다.",
    "자전거 벨을 바꿨더니 골목에서 다들 돌아봅니다.",
    "새벽 배치 작업은 이웃이 잠든 시간에 맞춰 돌립니다.",
)


def _paragraphs(rng: random.Random, count: int) -> list[str]:
    out = []
    for _ in range(count):
        sentences = [rng.choice(_EN) for _ in range(3)] + [rng.choice(_KO)]
        rng.shuffle(sentences)
        out.append(" ".join(sentences))
    return out


def make_site(root: Path) -> Site:
    return Site(
        title="Bench Weekly",
        base_url=BASE_URL,
        root=root,
        source_dirs=(root / "posts",),
        timezone=TZ,
        permalink="/:year/:month/:day/:title/",
    )


def make_issue(site: Site, entries: int = 12, paragraphs: int = 5, seed: int = 7) -> Issue:
    """An Issue of invented entries (used with the real templater when it exists)."""
    rng = random.Random(seed)
    items = []
    for i in range(entries):
        published_at = WEEK.start_at + timedelta(hours=11 * i + 3)
        slug = f"note-{i:02d}"
        url = f"{BASE_URL}{published_at:%Y/%m/%d}/{slug}/"
        body = "".join(f"<p>{html.escape(p)}</p>\n" for p in _paragraphs(rng, paragraphs))
        items.append(
            Entry(
                id=f"tag:bench.example.com,{published_at:%Y-%m-%d}:/posts/{slug}.md",
                title=f"Week note {i + 1}: {rng.choice(_KO)[:12]}",
                published_at=published_at,
                url=url,
                source=f"posts/{slug}.md",
                body_html=body,
                summary_html=body.split("\n", 1)[0],
                tags=("notes",),
            )
        )
    items.sort(key=lambda e: e.published_at, reverse=True)
    return Issue(site=site, week=WEEK, entries=tuple(items))


def synthetic_rendered(issue: Issue, target_bytes: int = 40_000) -> RenderedIssue:
    """A RenderedIssue shaped like the templater's output (inlined CSS, both markers), grown to target_bytes
    of HTML + text; used when digest.templater is not available."""
    rng = random.Random(11)
    head = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Bench Weekly</title></head>'
        '<body style="margin:0;padding:0;background:#f4f4f4;font-family:Helvetica,Arial,sans-serif">'
        '<table role="presentation" width="100%" style="border-collapse:collapse"><tr><td align="center">'
        '<table role="presentation" width="600" style="background:#ffffff;border-collapse:collapse">\n'
    )
    foot = (
        '<tr><td style="padding:16px;font-size:12px;color:#777777">'
        f"Sent to {RECIPIENT_EMAIL_MARK}. "
        f'<a href="{UNSUBSCRIBE_URL_MARK}" style="color:#777777">Unsubscribe</a></td></tr>'
        "</table></td></tr></table></body></html>\n"
    )
    html_parts: list[str] = [head]
    text_parts: list[str] = ["Bench Weekly, 2024-W10\n\n"]
    size = len(head.encode()) + len(foot.encode())
    i = 0
    while size < target_bytes * 0.97:
        title = f"Week note {i + 1}"
        paras = _paragraphs(rng, 2)
        block = (
            '<tr><td style="padding:16px 24px;font-size:16px;line-height:1.5;color:#222222">'
            f'<h2 style="font-size:20px;margin:0 0 8px 0"><a href="{BASE_URL}2024/03/0{i % 7 + 4}/note-{i}/" '
            f'style="color:#1a4fa0;text-decoration:none">{title}</a></h2>'
            + "".join(f'<p style="margin:0 0 12px 0">{html.escape(p)}</p>' for p in paras)
            + "</td></tr>\n"
        )
        text = f"{title}\n{BASE_URL}2024/03/0{i % 7 + 4}/note-{i}/\n\n" + "\n\n".join(paras) + "\n\n"
        html_parts.append(block)
        text_parts.append(text)
        size += len(block.encode()) + len(text.encode())
        i += 1
    html_parts.append(foot)
    text_parts.append(f"Sent to {RECIPIENT_EMAIL_MARK}.\nUnsubscribe: {UNSUBSCRIBE_URL_MARK}\n")
    body = "".join(html_parts)
    return RenderedIssue(
        issue=issue,
        subject="Bench Weekly: 2024-W10 — 이번 주 소식",
        html=body,
        text="".join(text_parts),
        preheader="Greenhouse, bicycles and barley tea",
        archive_url=f"{BASE_URL}newsletter/2024-W10/",
        html_size=len(body.encode()),
    )


def write_site(root: Path, smtp_port: int, connections: int = 4) -> Path:
    """A site folder whose digest.toml points SMTP at smtp-sink and the ledger at a SQLite file."""
    (root / "posts").mkdir(parents=True, exist_ok=True)
    config = root / "digest.toml"
    ledger = root / "state" / "ledger.sqlite3"
    config.write_text(
        f"""[site]
title = "Bench Weekly"
url = "{BASE_URL}"
timezone = "{TZ}"
source = "posts"

[email]
from = "Bench Weekly <digest@bench.example.com>"
public_url = "{BASE_URL}"

[smtp]
host = "127.0.0.1"
port = {smtp_port}
mode = "plain"
connections = {connections}
timeout = 60

[state]
dir = "state"
database = "sqlite:///{ledger}"
""",
        encoding="utf-8",
    )
    (root / "state").mkdir(exist_ok=True)
    return config


def subscribers(count: int) -> Iterator[Subscriber]:
    for i in range(count):
        # Every tenth subscriber has a Korean name: exercises the RFC 2047 path of the To header.
        name = f"구독자 {i}" if i % 10 == 0 else f"Reader {i}"
        yield Subscriber(email=f"user{i}@example.com", name=name)
