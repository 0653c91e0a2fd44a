"""The command line end to end on a copy of the example site: exit codes, one-line errors, JSON, files."""

from __future__ import annotations

import email
import email.policy
import json
import mailbox
import re
import shutil
import subprocess
import sys
import tomllib
from email.header import decode_header, make_header
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from digest.cli import main
from digest.config import load_settings, load_subscribers

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "site"
NOW = "2026-11-23T09:00:00+09:00"  # Monday morning in Seoul: week 2026-W47 has just ended


@pytest.fixture
def site(tmp_path: Path) -> Path:
    target = tmp_path / "site"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("_digest", ".digest"))
    return target


def outbox(site: Path) -> Path:
    """Where mail goes by default: the private state folder, outside the site and the output folder."""
    return load_settings(site=site).outbox


def invoke(*args: str, now: str = NOW) -> tuple[int, str, str]:
    runner = CliRunner()
    result = runner.invoke(
        main, list(args), env={"DIGEST_NOW": now, "DIGEST_SECRET": "a test secret for the command line, 32+ bytes"}
    )
    return result.exit_code, result.stdout, result.stderr


def test_preview_json_lists_the_weeks_entries(site: Path) -> None:
    code, out, _ = invoke("preview", "--site", str(site), "--week", "2026-W47", "--json")
    assert code == 0
    summary = json.loads(out)
    assert summary["week"] == "2026-W47"
    assert summary["start"] == "2026-11-16T00:00:00+09:00" and summary["end"] == "2026-11-23T00:00:00+09:00"
    sources = {e["source"] for e in summary["entries"]}
    assert "posts/2026-11-16-weekly-ml-news.md" in sources  # dotted date `2026.11.16 09:30:00`
    assert "posts/2026-11-19-release-notes.md" in sources  # TOML front matter
    assert "posts/2026-11-21-unfinished.md" not in sources  # draft
    assert "posts/2026-11-11-pelican-style.md" not in sources  # the week before
    log_items = [e for e in summary["entries"] if e["source"] == "posts/2026-11-18-reading-log.md"]
    assert len(log_items) == 3  # the October item belongs to an earlier week
    for entry in summary["entries"]:
        assert entry["date"].endswith("+09:00") and entry["url"].startswith("https://notes.example.org/")
    for name in ("email.html", "email.txt", "email.eml", "atom.xml", "rss.xml", "index.html", "2026-W47/index.html"):
        assert Path(summary["files"][name]).is_file(), name


def test_preview_files_are_byte_identical_across_builds(site: Path) -> None:
    invoke("preview", "--site", str(site), "--week", "2026-W47")
    out = site / "_digest" / "preview"
    first = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    shutil.rmtree(out)
    invoke("preview", "--site", str(site), "--week", "2026-W47", now="2026-11-25T10:00:00+09:00")
    second = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert first.keys() == second.keys()
    assert [k for k in first if first[k] != second[k]] == []


def test_preview_eml_is_a_complete_message(site: Path) -> None:
    invoke("preview", "--site", str(site), "--week", "2026-W47")
    msg = email.message_from_bytes(
        (site / "_digest" / "preview" / "email.eml").read_bytes(), policy=email.policy.default
    )
    assert msg.get_content_type() == "multipart/alternative"
    assert "주간" in str(msg["Subject"])
    html = msg.get_body(("html",))
    assert html is not None and "작은 언어 모델 벤치마크" in html.get_content()  # an outline item of the news post


def test_preview_text_prints_what_a_subscriber_reads(site: Path) -> None:
    code, out, _ = invoke("preview", "--site", str(site), "--week", "2026-W47", "--text")
    assert code == 0
    assert "Setting up Korean fonts for plots" in out and "<" not in out.split("\n", 1)[0]
    assert "DIGEST" not in out and "MARK" not in out  # no placeholder left for the sender
    assert "subscriber@example.com" in out and "mailto:digest@notes.example.org" in out


def test_run_delivers_once_to_the_maildir(site: Path) -> None:
    code, out, _ = invoke("run", "--site", str(site), "--week", "2026-W47")
    assert code == 0, out
    box = mailbox.Maildir(outbox(site), create=False)
    recipients = sorted(str(m["To"]) for m in box)
    assert len(recipients) == 3  # the inactive subscriber gets nothing
    assert (site / "_digest" / "atom.xml").is_file()
    code, out, _ = invoke("run", "--site", str(site), "--week", "2026-W47")
    assert code == 0 and "sent 0" in out and "3 had it already" in out
    assert len(list(mailbox.Maildir(outbox(site), create=False))) == 3
    code, out, _ = invoke("status", "--site", str(site), "--week", "2026-W47", "--json")
    assert json.loads(out)["counts"]["sent"] == 3


def test_send_dry_run_sends_nothing(site: Path) -> None:
    code, out, _ = invoke("send", "--site", str(site), "--week", "2026-W47", "--dry-run", "--json")
    assert code == 0
    assert json.loads(out)["sent"] == 3 and json.loads(out)["dry_run"] is True
    assert not (outbox(site)).exists() or not list(mailbox.Maildir(outbox(site)))


@pytest.mark.parametrize(
    ("args", "warned"),
    [
        (["--week", "this"], "the week 2026-W48 has not ended (it ends 2026-11-30T00:00:00+09:00)"),
        (["--since", "2026-11-20", "--until", "2026-11-26"], "has not ended (it ends 2026-11-27T00:00:00+09:00)"),
        (["--week", "2026-W47"], ""),
    ],
    ids=["this-week", "window-into-tomorrow", "ended"],
)
def test_sending_a_week_that_has_not_ended_says_what_that_means(site: Path, args: list[str], warned: str) -> None:
    code, _, err = invoke("send", "--site", str(site), *args, "--dry-run")
    assert code == 0
    notes = [line for line in err.splitlines() if "has not ended" in line]
    assert len(notes) == (1 if warned else 0)
    assert all(line.startswith("warning: ") and warned in line and "next issue" in line for line in notes)


def test_send_to_one_address_leaves_the_ledger_alone(site: Path) -> None:
    code, out, _ = invoke("send", "--site", str(site), "--week", "2026-W47", "--to", "me@example.com")
    assert code == 0, out
    assert [str(m["To"]) for m in mailbox.Maildir(outbox(site), create=False)] == ["me@example.com"]
    code, out, _ = invoke("status", "--site", str(site), "--week", "2026-W47", "--json")
    assert sum(json.loads(out)["counts"].values()) == 0


def test_unsubscribe_by_hand_skips_the_next_send(site: Path) -> None:
    assert invoke("unsubscribe", "--site", str(site), "READER@example.com")[0] == 0
    code, out, _ = invoke("subscribers", "--site", str(site))
    assert code == 0 and "unsubscribed" in out
    invoke("run", "--site", str(site), "--week", "2026-W47")
    to = {str(m["To"]) for m in mailbox.Maildir(outbox(site), create=False)}
    assert not any("reader@example.com" in t for t in to) and len(to) == 2


def test_empty_week_sends_nothing(site: Path) -> None:
    code, out, _ = invoke("send", "--site", str(site), "--week", "2026-W30")
    assert code == 0 and "no entries" in out


@pytest.mark.parametrize(
    ("args", "heading", "says"),
    [
        (["--week", "2026-W49"], "week 2026-W49", "no entries in this week: nothing would be sent"),
        (
            ["--since", "2026-11-17", "--until", "2026-11-22"],
            "window 2026-11-17--2026-11-22",
            "no entries in this window to send: its 5 post(s) went out in 2026-W47 (`digest status --week 2026-W47`)",
        ),
    ],
)
def test_a_preview_with_nothing_to_send_says_why(site: Path, args: list[str], heading: str, says: str) -> None:
    """A week without posts, and a window whose posts an issue already carried (so none is mailed again)."""
    code, _, err = invoke("run", "--site", str(site))
    assert code == 0, err
    code, out, err = invoke("preview", "--site", str(site), *args)
    assert code == 0, err
    assert heading in out and says in out


def test_empty_week_note_mode_sends_a_short_note(site: Path) -> None:
    config = site / "digest.toml"
    config.write_text(config.read_text("utf-8").replace("[email]\n", '[email]\nempty_week = "note"\n'), "utf-8")
    code, out, _ = invoke("send", "--site", str(site), "--week", "2026-W30")
    assert code == 0, out
    messages = list(mailbox.Maildir(outbox(site), create=False))
    assert len(messages) == 3
    body = email.message_from_bytes(messages[0].as_bytes(), policy=email.policy.default).get_body(("plain",))
    assert body is not None and "2026-W30" in body.get_content()
    assert "https://notes.example.org/newsletter/2026-W30/" not in body.get_content()  # no such archive page


BAD_INPUTS = [
    (["preview", "--week", "2026-W99"], "2026-W99", 2),
    (["send", "--week", "someday"], "someday", 2),
    (["publish", "--until", "2026-11-20"], "--until needs --since", 2),
    (["send", "--to", "not an address"], "--to", 2),
    (["preview", "--config", "missing.toml"], "config file not found", 1),
]


@pytest.mark.parametrize(("args", "needle", "exit_code"), BAD_INPUTS)
def test_bad_input_is_one_line_with_its_exit_code(site: Path, args: list[str], needle: str, exit_code: int) -> None:
    code, out, err = invoke(*args, "--site", str(site))
    assert code == exit_code
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0]
    assert "Traceback" not in out + err


def test_unknown_config_key_names_file_and_line(site: Path) -> None:
    (site / "digest.toml").write_text("[site]\ntitle = 'x'\ntimezon = 'UTC'\n", "utf-8")
    code, _, err = invoke("preview", "--site", str(site))
    assert code == 1
    assert "digest.toml:3: unknown key 'timezon' in [site] (did you mean 'timezone'?)" in err


def test_bad_subscribers_file(site: Path) -> None:
    (site / "subscribers.yaml").write_text("subscribers:\n  - email: ok@example.com\n  - email: not-an-address\n")
    code, _, err = invoke("subscribers", "check", "--site", str(site))
    assert code == 1 and "subscribers.yaml:3" in err
    code, _, err = invoke("send", "--site", str(site), "--week", "2026-W47")
    assert code == 1 and "subscribers.yaml:3" in err and "Traceback" not in err
    assert "more problem" not in err  # the only one


def test_a_subscribers_file_with_many_problems_says_how_many_and_where_all_are_listed(site: Path) -> None:
    """A send stops at the first bad line in one line, and says there are more: an author mends them all
    from one `digest subscribers check`, not one run per line."""
    (site / "subscribers.yaml").write_text(
        "subscribers:\n  - email: not-an-address\n  - email: b@example.com\n    language: 'zz-bad!'\n  - foo: bar\n"
    )
    code, _, err = invoke("send", "--site", str(site), "--week", "2026-W47")
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and "subscribers.yaml:2" in lines[0]
    assert "3 more problem(s) in this file: `digest subscribers check` lists them all" in lines[0]
    code, _, err = invoke("subscribers", "check", "--site", str(site))
    assert code == 1 and all(f"subscribers.yaml:{n}" in err for n in (2, 4, 5))


def test_strict_turns_skipped_files_into_an_error(site: Path) -> None:
    (site / "posts" / "2026-11-17-broken.md").write_text("---\ntitle: [unclosed\n---\nbody\n", "utf-8")
    code, out, err = invoke("preview", "--site", str(site), "--week", "2026-W47", "--json")
    assert code == 0
    assert any("2026-11-17-broken.md" in w["source"] for w in json.loads(out)["warnings"])
    code, _, err = invoke("preview", "--site", str(site), "--week", "2026-W47", "--strict")
    assert code == 1 and "2026-11-17-broken.md" in err


def test_preview_serve_of_a_week_without_email_names_a_page_that_exists(site: Path) -> None:
    """An empty week writes no email: the address printed is the folder's archive page, which is served."""
    import os
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [
        sys.executable,
        "-m",
        "digest.cli",
        "preview",
        "--site",
        str(site),
        "--week",
        "2026-W49",
        "--serve",
        str(port),
    ]
    proc = subprocess.Popen(args, env={**os.environ, "DIGEST_NOW": NOW}, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = next(line for line in proc.stdout if line.startswith("serving "))
        url = re.search(r"on (http://\S+)", line)
        assert url and url.group(1) == f"http://127.0.0.1:{port}/", line
        with urllib.request.urlopen(url.group(1), timeout=10) as resp:
            assert resp.status == 200 and "<html" in resp.read().decode()
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_serve_listens_where_port_says(site: Path) -> None:
    import os
    import socket
    import time
    import urllib.error
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [sys.executable, "-m", "digest.cli", "serve", "--site", str(site), "--port", str(port)]
    env = {**os.environ, "DIGEST_NOW": NOW, "DIGEST_SECRET": "a test secret for the command line, 32+ bytes"}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as resp:
                    status = resp.status
                break
            except urllib.error.HTTPError as exc:
                status = exc.code
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, "digest serve did not listen on --port"
                time.sleep(0.2)
        assert status in (200, 404)
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_usage_error_exit_2(site: Path) -> None:
    assert invoke("preview", "--no-such-option")[0] == 2


def test_console_script_prints_no_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "digest.cli", "preview", "--site", str(tmp_path / "nowhere")],
        capture_output=True,
        text=True,
    )
    assert result.returncode in (1, 2)
    assert "Traceback" not in result.stderr and result.stderr.strip()


def test_preview_serve_serves_and_rebuilds_when_a_post_changes(site: Path) -> None:
    import os
    import socket
    import time
    import urllib.error
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "DIGEST_NOW": NOW}
    args = [sys.executable, "-m", "digest.cli", "preview", "--site", str(site), "--week", "2026-W47",
            "--serve", str(port)]  # fmt: skip
    config = site / "digest.toml"  # an outbox chosen inside the output folder, filled by a send
    config.write_text(config.read_text("utf-8") + '\n[outbox]\nmaildir = "_digest/outbox"\n', "utf-8")
    assert invoke("send", "--site", str(site), "--week", "2026-W47")[0] == 0
    assert list((site / "_digest" / "outbox" / "new").iterdir())
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def fetch() -> str:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/email.html", timeout=5) as resp:
                    return resp.read().decode()
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    try:
        assert "Setting up Korean fonts for plots" in fetch()
        # only the preview folder is served: never the outbox or anything else beside it
        for path in ("/../outbox/", "/outbox/", "/../digest.toml", "/%2e%2e/subscribers.yaml"):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5)
                raise AssertionError(f"{path} was served")
            except urllib.error.HTTPError as exc:
                assert exc.code == 404
        post = site / "posts" / "2026-11-20-korean-fonts.md"
        post.write_text(post.read_text("utf-8").replace("Setting up Korean fonts", "Configuring Hangul fonts"))
        deadline = time.monotonic() + 20
        while "Configuring Hangul fonts" not in fetch():
            assert time.monotonic() < deadline, "the preview was not rebuilt"
            time.sleep(0.3)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_filter_that_leaves_nothing_sends_nothing_and_the_ledger_says_why(site: Path) -> None:
    (site / "subscribers.yaml").write_text(
        "subscribers:\n  - email: all@example.com\n  - email: travel@example.com\n    tags: [여행]\n", "utf-8"
    )
    code, out, _ = invoke("send", "--site", str(site), "--week", "2026-W47")
    assert code == 0, out
    assert [str(m["To"]) for m in mailbox.Maildir(outbox(site), create=False)] == ["all@example.com"]
    status = json.loads(invoke("status", "--site", str(site), "--week", "2026-W47", "--json")[1])
    assert status["counts"]["skipped"] == 1
    assert any("tags" in reason for reason in status["skipped"])


def test_check_prints_what_it_checked_and_exits_0(site: Path) -> None:
    code, out, _ = invoke("check", "--site", str(site), "--connect")
    assert code == 0, out
    checked = [line.split()[1] for line in out.splitlines()]
    assert checked == ["config", "posts", "templates", "email", "subscribers", "folders", "database", "transport"]
    assert "transport" in out and "connected" in out


@pytest.mark.parametrize(
    ("change", "check", "needle"),
    [
        (
            lambda s: (s / "subscribers.yaml").write_text("subscribers:\n  - email: not-an-address\n"),
            "subscribers",
            "valid",
        ),
        (lambda s: (s / "posts" / "2026-11-20-x.md").write_text("---\ntitle: [\n---\n"), "posts", "2026-11-20-x.md"),
        (  # no public URL yet (a Hugo site built with --baseURL in CI): every mailed link would be local
            lambda s: (s / "digest.toml").write_text(
                (s / "digest.toml").read_text("utf-8").replace("https://notes.example.org/", "http://localhost:1313/")
            ),
            "config",
            "baseURL",
        ),
    ],
)
def test_check_reports_each_problem_on_its_line(site: Path, change: Any, check: str, needle: str) -> None:
    change(site)
    code, out, _ = invoke("check", "--site", str(site), "--json")
    findings = {f["check"]: f for f in json.loads(out)}
    assert findings[check]["level"] in ("fail", "warn") and needle in findings[check]["detail"] + findings[check]["fix"]
    assert code == (1 if findings[check]["level"] == "fail" else 0)


def _own_template(site: Path, name: str, change: Any) -> None:
    folder = site / "mytemplates"
    folder.mkdir(exist_ok=True)
    builtin = (Path(__file__).resolve().parents[1] / "templates" / name).read_text("utf-8")
    (folder / name).write_text(change(builtin), "utf-8")
    config = site / "digest.toml"
    toml = config.read_text("utf-8")
    if "mytemplates" not in toml:
        line = '[output]\ntemplates = "mytemplates"\n'
        config.write_text(toml.replace("[output]\n", line) if "[output]\n" in toml else line + toml, "utf-8")


@pytest.mark.parametrize(
    ("name", "change", "needle"),
    [
        ("email.txt.j2", lambda t: "{{ site.tittle }}\n" + t, "email.txt.j2:1: template failed"),
        ("email.html.j2", lambda t: t.replace("</body>", "{% include 'parts/gone.j2' %}</body>"), "gone.j2' not"),
        ("email.html.j2", lambda t: t.replace("{{ unsubscribe_url }}", ""), "no unsubscribe link"),
        (
            "email.html.j2",
            lambda t: t.replace("</body>", "{% for i in range(9000) %}<p>Filler {{ i }}</p>{% endfor %}</body>"),
            "more than output.max_html_kb",
        ),
    ],
    ids=["unknown-variable", "missing-part", "no-unsubscribe-link", "frame-too-big"],
)
def test_check_renders_the_email_and_fails_where_a_send_would(site: Path, name: str, change: Any, needle: str) -> None:
    """Compiling finds syntax errors only: check renders each language's email as a send does, so what a
    send would stop on fails here first, named with its file."""
    _own_template(site, name, change)
    code, out, _ = invoke("check", "--site", str(site), "--json")
    found = {f["check"]: f for f in json.loads(out)}["templates"]
    assert code == 1 and found["level"] == "fail", found
    assert needle in found["detail"] and "mytemplates" in found["detail"], found
    assert invoke("send", "--site", str(site), "--dry-run")[0] != 0  # what check said: a send stops there


def test_check_warns_of_template_files_no_render_reads(site: Path) -> None:
    """A misspelt override, a folder named after no language of the site: silently never used before.
    A part an override includes, and a language's own folder, are used."""
    _own_template(site, "email.txt.j2", lambda t: "{% include 'parts/head.j2' %}\n" + t)
    folder = site / "mytemplates"
    (folder / "parts").mkdir()
    (folder / "parts" / "head.j2").write_text("HEAD", "utf-8")
    (folder / "ko").mkdir()  # the example site writes in Korean
    (folder / "ko" / "email.txt.j2").write_text((folder / "email.txt.j2").read_text("utf-8"), "utf-8")
    code, out, _ = invoke("check", "--site", str(site), "--json")
    found = {f["check"]: f for f in json.loads(out)}["templates"]
    assert code == 0 and found["level"] == "ok", found
    (folder / "emial.txt.j2").write_text("typo", "utf-8")
    (folder / "kr").mkdir()
    (folder / "kr" / "email.html.j2").write_text("wrong folder", "utf-8")
    code, out, _ = invoke("check", "--site", str(site), "--json")
    found = {f["check"]: f for f in json.loads(out)}["templates"]
    assert code == 0 and found["level"] == "warn", found
    detail = found["detail"]
    assert "2 file(s)" in detail and "emial.txt.j2" in detail and "kr/email.html.j2" in detail
    assert "parts/head.j2" not in detail and "ko/email.txt.j2" not in detail


def test_check_warns_of_email_css_premailer_would_leave_out(site: Path) -> None:
    """premailer drops what cssutils cannot read without a word: check names the file and the first."""
    _own_template(site, "email.css", lambda t: t + "\n.banner { color: #zzz; font-weight: bold }\n")
    code, out, _ = invoke("check", "--site", str(site), "--json")
    found = {f["check"]: f for f in json.loads(out)}["templates"]
    assert code == 0 and found["level"] == "warn", found
    assert "mytemplates/email.css: 1 rule(s)" in found["detail"] and "color: #zzz" in found["detail"], found
    _own_template(site, "email.css", lambda t: t + "\n.banner { color: #123456; font-weight: bold }\n")
    found = {f["check"]: f for f in json.loads(invoke("check", "--site", str(site), "--json")[1])}["templates"]
    assert found["level"] == "ok", found


def test_check_warns_of_markup_mail_clients_refuse_in_an_own_template(site: Path) -> None:
    _own_template(site, "email.html.j2", lambda t: t.replace("</body>", "<script>track()</script></body>"))
    found = {f["check"]: f for f in json.loads(invoke("check", "--site", str(site), "--json")[1])}["templates"]
    assert found["level"] == "warn" and "mytemplates/email.html.j2" in found["detail"], found
    assert "a <script>" in found["detail"] and "spam filters" in found["fix"]


def test_check_says_the_email_was_rendered(site: Path) -> None:
    code, out, _ = invoke("check", "--site", str(site), "--json")
    found = {f["check"]: f for f in json.loads(out)}["templates"]
    assert code == 0 and "the email rendered in 1 language(s)" in found["detail"], found


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ('[email]\nfrom = "not an address"\n', "email.from"),
        ('[email]\nsubject = "{{ week.label "\n', "email.subject is not a valid template"),
        ('[output]\ntemplates = "no-such-folder"\n', "template folder"),
        ('[email]\ndkim_key = "missing.pem"\ndkim_selector = "s1"\n', "cannot read the DKIM key"),
        ('[delivery]\ntransport = "pigeon"\n', "delivery.transport = 'pigeon' is not a transport"),
        ('[state]\ndatabase = "not a url"\n', "is not a database URL"),
    ],
)
def test_every_command_checks_the_config_at_start(site: Path, toml: str, needle: str) -> None:
    config = site / "digest.toml"
    merged = tomllib.loads(config.read_text("utf-8"))
    for section, table in tomllib.loads(toml).items():
        merged.setdefault(section, {}).update(table)
    config.write_text(
        "".join(
            f"[{name}]\n" + "".join(f"{k} = {json.dumps(v, ensure_ascii=False)}\n" for k, v in t.items())
            for name, t in merged.items()
        ),
        "utf-8",
    )
    for command in (["check"], ["preview"], ["publish"], ["schedule", "--show"]):
        code, _, err = invoke(*command, "--site", str(site))
        assert code == 1 and needle in err, (command, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("command", "default"), [("preview", "this"), ("publish", "last"), ("send", "last"), ("run", "last")]
)
def test_week_help_names_the_real_default(command: str, default: str) -> None:
    code, out, _ = invoke(command, "--help")
    assert code == 0 and f'"{default}" (default)' in " ".join(out.split())


@pytest.mark.parametrize(("umask", "file_mode", "folder_mode"), [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)])
def test_published_files_are_readable_by_the_web_server(
    site: Path, umask: int, file_mode: int, folder_mode: int
) -> None:
    import os

    env = {**os.environ, "DIGEST_NOW": NOW}
    command = [sys.executable, "-m", "digest.cli", "publish", "--site", str(site), "--week", "2026-W47"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, preexec_fn=lambda: os.umask(umask))
    assert done.returncode == 0, done.stderr
    out = site / "_digest"
    files = [p for p in out.rglob("*") if p.is_file()]
    assert files and {oct(p.stat().st_mode & 0o777) for p in files} == {oct(file_mode)}
    folders = [out, *(p for p in out.rglob("*") if p.is_dir())]
    assert {oct(p.stat().st_mode & 0o777) for p in folders} == {oct(folder_mode)}


CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def test_raw_control_characters_never_reach_any_output(site: Path) -> None:
    config = site / "digest.toml"
    config.write_text(config.read_text("utf-8").replace('title = "', 'title = "\\u0007\\u0085'), "utf-8")
    (site / "posts" / "2026-11-19-controls.md").write_text(
        '---\ntitle: "Bell\\x07 and escape\\x1b in a title\\x7f"\ndate: 2026-11-19 12:00\n'
        'tags: ["tab\\x0bbed", "ok"]\ndescription: "summary\\x08"\n---\n\nBody with \x0c form feed and \x7f.\n',
        "utf-8",
    )
    assert invoke("preview", "--site", str(site), "--week", "2026-W47")[0] == 0
    code, out, _ = invoke("run", "--site", str(site), "--week", "2026-W47")
    assert code == 0, out
    written = [p for p in (site / "_digest").rglob("*") if p.is_file()]
    written += [p for p in outbox(site).rglob("*") if p.is_file() and p.name != ".gitignore"]
    assert len(written) >= 20
    for path in written:
        text = path.read_bytes().decode("utf-8")
        if path.suffix == ".eml" or "outbox" in path.parts:
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            text = "".join(str(p.get_content()) for p in message.walk() if p.get_content_maintype() == "text")
            text += str(message["Subject"]) + str(message["From"])
        assert not CONTROL.search(text), (path, CONTROL.findall(text))
    assert "Bell and escape in a title" in (site / "_digest" / "feed.json").read_text("utf-8")


def test_preview_says_truthfully_what_the_size_guard_did(site: Path) -> None:
    long = "긴 문장이 계속 이어진다. A long sentence goes on and on. " * 400
    for n in range(40):
        (site / "posts" / f"2026-11-17-long-{n:02d}.md").write_text(
            f"---\ntitle: Long post {n}\ndate: 2026-11-17 10:{n:02d}\n---\n\n{long}\n\n{long}\n", "utf-8"
        )
    code, out, _ = invoke("preview", "--site", str(site), "--week", "2026-W47", "--json")
    summary = json.loads(out)
    assert code == 0 and summary["summarized"] and summary["omitted"] > 0
    assert summary["html_kb"] <= summary["max_html_kb"] == 102
    assert Path(summary["files"]["email.html"]).stat().st_size <= 102_000
    code, out, _ = invoke("preview", "--site", str(site), "--week", "2026-W47")
    shown = len(summary["entries"]) - summary["omitted"]
    assert f"summaries of {shown} entries, {summary['omitted']} more left to the archive link" in out


def preview_files(site: Path) -> set[str]:
    folder = site / "_digest" / "preview"
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


EMAIL_FILES = {"email.html", "email.txt", "email.eml"}


@pytest.mark.parametrize(
    ("before", "stale"),
    [
        ("a week with posts", EMAIL_FILES),  # the trial's case: W47, then an empty week
        ("a preview stopped halfway", EMAIL_FILES | {"2026-W47/index.html"}),  # listed, never finished
        ("a preview of an older version", EMAIL_FILES),  # no list of its files: its email files go
    ],
)
def test_a_preview_leaves_only_its_own_files_in_the_preview_folder(site: Path, before: str, stale: set[str]) -> None:
    folder = site / "_digest" / "preview"
    assert invoke("preview", "--site", str(site), "--week", "2026-W47")[0] == 0
    assert preview_files(site) >= EMAIL_FILES
    if before == "a preview stopped halfway":  # its list written, its files partly
        (folder / ".digest-files").write_text("email.html\nemail.txt\nemail.eml\n2026-W47/index.html\nzz.xml\n")
        shutil.rmtree(folder / "2026-W41")
    if before == "a preview of an older version":
        (folder / ".digest-files").unlink()
    (folder / "notes.txt").write_text("mine")  # a file digest did not write stays
    (folder / "mine").mkdir()
    (folder / "mine" / "draft.html").write_text("mine too")
    code, out, _ = invoke("preview", "--site", str(site), "--week", "2026-W49", "--json")
    summary = json.loads(out)
    assert code == 0 and summary["entries"] == []
    left = preview_files(site)
    assert not left & EMAIL_FILES
    assert left == set(summary["files"]) | {".digest-files", "notes.txt", "mine/draft.html"}
    assert set(summary["removed"]) == stale - set(summary["files"])
    code, out, _ = invoke("preview", "--site", str(site), "--week", "2026-W49")
    assert f"{len(summary['files'])} files written" in out and "removed" not in out  # nothing left to remove


def test_a_preview_summary_counts_what_it_removed(site: Path) -> None:
    invoke("preview", "--site", str(site), "--week", "2026-W47")
    code, out, _ = invoke("preview", "--site", str(site), "--week", "2026-W49")
    assert code == 0 and "no entries in this week" in out
    assert re.search(r"7 files written to .*; 3 of an earlier preview removed", out), out
    code, out, _ = invoke("preview", "--site", str(site), "--week", "2026-W47", "--json")
    assert json.loads(out)["removed"] == [] and preview_files(site) >= EMAIL_FILES


def _unsubscribe_one(site: Path) -> None:
    assert invoke("unsubscribe", "--site", str(site), "plain@example.net")[0] == 0


def _add_one(site: Path) -> None:
    with (site / "subscribers.yaml").open("a", encoding="utf-8") as fh:
        fh.write("  - email: late.comer@example.org\n")


COUNTS = ("sent", "deferred", "failed", "skipped", "earlier", "earlier_failed", "waiting", "outstanding")


@pytest.mark.parametrize(
    ("sent_before", "change", "expected"),
    [
        (False, None, {"sent": 3, "earlier": 0, "skipped": 1}),
        (True, None, {"sent": 0, "earlier": 3, "skipped": 1}),  # the trial's case
        (True, _add_one, {"sent": 1, "earlier": 3, "skipped": 1}),
        (True, _unsubscribe_one, {"sent": 0, "earlier": 3, "skipped": 1}),  # had it before leaving
        (False, _unsubscribe_one, {"sent": 2, "earlier": 0, "skipped": 2}),
    ],
)
def test_a_dry_run_reports_what_the_real_send_then_does(
    site: Path, sent_before: bool, change: Any, expected: dict[str, int]
) -> None:
    week = ("send", "--site", str(site), "--week", "2026-W47")
    if sent_before:
        assert invoke(*week)[0] == 0
    if change is not None:
        change(site)
    mails = len(list(mailbox.Maildir(outbox(site), create=False))) if outbox(site).exists() else 0
    ledger = json.loads(invoke("status", "--site", str(site), "--week", "2026-W47", "--json")[1])["counts"]
    code, out, _ = invoke(*week, "--dry-run", "--json")
    dry = json.loads(out)
    assert code == 0 and dry["dry_run"] is True
    assert {k: dry[k] for k in expected} == expected
    code, text, _ = invoke(*week, "--dry-run")
    assert re.search(rf"; would send {expected['sent']}, ", text) and not re.search(r"; sent \d", text), text
    if expected["earlier"]:
        assert f"{expected['earlier']} had it already" in text and "dry run: nothing was sent" in text
    # nothing sent, nothing recorded
    assert (len(list(mailbox.Maildir(outbox(site), create=False))) if outbox(site).exists() else 0) == mails
    assert json.loads(invoke("status", "--site", str(site), "--week", "2026-W47", "--json")[1])["counts"] == ledger
    code, out, _ = invoke(*week, "--json")
    real = json.loads(out)
    assert code == 0 and {k: dry[k] for k in COUNTS} == {k: real[k] for k in COUNTS}
    assert [i["sent"] for i in dry["issues"]] == [i["sent"] for i in real["issues"]]


def test_an_address_given_by_hand_is_the_address_the_form_stored(site: Path) -> None:
    """The form and the subscribers file keep an international domain in its ASCII form: `unsubscribe`,
    `subscribers show` and `remove` find the reader however the domain is written; what is no address is a
    usage error, never a suppression of nothing."""
    assert invoke("subscribers", "add", "--site", str(site), "jimin@한국.example")[0] == 0
    code, out, _ = invoke("unsubscribe", "--site", str(site), "jimin@한국.example")
    assert code == 0 and "unsubscribed" in out and "already" not in out
    code, out, _ = invoke("subscribers", "show", "--site", str(site), "JIMIN@한국.EXAMPLE")
    assert code == 0 and "unsubscribed" in out, out
    assert invoke("subscribers", "add", "--site", str(site), "bo@Example.ORG")[0] == 0
    code, out, _ = invoke("subscribers", "remove", "--site", str(site), "bo@example.org")
    assert code == 0 and "unsubscribed" in out and "already" not in out
    code, out, err = invoke("unsubscribe", "--site", str(site), "not an address")
    assert code == 2 and "not an address" in err and "Traceback" not in err
    invoke("run", "--site", str(site), "--week", "2026-W47")
    to = " ".join(str(m["To"]) for m in mailbox.Maildir(outbox(site), create=False))
    assert "xn--3e0b707e.example" not in to and "bo@" not in to.lower()


def test_a_weekly_run_from_cron_forgets_who_never_confirmed(site: Path) -> None:
    """`digest run` does the readers' housekeeping the service does on its tick: an address that never
    confirmed is forgotten after subscribe.unconfirmed_days (7)."""
    serve(site)
    assert invoke("subscribers", "add", "--site", str(site), "--confirm", "maybe@example.org")[0] == 0
    code, out, _ = invoke("run", "--site", str(site), now="2026-11-27T09:00:00+09:00")
    assert code == 0 and "forgotten" not in out  # four days: still waiting
    assert invoke("subscribers", "show", "--site", str(site), "maybe@example.org")[0] == 0
    code, out, _ = invoke("run", "--site", str(site), now="2026-12-01T09:00:00+09:00")
    assert code == 0 and "readers: 1 unconfirmed address(es) forgotten" in out, out
    assert invoke("subscribers", "show", "--site", str(site), "maybe@example.org")[0] == 1


def test_a_subscribers_file_cut_to_nothing_stops_rather_than_drops_everyone(site: Path) -> None:
    """`subscribers:` with nothing under it, where the file listed readers: every command that reads it stops
    with one line and changes nothing; an empty list written as one (`subscribers: []`) is taken."""
    assert invoke("subscribers", "list", "--site", str(site))[0] == 0
    before = invoke("subscribers", "list", "--site", str(site))[1]
    (site / "subscribers.yaml").write_text("# emptied by mistake\nsubscribers:\n", "utf-8")
    for command in (("send", "--dry-run"), ("subscribers", "list"), ("run",)):
        code, out, err = invoke(*command, "--site", str(site))
        assert code == 1 and "subscribers.yaml" in err and "subscribers: []" in err, (command, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) <= 2, err
    (site / "subscribers.yaml").write_text("subscribers: []\n", "utf-8")
    code, out, err = invoke("subscribers", "list", "--site", str(site))
    assert code == 0, err
    assert "active" in before and "\tactive\t" not in out and "inactive" in out


def test_check_says_how_many_the_file_lists_have_left(site: Path) -> None:
    """A reader the file lists who unsubscribed stays unsubscribed: `digest check` counts them apart, so its
    count of active readers is not the file's alone."""
    listed = load_subscribers(site / "subscribers.yaml")
    assert invoke("unsubscribe", "--site", str(site), listed[0].email)[0] == 0
    code, out, _ = invoke("check", "--site", str(site), "--json")
    found = {f["check"]: f for f in json.loads(out)}
    assert found["subscribers"]["level"] == "ok", found["subscribers"]
    assert "1 of them left (unsubscribed, bounced or complained)" in found["subscribers"]["detail"]


def test_schedule_show_prints_each_run_with_the_week_it_sends(site: Path) -> None:
    code, out, _ = invoke("schedule", "--show", "--count", "2", "--site", str(site), now="2026-11-25T12:00:00+09:00")
    assert code == 0
    assert out.splitlines() == [
        "2026-11-30T09:00:00+09:00  sends 2026-W48",
        "2026-12-07T09:00:00+09:00  sends 2026-W49",
    ]
    code, _, err = invoke("schedule", "--show", "--count", "0", "--site", str(site))
    assert code == 2 and "--count" in err


@pytest.mark.parametrize("command", ["preview", "publish", "send", "run"])
def test_a_week_and_a_window_together_are_a_usage_error(site: Path, command: str) -> None:
    code, _, err = invoke(command, "--site", str(site), "--since", "2026-11-20", "--week", "last")
    assert code == 2 and "--week last and --since 2026-11-20 together" in err, err


def test_a_status_that_is_none_is_a_usage_error(site: Path) -> None:
    code, _, err = invoke("subscribers", "list", "--status", "bogus", "--site", str(site))
    assert code == 2 and "bogus" in err and "unsubscribed" in err


def test_the_statuses_the_command_line_offers_are_the_subscribers_statuses() -> None:
    from digest.cli import STATUSES
    from digest.models import Status

    assert tuple(status.value for status in Status) == STATUSES


def serve(site: Path) -> None:
    """The site's readers' pages at `digest serve`'s address (email.public_url)."""
    config = site / "digest.toml"
    text = config.read_text("utf-8").replace("[email]\n", '[email]\npublic_url = "https://digest.example.org/"\n', 1)
    config.write_text(text, "utf-8")


def test_subscribers_add_confirm_without_a_secret_or_a_server_stores_nothing(site: Path) -> None:
    """A confirmation link is signed with DIGEST_SECRET and leads to `digest serve`: without the secret, or
    without email.public_url (the link pointed at the blog, where no reader can confirm), `--confirm` stops
    in one line before storing the address, which would wait for a confirmation it could never make."""
    result = CliRunner().invoke(
        main, ["subscribers", "add", "--site", str(site), "--confirm", "maybe@example.org"], env={"DIGEST_NOW": NOW}
    )
    assert result.exit_code == 1 and "DIGEST_SECRET" in result.stderr and "nothing was stored" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    code, _, err = invoke("subscribers", "add", "--site", str(site), "--confirm", "maybe@example.org")
    assert code == 1 and "email.public_url" in err and "nothing was stored" in err and "digest.toml" in err, err
    assert invoke("subscribers", "show", "--site", str(site), "maybe@example.org")[0] == 1
    serve(site)
    assert invoke("subscribers", "add", "--site", str(site), "--confirm", "maybe@example.org")[0] == 0
    code, out, _ = invoke("subscribers", "show", "--site", str(site), "maybe@example.org", "--json")
    shown = json.loads(out)
    assert code == 0 and shown["origin"] == "cli", shown  # not the form's
    assert [e["reason"] for e in shown["events"] if e["reason"].startswith("form")] == [], shown


def test_an_emptied_ledger_in_a_used_state_folder_stops_every_command(site: Path) -> None:
    """SQLite takes an empty file for a new database: a ledger emptied by hand (or a failed restore) was taken
    for a first run, and `run` mailed the week again to every reader. Each command now stops with one line
    and mails nothing; deleting the file is the way to start anew."""
    assert invoke("run", "--site", str(site))[0] == 0
    mails = len(list(mailbox.Maildir(outbox(site), create=False)))
    database = load_settings(site=site).state_dir / "digest.sqlite3"
    database.write_bytes(b"")
    for command in (("run",), ("publish",), ("preview",), ("send", "--dry-run"), ("status",)):
        code, _, err = invoke(*command, "--site", str(site))
        assert code == 1, (command, err)
        assert "is an empty file" in err and "restore it from a backup" in err and "Traceback" not in err, err
        assert len(err.strip().splitlines()) == 1
    assert database.stat().st_size == 0 and len(list(mailbox.Maildir(outbox(site), create=False))) == mails
    database.unlink()
    assert invoke("run", "--site", str(site))[0] == 0
    assert len(list(mailbox.Maildir(outbox(site), create=False))) > mails  # started anew, as the owner chose


def test_a_damaged_ledger_says_restore_it_and_check_finds_it(site: Path) -> None:
    """A damaged page of the ledger: each command that reads it says the file is damaged and to restore it
    (it said "check that it is running and has room; a rerun resumes"), and `digest check` fails on it (it
    said ok)."""
    import sqlite3

    assert invoke("run", "--site", str(site))[0] == 0
    database = load_settings(site=site).state_dir / "digest.sqlite3"
    with sqlite3.connect(database) as conn:
        page = conn.execute("PRAGMA page_size").fetchone()[0]
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'issues'").fetchone()[0]
    conn.close()
    with database.open("r+b") as file:
        file.seek((root - 1) * page)
        file.write(b"\xff" * page)
    for command in (("publish",), ("preview",), ("run",)):
        code, _, err = invoke(*command, "--site", str(site))
        assert code == 1 and "malformed" in err and "the file is damaged: restore it from a backup" in err, err
        assert "a rerun resumes" not in err and len(err.strip().splitlines()) == 1
    code, out, _ = invoke("check", "--site", str(site))
    assert code == 1 and re.search(r"^fail\s+database\s+.*is damaged", out, re.M), out


def test_the_advice_for_a_state_database_that_cannot_be_written() -> None:
    from digest.sender.lite import sqlite_hint

    assert "owner and permissions" in sqlite_hint("attempt to write a readonly database")
    assert "restore it from a backup" in sqlite_hint("database disk image is malformed")
    assert sqlite_hint("database is locked") == ""  # a rerun does mend that


def test_a_confirmation_mail_is_addressed_with_the_readers_name(site: Path) -> None:
    box = outbox(site)
    serve(site)
    code, _, err = invoke(
        "subscribers", "add", "--site", str(site), "--confirm", "--name", "김지우", "jiwoo@example.kr"
    )
    assert code == 0, err
    (message,) = [m for m in mailbox.Maildir(box, create=False) if "jiwoo@example.kr" in str(m["To"])]
    to = str(make_header(decode_header(str(message["To"]))))
    assert to == "김지우 <jiwoo@example.kr>", to


def test_preview_says_what_late_means_whether_or_not_last_week_went_out(site: Path) -> None:
    """A late post is one dated before the week that no earlier issue carried; the preview said it was
    published after an earlier issue was sent, which is false while last week's issue is still to go out,
    then "in no issue sent so far", false for a week previewed again after it went out."""
    assert invoke("run", "--site", str(site), "--week", "2026-W46")[0] == 0  # the first issue; W47 not sent
    code, out, _ = invoke("preview", "--site", str(site), "--week", "2026-W48", now="2026-11-30T09:00:00+09:00")
    assert code == 0 and "late: dated before this week, in no earlier issue" in out, out
    assert "published after an earlier issue was sent" not in out
    # the same week again once it went out: its late posts went with it, in no earlier issue
    assert invoke("run", "--site", str(site), "--week", "2026-W48", now="2026-11-30T09:00:00+09:00")[0] == 0
    code, out, _ = invoke("preview", "--site", str(site), "--week", "2026-W48", now="2026-11-30T10:00:00+09:00")
    assert code == 0 and "in no earlier issue" in out and "sent so far" not in out, out
