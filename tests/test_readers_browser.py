"""A reader's whole path in a real browser (Debian's Chromium driven by playwright-core from npm, through
tests/browser_walk.cjs) on a copy of the example site: the README's form on a blog page, `digest serve` and
`digest send` as real processes, mail over SMTP to aiosmtpd on 127.0.0.1.

Screenshots of every page at 375 and 1,280 px go to .ci/screenshots/readers/ (git-ignored; or the folder
named by DIGEST_SCREENSHOTS). `.ci/run` installs Chromium and playwright-core; without them this skips."""

from __future__ import annotations

import email.header
import email.message
import http.server
import json
import os
import re
import select
import shutil
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from digest import pipeline
from digest.config import load_settings
from digest.models import Status
from digest.sender.roster import Roster
from digest.templater.labels import reader_labels_for
from tests.conftest import state_env
from tests.support_service import SECRET, Mailbox, free_port, smtp_box, text_of, write

__all__ = ["smtp_box"]

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "site"
DRIVER = Path(__file__).resolve().parent / "browser_walk.cjs"
NODE_MODULES = Path(os.environ.get("DIGEST_NODE_MODULES", ROOT / ".ci" / "browser" / "node_modules"))
CHROMIUM = os.environ.get("DIGEST_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(os.environ.get("DIGEST_SCREENSHOTS", ROOT / ".ci" / "screenshots")) / "readers"
WIDTHS = (375, 1280)
READER = "ana@example.net"
KO = reader_labels_for("ko")  # the example site writes in Korean

# Posts added to the copy for the weeks after the example's own week (2026-W47): one on a topic the reader
# keeps, one on a topic they drop, and one for the week after they leave.
LATER_POSTS = {
    "2026-11-24-attention.md": ("Attention, step by step", "2026-11-24 10:00:00 +0900", "ML"),
    "2026-11-25-hangul-type.md": ("Typesetting Hangul by hand", "2026-11-25 10:00:00 +0900", "typography"),
    "2026-12-01-optimizers.md": ("Optimizers side by side", "2026-12-01 10:00:00 +0900", "ML"),
}


def _missing() -> str:
    if not Path(CHROMIUM).is_file():
        return f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium; .ci/run installs it)"
    if shutil.which("node") is None:
        return "no node (Debian: apt-get install nodejs npm; .ci/run installs it)"
    if not (NODE_MODULES / "playwright-core").is_dir():
        return f"no playwright-core in {NODE_MODULES} (npm install --prefix .ci/browser; .ci/run does)"
    return ""


pytestmark = pytest.mark.skipif(bool(_missing()), reason=_missing() or "ready")


class Browser:
    """One Chromium page, one step per call; every answer has the page's URL, HTTP status and text."""

    def __init__(self, profile: Path, shots: Path) -> None:
        env = {**os.environ, "NODE_PATH": str(NODE_MODULES)}
        command = ["node", str(DRIVER), CHROMIUM, str(profile), str(shots)]
        self.proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        self.shots: list[Path] = []

    def do(self, op: str, timeout: float = 60, **args: str) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.proc.kill()
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise AssertionError(f"the browser gave no answer to {op} {args}: {err[-2000:]}")
        answer: dict[str, Any] = json.loads(line)
        assert answer["ok"], f"{op} {args}: {answer.get('error')}"
        return answer

    def shot(self, name: str) -> dict[str, Any]:
        answer = self.do("shot", name=name)
        self.shots += [Path(f) for f in answer["files"]]
        return answer

    def visit(self, name: str, url: str) -> dict[str, Any]:
        self.do("goto", url=url)
        return self.shot(name)

    def press(self, name: str, selector: str) -> dict[str, Any]:
        self.do("click", selector=selector)
        return self.shot(name)

    def close(self) -> None:
        if self.proc.poll() is None and self.proc.stdin is not None:
            self.proc.stdin.write('{"op": "quit"}\n')
            self.proc.stdin.flush()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def readme_form(action: str) -> str:
    """The README's Jekyll form snippet, as the blog page would serve it (front matter dropped)."""
    readme = (ROOT / "README.md").read_text("utf-8")
    blocks = re.findall(r"```html\n(.*?)```", readme, re.S)
    jekyll = next(b for b in blocks if b.startswith("---\nlayout:") and 'name="website"' in b)
    form = jekyll.split("---\n", 2)[2]
    assert 'action="https://news.example.org/subscribe"' in form
    form = form.replace("https://news.example.org/subscribe", action)
    head = '<meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">'
    return f"<!doctype html><html><head>{head}<title>Subscribe</title></head><body>{form}</body></html>"


@pytest.fixture
def blog(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """A static HTTP server on 127.0.0.1 standing in for the author's blog; returns a page maker."""
    root = tmp_path / "blog"
    root.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def page(html: str) -> str:
        write(root / "subscribe" / "index.html", html)
        return f"http://127.0.0.1:{server.server_address[1]}/subscribe/"

    try:
        yield page
    finally:
        server.shutdown()
        server.server_close()


def example_site(tmp_path: Path, smtp_port: int, port: int) -> Path:
    site = tmp_path / "site"
    shutil.copytree(EXAMPLE, site, ignore=shutil.ignore_patterns("_digest", ".digest"))
    config = site / "digest.toml"
    text = config.read_text("utf-8").replace("[email]\n", f'[email]\npublic_url = "http://127.0.0.1:{port}/"\n', 1)
    text += (
        f'\n[smtp]\nhost = "127.0.0.1"\nport = {smtp_port}\nmode = "plain"\n'
        f'\n[server]\nhost = "127.0.0.1"\nport = {port}\n\n[state]\ndir = "state"\n'
    )
    write(config, text)
    for name, (title, date, tag) in LATER_POSTS.items():
        write(site / "posts" / name, f'---\ntitle: "{title}"\ndate: {date}\ntags: [{tag}]\n---\n\n{title}.\n')
    return site


def digest_env(now: str) -> dict[str, str]:
    return {**os.environ, "DIGEST_SECRET": SECRET, "DIGEST_NOW": now}


def digest(site: Path, now: str, *args: str) -> str:
    command = [sys.executable, "-m", "digest.cli", *args, "--site", str(site)]
    done = subprocess.run(command, env=digest_env(now), capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, f"{args}: {done.returncode} {done.stdout} {done.stderr}"
    return done.stdout


class Server:
    """`digest serve` as a process, its clock pinned with DIGEST_NOW (restarted to move it)."""

    def __init__(self, site: Path, url: str) -> None:
        self.site = site
        self.url = url
        self.proc: subprocess.Popen[str] | None = None

    def start(self, now: str) -> None:
        self.stop()
        command = [sys.executable, "-m", "digest.cli", "serve", "--site", str(self.site)]
        self.proc = subprocess.Popen(
            command, env=digest_env(now), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(self.url + "/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert self.proc.poll() is None, self.proc.stderr.read() if self.proc.stderr else ""
            assert time.monotonic() < deadline, "digest serve did not start"
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.proc = None


def wait_for(box: Mailbox, found: Callable[[list[tuple[str, email.message.Message]]], bool]) -> None:
    deadline = time.monotonic() + 30
    while not found(list(box.received)):
        assert time.monotonic() < deadline, f"timed out; received {[r for r, _ in box.received]}"
        time.sleep(0.05)


def mails_to(box: Mailbox, rcpt: str, since: int = 0) -> list[email.message.Message]:
    return [m for r, m in list(box.received)[since:] if r == rcpt]


def link_in(message: email.message.Message, path: str) -> str:
    found = re.search(rf"https?://127\.0\.0\.1:\d+/{path}\?token=[A-Za-z0-9_.-]+", text_of(message))
    assert found, f"no /{path} link in: {text_of(message)}"
    return found.group(0)


def subject(message: email.message.Message) -> str:
    return str(email.header.make_header(email.header.decode_header(message["Subject"])))


def png_width(path: Path) -> int:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", path
    return int(struct.unpack(">I", head[16:20])[0])


def test_a_reader_subscribes_chooses_topics_and_leaves_in_a_browser(
    tmp_path: Path, smtp_box: Mailbox, blog: Callable[[str], str]
) -> None:
    box = smtp_box
    port = free_port()
    site = example_site(tmp_path, box.port, port)
    settings = load_settings(site / "digest.toml", env={**state_env(), "DIGEST_SECRET": SECRET})
    book = Roster(settings.db_url)
    serve_url = f"http://127.0.0.1:{port}"
    form_page = blog(readme_form(serve_url + "/subscribe"))
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    print(f"screenshots: {SHOTS}")

    # Monday: the example's week 2026-W47 has just ended and goes out; the welcome then carries it
    sent_at = datetime.fromisoformat("2026-11-23T09:00:00+09:00")
    pipeline.run_cycle(settings, sent_at, pipeline.select_week(settings, sent_at, "last"), clock=lambda: sent_at)
    server = Server(site, serve_url)
    browser = Browser(tmp_path / "profile", SHOTS)
    try:
        server.start(sent_at.isoformat())

        # 1. the form on the blog's page
        browser.visit("01-subscribe-form", form_page)
        browser.do("fill", selector='input[name="email"]', value="Ana@Example.net")
        browser.do("fill", selector='input[name="name"]', value="Ana")
        page = browser.press("02-check-your-inbox", 'button[type="submit"]')
        assert page["status"] == 200 and page["url"].startswith(serve_url) and KO.check_inbox_title in page["text"]

        # 2. the confirmation mail; a GET of its link (what a mail scanner does) confirms nothing
        wait_for(box, lambda got: any(r == READER for r, _ in got))
        (confirmation,) = mails_to(box, READER)
        page = browser.visit("03-confirm", link_in(confirmation, "confirm"))
        assert page["status"] == 200 and KO.confirm_button in page["text"]
        time.sleep(0.5)
        record = book.get(READER)
        assert record is not None and record.status == Status.UNCONFIRMED
        assert len(mails_to(box, READER)) == 1

        # 3. the button confirms; the welcome email brings the latest issue (2026-W47)
        page = browser.press("04-confirmed", "form[method=post] button")
        assert page["status"] == 200 and KO.confirmed_title in page["text"]
        record = book.get(READER)
        assert record is not None and record.status == Status.ACTIVE
        assert record.consent_method == "form" and record.consent_source.startswith(form_page.split("/subscribe")[0])
        wait_for(box, lambda got: len([r for r, _ in got if r == READER]) >= 2)
        welcome = mails_to(box, READER)[1]
        assert subject(welcome) == KO.welcome_subject.format(site=settings.site.title)
        assert "Setting up Korean fonts for plots" in text_of(welcome)  # an entry of 2026-W47
        assert "Attention, step by step" not in text_of(welcome)  # next week's post is not out yet

        # 4. the week the welcome carried is theirs: a send of it again (cron) does not mail it a second time
        before = len(box.received)
        digest(site, "2026-11-23T10:00:00+09:00", "send", "--week", "2026-W47")
        assert mails_to(box, READER, before) == []

        # 5. the preference page (linked from every email) narrows the topics to ML
        page = browser.visit("05-preferences", link_in(welcome, "preferences"))
        assert page["status"] == 200 and KO.topics in page["text"]
        browser.do("check", selector='input[name="topic"][value="ML"]')
        page = browser.press("06-preferences-saved", 'form:has(input[value="save"]) button[type="submit"]')
        assert KO.saved in page["text"]
        record = book.get(READER)
        assert record is not None and record.tags == ("ML",)

        # 6. the next send honours them: the ML post only; a reader who kept every topic gets both
        before = len(box.received)
        digest(site, "2026-11-30T10:00:00+09:00", "send", "--week", "2026-W48")
        (narrowed,) = mails_to(box, READER, before)
        assert "Attention, step by step" in text_of(narrowed)
        assert "Typesetting Hangul by hand" not in text_of(narrowed)
        (everything,) = mails_to(box, "reader@example.com", before)
        assert "Attention, step by step" in text_of(everything) and "Typesetting Hangul by hand" in text_of(everything)

        # 7. a week later (the server's clock too), unsubscribe from that email's link:
        # a page with one button, then done
        server.start("2026-11-30T11:00:00+09:00")
        page = browser.visit("07-unsubscribe", link_in(narrowed, "unsubscribe"))
        assert page["status"] == 200 and KO.unsubscribe_button in page["text"]
        record = book.get(READER)
        assert record is not None and record.status == Status.ACTIVE
        page = browser.press("08-unsubscribed", "form[method=post] button")
        assert page["status"] == 200 and KO.unsubscribed_title in page["text"]
        shown = json.loads(digest(site, "2026-11-30T10:05:00+09:00", "subscribers", "show", READER, "--json"))
        assert shown["status"] == "unsubscribed"
        assert [e["kind"] for e in shown["events"]][:1] == ["added"]
        assert {"confirmed", "preferences"} <= {e["kind"] for e in shown["events"]}

        # and the week after, the issue goes to the others and not to them
        before = len(box.received)
        digest(site, "2026-12-07T10:00:00+09:00", "send", "--week", "2026-W49")
        assert mails_to(box, READER, before) == []
        assert len(mails_to(box, "reader@example.com", before)) == 1
    finally:
        browser.close()
        server.stop()

    names = sorted({p.name.rsplit("-", 1)[0] for p in browser.shots})
    assert len(names) == 8
    for shot in browser.shots:
        assert png_width(shot) in WIDTHS, shot
    assert {png_width(p) for p in browser.shots} == set(WIDTHS)
