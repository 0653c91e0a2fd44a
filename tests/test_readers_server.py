"""The readers' side over real HTTP (uvicorn on 127.0.0.1) and real SMTP (aiosmtpd): subscribe, confirm with
one button, welcome, preferences, unsubscribe; and the abuse limits."""

from __future__ import annotations

import re
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from digest import pipeline
from digest.models import Status, Subscriber
from digest.sender.ledger import Ledger
from digest.sender.roster import Roster
from digest.sender.tokens import make_token
from digest.templater.labels import labels_for
from tests.support_service import Mailbox, Post, http_server_factory, settings_for, smtp_box, text_of, write_site

__all__ = ["http_server_factory", "smtp_box"]

from datetime import datetime

NOW_AT = datetime(2026, 11, 23, 9, 0, tzinfo=ZoneInfo("Asia/Seoul"))
POSTS = [
    Post("ml", "머신러닝 노트 · ML notes", NOW_AT - timedelta(days=3), tags=("ML",)),
    Post("fonts", "한글 글꼴 · Korean fonts", NOW_AT - timedelta(days=2), tags=("typography",)),
    Post("ml-2", "More ML", NOW_AT + timedelta(days=3), tags=("ML",)),
    Post("fonts-2", "More fonts", NOW_AT + timedelta(days=4), tags=("typography",)),
]


@pytest.fixture
def site(tmp_path: Path, smtp_box: Mailbox, http_server_factory: Any) -> tuple[Any, Mailbox]:
    settings = settings_for(write_site(tmp_path, POSTS, ["author@example.org"], smtp_port=smtp_box.port))
    server = http_server_factory(settings, Ledger(settings.db_url), lambda: NOW_AT)
    return server, smtp_box


def wait_for(box: Mailbox, count: int, seconds: float = 10) -> list[tuple[str, Any]]:
    deadline = time.monotonic() + seconds
    while len(box.received) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)  # and nothing more arrives
    return list(box.received)


def link_in(message: Any, path: str) -> str:
    found = re.search(rf"https?://\S+/{path}\?token=[A-Za-z0-9_-]+", text_of(message))
    assert found, text_of(message)
    return found.group(0)


def local(server: Any, url: str) -> str:
    return server.url + "/" + url.split("/newsletter/", 1)[1]


def test_the_whole_path(site: tuple[Any, Mailbox]) -> None:
    server, box = site
    settings = server.settings
    # the week that just ended goes out first; the welcome then carries it
    pipeline.run_cycle(settings, NOW_AT, pipeline.select_week(settings, NOW_AT, "last"), clock=lambda: NOW_AT)
    wait_for(box, 1)
    box.received.clear()
    answer = httpx.post(server.url + "/subscribe", data={"email": "Ana@Example.net", "name": "Ana", "website": ""})
    assert answer.status_code == 200 and "confirmation" in answer.text
    (rcpt, mail), *_ = wait_for(box, 1)
    assert rcpt == "ana@example.net"
    confirm = local(server, link_in(mail, "confirm"))
    # a scanner that follows the link confirms nothing
    page = httpx.get(confirm)
    assert page.status_code == 200 and '<form method="post"' in page.text
    assert Roster(settings.db_url).get("ana@example.net").status == Status.UNCONFIRMED  # type: ignore[union-attr]
    done = httpx.post(confirm)
    assert done.status_code == 200
    received = wait_for(box, 2)
    assert len(received) == 2
    welcome = received[1][1]
    assert "Welcome" in str(welcome["Subject"]) or "환영" in str(welcome["Subject"])
    assert "ML notes" in text_of(welcome) or "머신러닝" in text_of(welcome)
    record = Roster(settings.db_url).get("ana@example.net")
    assert record is not None and record.status == Status.ACTIVE and record.consent_method == "form"
    # clicking again sends no second welcome (the ledger keeps it once)
    httpx.post(confirm)
    assert len(wait_for(box, 3, 1)) == 2
    # nor does the week the welcome carried come again when that week's run runs again (cron, every hour)
    again = NOW_AT + timedelta(hours=1)
    report = pipeline.run_cycle(settings, again, pipeline.select_week(settings, again, "last"), clock=lambda: again)
    assert report.delivery.sent == 0 and len(wait_for(box, 3, 1)) == 2
    # the next weekly send includes the reader; the preference page narrows it to ML
    prefs = local(server, link_in(welcome, "preferences"))
    page = httpx.get(prefs)
    assert page.status_code == 200 and 'value="ML"' in page.text and 'value="typography"' in page.text
    saved = httpx.post(prefs, data={"action": "save", "topic": ["ML"], "format": "html", "language": "", "pause": "-1"})
    assert saved.status_code == 200
    box.received.clear()
    later = NOW_AT + timedelta(days=7)
    pipeline.run_cycle(settings, later, pipeline.select_week(settings, later, "last"), clock=lambda: later)
    weekly = {rcpt: msg for rcpt, msg in wait_for(box, 2)}
    assert "More ML" in text_of(weekly["ana@example.net"]) and "More fonts" not in text_of(weekly["ana@example.net"])
    assert "More fonts" in text_of(weekly["author@example.org"])
    # unsubscribe from the preference page
    unsubscribe = re.search(r'action="(unsubscribe\?token=[^"]+)"', page.text)
    assert unsubscribe
    assert (
        httpx.post(server.url + "/" + unsubscribe.group(1), data={"List-Unsubscribe": "One-Click"}).status_code == 200
    )
    assert Roster(settings.db_url).get("ana@example.net").status == Status.UNSUBSCRIBED  # type: ignore[union-attr]


def test_answers_are_the_same_for_new_and_known_addresses(site: tuple[Any, Mailbox]) -> None:
    server, box = site
    new = httpx.post(server.url + "/subscribe", json={"email": "new@example.net"})
    known = httpx.post(server.url + "/subscribe", json={"email": "author@example.org"})
    assert (new.status_code, new.json()) == (known.status_code, known.json())
    assert new.headers["access-control-allow-origin"] == "https://service.example.org"
    received = wait_for(box, 2)
    subjects = sorted(str(m["Subject"]) for _, m in received)
    assert len(subjects) == 2  # the known one is told it is already subscribed, with its preference link


def test_a_thousand_requests_for_one_address_send_one_mail(site: tuple[Any, Mailbox]) -> None:
    server, box = site
    with httpx.Client() as client:
        for n in range(1000):
            forwarded = {"X-Forwarded-For": f"198.51.{n // 250}.{n % 250}"}
            answer = client.post(server.url + "/subscribe", data={"email": "target@example.net"}, headers=forwarded)
            assert answer.status_code == 200
    assert [rcpt for rcpt, _ in wait_for(box, 2, 2)] == ["target@example.net"]


def test_a_thousand_addresses_from_one_client_are_limited(site: tuple[Any, Mailbox]) -> None:
    server, box = site
    codes = []
    with httpx.Client() as client:
        for n in range(1000):
            codes.append(client.post(server.url + "/subscribe", data={"email": f"r{n}@example.net"}).status_code)
    limit = server.settings.subscribe.client_limit
    assert codes.count(200) == limit and codes.count(429) == 1000 - limit
    assert len(wait_for(box, limit + 1, 2)) == limit


def test_a_honeypot_hit_sends_nothing(site: tuple[Any, Mailbox]) -> None:
    server, box = site
    answer = httpx.post(server.url + "/subscribe", data={"email": "bot@example.net", "website": "http://spam"})
    assert answer.status_code == 200
    assert wait_for(box, 1, 1) == []
    assert not Roster(server.settings.db_url).known("bot@example.net")


@pytest.mark.parametrize("path", ["confirm", "preferences", "change"])
def test_a_link_of_another_kind_is_refused(site: tuple[Any, Mailbox], path: str) -> None:
    server, _ = site
    token = pipeline.reader_token(server.settings, "author@example.org", NOW_AT)  # an unsubscribe token
    for method in ("GET", "POST"):
        assert httpx.request(method, f"{server.url}/{path}?token={token}").status_code == 400


def test_unconfirmed_addresses_expire(site: tuple[Any, Mailbox]) -> None:
    server, box = site
    httpx.post(server.url + "/subscribe", data={"email": "late@example.net"})
    wait_for(box, 1)
    settings = server.settings
    assert pipeline.readers_tick(settings, NOW_AT + timedelta(days=6))[1] == 0
    assert pipeline.readers_tick(settings, NOW_AT + timedelta(days=8))[1] == 1
    assert not Roster(settings.db_url).known("late@example.net")


@pytest.mark.parametrize("language", ["ko", "en", ""])
def test_the_unsubscribe_pages_speak_the_subscribers_language(site: tuple[Any, Mailbox], language: str) -> None:
    server, _ = site
    reader = Subscriber("kim@example.net", language=language)
    Roster(server.settings.db_url).add(reader, NOW_AT, status=Status.ACTIVE, method="cli", source="test")
    words = labels_for(language)  # "" = the site's language: English here
    url = f"{server.url}/unsubscribe?token={pipeline.reader_token(server.settings, reader.email, NOW_AT)}"
    page = httpx.get(url)
    assert page.status_code == 200 and words.unsubscribe in page.text and reader.email in page.text
    assert ('lang="ko"' in page.text) is (language == "ko")
    done = httpx.post(url, data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200 and words.unsubscribed_title in done.text
    assert Roster(server.settings.db_url).get(reader.email).status == Status.UNSUBSCRIBED  # type: ignore[union-attr]


def welcome_of(email: str, settings: Any) -> str:
    """The ledger id of the welcome of `email`'s current subscription."""
    record = Roster(settings.db_url).get(email)
    assert record is not None and record.consent_at is not None
    return pipeline.welcome_id(record.email, record.consent_at)


def test_the_welcome_carries_the_editors_note_of_its_issue(site: tuple[Any, Mailbox]) -> None:
    """The latest issue in a welcome has its editor's note, as everywhere else that issue is shown."""
    from digest.sender.reviews import Reviews

    server, box = site
    settings = server.settings
    week = pipeline.select_week(settings, NOW_AT, "last")
    Reviews(settings.db_url).decide(week.label, "approved", "cli", NOW_AT, note="A word from **the editor**.")
    pipeline.run_cycle(settings, NOW_AT, week, clock=lambda: NOW_AT)
    sent = len(wait_for(box, 1))
    box.received.clear()
    Roster(settings.db_url).add(Subscriber("new@example.net"), NOW_AT, status=Status.ACTIVE, method="cli", source="t")
    pipeline.send_welcome(settings, "new@example.net", NOW_AT, clock=lambda: NOW_AT)
    ((_, welcome),) = wait_for(box, 1)
    assert sent and "A word from the editor." in text_of(welcome)


@pytest.mark.parametrize("welcome", [True, False])
def test_the_confirmed_page_promises_what_is_mailed(
    tmp_path: Path, smtp_box: Mailbox, http_server_factory: Any, welcome: bool
) -> None:
    """The page said the latest issue was on its way, though the welcome may have no issue (none yet in the
    reader's language) and `subscribe.welcome = false` mails nothing: it promises the welcome, or the next
    issue."""
    extra = "" if welcome else "[subscribe]\nwelcome = false\n"
    settings = settings_for(write_site(tmp_path, POSTS, [], smtp_port=smtp_box.port, extra=extra))
    server = http_server_factory(settings, Ledger(settings.db_url), lambda: NOW_AT)
    httpx.post(server.url + "/subscribe", data={"email": "new@example.net", "website": ""})
    page = httpx.post(local(server, link_in(wait_for(smtp_box, 1)[0][1], "confirm")))
    assert page.status_code == 200 and "latest issue" not in page.text
    expected = "A welcome email is on its way" if welcome else "Your first issue comes with the next weekly send"
    assert expected in page.text
    assert len(wait_for(smtp_box, 2)) == (2 if welcome else 1)  # the confirmation, and the welcome if any


def test_a_reader_who_comes_back_is_welcomed_again_once(site: tuple[Any, Mailbox]) -> None:
    """One welcome per confirmation: a reader who was welcomed, left and signed up again gets the welcome
    the confirmation page promises, once however often its button is pressed."""
    server, box = site
    settings = server.settings
    pipeline.run_cycle(settings, NOW_AT, pipeline.select_week(settings, NOW_AT, "last"), clock=lambda: NOW_AT)
    earlier = NOW_AT - timedelta(days=30)
    Roster(settings.db_url).add(
        Subscriber("back@example.net"), earlier, status=Status.ACTIVE, method="form", source="t"
    )
    pipeline.send_welcome(settings, "back@example.net", earlier, clock=lambda: earlier)
    pipeline.unsubscribe(settings, "back@example.net", earlier + timedelta(days=1), "by hand")
    wait_for(box, 2)
    box.received.clear()
    httpx.post(server.url + "/subscribe", data={"email": "back@example.net", "website": ""})
    confirm = local(server, link_in(wait_for(box, 1)[0][1], "confirm"))
    assert httpx.post(confirm).status_code == 200
    httpx.post(confirm)
    received = wait_for(box, 3, 1)
    assert len(received) == 2, [str(m["Subject"]) for _, m in received]  # the confirmation and one welcome
    assert "ML notes" in text_of(received[1][1]) or "머신러닝" in text_of(received[1][1])


def test_a_welcome_the_server_deferred_is_sent_by_the_services_tick_once(site: tuple[Any, Mailbox]) -> None:
    server, box = site
    settings = server.settings
    httpx.post(server.url + "/subscribe", data={"email": "late@example.net"})
    ((_, confirmation),) = wait_for(box, 1)
    box.defer_rate = 1.0  # the SMTP server answers 451 to everything for now
    assert httpx.post(local(server, link_in(confirmation, "confirm"))).status_code == 200
    ledger = Ledger(settings.db_url)
    ident = welcome_of("late@example.net", settings)
    deadline = time.monotonic() + 10
    while ledger.status(ident).counts.get("deferred") != 1:
        assert time.monotonic() < deadline, ledger.status(ident)
        time.sleep(0.05)
    assert box.deferred == 1 and len(box.received) == 1
    box.defer_rate = 0.0
    assert pipeline.readers_tick(settings, NOW_AT).welcomes == 0  # its retry time has not come yet
    later = NOW_AT + timedelta(hours=1)
    assert pipeline.readers_tick(settings, later).welcomes == 1
    assert pipeline.readers_tick(settings, later + timedelta(hours=1)).welcomes == 0
    assert [rcpt for rcpt, _ in wait_for(box, 3, 1)] == ["late@example.net"] * 2
    assert "Welcome" in str(box.received[1][1]["Subject"])
    assert ledger.status(ident).counts["sent"] == 1


def test_a_deferred_welcome_of_someone_who_left_since_is_closed(site: tuple[Any, Mailbox]) -> None:
    server, box = site
    settings = server.settings
    httpx.post(server.url + "/subscribe", data={"email": "gone@example.net"})
    ((_, confirmation),) = wait_for(box, 1)
    box.defer_rate = 1.0
    httpx.post(local(server, link_in(confirmation, "confirm")))
    ledger = Ledger(settings.db_url)
    ident = welcome_of("gone@example.net", settings)
    deadline = time.monotonic() + 10
    while ledger.status(ident).counts.get("deferred") != 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    box.defer_rate = 0.0
    pipeline.unsubscribe(settings, "gone@example.net", NOW_AT, "by hand")
    assert pipeline.readers_tick(settings, NOW_AT + timedelta(hours=1)).welcomes == 0
    assert ledger.status(ident).counts["skipped"] == 1 and ident not in ledger.unfinished_issues(NOW_AT)
    assert len(wait_for(box, 2, 1)) == 1


def test_a_pause_chosen_on_the_preference_page_skips_the_issues_of_those_weeks(
    tmp_path: Path, smtp_box: Mailbox, http_server_factory: Any
) -> None:
    posts = [
        Post("w47", "Week 47 post", NOW_AT - timedelta(days=3)),
        Post("w48", "Week 48 post", NOW_AT + timedelta(days=3)),
        Post("w49", "Week 49 post", NOW_AT + timedelta(days=10)),
    ]
    readers = ["pauser@example.org", "steady@example.org"]
    settings = settings_for(write_site(tmp_path, posts, readers, smtp_port=smtp_box.port))
    server = http_server_factory(settings, Ledger(settings.db_url), lambda: NOW_AT)
    pipeline.sync_subscribers(settings, NOW_AT)
    prefs = local(server, pipeline.reader_link(settings, "preferences", "pauser@example.org", NOW_AT))
    form = {"action": "save", "format": "html", "language": "", "pause": "2"}
    page = httpx.post(prefs, data=form)
    assert page.status_code == 200 and "Paused until 2026-12-07" in page.text and 'value="0"' in page.text

    def send(days: int) -> dict[str, str]:
        at = NOW_AT + timedelta(days=days, hours=1)  # Mondays at 10:00, the hour after the choice
        smtp_box.received.clear()
        pipeline.run_cycle(settings, at, pipeline.select_week(settings, at, "last"), clock=lambda: at)
        return {rcpt: text_of(message) for rcpt, message in wait_for(smtp_box, 2, 2)}

    ledger = Ledger(settings.db_url)
    for days, week in ((0, "2026-W47"), (7, "2026-W48")):  # the two weekly issues the pause covers
        assert list(send(days)) == ["steady@example.org"]
        (row,) = [r for r in ledger.deliveries(week) if r.recipient == "pauser@example.org"]
        assert row.state == "skipped" and row.reply == "paused until 2026-12-07"
    assert sorted(send(14)) == readers  # the third comes again
    # and a pause can be lifted from the page ("do not pause")
    httpx.post(prefs, data=form | {"pause": "4"})
    assert Roster(settings.db_url).get("pauser@example.org").paused_until is not None  # type: ignore[union-attr]
    httpx.post(prefs, data=form | {"pause": "0"})
    assert Roster(settings.db_url).get("pauser@example.org").paused_until is None  # type: ignore[union-attr]
    # a pause the page does not offer (a hand-made form) changes nothing and says so
    for forged in ("52", "-7", "3", "soon"):
        page = httpx.post(prefs, data=form | {"pause": forged, "format": "text"})
        assert page.status_code == 200 and "Choose a pause from the list" in page.text
        assert "Your preferences are saved" not in page.text
        record = Roster(settings.db_url).get("pauser@example.org")
        assert record is not None and record.paused_until is None and record.format == "html"


def test_a_change_of_address_is_confirmed_at_the_new_address_and_the_next_send_follows(
    site: tuple[Any, Mailbox],
) -> None:
    server, box = site
    settings = server.settings
    httpx.post(server.url + "/subscribe", data={"email": "old@example.net"})
    ((_, confirmation),) = wait_for(box, 1)
    httpx.post(local(server, link_in(confirmation, "confirm")))
    welcome = wait_for(box, 2)[1][1]
    prefs = local(server, link_in(welcome, "preferences"))
    httpx.post(prefs, data={"action": "save", "topic": ["ML"], "format": "text", "language": "", "pause": "-1"})
    box.received.clear()
    page = httpx.post(prefs, data={"action": "change", "new_email": "New@Example.org"})
    assert page.status_code == 200 and "A confirmation is on its way to New@Example.org" in page.text
    ((rcpt, mail),) = wait_for(box, 1)
    assert rcpt == "new@example.org"
    change = local(server, link_in(mail, "change"))
    # a second change within the day is refused, and says so
    again = httpx.post(prefs, data={"action": "change", "new_email": "third@example.org"})
    assert "nothing was sent" in again.text and len(wait_for(box, 2, 1)) == 1
    # the mail's link shows a button and changes nothing; the button changes the address
    page = httpx.get(change)
    assert page.status_code == 200 and '<form method="post"' in page.text
    book = Roster(settings.db_url)
    assert book.known("old@example.net") and not book.known("new@example.org")
    done = httpx.post(change)
    assert done.status_code == 200 and "new@example.org" in done.text.lower()
    record = book.get("new@example.org")
    assert record is not None and record.status == Status.ACTIVE
    assert (record.tags, record.format, record.consent_method) == (("ML",), "text", "form")
    assert "address" in {e.kind for e in record.events} and not book.known("old@example.net")
    assert "old@example.net" in pipeline.suppressed(settings)
    assert httpx.post(change).status_code == 400  # used once
    box.received.clear()
    later = NOW_AT + timedelta(days=7)
    pipeline.run_cycle(settings, later, pipeline.select_week(settings, later, "last"), clock=lambda: later)
    assert sorted(r for r, _ in wait_for(box, 2)) == ["author@example.org", "new@example.org"]


def test_a_change_to_an_address_already_subscribed_is_refused(site: tuple[Any, Mailbox]) -> None:
    server, box = site
    settings = server.settings
    pipeline.sync_subscribers(settings, NOW_AT)
    prefs = local(server, pipeline.reader_link(settings, "preferences", "author@example.org", NOW_AT))
    book = Roster(settings.db_url)
    book.add(Subscriber("other@example.net"), NOW_AT, status=Status.ACTIVE, method="cli", source="")
    # refused on the page, before any mail (its link could never succeed)
    page = httpx.post(prefs, data={"action": "change", "new_email": "Other@example.net"})
    assert page.status_code == 200 and "already subscribed" in page.text
    assert wait_for(box, 1, 1) == []
    # one asked before the other address was taken: its link is refused
    assert httpx.post(prefs, data={"action": "change", "new_email": "late@example.net"}).status_code == 200
    ((_, mail),) = wait_for(box, 1)
    book.add(Subscriber("late@example.net"), NOW_AT, status=Status.ACTIVE, method="cli", source="")
    answer = httpx.post(local(server, link_in(mail, "change")))
    assert answer.status_code == 409
    assert book.get("author@example.org").status == Status.ACTIVE  # type: ignore[union-attr]


def test_a_reader_may_change_back_to_an_address_they_left(site: tuple[Any, Mailbox]) -> None:
    """old -> new, then new -> old again: the old address was left behind (unsubscribed, and its record is
    back from the subscribers file, which still lists it): it is the reader's to take up again."""
    server, box = site
    settings = server.settings
    pipeline.sync_subscribers(settings, NOW_AT)
    book = Roster(settings.db_url)
    for old, new in (("author@example.org", "new@example.net"), ("new@example.net", "author@example.org")):
        pipeline.sync_subscribers(settings, NOW_AT)  # the file still lists the first address
        prefs = local(server, pipeline.reader_link(settings, "preferences", old, NOW_AT))
        box.received.clear()
        page = httpx.post(prefs, data={"action": "change", "new_email": new})
        assert page.status_code == 200 and "already subscribed" not in page.text, (old, new)
        ((rcpt, mail),) = wait_for(box, 1)
        assert rcpt == new
        assert httpx.post(local(server, link_in(mail, "change"))).status_code == 200
        record = book.get(new)
        assert record is not None and record.status == Status.ACTIVE, (old, new)
    assert "author@example.org" not in pipeline.suppressed(settings)
    assert "new@example.net" in pipeline.suppressed(settings)


def test_a_user_template_replaces_a_readers_page(tmp_path: Path, smtp_box: Mailbox, http_server_factory: Any) -> None:
    folder = tmp_path / "my-templates"
    folder.mkdir()
    (folder / "reader_message.html.j2").write_text(
        '<!doctype html><html lang="{{ language }}"><title>{{ title }}</title><main class="mine">'
        "{% for p in paragraphs %}<p>{{ p }}</p>{% endfor %}"
        '{% if button %}<form method="post" action="{{ action }}"><button>{{ button }}</button></form>{% endif %}'
        "</main></html>",
        "utf-8",
    )
    config = write_site(tmp_path, POSTS, ["author@example.org"], smtp_port=smtp_box.port)
    config.write_text(
        config.read_text("utf-8").replace('[output]\ndir = "out"', '[output]\ndir = "out"\ntemplates = "my-templates"')
    )
    settings = settings_for(config)
    server = http_server_factory(settings, Ledger(settings.db_url), lambda: NOW_AT)
    token = pipeline.reader_token(settings, "author@example.org", NOW_AT)
    page = httpx.get(f"{server.url}/unsubscribe?token={token}")
    assert page.status_code == 200 and '<main class="mine">' in page.text and "author@example.org" in page.text
    assert httpx.post(f"{server.url}/unsubscribe?token={token}").status_code == 200
    assert "author@example.org" in pipeline.suppressed(settings)


def test_the_preference_page_offers_every_language_the_site_writes_in_and_keeps_the_readers_own(
    tmp_path: Path, smtp_box: Mailbox, http_server_factory: Any
) -> None:
    """Japanese has no words of digest's own, but the site writes in it: the page offers it, selected for a
    reader of Japanese, and a save keeps it; a reader of `ko-KR` keeps `ko-KR`."""
    config = write_site(
        tmp_path, [Post("w47", "Week 47 post", NOW_AT - timedelta(days=3))], [], smtp_port=smtp_box.port
    )
    (tmp_path / "posts" / "2026-11-18-ja.md").write_text(
        "---\ntitle: 研ぎの記録\ndate: 2026-11-18 09:00\nlang: ja\n---\n\n短い記録。\n", "utf-8"
    )
    (tmp_path / "subscribers.yaml").write_text(
        "subscribers:\n  - email: yuki@example.org\n    language: ja\n"
        "  - email: jiwoo@example.org\n    language: ko-KR\n",
        "utf-8",
    )
    settings = settings_for(config)
    server = http_server_factory(settings, Ledger(settings.db_url), lambda: NOW_AT)
    pipeline.sync_subscribers(settings, NOW_AT)
    form = {"action": "save", "format": "html", "pause": "-1"}
    for address, language in (("yuki@example.org", "ja"), ("jiwoo@example.org", "ko-KR")):
        prefs = local(server, pipeline.reader_link(settings, "preferences", address, NOW_AT))
        page = httpx.get(prefs)
        assert page.status_code == 200 and f'<option value="{language}" selected>' in page.text, address
        assert '<option value="ja"' in page.text and '<option value="ko"' in page.text
        assert httpx.post(prefs, data=form | {"language": language}).status_code == 200
        assert Roster(settings.db_url).get(address).language == language  # type: ignore[union-attr]
    # a language nobody writes in and digest has no words for is not taken: the site's is kept instead
    prefs = local(server, pipeline.reader_link(settings, "preferences", "yuki@example.org", NOW_AT))
    httpx.post(prefs, data=form | {"language": "tlh"})
    assert Roster(settings.db_url).get("yuki@example.org").language == ""  # type: ignore[union-attr]


def test_the_subscribe_form_answers_in_its_own_language_and_changes_no_active_readers_language(
    site: tuple[Any, Mailbox],
) -> None:
    """A known address sent again through an English form gets its mail in English. An active reader keeps
    their own language (anyone may post the form with their address); one who left and opts in again takes
    the form's."""
    server, box = site
    settings = server.settings
    pipeline.sync_subscribers(settings, NOW_AT)
    book = Roster(settings.db_url)
    assert book.update_preferences("author@example.org", NOW_AT, language="ko", tags=[], fmt="html", pause_weeks=0)
    book.add(Subscriber("gone@example.net", language="ko"), NOW_AT, status=Status.ACTIVE, method="cli", source="cli")
    pipeline.unsubscribe(settings, "gone@example.net", NOW_AT, "unsubscribe link")
    for address in ("author@example.org", "gone@example.net"):
        box.received.clear()
        answer = httpx.post(server.url + "/subscribe", data={"email": address, "language": "en", "website": ""})
        assert answer.status_code == 200
        ((rcpt, mail),) = wait_for(box, 1)
        (html,) = [p for p in mail.walk() if p.get_content_type() == "text/html"]
        assert rcpt == address and '<html lang="en"' in html.get_payload(decode=True).decode(), address
    assert Roster(settings.db_url).get("author@example.org").language == "ko"  # type: ignore[union-attr]
    assert Roster(settings.db_url).get("gone@example.net").language == "en"  # type: ignore[union-attr]


@pytest.mark.parametrize(("sent", "stored"), [("zz", ""), ("xx-bogus", ""), ("korean!", ""), ("ja", "ja"), ("", "")])
def test_a_form_language_that_names_no_language_is_the_sites(site: tuple[Any, Mailbox], sent: str, stored: str) -> None:
    """The subscribers file refuses `language: zz`; the form, which anyone may post, stores the site's language
    instead, so the reader gets the site's issue rather than an empty one of no language."""
    server, box = site
    address = f"lang-{sent or 'none'}@example.net".replace("!", "")
    answer = httpx.post(server.url + "/subscribe", data={"email": address, "language": sent, "website": ""})
    assert answer.status_code == 200
    wait_for(box, 1)
    record = Roster(server.settings.db_url).get(address)
    assert record is not None and record.language == stored


def test_a_reader_who_confirms_before_the_weeks_send_gets_its_posts_once(site: tuple[Any, Mailbox]) -> None:
    """Between the end of a week and its send the welcome carries the issue before it (none here), not the
    week the send is about to mail the reader."""
    server, box = site
    settings = server.settings
    httpx.post(server.url + "/subscribe", data={"email": "early@example.net", "website": ""})
    (_, mail), *_ = wait_for(box, 1)
    httpx.post(local(server, link_in(mail, "confirm")))
    welcome = wait_for(box, 2)[1][1]
    assert "ML notes" not in text_of(welcome) and "Welcome" in str(welcome["Subject"])
    box.received.clear()
    later = NOW_AT + timedelta(hours=2)
    pipeline.run_cycle(settings, later, pipeline.select_week(settings, later, "last"), clock=lambda: later)
    weekly = {rcpt: msg for rcpt, msg in wait_for(box, 2)}
    assert "ML notes" in text_of(weekly["early@example.net"])


def test_a_confirmation_the_server_could_not_send_is_sent_later(tmp_path: Path) -> None:
    """SMTP down when the form is posted: the confirmation stays owed in the ledger, so the reader is not left
    without one for a day; the next housekeeping (the service's tick, `digest run`) sends it, once, and a
    form posted right after it mails nothing more."""
    from digest.errors import DigestError
    from tests.support_service import free_port, maildir_messages

    down = settings_for(write_site(tmp_path, POSTS, ["author@example.org"], smtp_port=free_port()))
    asked = pipeline.subscribe(down, NOW_AT, "late@example.net")
    assert asked.mail == "confirm"
    try:
        result = pipeline.send_reader_mail(down, asked, NOW_AT, clock=lambda: NOW_AT)
        assert result is not None and not result.ok
    except DigestError:
        pass
    up = replace(down, smtp=replace(down.smtp, host=""))  # the Maildir outbox: mail can go out again
    later = NOW_AT + timedelta(minutes=30)
    assert pipeline.readers_housekeeping(up, later).confirmations == 1
    assert pipeline.readers_housekeeping(up, later + timedelta(minutes=5)).confirmations == 0
    mails = [m for m in maildir_messages(up.outbox) if "late@example.net" in str(m["To"])]
    assert len(mails) == 1 and "/confirm?token=" in text_of(mails[0])
    assert pipeline.subscribe(up, later + timedelta(minutes=10), "late@example.net").mail == ""  # sent recently


def test_a_confirmation_planned_but_never_sent_is_sent_by_the_next_housekeeping_once(tmp_path: Path) -> None:
    """`digest serve` killed after storing a sign-up and before its mail: the confirmation was planned in the
    ledger with the request, so the next housekeeping sends it, once; one that went out at once is not sent
    again by the housekeeping after it."""
    from tests.support_service import maildir_messages

    settings = settings_for(write_site(tmp_path, POSTS, ["author@example.org"], smtp_port=0))
    settings = replace(settings, smtp=replace(settings.smtp, host=""))  # the Maildir outbox
    lost = pipeline.subscribe(settings, NOW_AT, "lost@example.net", language="ko")
    assert lost.mail == "confirm" and lost.planned  # and the process dies here, before send_reader_mail
    sent = pipeline.subscribe(settings, NOW_AT, "sent@example.net")
    result = pipeline.send_reader_mail(settings, sent, NOW_AT, clock=lambda: NOW_AT)
    assert result is not None and result.ok
    later = NOW_AT + timedelta(minutes=5)
    assert pipeline.readers_housekeeping(settings, later).confirmations == 1
    assert pipeline.readers_housekeeping(settings, later + timedelta(hours=1)).confirmations == 0
    mails = maildir_messages(settings.outbox)
    to = sorted(str(m["To"]) for m in mails)
    assert to == ["lost@example.net", "sent@example.net"], to
    (korean,) = [m for m in mails if str(m["To"]) == "lost@example.net"]
    assert "/confirm?token=" in text_of(korean) and pipeline.reader_words("ko").confirm_mail_action in text_of(korean)
    assert pipeline.subscribe(settings, later, "lost@example.net").mail == ""  # its slot stays taken: mailed


def test_a_link_too_old_or_damaged_says_so_in_the_readers_language(site: tuple[Any, Mailbox]) -> None:
    """An authentic preference or confirmation link past its time is answered in the language of the reader
    it was made for, with what to do; a damaged one in the site's. Neither page is in the exception's
    English, nor changes anything."""
    server, _ = site
    settings = server.settings
    pipeline.sync_subscribers(settings, NOW_AT)
    book = Roster(settings.db_url)
    assert book.update_preferences("author@example.org", NOW_AT, language="ko", tags=[], fmt="html", pause_weeks=0)
    old = NOW_AT - timedelta(days=400)
    page = httpx.get(local(server, pipeline.reader_link(settings, "preferences", "author@example.org", old)))
    korean = pipeline.reader_words("ko")
    assert page.status_code == 400 and 'lang="ko"' in page.text
    assert korean.old_link in page.text and korean.nothing_changed in page.text and "expired" not in page.text
    confirm = local(server, pipeline.reader_link(settings, "confirm", "author@example.org", NOW_AT - timedelta(days=9)))
    page = httpx.get(confirm)
    assert page.status_code == 400 and korean.expired in page.text
    damaged = httpx.get(server.url + "/preferences?token=AAAA" + "x" * 40)
    english = pipeline.reader_words("en")
    assert (
        damaged.status_code == 400 and english.bad_link in damaged.text and "the preferences link" not in damaged.text
    )
    record = Roster(settings.db_url).get("author@example.org")
    assert record is not None and record.language == "ko" and record.status == Status.ACTIVE


def test_an_old_preference_link_of_a_reader_who_left_changes_nothing(site: tuple[Any, Mailbox]) -> None:
    """The page says they are unsubscribed (in their language), and the form behind it saves nothing: a later
    signup is not in a language or format someone chose on a closed page."""
    server, _ = site
    reader = Subscriber("min@example.net", language="ko")
    roster = Roster(server.settings.db_url)
    roster.add(reader, NOW_AT, status=Status.ACTIVE, method="cli", source="test")
    token = make_token(server.settings.secret, reader.email, NOW_AT, purpose="preferences")
    pipeline.unsubscribe(server.settings, reader.email, NOW_AT, "test")
    url = f"{server.url}/preferences?token={token}"
    page = httpx.get(url)
    assert page.status_code == 404 and 'lang="ko"' in page.text
    saved = httpx.post(url, data={"action": "save", "format": "text", "language": "en", "pause": "-1"})
    assert saved.status_code == 404 and 'lang="ko"' in saved.text
    record = roster.get(reader.email)
    assert record is not None and (record.format, record.language) == ("html", "ko")


def test_a_name_from_the_form_is_kept_as_one_plain_line(site: tuple[Any, Mailbox]) -> None:
    """A NUL, a line break or a right-to-left override in the form's name never reaches the store (the list,
    the export, the To header): the subscribers file refuses them, the form drops them."""
    server, box = site
    name = "Ana\x00 Kim\u202egnirts\u202c\r\nBcc: x@example.org"
    answer = httpx.post(server.url + "/subscribe", data={"email": "ana@example.net", "name": name, "website": ""})
    assert answer.status_code == 200
    wait_for(box, 1)
    record = Roster(server.settings.db_url).get("ana@example.net")
    assert record is not None and record.name == "Ana Kimgnirts Bcc: x@example.org"


def test_the_change_of_address_pages_speak_the_readers_language(site: tuple[Any, Mailbox]) -> None:
    server, box = site
    reader = Subscriber("min@example.net", language="ko")
    Roster(server.settings.db_url).add(reader, NOW_AT, status=Status.ACTIVE, method="cli", source="test")
    prefs = f"{server.url}/preferences?token={make_token(server.settings.secret, reader.email, NOW_AT, 'preferences')}"
    httpx.post(prefs, data={"action": "change", "new_email": "min.new@example.org"})
    ((_, mail),) = wait_for(box, 1)
    change = local(server, link_in(mail, "change"))
    page = httpx.get(change)
    assert page.status_code == 200 and 'lang="ko"' in page.text
    done = httpx.post(change)
    assert done.status_code == 200 and 'lang="ko"' in done.text
    again = httpx.post(change)  # used: the page that says so is in Korean too
    assert again.status_code == 400 and 'lang="ko"' in again.text


def test_a_readers_mail_links_the_archive_of_their_language_once_it_is_published(site: tuple[Any, Mailbox]) -> None:
    """A Korean reader's confirmation links the Korean archive (`ko/`) when the site publishes one; a reader
    of a language the site has not written in yet is linked to the site's own (their folder would be a 404)."""
    server, box = site
    settings = server.settings
    (settings.output.dir / "ko").mkdir(parents=True, exist_ok=True)
    (settings.output.dir / "ko" / "index.html").write_text("<!doctype html><title>ko</title>", "utf-8")
    for address, language in (("ko@example.net", "ko"), ("ja@example.net", "ja")):
        httpx.post(server.url + "/subscribe", data={"email": address, "language": language, "website": ""})
    mails = {rcpt: text_of(mail) for rcpt, mail in wait_for(box, 2)}
    base = settings.output.url
    assert f"{base}ko/" in mails["ko@example.net"]
    assert f"{base}ja/" not in mails["ja@example.net"] and base in mails["ja@example.net"]


def test_the_served_form_in_a_readers_language_signs_them_up_in_it(site: tuple[Any, Mailbox]) -> None:
    """`/subscribe?lang=ko`: the form in Korean, carrying the language, so the confirmation (and every mail
    after) is Korean; a `lang` that names no language gives the site's form."""
    server, box = site
    page = httpx.get(server.url + "/subscribe?lang=ko")
    assert page.status_code == 200 and 'lang="ko"' in page.text and 'name="language" value="ko"' in page.text
    plain = httpx.get(server.url + "/subscribe?lang=korean!")
    assert plain.status_code == 200 and 'name="language"' not in plain.text
    answer = httpx.post(server.url + "/subscribe", data={"email": "kim@example.net", "language": "ko", "website": ""})
    assert answer.status_code == 200 and 'lang="ko"' in answer.text
    ((_, mail),) = wait_for(box, 1)
    record = Roster(server.settings.db_url).get("kim@example.net")
    assert record is not None and record.language == "ko"
