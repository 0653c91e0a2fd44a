"""No post is ever missed by email, none is mailed twice: late arrivals through pipeline.run_cycle (the same
code as `digest send`, `digest run` and the service), across reruns, stops and edits, on SQLite and
PostgreSQL; and the table that remembers what each issue carried."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.etree import ElementTree
from zoneinfo import ZoneInfo

import pytest

from digest import pipeline, scheduler
from digest.config import Settings
from digest.records import CycleReport
from digest.sender.carried import read_carried, record_feed_dates, record_issue
from digest.sender.store import Store
from tests.support_postgres import ledger_url
from tests.support_service import Post, maildir_messages, settings_for, text_of, write, write_site
from tests.test_scheduler import StopAfter

__all__ = ["ledger_url"]

SEOUL = ZoneInfo("Asia/Seoul")
READERS = ["ana@example.com", "bo@example.com", "chul@example.com"]


def monday(day: int) -> datetime:
    """A Monday 09:00 in Seoul in November 2026: the weekly run sends the week that just ended."""
    return datetime(2026, 11, day, 9, 0, tzinfo=SEOUL)


def at(day: int, hour: int = 10) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=SEOUL)


def add(root: Path, slug: str, title: str, when: datetime, extra: str = "") -> Path:
    return write(
        root / "posts" / f"{when:%Y-%m-%d}-{slug}.md",
        f'---\ntitle: "{title}"\ndate: {when.isoformat(sep=" ")}\n{extra}---\n\n{title}: the body.\n',
    )


def cycle(
    settings: Settings,
    now_at: datetime,
    store: Store,
    week: str | None = "last",
    since: str = "",
    until: str = "",
    **options: object,
) -> CycleReport:
    return pipeline.run_cycle(
        settings,
        now_at,
        pipeline.select_week(settings, now_at, week, since or None, until or None),
        clock=lambda: datetime.now(UTC),
        store=store,
        **options,  # type: ignore[arg-type]
    )


def copies(settings: Settings, titles: list[str]) -> dict[tuple[str, str], int]:
    """(recipient, title) -> how many messages carried that title."""
    count: Counter[tuple[str, str]] = Counter()
    for message in maildir_messages(settings.outbox):
        body = text_of(message)
        to = str(message["To"]).strip("<>")
        for title in titles:
            count[(to, title)] += body.count(f". {title}\n")
    return dict(count)


@pytest.fixture
def site(tmp_path: Path) -> tuple[Path, Settings]:
    config = write_site(tmp_path, [Post("first", "First post", at(3))], READERS)
    return tmp_path, settings_for(config)


def test_a_late_post_goes_into_the_next_issue_once(site: tuple[Path, Settings], ledger_url: str) -> None:
    root, settings = site
    store = Store(ledger_url)
    try:
        assert cycle(settings, monday(9), store).entries == 1  # W45: the first issue
        add(root, "backdated", "Backdated notes", at(4))  # written late, dated in W45 (already sent)
        add(root, "draft", "Was a draft", at(12), "draft: true\n")
        add(root, "second", "Second post", at(11))
        report = cycle(settings, monday(16), store)  # W46
        (run,) = report.issues
        assert [e.title for e in run.entries] == ["Second post"] and [e.title for e in run.late] == ["Backdated notes"]
        draft = root / "posts" / "2026-11-12-draft.md"
        draft.write_text(draft.read_text().replace("draft: true\n", ""))  # made public after W46 went out
        again = cycle(settings, monday(16), store)  # a rerun of W46: the same issue, nothing new sent
        assert again.delivery is not None and again.delivery.sent == 0 and again.issues[0].late == run.late
        later = cycle(settings, monday(23), store)  # W47: no post of its own, the un-drafted one is late
        assert [e.title for e in later.issues[0].late] == ["Was a draft"] and later.issues[0].entries == ()
        assert cycle(settings, monday(30), store).delivery is None  # W48: nothing left
    finally:
        store.close()
    titles = ["First post", "Backdated notes", "Second post", "Was a draft"]
    assert copies(settings, titles) == {(r, t): 1 for r in READERS for t in titles}


def test_the_first_issue_does_not_mail_the_back_catalogue(tmp_path: Path) -> None:
    posts = [Post(f"old{n}", f"Old post {n}", at(2) - timedelta(weeks=n)) for n in range(1, 6)]
    settings = settings_for(write_site(tmp_path, [*posts, Post("new", "New post", at(12))], READERS))
    report = pipeline.run_cycle(settings, monday(16), pipeline.select_week(settings, monday(16), "last"),
                                clock=lambda: datetime.now(UTC))  # fmt: skip
    assert [e.title for e in report.issues[0].entries] == ["New post"] and report.issues[0].late == ()
    assert all(n == 0 for (_, title), n in copies(settings, [p.title for p in posts]).items())


def test_a_rerun_after_a_stop_sends_the_very_same_issue(site: tuple[Path, Settings]) -> None:
    root, settings = site
    store = pipeline.open_store(settings)
    try:
        cycle(settings, monday(9), store)  # W45
        add(root, "second", "Second post", at(11))
        stop = threading.Event()
        first = cycle(settings, monday(16), store, stop=stop, transports=lambda: StopAfter(settings.outbox, stop, 1))
        assert first.delivery is not None and first.delivery.sent == 1 and first.delivery.outstanding == 2
        add(root, "meanwhile", "Turned up meanwhile", at(5))  # dated in W45, visible only now
        second = cycle(settings, monday(16), store)
        assert second.delivery is not None and second.delivery.sent == 2
        assert second.issues[0].late == () and [e.title for e in second.issues[0].entries] == ["Second post"]
        third = cycle(settings, monday(23), store)
        assert [e.title for e in third.issues[0].late] == ["Turned up meanwhile"]
    finally:
        store.close()
    titles = ["Second post", "Turned up meanwhile"]
    assert copies(settings, titles) == {(r, t): 1 for r in READERS for t in titles}


@pytest.mark.parametrize(
    "change",
    [
        lambda p: p.write_text(p.read_text().replace("the body", "the body, rewritten and longer")),
        lambda p: p.write_text(p.read_text().replace('"Second post"', '"Second post (updated)"')),
        lambda p: p.rename(p.with_name("2026-11-11-renamed.md")),
        lambda p: p.write_text(p.read_text().replace("2026-11-11 10:00", "2026-11-11 11:30")),
    ],
    ids=["body edited", "title edited", "file renamed", "time corrected"],
)
def test_an_edited_post_is_not_mailed_again(site: tuple[Path, Settings], change: object) -> None:
    root, settings = site
    store = pipeline.open_store(settings)
    try:
        cycle(settings, monday(9), store)
        post = add(root, "second", "Second post", at(11))
        cycle(settings, monday(16), store)
        change(post)  # type: ignore[operator]
        report = cycle(settings, monday(23), store)
        assert report.delivery is None and report.issues == ()
    finally:
        store.close()


def _retitle(p: Path) -> Path:
    p.write_text(p.read_text().replace('"Second post"', '"Second post, typo fixed"'))
    return p


def _rename(p: Path) -> Path:
    return p.rename(p.with_name(p.name.replace(".md", "-moved.md")))


def _retime(p: Path) -> Path:
    p.write_text(p.read_text().replace("2026-11-11 10:00", "2026-11-11 11:30"))
    return p


@pytest.mark.parametrize(
    ("first", "then"),
    [(_retitle, _rename), (_rename, _retitle), (_rename, _retime), (_retime, _rename), (_retitle, _retime)],
    ids=["title then file", "file then title", "file then time", "time then file", "title then time"],
)
def test_two_edits_in_two_weeks_do_not_mail_a_post_again(
    site: tuple[Path, Settings], ledger_url: str, first: Any, then: Any
) -> None:
    """Each edit alone leaves the post one name it was mailed under; the second finds it by the names it
    had after the first."""
    root, settings = site
    store = Store(ledger_url)
    try:
        cycle(settings, monday(9), store)  # W45
        post = add(root, "second", "Second post", at(11))
        assert cycle(settings, monday(16), store).entries == 1  # W46 mails it
        post = first(post)
        add(root, "third", "Third post", at(18))
        assert [e.title for e in cycle(settings, monday(23), store).issues[0].late] == []  # W47
        then(post)
        add(root, "fourth", "Fourth post", at(25))
        report = cycle(settings, monday(30), store)  # W48
        assert [e.title for e in report.issues[0].entries] == ["Fourth post"] and report.issues[0].late == ()
    finally:
        store.close()
    assert sum(n for (_, title), n in copies(settings, ["Second post"]).items()) == len(READERS)


def test_an_entry_is_never_in_two_issues(site: tuple[Path, Settings]) -> None:
    root, settings = site
    store = pipeline.open_store(settings)
    try:
        cycle(settings, monday(9), store)  # W45
        add(root, "backdated", "Backdated", at(5))
        add(root, "w46", "Dated in W46", at(12))
        # sent by hand as one window over W45 and W46, on Thursday of W46
        window = cycle(settings, at(12, 20), store, week=None, since="2026-11-02", until="2026-11-15")
        assert sorted(e.title for e in window.issues[0].entries) == ["Backdated", "Dated in W46"]
        weekly = cycle(settings, monday(16), store)  # W46: everything in it went out already
        assert weekly.delivery is None
        again = cycle(settings, monday(16), store, week="2026-W45")  # W45 again: exactly what it carried
        assert again.delivery is not None and again.delivery.sent == 0
        assert [e.title for e in again.issues[0].entries] == ["First post"]
    finally:
        store.close()
    titles = ["First post", "Backdated", "Dated in W46"]
    assert copies(settings, titles) == {(r, t): 1 for r in READERS for t in titles}


def test_a_dry_run_and_a_preview_record_nothing(site: tuple[Path, Settings]) -> None:
    root, settings = site
    store = pipeline.open_store(settings)
    try:
        cycle(settings, monday(9), store)
        add(root, "late", "Late one", at(6))
        dry = cycle(settings, monday(16), store, dry_run=True)
        assert [e.title for e in dry.issues[0].late] == ["Late one"]
        shown = pipeline.preview(settings, monday(16), pipeline.select_week(settings, monday(16), "last"), store=store)
        assert [e.title for e in shown.issue.late] == ["Late one"]
        assert "Late one" in shown.files["email.txt"].read_text("utf-8")
        real = cycle(settings, monday(16), store)
        assert [e.title for e in real.issues[0].late] == ["Late one"]
    finally:
        store.close()


def test_the_weekly_service_carries_late_posts(site: tuple[Path, Settings]) -> None:
    root, settings = site
    scheduler.run_week(settings, monday(9))
    add(root, "late", "Deployed on Tuesday", at(8, 23))  # Sunday night, on the site only after the send
    result = scheduler.run_week(settings, monday(16))
    assert [e.title for e in result.issues[0].late] == ["Deployed on Tuesday"]
    assert scheduler.run_week(settings, monday(23)).delivery is None
    assert copies(settings, ["Deployed on Tuesday"]) == {(r, "Deployed on Tuesday"): 1 for r in READERS}


def test_record_issue_is_idempotent_and_an_entry_stays_with_its_first_issue(tmp_path: Path, ledger_url: str) -> None:
    settings = settings_for(write_site(tmp_path, [Post("a", "A", at(10)), Post("b", "B", at(11))], []))
    result = pipeline.build(settings, monday(16), pipeline.select_week(settings, monday(16), "last"))
    issue = result.issue
    store = Store(ledger_url)
    try:
        first = record_issue(store, issue, monday(16))
        assert record_issue(store, issue, monday(23)) == first  # again: the same keys, nothing added
        custom = pipeline.select_week(settings, monday(16), None, "2026-11-10", "2026-11-20")
        other = record_issue(store, type(issue)(issue.site, custom, issue.entries), monday(16))
        assert other == frozenset()  # both entries stay with the first issue
        state = read_carried(store)[""]
        assert state.first_start_at == issue.week.start_at
        assert set(state.planned) == {issue.id, custom.label} and state.planned[issue.id] == first
    finally:
        store.close()


def published(settings: Settings) -> dict[str, str]:
    """Every archive page and feed, by path in the output folder."""
    out = settings.output.dir
    return {
        p.relative_to(out).as_posix(): p.read_text("utf-8")
        for p in out.rglob("*")
        if p.suffix in (".html", ".xml", ".json")
    }


def test_the_archive_and_the_feeds_keep_what_each_issue_mailed(tmp_path: Path, ledger_url: str) -> None:
    """With two issues in the feeds: a late post is on the page and in the feed entry of the issue that
    mailed it, even dated before the feeds' weeks; a post whose date moves after it was mailed stays with
    its issue, in no later one; the older issues' entries never change."""
    config = write_site(tmp_path, [Post("first", "First post", at(3))], READERS)
    config.write_text(config.read_text("utf-8").replace('dir = "out"', 'dir = "out"\nfeed_issues = 2'), "utf-8")
    settings = settings_for(config)
    store = Store(ledger_url)
    try:
        cycle(settings, monday(9), store, publish=True)  # W45
        add(tmp_path, "second", "Second post", at(11))
        cycle(settings, monday(16), store, publish=True)  # W46
        third = add(tmp_path, "third", "Third post", at(18))
        cycle(settings, monday(23), store, publish=True)  # W47: the feeds hold W47 and W46
        w46 = published(settings)["2026-W46/index.html"]
        add(tmp_path, "backdated", "Backdated notes", at(4))  # dated in W45, two issues back: late now
        third.write_text(third.read_text().replace("2026-11-18", "2026-11-26"))  # moved into W48
        add(tmp_path, "fourth", "Fourth post", at(25))
        report = cycle(settings, monday(30), store, publish=True)  # W48
        assert [e.title for e in report.issues[0].late] == ["Backdated notes"]
        assert [e.title for e in report.issues[0].entries] == ["Fourth post"]  # the moved post went out in W47
        files = published(settings)
        assert "Backdated notes" in files["2026-W48/index.html"] and "Fourth post" in files["2026-W48/index.html"]
        assert "Third post" not in files["2026-W48/index.html"]
        assert "Third post" in files["2026-W47/index.html"]  # where it was mailed, not where it is dated now
        for feed in ("atom.xml", "rss.xml", "feed.json"):
            assert files[feed].count("Backdated notes") >= 1 and "2026-W47" in files[feed], feed
        assert "Third post" in files["index.html"] and "Backdated notes" in files["index.html"]
        assert files["2026-W46/index.html"] == w46  # an older issue's page is left as it was
        w47 = pipeline.select_week(settings, monday(30), "2026-W47")
        preview = pipeline.preview(settings, monday(30), w47, store=store)
        assert [e.title for e in preview.issue.entries] == ["Third post"] and preview.issue.late == ()
    finally:
        store.close()
    titles = ["First post", "Second post", "Third post", "Backdated notes", "Fourth post"]
    assert copies(settings, titles) == {(r, t): 1 for r in READERS for t in titles}


LOG = """---
title: "Reading log"
---

Things I read.

-----

{items}
-----
"""


def test_a_running_log_item_whose_title_is_fixed_is_not_mailed_again(tmp_path: Path, ledger_url: str) -> None:
    """A typo fixed in a mailed item's title changes its anchor, id and keys: it is still the item mailed,
    listed with its issue, and never mailed again, even after the log's file is renamed too. An item added
    the same day, even with a title alike while the first is still there, is new and mailed once."""
    config = write_site(tmp_path, [Post("first", "First post", at(3))], READERS)
    settings = settings_for(config)
    log = tmp_path / "posts" / "2026-11-04-reading-log.md"
    write(log, LOG.format(items="- 2026-11-04 Pythn notes\n  > about it\n\n- 2026-11-05 Rust weekly\n"))
    store = Store(ledger_url)
    try:
        first = cycle(settings, monday(9), store, publish=True)  # W45: the post and both items
        assert sorted(e.title for e in first.issues[0].entries) == ["First post", "Pythn notes", "Rust weekly"]
        fixed = "- 2026-11-04 Python notes\n  > about it\n\n- 2026-11-05 Rust weekly\n- 2026-11-05 Rust weekly extra\n"
        write(log, LOG.format(items=fixed))
        second = cycle(settings, monday(16), store, publish=True)  # W46: only the new item, late
        assert [e.title for e in second.issues[0].late] == ["Rust weekly extra"]
        assert second.issues[0].entries == ()
        page = published(settings)["2026-W45/index.html"]
        assert "Python notes" in page and "Rust weekly extra" not in page
        assert cycle(settings, monday(23), store).delivery is None  # W47: nothing left to mail
        log.rename(log.with_name("2026-11-04-reading-notes.md"))  # then the log's file is renamed
        assert cycle(settings, monday(30), store).delivery is None  # W48: still nothing to mail
    finally:
        store.close()
    titles = ["First post", "Pythn notes", "Python notes", "Rust weekly", "Rust weekly extra"]
    counts = copies(settings, titles)
    assert {t: sum(n for (_, title), n in counts.items() if title == t) for t in titles} == {
        "First post": 3,
        "Pythn notes": 3,
        "Python notes": 0,
        "Rust weekly": 3,
        "Rust weekly extra": 3,
    }


def test_an_issue_sent_early_lists_only_what_it_mailed(tmp_path: Path, ledger_url: str) -> None:
    """`send --week this` on Thursday: a post dated Friday goes out with the next issue, as a late one, and
    the early issue's page and feed entry never list it (they did, then lost it a week later)."""
    settings = settings_for(write_site(tmp_path, [Post("first", "First post", at(3))], READERS))
    store = Store(ledger_url)
    try:
        cycle(settings, monday(9), store, publish=True)  # W45
        add(tmp_path, "thursday", "Thursday post", at(12))
        early = cycle(settings, at(12, 20), store, week="this", publish=True)  # W46, sent on Thursday evening
        assert [e.title for e in early.issues[0].entries] == ["Thursday post"]
        add(tmp_path, "friday", "Friday post", at(13))
        cycle(settings, monday(16), store, week="2026-W46", publish=True)  # the weekly job: W46 is done
        pages = published(settings)
        assert "Friday post" not in pages["2026-W46/index.html"] and "Friday post" not in pages["atom.xml"]
        later = cycle(settings, monday(23), store, publish=True)  # W47: no post of its own, Friday's is late
        assert [e.title for e in later.issues[0].late] == ["Friday post"]
        pages = published(settings)
        assert "Friday post" in pages["2026-W47/index.html"] and "Friday post" not in pages["2026-W46/index.html"]
    finally:
        store.close()
    assert copies(settings, ["Friday post", "Thursday post"]) == {
        (r, t): 1 for r in READERS for t in ("Friday post", "Thursday post")
    }


def test_a_clock_gone_back_stops_a_publish_and_a_send(site: tuple[Path, Settings], ledger_url: str) -> None:
    """A week back, the newer issue's posts would be in the future: the feeds and the archive would lose a
    mailed issue. Every command that writes them stops with one line instead; a preview and a dry run go on."""
    from digest.errors import LedgerError

    root, settings = site
    store = Store(ledger_url)
    try:
        cycle(settings, monday(9), store, publish=True)  # W45
        add(root, "second", "Second post", at(11))
        cycle(settings, monday(16), store, publish=True)  # W46
        before = published(settings)
        ledgered = replace(settings, database_url=ledger_url)  # `digest publish` with this ledger
        for run in (
            lambda: cycle(settings, monday(9) + timedelta(minutes=30), store, publish=True),
            lambda: pipeline.publish(ledgered, monday(9), pipeline.select_week(settings, monday(9), "last")),
        ):
            with pytest.raises(LedgerError, match="before the newest issue of the ledger was planned"):
                run()
        # both times in the site's timezone, whatever offset the clock (or DIGEST_NOW) was given in
        in_utc = monday(9).astimezone(UTC)
        with pytest.raises(
            LedgerError, match=r"clock says 2026-11-09T09:00\+09:00, .* planned \(2026-11-16T09:00\+09:00\)"
        ):
            pipeline.publish(ledgered, in_utc, pipeline.select_week(settings, in_utc, "last"))
        assert published(settings) == before and "Second post" in before["atom.xml"]
        assert cycle(settings, monday(9), store, dry_run=True).issues  # a dry run is not stopped
        assert cycle(settings, monday(16) - timedelta(minutes=30), store).delivery is not None  # within the slack
    finally:
        store.close()


def test_an_issue_of_late_posts_only_is_newer_in_the_feeds_than_the_issue_before(tmp_path: Path) -> None:
    """W47 mails only a post backdated into W45: its feed entry is dated at the start of W47 (not at the old
    post's date, below W46's entry where readers sort it), and the feed's `updated` moves on with it."""
    config = write_site(tmp_path, [Post("first", "First post", at(3))], READERS)
    settings = settings_for(config)
    store = Store(settings.db_url)
    try:
        cycle(settings, monday(9), store, publish=True)  # W45
        add(tmp_path, "second", "Second post", at(12))
        cycle(settings, monday(16), store, publish=True)  # W46
        before = ElementTree.fromstring(published(settings)["atom.xml"])
        add(tmp_path, "backdated", "Backdated notes", at(4))  # dated in W45: late now
        report = cycle(settings, monday(23), store, publish=True)  # W47: late arrivals only
        assert [e.title for e in report.issues[0].late] == ["Backdated notes"] and not report.issues[0].entries
    finally:
        store.close()
    atom = ElementTree.fromstring(published(settings)["atom.xml"])
    ns = {"a": "http://www.w3.org/2005/Atom"}
    dated = {
        e.findtext("a:id", "", ns).rsplit("/", 1)[-1]: e.findtext("a:updated", "", ns)
        for e in atom.findall("a:entry", ns)
    }
    w46, w47 = (datetime.fromisoformat(dated[k]) for k in ("2026-W46", "2026-W47"))
    assert w47 > w46 and w47 == datetime(2026, 11, 16, tzinfo=SEOUL)
    assert datetime.fromisoformat(atom.findtext("a:updated", "", ns)) > datetime.fromisoformat(
        before.findtext("{http://www.w3.org/2005/Atom}updated", "")
    )


def publish_by(how: str, settings: Settings, now_at: datetime) -> None:
    """`digest publish` of last week, or the weekly run that sends and publishes it (`how`: publish, run)."""
    if how == "publish":
        pipeline.publish(settings, now_at, pipeline.select_week(settings, now_at, "last"))
        return
    store = Store(settings.db_url)
    try:
        cycle(settings, now_at, store, publish=True)
    finally:
        store.close()


def dates_after(how: str, settings: Settings, now_at: datetime) -> dict[str, str]:
    """Publish (see publish_by), then {issue label: its Atom entry's updated, "feed": the feed's own}."""
    publish_by(how, settings, now_at)
    ns = {"a": "http://www.w3.org/2005/Atom"}
    atom = ElementTree.fromstring(published(settings)["atom.xml"])
    found = {
        e.findtext("a:id", "", ns).rsplit("/", 1)[-1]: e.findtext("a:updated", "", ns)
        for e in atom.findall("a:entry", ns)
    }
    return found | {"feed": atom.findtext("a:updated", "", ns)}


@pytest.mark.parametrize("how", ["publish", "run"])
def test_a_deleted_post_never_dates_its_issue_earlier_in_the_feeds(tmp_path: Path, how: str) -> None:
    """W46 held two posts; the later one is deleted (or a Hugo post expires): the issue's feed entry keeps
    the date it was published with, so the feed never goes backwards. Kept in the state folder, so a
    publish-only site (no send yet) keeps it too."""
    config = write_site(tmp_path, [Post("first", "First post", at(3))], READERS)
    settings = settings_for(config)

    add(tmp_path, "early", "Early post", at(10))
    later = add(tmp_path, "later", "Later post", at(13))
    before = dates_after(how, settings, monday(16))  # W46
    later.unlink()
    after = dates_after(how, settings, monday(16) + timedelta(hours=2))
    assert after["2026-W46"] == before["2026-W46"] and after["feed"] == before["feed"]
    assert datetime.fromisoformat(after["2026-W46"]) == at(13)  # the deleted post's date, kept
    add(tmp_path, "newer", "Newer post", at(14))  # unmailed, it joins W46 and dates it later; mailed, it is late
    expected = at(14) if how == "publish" else at(13)
    assert datetime.fromisoformat(dates_after(how, settings, monday(16) + timedelta(hours=3))["2026-W46"]) == expected


@pytest.mark.parametrize("how", ["publish", "run"])
def test_after_an_upgrade_the_published_feeds_are_the_floor(tmp_path: Path, how: str) -> None:
    """A state folder from a version that kept no feed dates (or one whose dates are gone): the first
    publish takes the floor from the Atom feeds already published, so a post deleted before it does not
    date its issue earlier in the feeds."""
    config = write_site(tmp_path, [Post("first", "First post", at(3))], READERS)
    settings = settings_for(config)

    add(tmp_path, "early", "Early post", at(10))
    later = add(tmp_path, "later", "Later post", at(13))
    before = dates_after(how, settings, monday(16))  # W46
    with sqlite3.connect(settings.state_dir / "digest.sqlite3") as db:
        db.execute("DELETE FROM feed_dates")  # as an older version left it
    later.unlink()
    after = dates_after(how, settings, monday(16) + timedelta(hours=2))
    assert after["2026-W46"] == before["2026-W46"] and after["feed"] == before["feed"]
    assert datetime.fromisoformat(after["2026-W46"]) == at(13)


def test_the_floors_read_from_published_feeds_keep_each_languages_issues_apart(tmp_path: Path) -> None:
    from digest.pipeline.state import feed_floors, ledger_view

    settings = settings_for(write_site(tmp_path, [Post("first", "First post", at(3))], READERS))

    def atom(path: Path, entries: list[tuple[str, str]]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        items = "".join(f"<entry><id>{i}</id><updated>{u}</updated></entry>" for i, u in entries)
        path.write_text(f'<feed xmlns="http://www.w3.org/2005/Atom">{items}</feed>', "utf-8")

    out = settings.output.dir
    atom(out / "atom.xml", [("tag:x.org,2026-11-09:/newsletter/2026-W46", "2026-11-13T10:00:00+09:00")])
    atom(out / "ko" / "atom.xml", [("tag:x.org,2026-11-09:/newsletter/ko/2026-W46", "2026-11-14T10:00:00+09:00")])
    # a site whose weeks start on another day than Monday: its issues are named by their first day
    atom(out / "ja" / "atom.xml", [("tag:x.org,2026-11-11:/newsletter/ja/2026-11-11", "2026-11-15T10:00:00+09:00")])
    atom(
        out / "tags" / "woodwork" / "atom.xml", [("tag:x.org,2026-11-09:/other/2026-W46", "2030-01-01T00:00:00+09:00")]
    )
    (out / "de").mkdir()
    (out / "de" / "atom.xml").write_text("<feed", "utf-8")  # cut short: read as nothing
    with ledger_view(settings, create=True) as ledger:
        assert ledger is not None
        assert feed_floors(settings, ledger) == {
            "2026-W46": datetime(2026, 11, 13, 10, tzinfo=SEOUL),
            "ko/2026-W46": datetime(2026, 11, 14, 10, tzinfo=SEOUL),
            "ja/2026-11-11": datetime(2026, 11, 15, 10, tzinfo=SEOUL),
        }
        ledger.record_feed_dates({"2026-W47": datetime(2026, 11, 20, tzinfo=SEOUL)})
        assert feed_floors(settings, ledger) == {
            "2026-W47": datetime(2026, 11, 20, tzinfo=SEOUL)
        }  # kept: the files wait


@pytest.mark.parametrize("how", ["publish", "run"])
def test_an_issue_that_loses_its_only_post_leaves_the_feeds_without_dating_them_earlier(
    tmp_path: Path, how: str
) -> None:
    """W46's only post is deleted: W46 leaves the feeds and the archive, and the feeds' own date stays the
    one they had (a feed's `updated` never goes back); a preview of the week before shows that week's."""
    config = write_site(tmp_path, [Post("first", "First post", at(3))], READERS)
    settings = settings_for(config)
    ns = {"a": "http://www.w3.org/2005/Atom"}

    def go(now_at: datetime) -> tuple[list[str], str, str]:
        publish_by(how, settings, now_at)
        files = published(settings)
        atom = ElementTree.fromstring(files["atom.xml"])
        weeks = [e.findtext("a:id", "", ns).rsplit("/", 1)[-1] for e in atom.findall("a:entry", ns)]
        rss = ElementTree.fromstring(files["rss.xml"]).findtext("channel/lastBuildDate", "")
        return weeks, atom.findtext("a:updated", "", ns), rss

    go(monday(9))  # W45
    only = add(tmp_path, "only", "The only post", at(13))
    weeks, updated, rss = go(monday(16))  # W46
    assert weeks == ["2026-W46", "2026-W45"] and datetime.fromisoformat(updated) == at(13)
    only.unlink()
    weeks, after, rss_after = go(monday(16) + timedelta(hours=2))
    assert weeks == ["2026-W45"] and (after, rss_after) == (updated, rss)
    preview = pipeline.preview(settings, monday(9), pipeline.select_week(settings, monday(9), "last"))
    atom = next(path for name, path in preview.files.items() if name.endswith("atom.xml")).read_bytes()
    assert datetime.fromisoformat(ElementTree.fromstring(atom).findtext("a:updated", "", ns) or "") == at(3)


def test_an_edit_moves_an_entrys_updated_but_not_its_published(tmp_path: Path) -> None:
    """Atom `published`, RSS `pubDate` and JSON `date_published` say when the issue's newest post came out;
    an edit of it (`updated`) moves only the entry's `updated` (they moved together)."""
    config = write_site(tmp_path, [Post("first", "First post", at(3))], READERS)
    settings = settings_for(config)
    post = add(tmp_path, "notes", "Notes", at(10))
    publish_by("publish", settings, monday(16))
    post.write_text(post.read_text("utf-8").replace("---\n\n", f"updated: {at(12).isoformat()}\n---\n\n", 1), "utf-8")
    publish_by("publish", settings, monday(16) + timedelta(hours=1))
    files = published(settings)
    ns = {"a": "http://www.w3.org/2005/Atom"}
    entry = ElementTree.fromstring(files["atom.xml"]).find("a:entry", ns)
    assert entry is not None
    assert datetime.fromisoformat(entry.findtext("a:published", "", ns)) == at(10)
    assert datetime.fromisoformat(entry.findtext("a:updated", "", ns)) == at(12)
    item = ElementTree.fromstring(files["rss.xml"]).find("channel/item")
    assert item is not None and item.findtext("pubDate", "").endswith("01:00:00 +0000")  # at(10) in UTC
    (first, *_) = json.loads(files["feed.json"])["items"]
    assert datetime.fromisoformat(first["date_published"]) == at(10) < datetime.fromisoformat(first["date_modified"])


def test_a_mailed_posts_date_moved_later_never_dates_its_issue_above_the_next(tmp_path: Path) -> None:
    """A post mailed in W46 whose date is then moved into W47 stays with W46 (it is not mailed again) and its
    issue's feed entry stays dated within W46, below W47's: it was dated on the new day, above W47."""
    config = write_site(tmp_path, [Post("first", "First post", at(3))], READERS)
    settings = settings_for(config)
    ns = {"a": "http://www.w3.org/2005/Atom"}
    store = Store(settings.db_url)
    try:
        moved = add(tmp_path, "moved", "Moved post", at(12))
        cycle(settings, monday(16), store, publish=True)  # W46
        add(tmp_path, "next", "Next post", at(18))
        cycle(settings, monday(23), store, publish=True)  # W47
        moved.write_text(moved.read_text("utf-8").replace("2026-11-12", "2026-11-20"), "utf-8")
        report = cycle(settings, monday(23) + timedelta(hours=1), store, publish=True)
    finally:
        store.close()
    assert report.issues[0].late == ()  # never mailed again
    atom = ElementTree.fromstring(published(settings)["atom.xml"])
    dated = {
        e.findtext("a:id", "", ns).rsplit("/", 1)[-1]: datetime.fromisoformat(e.findtext("a:updated", "", ns))
        for e in atom.findall("a:entry", ns)
    }
    assert dated["2026-W46"] < dated["2026-W47"] and dated["2026-W46"] < datetime(2026, 11, 16, tzinfo=SEOUL)


def test_an_edit_of_a_mailed_post_never_brings_its_old_issue_back_to_the_top(tmp_path: Path) -> None:
    """A post of W46 edited on the 20th (`updated:`, Hugo's `lastmod`): W46's entry stays dated within W46 in
    every feed (Atom, RSS pubDate, JSON date_published), under W47's, where feed readers sort it. A floor an
    older digest kept from such an edit is brought back within the week as well."""
    import json
    from email.utils import parsedate_to_datetime

    config = write_site(tmp_path, [Post("first", "First post", at(3))], READERS)
    settings = settings_for(config)
    store = Store(settings.db_url)
    try:
        edited = add(tmp_path, "edited", "Edited post", at(12))
        cycle(settings, monday(16), store, publish=True)  # W46
        add(tmp_path, "next", "Next post", at(18))
        cycle(settings, monday(23), store, publish=True)  # W47
        edited.write_text(edited.read_text("utf-8").replace("---\n\n", "updated: 2026-11-20 08:00\n---\n\n"), "utf-8")
        record_feed_dates(store, {"2026-W46": at(20, 8)})  # what an older digest kept from the edit
        cycle(settings, monday(23) + timedelta(hours=1), store, publish=True)
    finally:
        store.close()
    files = published(settings)
    ns = {"a": "http://www.w3.org/2005/Atom"}
    atom = {
        e.findtext("a:id", "", ns).rsplit("/", 1)[-1]: datetime.fromisoformat(e.findtext("a:updated", "", ns))
        for e in ElementTree.fromstring(files["atom.xml"]).findall("a:entry", ns)
    }
    rss = {
        (i.findtext("guid") or "").rsplit("/", 1)[-1]: parsedate_to_datetime(i.findtext("pubDate") or "")
        for i in ElementTree.fromstring(files["rss.xml"]).iter("item")
    }
    feed = {
        i["id"].rsplit("/", 1)[-1]: datetime.fromisoformat(i["date_published"])
        for i in json.loads(files["feed.json"])["items"]
    }
    for dated in (atom, rss, feed):
        assert dated["2026-W46"] < dated["2026-W47"], dated
        assert dated["2026-W46"] < datetime(2026, 11, 16, tzinfo=SEOUL), dated


def test_the_email_of_an_issue_of_late_posts_only_links_to_its_own_page(tmp_path: Path) -> None:
    """W47 mails only a post backdated into W45: its archive page lists it, and the email's "view in the
    browser" link goes there, not to the archive index."""
    config = write_site(tmp_path, [Post("first", "First post", at(3))], READERS)
    settings = settings_for(config)
    store = Store(settings.db_url)
    try:
        cycle(settings, monday(9), store, publish=True)  # W45
        add(tmp_path, "second", "Second post", at(12))
        cycle(settings, monday(16), store, publish=True)  # W46
        add(tmp_path, "backdated", "Backdated notes", at(4))
        report = cycle(settings, monday(23), store, publish=True)  # W47: late arrivals only
        assert report.issues[0].late and not report.issues[0].entries
    finally:
        store.close()
    page = published(settings)["2026-W47/index.html"]
    assert "Backdated notes" in page
    w47 = [text_of(m) for m in maildir_messages(settings.outbox) if "Backdated notes" in text_of(m)]
    assert len(w47) == len(READERS)
    base = settings.output.url
    assert all(f"{base}2026-W47/" in body for body in w47), w47[0]
    # why it is there, true whether its week's issue went out before it or never went out (a missed run)
    assert "Dated in an earlier week, but not in that week's issue." in w47[0], w47[0]


@pytest.mark.parametrize("change", ["timezone", "week_start"])
def test_a_changed_timezone_or_week_start_keeps_each_mailed_issue_as_it_was_mailed(tmp_path: Path, change: str) -> None:
    """W12 was mailed in New York's weeks with a post of Sunday 15:00 (Monday 04:00 in Seoul); then the site
    moves to Seoul (or to weeks starting on Sunday). The archive page and the feed entry of W12 keep the post
    it mailed, under the same id and path; the new weeks start from there."""
    ny = ZoneInfo("America/New_York")
    posts = [
        Post("weekday", "A weekday post", datetime(2026, 3, 18, 10, tzinfo=ny)),
        Post("sunday", "A Sunday afternoon post", datetime(2026, 3, 22, 15, tzinfo=ny)),
    ]
    config = write_site(tmp_path, posts, READERS, timezone="America/New_York")
    store = Store(settings_for(config).db_url)
    try:
        cycle(settings_for(config), datetime(2026, 3, 23, 9, tzinfo=ny), store, publish=True)  # W12
        text = config.read_text("utf-8")
        if change == "timezone":
            config.write_text(text.replace('timezone = "America/New_York"', 'timezone = "Asia/Seoul"'), "utf-8")
        else:
            config.write_text(text.replace("[site]\n", '[site]\nweek_start = "sunday"\n'), "utf-8")
        add(tmp_path, "later", "A later post", datetime(2026, 3, 25, 10, tzinfo=ny))
        settings = settings_for(config)
        report = cycle(settings, datetime(2026, 3, 30, 9, tzinfo=ny), store, publish=True)
    finally:
        store.close()
    issue = report.issues[0]
    assert [e.title for e in issue.entries + issue.late] == ["A later post"]  # nothing mailed twice
    files = published(settings)
    w12 = files["2026-W12/index.html"]
    assert "A Sunday afternoon post" in w12 and "A weekday post" in w12 and "A later post" not in w12
    assert "A Sunday afternoon post" not in files[f"{issue.issue_id}/index.html"]
    assert "tag:service.example.org,2026-03-16:/newsletter/2026-W12" in files["atom.xml"]


@pytest.mark.parametrize("how", ["publish", "run"])
def test_a_newsletter_that_moves_to_another_address_keeps_every_feed_id(tmp_path: Path, how: str) -> None:
    """The entry ids (tag URIs) are made from the address of the first publish, kept in the state database:
    after a move the links point to the new address and feed readers see no issue twice."""
    config = write_site(tmp_path, [Post("first", "First post", at(3))], READERS)
    settings = settings_for(config)
    add(tmp_path, "second", "Second post", at(12))

    publish_by(how, settings, monday(16))
    ns = {"a": "http://www.w3.org/2005/Atom"}

    def ids() -> list[str]:
        atom = ElementTree.fromstring(published(settings)["atom.xml"])
        return [e.findtext("a:id", "", ns) for e in atom.findall("a:entry", ns)]

    before = ids()
    assert before and all(i.startswith("tag:service.example.org,") for i in before)
    config.write_text(config.read_text("utf-8").replace("service.example.org", "notes.example.net"), "utf-8")
    settings = settings_for(config)
    add(tmp_path, "third", "Third post", at(18))
    publish_by(how, settings, monday(23))
    after = ids()
    assert after[1:] == before and after[0].startswith("tag:service.example.org,")  # the new issue's too
    assert "https://notes.example.net/newsletter/2026-W47/" in published(settings)["atom.xml"]


def test_a_missed_week_says_which_issue_carried_its_posts(tmp_path: Path) -> None:
    """W46's run never happened; W47's carried its post as a late one. `preview --week` of W46 names W47,
    and `status` of W46 says what an empty record means rather than "nothing recorded yet"."""
    from click.testing import CliRunner

    from digest.cli import main

    config = write_site(tmp_path, [Post("first", "First post", at(3))], READERS)
    settings = settings_for(config)
    store = Store(settings.db_url)
    try:
        cycle(settings, monday(9), store, publish=True)  # W45
        add(tmp_path, "missed", "A post of the missed week", at(12))
        add(tmp_path, "next", "A post of the next week", at(18))
        report = cycle(settings, monday(23), store, publish=True)  # W47; W46's run never happened
    finally:
        store.close()
    assert [e.title for e in report.issues[0].late] == ["A post of the missed week"]
    env = {"DIGEST_NOW": monday(23).isoformat(), "DIGEST_SECRET": "a test secret for the command line, 32+ bytes"}
    said = CliRunner().invoke(main, ["--config", str(config), "preview", "--week", "2026-W46"], env=env).stdout
    assert "its 1 post(s) went out in 2026-W47 (`digest status --week 2026-W47`)" in said, said
    said = CliRunner().invoke(main, ["--config", str(config), "status", "--week", "2026-W46"], env=env).stdout
    assert "its run was missed, or it had no posts" in said, said
