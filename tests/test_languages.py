"""One issue per language, end to end on examples/multilang through the command line: previews, the feeds
and archive of each language, every subscriber's issue in their language, the words around the posts, a
template override per language, the unsubscribe pages."""

from __future__ import annotations

import email
import email.policy
import json
import mailbox
import os
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from digest.cli import main
from digest.config import load_settings
from digest.sender.ledger import Ledger
from digest.sender.tokens import make_token
from tests.conftest import state_env
from tests.support_service import http_server_factory

__all__ = ["http_server_factory"]

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "multilang"
NOW = "2026-11-23T09:00:00+01:00"  # Monday morning in Berlin: 2026-W47 has just ended
SECRET = "languages test secret, long enough"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    target = tmp_path / "multilang"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("_digest", ".digest"))
    return target


def invoke(*args: str, now: str = NOW) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), env={"DIGEST_NOW": now, "DIGEST_SECRET": SECRET})
    return result.exit_code, result.stdout, result.stderr


def messages(site: Path) -> dict[str, email.message.EmailMessage]:
    box = mailbox.Maildir(load_settings(site=site, env={**os.environ, "DIGEST_SECRET": SECRET}).outbox, create=False)
    found = {}
    for item in box:
        message = email.message_from_bytes(item.as_bytes(), policy=email.policy.default)
        assert isinstance(message, email.message.EmailMessage)
        found[str(message["To"]).split("<")[-1].rstrip(">")] = message
    return found


def body(message: email.message.EmailMessage, kind: str) -> str:
    part = message.get_body((kind,))
    assert isinstance(part, email.message.EmailMessage)
    return str(part.get_content())


ENGLISH_W47 = ["Dovetails by hand, the slow way", "A sharpening routine that sticks"]
PREVIEWS = [
    # --lang, issue id, `lang`, titles, a word around the posts, where the files are
    (None, "2026-W47", "en", ENGLISH_W47, "View in browser", ""),
    ("en-GB", "2026-W47", "en", ENGLISH_W47, "View in browser", ""),
    ("ko", "ko/2026-W47", "ko", ["오래 가는 연마 습관"], "브라우저에서 보기", "ko/"),
    ("ko_KR", "ko/2026-W47", "ko", ["오래 가는 연마 습관"], "브라우저에서 보기", "ko/"),
    ("ja", "ja/2026-W47", "ja", ["続けられる研ぎの手順"], "View in browser", "ja/"),  # no Japanese words built in
    ("de", "de/2026-W47", "de", [], "", "de/"),  # nobody writes in German: an empty issue
]  # fmt: skip


@pytest.mark.parametrize(("lang", "issue", "code", "titles", "word", "prefix"), PREVIEWS)
def test_preview_per_language(
    site: Path, lang: str | None, issue: str, code: str, titles: list[str], word: str, prefix: str
) -> None:
    args = ["preview", "--site", str(site), "--week", "2026-W47", "--json"] + (["--lang", lang] if lang else [])
    status, out, err = invoke(*args)
    assert status == 0, err
    # a language nobody writes in is previewed (a subscriber may read it: their issue is empty), with a warning
    assert ("warning: --lang de: the site has no posts in that language (its languages: en, ja, ko)" in err) == (
        code == "de"
    )
    summary = json.loads(out)
    assert (summary["issue"], summary["language"]) == (issue, code)
    assert [e["title"] for e in summary["entries"]] == titles
    assert summary["languages"] == ["en", "ja", "ko"]
    files = summary["files"]
    assert f"{prefix}atom.xml" in files and f"{prefix}index.html" in files
    if not titles:
        assert f"{prefix}email.html" not in files
        return
    html = Path(files[f"{prefix}email.html"]).read_text("utf-8")
    assert f'<html lang="{code}"' in html and word in html
    text = Path(files[f"{prefix}email.txt"]).read_text("utf-8")
    assert word in text and all(t in text for t in titles)
    feed = json.loads(Path(files[f"{prefix}feed.json"]).read_text("utf-8"))
    assert feed["language"] == code and feed["feed_url"].endswith(f"/newsletter/{prefix}feed.json")


def test_run_sends_each_subscriber_the_issue_of_their_language(site: Path) -> None:
    status, out, err = invoke("run", "--site", str(site), "--json")
    assert status == 0, err
    summary = json.loads(out)
    assert [(i["issue"], i["language"], i["sent"]) for i in summary["issues"]] == [
        ("2026-W47", "en", 1),
        ("ja/2026-W47", "ja", 1),
        ("ko/2026-W47", "ko", 1),  # the other Korean subscriber wants only woodwork: none this week
    ]
    got = messages(site)
    assert sorted(got) == ["ada@example.com", "haruka@example.net", "minjun@example.org"]
    checks = {
        "ada@example.com": ("en", "Dovetails by hand", "Unsubscribe", "/newsletter/2026-W47/"),
        "minjun@example.org": ("ko", "오래 가는 연마 습관", "구독 해지", "/newsletter/ko/2026-W47/"),
        "haruka@example.net": ("ja", "続けられる研ぎの手順", "Unsubscribe", "/newsletter/ja/2026-W47/"),
    }
    for address, (code, title, word, page) in checks.items():
        html, text = body(got[address], "html"), body(got[address], "plain")
        assert f'<html lang="{code}"' in html and title in html and title in text
        assert word in text and page in text
        others = {t for a, (_, t, _, _) in checks.items() if a != address}
        assert not any(t in html for t in others)
    out_dir = load_settings(site=site).output.dir
    for prefix, code in (("", "en"), ("ko/", "ko"), ("ja/", "ja")):
        assert (out_dir / f"{prefix}2026-W47" / "index.html").is_file()
        index = (out_dir / f"{prefix}index.html").read_text("utf-8")
        assert f'<html lang="{code}"' in index
    assert "ko/2026-W45" in {p.relative_to(out_dir).parent.as_posix() for p in out_dir.rglob("index.html")}
    # a rerun sends nothing; the ledger knows each language's issue by its own name
    status, out, _ = invoke("run", "--site", str(site), "--json")
    assert json.loads(out)["sent"] == 0
    for lang, issue in (("", "2026-W47"), ("ko", "ko/2026-W47"), ("ja", "ja/2026-W47")):
        status, out, _ = invoke("status", "--site", str(site), "--json", *(["--lang", lang] if lang else []))
        state = json.loads(out)
        assert state["issue"] == issue and state["counts"]["sent"] == 1


def test_a_one_language_site_keeps_its_ids_and_paths(tmp_path: Path) -> None:
    site = tmp_path / "site"
    shutil.copytree(EXAMPLE.parent / "site", site, ignore=shutil.ignore_patterns("_digest", ".digest"))
    status, out, _ = invoke("run", "--site", str(site), "--week", "2026-W47", "--json", now="2026-11-23T09:00:00+09:00")
    summary = json.loads(out)
    assert status == 0 and [i["issue"] for i in summary["issues"]] == ["2026-W47"]
    out_dir = site / "_digest"
    assert not [p for p in out_dir.iterdir() if p.is_dir() and len(p.name) <= 7 and not p.name[0].isdigit()]


def korean_text_template(site: Path, first_line: str) -> Path:
    """templates/ko/email.txt.j2: the built-in text template under `first_line`, in the config's template
    folder; returns that folder."""
    templates = site / "templates"
    (templates / "ko").mkdir(parents=True)
    builtin = Path(__file__).resolve().parents[1] / "templates" / "email.txt.j2"
    (templates / "ko" / "email.txt.j2").write_text(first_line + "\n" + builtin.read_text("utf-8"), "utf-8")
    config = site / "digest.toml"
    config.write_text(config.read_text("utf-8").replace("[email]", '[output]\ntemplates = "templates"\n\n[email]'))
    return templates


def test_a_template_override_per_language(site: Path) -> None:
    templates = korean_text_template(site, "한국어 전용 틀")
    invoke("run", "--site", str(site))
    got = messages(site)
    assert body(got["minjun@example.org"], "plain").startswith("한국어 전용 틀")
    assert "한국어 전용 틀" not in body(got["ada@example.com"], "plain")
    assert invoke("check", "--site", str(site))[0] == 0
    (templates / "ko" / "email.html.j2").write_text("{% if %}", "utf-8")  # checked before any week is sent
    status, out, _ = invoke("check", "--site", str(site), "--json")
    templates_check = next(f for f in json.loads(out) if f["check"] == "templates")
    assert status == 1 and "ko/email.html.j2" in templates_check["detail"] + templates_check["fix"]


def test_a_template_that_fails_for_one_language_stops_the_send_before_any_reader_gets_mail(site: Path) -> None:
    """The Korean override names a variable that does not exist (a render error, not a syntax one): the run
    stops before the English and Japanese readers, earlier in the order, got their issue; fixed, the next
    run sends every reader one issue."""
    templates = korean_text_template(site, "{{ site.nope }}")
    status, _, err = invoke("run", "--site", str(site))
    assert status != 0 and "ko/email.txt.j2:1" in err and "Traceback" not in err
    outbox = load_settings(site=site, env={**os.environ, "DIGEST_SECRET": SECRET}).outbox
    assert not outbox.exists() or messages(site) == {}
    (templates / "ko" / "email.txt.j2").unlink()
    status, out, err = invoke("run", "--site", str(site), "--json")
    assert status == 0, err
    assert sorted(messages(site)) == ["ada@example.com", "haruka@example.net", "minjun@example.org"]


@pytest.mark.parametrize(
    ("query", "lang", "words"),
    [("", "en", "Stop sending the newsletter"), ("&lang=ko", "ko", "뉴스레터를 그만 받으시겠습니까"),
     ("&lang=ja", "ja", "Stop sending the newsletter"), ("&lang=<x>", "en", "Stop sending")],
)  # fmt: skip
def test_unsubscribe_pages_speak_the_subscribers_language(
    site: Path, http_server_factory: Any, query: str, lang: str, words: str
) -> None:
    settings = load_settings(site=site, env={**state_env(), "DIGEST_SECRET": SECRET})
    server = http_server_factory(settings, Ledger(settings.db_url), lambda: datetime.now(UTC))
    token = make_token(SECRET, "minjun@example.org", datetime.now(UTC))
    page = httpx.get(f"{server.url}/unsubscribe?token={token}{query}")
    assert page.status_code == 200 and f'<html lang="{lang}">' in page.text and words in page.text
    action = re.search(r'action="([^"]+)"', page.text)
    assert action is not None
    done = httpx.post(f"{server.url}/{action[1].replace('&amp;', '&')}", data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200 and f'<html lang="{lang}">' in done.text
    broken = httpx.get(f"{server.url}/unsubscribe?token=broken{query}")
    assert broken.status_code == 400 and f'<html lang="{lang}">' in broken.text


def test_the_unsubscribe_link_of_a_korean_issue_carries_its_language(site: Path) -> None:
    config = site / "digest.toml"
    config.write_text(
        config.read_text("utf-8").replace("[email]\n", '[email]\npublic_url = "https://fieldnotes.example.net/"\n')
    )
    invoke("run", "--site", str(site))
    got = messages(site)
    assert "&lang=ko" in str(got["minjun@example.org"]["List-Unsubscribe"])
    assert "lang=" not in str(got["ada@example.com"]["List-Unsubscribe"])


def test_check_warns_about_a_subscribers_language_nobody_writes_in(site: Path) -> None:
    status, out, _ = invoke("check", "--site", str(site), "--json")
    found = {f["check"]: f for f in json.loads(out)}
    assert (
        status == 0
        and found["subscribers"]["level"] == "ok"
        and "languages en, ja, ko" in found["subscribers"]["detail"]
    )
    subscribers = site / "subscribers.yaml"
    subscribers.write_text(subscribers.read_text("utf-8") + "  - email: typo@example.com\n    language: kr\n", "utf-8")
    status, out, _ = invoke("check", "--site", str(site), "--json")
    found = {f["check"]: f for f in json.loads(out)}
    assert found["subscribers"]["level"] == "warn" and "no recent post is in kr" in found["subscribers"]["fix"]


def addressed(site: Path) -> list[tuple[str, str]]:
    """(address, Content-Language) of every message in the outbox, duplicates kept."""
    box = mailbox.Maildir(load_settings(site=site, env={**os.environ, "DIGEST_SECRET": SECRET}).outbox, create=False)
    found = []
    for item in box:
        message = email.message_from_bytes(item.as_bytes(), policy=email.policy.default)
        found.append((str(message["To"]).split("<")[-1].rstrip(">"), str(message["Subject"])))
    return sorted(found)


def reader_file(site: Path, language: str) -> None:
    line = f"    language: {language}\n" if language else ""
    (site / "subscribers.yaml").write_text(f"subscribers:\n  - email: reader@example.org\n{line}", "utf-8")


NEXT_WEEK = "2026-11-30T09:00:00+01:00"  # 2026-W48 has just ended


@pytest.mark.parametrize(
    ("before", "after", "had", "then"),
    [
        ("ko", "ja", "ko/2026-W47", "ja/2026-W48"),
        ("ja", "", "ja/2026-W47", "2026-W48"),
        ("", "ko", "2026-W47", "ko/2026-W48"),
    ],
)
def test_a_reader_who_changes_language_gets_one_issue_that_week(
    site: Path, before: str, after: str, had: str, then: str
) -> None:
    """The issue of each language is its own row in the ledger; a reader who moves from one to another
    after their week was sent (the preferences page, an edited file) is skipped in the new language's
    issue of that week, with the reason, and gets the new language's issue from the next week on."""
    for lang in ("en", "ko", "ja"):
        (site / "posts" / f"2026-11-25-plane-{lang}.md").write_text(
            f"---\ntitle: Plane iron {lang}\ndate: 2026-11-25 08:00\nlang: {lang}\n---\nA flat back first.\n", "utf-8"
        )
    reader_file(site, before)
    status, _, err = invoke("run", "--site", str(site), "--week", "2026-W47")
    assert status == 0, err
    assert len(addressed(site)) == 1
    reader_file(site, after)
    status, out, err = invoke("run", "--site", str(site), "--week", "2026-W47", "--json")
    assert status == 0, err
    assert json.loads(out)["sent"] == 0
    assert len(addressed(site)) == 1  # not the new language's issue of the same week
    now_issue = f"{after}/2026-W47" if after else "2026-W47"
    status, out, _ = invoke("status", "--site", str(site), "--json", *(["--lang", after] if after else []))
    state = json.loads(out)
    assert state["issue"] == now_issue and state["counts"].get("skipped") == 1 and not state["counts"].get("sent")
    ledger = Ledger(load_settings(site=site, env={**os.environ, "DIGEST_SECRET": SECRET}).db_url)
    try:
        rows = {(row.issue_id, row.state.value, row.reply) for row in ledger.deliveries(now_issue)}
    finally:
        ledger.close()
    assert rows == {(now_issue, "skipped", f"had this week's issue in another language ({had})")}
    # the next week is the new language's
    status, out, err = invoke("run", "--site", str(site), "--json", now=NEXT_WEEK)
    assert status == 0, err
    assert [(i["issue"], i["sent"]) for i in json.loads(out)["issues"]] == [(then, 1)]
    assert len(addressed(site)) == 2


def test_a_language_without_posts_that_week_accounts_for_its_subscribers(site: Path) -> None:
    """2026-W45 has English and Korean posts only: the Japanese reader gets nothing, and the summary says
    so with the count, so that its totals add up to the list."""
    status, out, err = invoke("send", "--site", str(site), "--week", "2026-W45", "--json")
    assert status == 0, err
    issues = {i["language"]: i for i in json.loads(out)["issues"]}
    assert {lang: (i["subscribers"], i["sent"]) for lang, i in issues.items()} == {
        "en": (1, 1),
        "ja": (1, 0),
        "ko": (2, 2),
    }
    assert issues["ja"]["note"] == "no entries: nothing sent"
    status, out, err = invoke("send", "--site", str(site), "--week", "2026-W45", "--dry-run")
    assert status == 0, err
    assert "week 2026-W45 (ja): no entries, nothing sent to its 1 subscriber" in out


HUGO_TITLES = """baseURL = "https://hugo.example.org/"
title = "Dev Log"
defaultContentLanguage = "en"
[languages.en]
  weight = 1
  contentDir = "content/en"
[languages.ko]
  weight = 2
  contentDir = "content/ko"
  title = "개발 일지"
"""


def test_a_hugo_language_has_its_own_title_and_home_page(tmp_path: Path) -> None:
    """`[languages.ko] title` names the Korean issue, archive and feeds, whose home link is the Korean
    home page (`/ko/`); the site's own language keeps the site's title and home."""
    site = tmp_path / "hugo"
    (site / "content" / "en" / "posts").mkdir(parents=True)
    (site / "content" / "ko" / "posts").mkdir(parents=True)
    (site / "hugo.toml").write_text(HUGO_TITLES, "utf-8")
    for folder, title in (("en", "Shipping the parser"), ("ko", "파서 배포기")):
        (site / "content" / folder / "posts" / "parser.md").write_text(
            f'+++\ntitle = "{title}"\ndate = 2024-01-02T10:00:00+09:00\n+++\n\n{title}.\n', "utf-8"
        )
    now = "2024-01-08T09:00:00+09:00"
    status, out, err = invoke("preview", "--site", str(site), "--week", "2024-W01", "--lang", "ko", "--json", now=now)
    assert status == 0, err
    html = Path(json.loads(out)["files"]["ko/email.html"]).read_text("utf-8")
    assert ">개발 일지</h1>" in html and "Dev Log" not in html
    status, _, err = invoke("publish", "--site", str(site), now=now)
    assert status == 0, err
    out_dir = load_settings(site=site, env={**os.environ}).output.dir
    for prefix, title, home in (
        ("", "Dev Log", "https://hugo.example.org/"),
        ("ko/", "개발 일지", "https://hugo.example.org/ko/"),
    ):
        for page in ("index.html", "2024-W01/index.html"):
            text = (out_dir / prefix / page).read_text("utf-8")
            assert f'<a href="{home}">{title}</a>' in text, (prefix, page)
        atom = (out_dir / prefix / "atom.xml").read_text("utf-8")
        assert f"<title>{title}</title>" in atom
    assert "개발 일지" not in (out_dir / "index.html").read_text("utf-8")


def test_paused_and_unsubscribed_readers_are_skipped_in_their_own_language_with_the_reason(site: Path) -> None:
    """`digest run` and `digest send` (the list passed in by the command line) skip a reader paused on the
    preferences page, in whatever language they read, and record why; one who left is recorded as such."""
    status, _, err = invoke("run", "--site", str(site), "--week", "2026-W45")
    assert status == 0, err
    settings = load_settings(site=site, env={**os.environ, "DIGEST_SECRET": SECRET})
    from digest.sender.roster import Roster

    book = Roster(settings.db_url)
    at = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)
    for address, language in (("haruka@example.net", "ja"), ("minjun@example.org", "ko")):
        assert book.update_preferences(address, at, language=language, tags=[], fmt="html", pause_weeks=2)
    book.store.close()
    assert invoke("unsubscribe", "--site", str(site), "ada@example.com")[0] == 0
    before = len(addressed(site))
    for command in ("send", "run"):
        status, out, err = invoke(command, "--site", str(site), "--week", "2026-W47", "--json")
        assert status == 0, err
        assert json.loads(out)["sent"] == 0 and len(addressed(site)) == before, command
    paused = "paused until 2026-12-02"
    tags = "no entries this week match the subscriber's tags"  # the Korean reader of woodwork only
    for lang, reasons in (("", {"unsubscribed": 1}), ("ja", {paused: 1}), ("ko", {paused: 1, tags: 1})):
        status, out, _ = invoke(
            "status", "--site", str(site), "--week", "2026-W47", "--json", *(["--lang", lang] if lang else [])
        )
        state = json.loads(out)
        assert state["counts"].get("sent", 0) == 0 and state["skipped"] == reasons, (lang, state)


def test_a_pause_ends_on_the_day_the_site_says_everywhere(site: Path) -> None:
    """A pause chosen at 00:30 in Berlin (23:30 UTC, the day before) ends on the Berlin day the preference
    page shows: the ledger's reason and `digest subscribers list` give that day too, not the UTC one."""
    assert invoke("run", "--site", str(site), "--week", "2026-W45")[0] == 0
    settings = load_settings(site=site, env={**os.environ, "DIGEST_SECRET": SECRET})
    from digest.sender.roster import Roster

    book = Roster(settings.db_url)
    at = datetime(2026, 11, 18, 23, 30, tzinfo=UTC)  # 2026-11-19 00:30 in Berlin
    assert book.update_preferences("minjun@example.org", at, language="ko", tags=[], fmt="html", pause_weeks=2)
    book.store.close()
    assert invoke("send", "--site", str(site), "--week", "2026-W47")[0] == 0
    status, out, _ = invoke("status", "--site", str(site), "--week", "2026-W47", "--json", "--lang", "ko")
    assert "paused until 2026-12-03" in json.loads(out)["skipped"], out
    status, out, err = invoke("subscribers", "list", "--site", str(site))
    assert status == 0, err
    (line,) = [line for line in out.splitlines() if line.startswith("minjun@example.org")]
    assert "paused until 2026-12-03" in line, line


def test_a_translation_written_a_week_late_reaches_its_readers_before_their_first_issue(site: Path) -> None:
    """The list starts in a week with an English post only: the Korean readers get nothing that week. Its
    Korean translation, dated in that week, is written the week after: it goes to them with their next issue,
    as a late arrival, once (it was never mailed: their language had no issue yet to count from)."""
    glue = site / "posts" / "2026-11-12-glue-notes.md"  # the only post of W46, in English (a draft: made public)
    glue.write_text(glue.read_text("utf-8").replace("draft: true\n", ""), "utf-8")
    w46_monday = "2026-11-16T09:00:00+01:00"
    status, out, err = invoke("run", "--site", str(site), "--week", "2026-W46", "--json", now=w46_monday)
    assert status == 0, err
    assert not [i for i in json.loads(out)["issues"] if i["language"] == "ko" and i["entries"]]
    (site / "posts" / "2026-11-12-glue-notes-ko.md").write_text(
        '---\ntitle: "아교 메모"\ndate: 2026-11-12 20:00\nlang: ko\n---\n\n아교를 데우는 온도.\n', "utf-8"
    )
    status, out, err = invoke("run", "--site", str(site), "--json")  # W47
    assert status == 0, err
    (korean,) = [i for i in json.loads(out)["issues"] if i["language"] == "ko"]
    assert [(e["title"], e["late"]) for e in korean["entries"]] == [("오래 가는 연마 습관", False), ("아교 메모", True)]
    assert invoke("run", "--site", str(site), "--json", now="2026-11-30T09:00:00+01:00")[0] == 0  # W48
    mails = [m for m in _maildir(site) if "minjun@example.org" in str(m["To"])]
    assert sum("아교 메모" in body(m, "plain") for m in mails) == 1


def _maildir(site: Path) -> list[email.message.EmailMessage]:
    box = mailbox.Maildir(load_settings(site=site, env={**os.environ, "DIGEST_SECRET": SECRET}).outbox, create=False)
    return [email.message_from_bytes(item.as_bytes(), policy=email.policy.default) for item in box]  # type: ignore[misc]


def test_a_site_that_changes_its_language_does_not_mail_that_languages_issues_again(site: Path) -> None:
    """The site's own language has no prefix in the ledger: after `language = "ko"` the Korean issues planned
    as ko/… are the site language's, and what they carried is not mailed again as late arrivals."""
    assert invoke("run", "--site", str(site))[0] == 0  # 2026-W47: ko/2026-W47 to the Korean reader
    config = site / "digest.toml"
    config.write_text(config.read_text("utf-8").replace('language = "en"', 'language = "ko"'), "utf-8")
    (site / "posts" / "2026-11-25-plane-ko.md").write_text(
        '---\ntitle: "대패 손질"\ndate: 2026-11-25 10:00\nlang: ko\n---\n\n대패 날을 갈았다.\n', "utf-8"
    )
    status, out, err = invoke("run", "--site", str(site), "--json", now="2026-11-30T09:00:00+01:00")
    assert status == 0, err
    korean = [i for i in json.loads(out)["issues"] if i["language"] == "ko"]
    assert [(i["issue"], [(e["title"], e["late"]) for e in i["entries"]]) for i in korean] == [
        ("2026-W48", [("대패 손질", False)])
    ]


def test_a_welcome_without_an_issue_speaks_the_readers_language(site: Path) -> None:
    """Before any Korean issue exists, a Korean reader's welcome is Korean around the note too (it was
    English but for the welcome paragraph), and its preheader is the welcome, not "No new posts"."""
    from digest.templater.pages import render_welcome
    from digest.weeks import week_of

    settings = load_settings(site=site, env={**state_env(), "DIGEST_SECRET": SECRET})
    week = week_of(datetime(2026, 11, 25, 12, tzinfo=UTC), settings.site)
    welcome = render_welcome(None, week, settings, "ko")
    assert '<html lang="ko"' in welcome.html and "구독 해지" in welcome.text
    assert "Unsubscribe" not in welcome.text and "View in browser" not in welcome.text
    assert welcome.preheader == "Field Notes 구독을 환영합니다." and "최근 호를 보내 드립니다" not in welcome.text
    assert welcome.text.splitlines()[0] == "Field Notes" and week.label not in welcome.html  # of no week
    # no Korean archive yet (its links would be 404s): the site's own archive and feeds
    assert welcome.archive_url.endswith("/newsletter/") and "/newsletter/ko/" not in welcome.html + welcome.text
    (settings.output.dir / "ko").mkdir(parents=True)
    (settings.output.dir / "ko" / "index.html").write_text("<!doctype html><title>ko</title>\n", "utf-8")
    welcome = render_welcome(None, week, settings, "ko")
    assert welcome.archive_url.endswith("/newsletter/ko/") and "/newsletter/ko/atom.xml" in welcome.html


def test_status_names_the_weeks_issues_in_the_other_languages(site: Path) -> None:
    """`digest status` shows one issue; the same week's issues in the other languages are one line each below
    it, so a failure in the Korean issue is not out of sight of someone who looks at the English one."""
    assert invoke("run", "--site", str(site))[0] == 0  # 2026-W47 in en, ko and ja
    status, out, err = invoke("status", "--site", str(site), "--week", "2026-W47")
    assert status == 0, err
    also = [line for line in out.splitlines() if line.startswith("also ")]
    assert [line.split(":")[0] for line in also] == ["also ja/2026-W47", "also ko/2026-W47"], out
    assert all("sent" in line for line in also) and "`digest status --lang ko`" in also[1]
    assert not any(" 0 " in line for line in also), also  # the states it has, as the README shows them
    status, out, _ = invoke("status", "--site", str(site), "--week", "2026-W47", "--lang", "ko")
    assert "also 2026-W47: " in out and "without --lang" in out and "also ko/" not in out
