"""Tables over the subscriber's choices: tag filter × format × an empty week × inactive, through
pipeline.render_variants (which variant each gets) and pipeline.run_cycle (what lands in the outbox and what
the ledger says)."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from digest import pipeline
from digest.config import Settings
from digest.models import Issue, State, Subscriber
from tests.support_service import Post, maildir_messages, settings_for, text_of, write, write_site
from tests.support_templater import make_issue, make_settings

TAGS = {"all": (), "garden": ("garden",), "none matches": ("knitting",)}
FORMATS = ("html", "text")
CASES = list(itertools.product(TAGS, FORMATS, (True, False), (False, True)))


def case_id(case: tuple[str, str, bool, bool]) -> str:
    tags, fmt, active, empty = case
    return f"{tags}-{fmt}-{'active' if active else 'inactive'}-{'empty' if empty else 'week'}"


def expected_titles(tags: str, empty: bool, issue: Issue) -> list[str] | None:
    """The entry titles this subscriber's variant holds; None when they get nothing."""
    if empty:
        return []  # the "no new posts" note goes to everyone
    wanted = [e.title for e in issue.entries if not TAGS[tags] or set(TAGS[tags]) & set(e.tags + e.categories)]
    return wanted or None


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_render_variants(case: tuple[str, str, bool, bool]) -> None:
    tags, fmt, active, empty = case
    issue = make_issue()
    if empty:
        issue = replace(issue, entries=())
    sub = Subscriber("reader@example.com", tags=TAGS[tags], format=fmt, active=active)
    variants, skipped = pipeline.render_variants(issue, make_settings(), [sub])
    if not active:
        # deliver() records inactive subscribers itself
        assert (variants, skipped) == ({}, {})
        return
    titles = expected_titles(tags, empty, make_issue())
    if titles is None:
        assert variants == {} and skipped == {"reader@example.com": "no entries this week match the subscriber's tags"}
        return
    assert list(variants) == [sub.variant] and skipped == {}
    assert [e.title for e in variants[sub.variant].issue.entries] == titles


NOW_AT = datetime(2024, 4, 1, 9, 0, tzinfo=ZoneInfo("Asia/Seoul"))
POSTS = [
    Post("garden", "Garden notes", NOW_AT - timedelta(days=3), tags=("garden",)),
    Post("rust", "Rust notes", NOW_AT - timedelta(days=2), tags=("rust",)),
]


def cycle_site(tmp_path: Path, empty: bool, mode: str) -> Settings:
    posts = [] if empty else POSTS
    config = write_site(tmp_path, posts, [])
    # every combination in one subscribers file
    lines = ["subscribers:"]
    for n, (tags, fmt, active) in enumerate(itertools.product(TAGS, FORMATS, (True, False))):
        lines += [f"  - email: p{n}@example.com", f"    tags: {list(TAGS[tags])}", f"    format: {fmt}"]
        lines += [f"    active: {str(active).lower()}"]
    write(tmp_path / "subscribers.yaml", "\n".join(lines) + "\n")
    text = config.read_text("utf-8").replace("[email]\n", f'[email]\nempty_week = "{mode}"\n')
    config.write_text(text, "utf-8")
    return settings_for(config)


@pytest.mark.parametrize("empty", [False, True], ids=["week", "empty week"])
@pytest.mark.parametrize("mode", ["skip", "note"])
def test_run_cycle_sends_each_subscriber_what_their_choices_say(tmp_path: Path, empty: bool, mode: str) -> None:
    settings = cycle_site(tmp_path, empty, mode)
    week = pipeline.select_week(settings, NOW_AT, "last")
    report = pipeline.run_cycle(settings, NOW_AT, week, clock=lambda: datetime.now(UTC))
    received = {str(m["To"]).split("<")[-1].rstrip(">"): m for m in maildir_messages(settings.outbox)}
    if empty and mode == "skip":
        assert report.delivery is None and received == {}
        return
    assert report.delivery is not None
    rows = {d.recipient: d for d in pipeline.open_ledger(settings).deliveries(week.label)}
    for n, (tags, fmt, active) in enumerate(itertools.product(TAGS, FORMATS, (True, False))):
        address = f"p{n}@example.com"
        wanted = [] if empty else [p.title for p in POSTS if not TAGS[tags] or set(TAGS[tags]) & set(p.tags)]
        gets = active and (empty or bool(wanted))
        assert (address in received) is gets, address
        if not active:
            assert (rows[address].state, rows[address].reply) == (State.SKIPPED, "inactive")
            continue
        if not gets:
            assert rows[address].state == State.SKIPPED and "tags" in rows[address].reply
            continue
        message = received[address]
        assert rows[address].state == State.SENT
        assert message.get_content_type() == ("text/plain" if fmt == "text" else "multipart/alternative")
        body = text_of(message)
        for post in POSTS:
            assert (post.title in body) is (post.title in wanted), (address, post.title)
        if empty:
            assert "no new posts" in body.lower() or "새 글이 없습니다" in body
