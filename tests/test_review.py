"""The owner's review before the automatic send (schedule.review): the preview goes to the owner
`review_hours` before the send time with Approve / Hold links; the service sends only what is approved,
or, at the send time without an answer, what `review_default` says; `digest approve` / `digest hold` do the
same from the command line, and an editor's note shows above the posts."""

from __future__ import annotations

import os
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from click.testing import CliRunner

from digest import scheduler
from digest.cli import main
from digest.config import Settings
from digest.sender.ledger import Ledger
from digest.sender.reviews import Reviews
from tests.support_service import SECRET, Post, http_server_factory, maildir_messages, settings_for, text_of, write_site

__all__ = ["http_server_factory"]

SEOUL = ZoneInfo("Asia/Seoul")
FIRE_AT = datetime(2024, 4, 1, 9, 0, tzinfo=SEOUL)  # Monday 09:00, the default schedule
READERS = ["kim@example.com", "lee@example.org"]
OWNER = "owner@service.example.org"


def review_site(tmp_path: Path, default: str) -> Settings:
    posts = [Post("spring", "봄 소식 · spring news", FIRE_AT - timedelta(days=3))]
    extra = f'[schedule]\nreview = true\nreview_default = "{default}"\nreview_to = "{OWNER}"\n'
    return settings_for(write_site(tmp_path, posts, READERS, extra=extra))


def to_whom(settings: Settings) -> list[str]:
    return sorted(str(m["To"]).split("<")[-1].rstrip(">") for m in maildir_messages(settings.outbox))


def at(hours: float) -> Any:
    return lambda: FIRE_AT + timedelta(hours=hours)


def review_link(settings: Settings) -> str:
    [mail] = [m for m in maildir_messages(settings.outbox) if OWNER in str(m["To"])]
    found = re.search(r"https?://\S*review\?token=[\w-]+", text_of(mail))
    assert found is not None
    return found.group(0)


def test_the_owner_gets_the_preview_once_and_the_send_waits_for_its_time(tmp_path: Path) -> None:
    settings = review_site(tmp_path, "send")
    assert scheduler.tick(settings, clock=at(-13)) == [] and to_whom(settings) == []  # too early to ask
    scheduler.tick(settings, clock=at(-11.5))
    scheduler.tick(settings, clock=at(-11))  # asked once only
    assert to_whom(settings) == [OWNER]
    [mail] = maildir_messages(settings.outbox)
    assert "Review:" in str(mail["Subject"]) and "spring news" in text_of(mail) and "review?token=" in text_of(mail)
    [step] = scheduler.tick(settings, clock=at(0.01))  # no answer, review_default = send
    assert step.report is not None and to_whom(settings) == sorted([OWNER, *READERS])


def test_a_hold_by_link_keeps_the_issue_back(tmp_path: Path, http_server_factory: Any) -> None:
    settings = review_site(tmp_path, "send")
    scheduler.tick(settings, clock=at(-11))
    link = review_link(settings)
    server = http_server_factory(settings, Ledger(settings.db_url), at(-10))
    local = server.url + "/review?" + link.split("?", 1)[1]
    page = httpx.get(local)
    assert page.status_code == 200 and "Approve" in page.text and "Hold" in page.text
    assert Reviews(settings.db_url).get("2024-W13").state == "pending"  # type: ignore[union-attr]
    assert httpx.post(local, data={"action": "hold"}).status_code == 200
    [step] = scheduler.tick(settings, clock=at(0.01))
    assert step.report is None and step.cycle is not None and step.cycle.state == "done" and "held" in step.cycle.note
    assert scheduler.tick(settings, clock=at(1)) == [] and to_whom(settings) == [OWNER]
    forged = server.url + "/review?token=forged"
    assert httpx.post(forged, data={"action": "approve"}).status_code == 400


def test_the_review_mail_has_no_link_that_unsubscribes_the_owner(tmp_path: Path) -> None:
    """The preview in the review mail is the readers' email but for their own links: the owner's one-click
    unsubscribe link in it put the owner on the suppression list."""
    settings = review_site(tmp_path, "send")
    scheduler.tick(settings, clock=at(-11))
    [mail] = maildir_messages(settings.outbox)
    html = next(p for p in mail.walk() if p.get_content_type() == "text/html").get_payload(decode=True).decode()
    text = text_of(mail)
    assert "봄 소식" in text and "(each reader's own link)" in text and 'href="#each-readers-own-link"' in html
    for part in (html, text):
        assert "/unsubscribe?" not in part and "/preferences?" not in part and "DIGEST" not in part


def test_the_review_mail_names_the_weeks_issues_in_the_other_languages(tmp_path: Path) -> None:
    """One answer approves or holds the week in every language: the mail says which other issues go out."""
    settings = review_site(tmp_path, "send")
    day = (FIRE_AT - timedelta(days=2)).isoformat(sep=" ")
    for name in ("a", "b"):
        (tmp_path / "posts" / f"2024-03-30-{name}.md").write_text(
            f'---\ntitle: "겨울 빵 {name}"\ndate: {day}\nlang: fr\n---\n\nPain.\n', "utf-8"
        )
    scheduler.tick(settings, clock=at(-11))
    [mail] = maildir_messages(settings.outbox)
    text = text_of(mail)
    assert ": 1 entry.\n" in text and "The fr issue goes out with it (the same answer): 2 entries;" in text, text


def test_without_an_answer_hold_waits_and_a_late_approval_with_a_note_sends(tmp_path: Path) -> None:
    settings = review_site(tmp_path, "hold")
    scheduler.tick(settings, clock=at(-11))
    [step] = scheduler.tick(settings, clock=at(0.01))
    assert step.report is None and step.cycle is not None and step.cycle.state == "open"
    assert "waiting for the owner's approval" in step.cycle.note and to_whom(settings) == [OWNER]
    env = {**os.environ, "DIGEST_SECRET": SECRET, "DIGEST_NOW": (FIRE_AT + timedelta(hours=2)).isoformat()}
    result = CliRunner().invoke(
        main,
        ["approve", "--config", str(settings.config_file), "--week", "2024-W13", "--note", "Back from **holidays**."],
        env=env,
    )
    assert result.exit_code == 0 and "approved; with an editor's note" in result.stdout
    [step] = scheduler.tick(settings, clock=at(2.01))
    assert step.report is not None and to_whom(settings) == sorted([OWNER, *READERS])
    issue = next(m for m in maildir_messages(settings.outbox) if READERS[0] in str(m["To"]))
    html = next(p for p in issue.walk() if p.get_content_type() == "text/html").get_payload(decode=True)
    assert b"Back from <strong>holidays</strong>." in html
    assert "Back from holidays." in text_of(issue)


def test_hold_then_approve_from_the_command_line(tmp_path: Path) -> None:
    settings = review_site(tmp_path, "send")
    env = {**os.environ, "DIGEST_SECRET": SECRET, "DIGEST_NOW": (FIRE_AT - timedelta(hours=1)).isoformat()}
    args = ["--config", str(settings.config_file)]
    status = CliRunner().invoke(main, ["status", *args, "--week", "2024-W13"], env=env)
    assert "  review    not answered yet\n" in status.stdout, status.stdout
    held = CliRunner().invoke(main, ["hold", *args], env=env)
    assert held.exit_code == 0 and "week 2024-W13: held" in held.stdout  # the week the next send sends
    status = CliRunner().invoke(main, ["status", *args, "--week", "2024-W13"], env=env)
    # DIGEST_NOW runs on with the test process: the minutes are not pinned
    assert re.search(r"^  review    held by command line at 2024-04-01T08:\d\d\+09:00$", status.stdout, re.M), (
        status.stdout
    )
    [step] = scheduler.tick(settings, clock=at(0.01))
    assert step.cycle is not None and step.cycle.state == "done" and to_whom(settings) == []
    assert CliRunner().invoke(main, ["approve", *args, "--week", "2024-W13"], env=env).exit_code == 0
    [step] = scheduler.tick(settings, clock=at(0.5))
    assert step.report is not None and to_whom(settings) == sorted(READERS)


def test_a_plain_approve_releases_the_week_held_past_its_send_time(tmp_path: Path) -> None:
    """`digest hold` says `digest approve` undoes it: after the send time passed, a plain approve released
    nothing and approved the next week (with the note meant for the held one)."""
    settings = review_site(tmp_path, "send")
    args = ["--config", str(settings.config_file)]

    def digest(hours: float, *command: str) -> str:
        env = {**os.environ, "DIGEST_SECRET": SECRET, "DIGEST_NOW": (FIRE_AT + timedelta(hours=hours)).isoformat()}
        result = CliRunner().invoke(main, [*command, *args], env=env)
        assert result.exit_code == 0, result.output
        return result.stdout

    assert "week 2024-W13: held" in digest(-1, "hold")
    [step] = scheduler.tick(settings, clock=at(0.01))
    assert step.cycle is not None and step.cycle.state == "done" and to_whom(settings) == []
    out = digest(2, "approve", "--note", "Late, but here.")
    assert "week 2024-W13: approved; with an editor's note; released from the hold" in out
    # DIGEST_NOW runs on with the test process (the approval's time is later than 2 h): a tick well after it
    [step] = scheduler.tick(settings, clock=at(8))
    assert step.report is not None and to_whom(settings) == sorted(READERS)
    assert all("Late, but here." in text_of(m) for m in maildir_messages(settings.outbox))
    assert "week 2024-W14: approved" in digest(9, "approve")  # nothing held any more: the next send's week
    assert "week 2024-W14: approved" in digest(24 * 9, "approve", "--week", "2024-W14")


def test_a_review_link_opened_by_a_scanner_changes_nothing(tmp_path: Path, http_server_factory: Any) -> None:
    settings = review_site(tmp_path, "hold")
    scheduler.tick(settings, clock=at(-11))
    server = http_server_factory(settings, Ledger(settings.db_url), at(-10))
    for _ in range(3):
        assert httpx.get(server.url + "/review?" + review_link(settings).split("?", 1)[1]).status_code == 200
    assert Reviews(settings.db_url).get("2024-W13").state == "pending"  # type: ignore[union-attr]


def test_a_note_on_a_week_without_posts_is_said_to_go_nowhere(tmp_path: Path) -> None:
    """With email.empty_week = "skip" a week without posts sends nothing, so its note shows nowhere: approve
    says so (it said only "approved; with an editor's note")."""
    settings = review_site(tmp_path, "send")
    env = {**os.environ, "DIGEST_SECRET": SECRET, "DIGEST_NOW": (FIRE_AT + timedelta(days=6)).isoformat()}
    args = ["approve", "--config", str(settings.config_file), "--note", "Quiet week."]
    result = CliRunner().invoke(main, [*args, "--week", "2024-W14"], env=env)
    assert result.exit_code == 0 and "week 2024-W14: approved; with an editor's note" in result.stdout
    assert "warning: week 2024-W14 has no posts so far" in result.stderr
    result = CliRunner().invoke(main, [*args, "--week", "2024-W13"], env=env)
    assert result.exit_code == 0 and "warning" not in result.stderr  # the week with a post


def test_the_review_page_shows_the_answer_and_the_note_kept(tmp_path: Path, http_server_factory: Any) -> None:
    """The page says what the owner answered so far and shows the note kept, in the box: emptying it removes
    the note (an empty box kept it, though the label said "empty: none"); a post without the box keeps it."""
    settings = review_site(tmp_path, "hold")
    scheduler.tick(settings, clock=at(-11))
    server = http_server_factory(settings, Ledger(settings.db_url), at(-10))
    url = server.url + "/review?" + review_link(settings).split("?", 1)[1]
    assert "Not answered yet." in httpx.get(url).text
    httpx.post(url, data={"action": "approve", "note": "Back from <holidays> & more."})
    page = httpx.get(url).text
    assert "Now approved (by link, 2024-03-31T23:00+09:00)." in page
    assert ">Back from &lt;holidays&gt; &amp; more.</textarea>" in page
    httpx.post(url, data={"action": "hold"})  # no box at all: the note stays
    review = Reviews(settings.db_url).get("2024-W13")
    assert review is not None and (review.state, review.note) == ("held", "Back from <holidays> & more.")
    httpx.post(url, data={"action": "approve", "note": "  "})
    review = Reviews(settings.db_url).get("2024-W13")
    assert review is not None and (review.state, review.note) == ("approved", "")


def test_digest_run_from_cron_honours_a_hold_as_the_service_does(tmp_path: Path) -> None:
    """With reviews on, a week the owner held is not mailed by `digest run` either (cron users mailed it);
    approved, the next run sends it."""
    settings = review_site(tmp_path, "send")
    args = ["--config", str(settings.config_file)]
    env = {**os.environ, "DIGEST_SECRET": SECRET, "DIGEST_NOW": (FIRE_AT - timedelta(hours=1)).isoformat()}
    assert CliRunner().invoke(main, ["hold", *args], env=env).exit_code == 0
    env["DIGEST_NOW"] = (FIRE_AT + timedelta(minutes=5)).isoformat()
    ran = CliRunner().invoke(main, ["run", *args], env=env)
    assert ran.exit_code == 0 and "week 2024-W13: held by the owner (command line)" in ran.stdout, (
        ran.stdout + ran.stderr
    )
    assert to_whom(settings) == []
    assert CliRunner().invoke(main, ["approve", *args, "--week", "2024-W13"], env=env).exit_code == 0
    ran = CliRunner().invoke(main, ["run", *args], env=env)
    assert ran.exit_code == 0 and to_whom(settings) == sorted(READERS), ran.stdout + ran.stderr


def test_the_editors_note_stays_with_its_issue_in_every_output(tmp_path: Path) -> None:
    """The note an approval gave W13 is on W13's archive page and feed entry after any publish, a run, the
    next week's publish; and in `digest preview` and `digest send --to` of that week."""
    settings = review_site(tmp_path, "send")
    args = ["--config", str(settings.config_file)]

    def digest(when: datetime, *command: str) -> str:
        env = {**os.environ, "DIGEST_SECRET": SECRET, "DIGEST_NOW": when.isoformat()}
        result = CliRunner().invoke(main, [*command, *args], env=env)
        assert result.exit_code == 0, result.output
        return result.stdout

    def published(week: str) -> tuple[str, str]:
        out = settings.output.dir
        return (out / week / "index.html").read_text("utf-8"), (out / "atom.xml").read_text("utf-8")

    digest(FIRE_AT - timedelta(hours=1), "approve", "--week", "2024-W13", "--note", "Back from **holidays**.")
    digest(FIRE_AT + timedelta(hours=1), "publish")
    page, atom = published("2024-W13")
    assert "Back from <strong>holidays</strong>." in page and "Back from &lt;strong&gt;holidays" in atom
    digest(FIRE_AT + timedelta(hours=1), "preview")
    preview = list(settings.output.dir.glob("preview/**/*.html"))
    assert preview and any("Back from <strong>holidays</strong>." in p.read_text("utf-8") for p in preview)
    digest(FIRE_AT + timedelta(hours=1), "send", "--to", "copy@example.net")
    [copy] = [m for m in maildir_messages(settings.outbox) if "copy@example.net" in str(m["To"])]
    assert "Back from holidays." in text_of(copy)
    digest(FIRE_AT + timedelta(hours=1), "run")
    assert "Back from <strong>holidays</strong>." in published("2024-W13")[0]
    (tmp_path / "posts" / "2024-04-03-summer.md").write_text(
        '---\ntitle: "Summer"\ndate: 2024-04-03 10:00:00 +0900\n---\n\nA later post.\n', "utf-8"
    )
    digest(FIRE_AT + timedelta(days=7, hours=1), "publish")  # W14: W13 is in the history now
    page, atom = published("2024-W13")
    assert "Back from <strong>holidays</strong>." in page and atom.count("Back from &lt;strong&gt;holidays") == 1
    assert "Back from" not in published("2024-W14")[0]
