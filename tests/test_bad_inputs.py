"""Bad input of every kind through the commands a user runs: posts, config, subscribers, templates, the
file system (a full disk included), the database (down before and during a send), SMTP (refused, login,
TLS), usage. Each row asserts the exit code, one line naming the problem, no traceback, and that the
ledger lost nothing: every row marked sent is a message that arrived, and every arrived message has one.
"""

from __future__ import annotations

import contextlib
import json
import mailbox
import os
import shutil
import ssl
import subprocess
import threading
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from click.testing import CliRunner

from digest.cli import main
from tests.support_postgres import Proxy
from tests.support_service import Mailbox, authenticate, free_port
from tests.support_smtp import MemoryHandler

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "site"
NOW = "2026-11-23T09:00:00+09:00"
SECRET = "a secret for the bad input table, 32+ bytes"
IN_FLIGHT_PER_CONNECTION = 1  # deliver() commits each outcome before the next message completes
ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small or read-only tmpfs needs root")


@dataclass
class Case:
    """A copy of the example site plus what a row needs: environment, servers, mounts."""

    site: Path
    env: dict[str, str] = field(default_factory=lambda: {"DIGEST_NOW": NOW, "DIGEST_SECRET": SECRET})
    mounts: list[Path] = field(default_factory=list)
    cleanups: list[Callable[[], None]] = field(default_factory=list)
    smtp: Mailbox | None = None

    @property
    def config(self) -> Path:
        return self.site / "digest.toml"

    def set(self, section: str, key: str, value: object) -> None:
        """Change one key of digest.toml (the rest of the file stays)."""
        data = tomllib.loads(self.config.read_text("utf-8"))
        data.setdefault(section, {})[key] = value
        text = ""
        for name, table in data.items():
            text += f"[{name}]\n" + "".join(f"{k} = {json.dumps(v, ensure_ascii=False)}\n" for k, v in table.items())
        self.config.write_text(text, "utf-8")

    def write(self, rel: str, data: str | bytes) -> Path:
        path = self.site / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
        return path

    def tmpfs(self, rel: str, size: str = "64k", *, read_only: bool = False) -> Path:
        path = self.site / rel
        path.mkdir(parents=True, exist_ok=True)
        options = f"size={size}" + (",ro" if read_only else "")
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True)
        self.mounts.append(path)
        return path

    def start_smtp(self, **changes: Any) -> Mailbox:
        box = Mailbox("127.0.0.1", free_port(), **changes)
        controller = Controller(
            box, hostname=box.host, port=box.port, authenticator=authenticate(box), auth_require_tls=False
        )
        controller.start()
        self.cleanups.append(controller.stop)
        self.smtp = box
        self.set("smtp", "host", "127.0.0.1")
        self.set("smtp", "port", box.port)
        self.set("smtp", "mode", "plain")
        return box


@pytest.fixture
def case(tmp_path: Path) -> Iterator[Case]:
    site = tmp_path / "site"
    shutil.copytree(EXAMPLE, site, ignore=shutil.ignore_patterns("_digest", ".digest"))
    made = Case(site)
    yield made
    for cleanup in reversed(made.cleanups):
        cleanup()
    for path in reversed(made.mounts):
        subprocess.run(["umount", "-l", str(path)], check=False)


def run(case: Case, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [*args, "--site", str(case.site)], env=case.env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"a traceback: {result.exception!r}") from result.exception
    return result.exit_code, result.stdout, result.stderr


# -- what each row does to the site ---------------------------------------------------------------


def post(name: str, data: str | bytes) -> Callable[[Case], None]:
    return lambda c: c.write(f"posts/{name}", data) and None


def key(section: str, name: str, value: object) -> Callable[[Case], None]:
    return lambda c: c.set(section, name, value)


def envvar(name: str, value: str) -> Callable[[Case], None]:
    return lambda c: c.env.update({name: value})


def subscribers(text: str) -> Callable[[Case], None]:
    return lambda c: c.write("subscribers.yaml", text) and None


def template(name: str, text: str) -> Callable[[Case], None]:
    def change(c: Case) -> None:
        c.write(f"overrides/{name}", text)
        c.set("output", "templates", "overrides")

    return change


def both(*changes: Callable[[Case], None]) -> Callable[[Case], None]:
    def change(c: Case) -> None:
        for one in changes:
            one(c)

    return change


def file_in_the_way(rel: str) -> Callable[[Case], None]:
    return lambda c: c.write(rel, "not a folder") and None


def corrupt_sqlite(c: Case) -> None:
    c.write(".digest/digest.sqlite3", b"this is not a database file, just text " * 100)


def dkim_not_pem(c: Case) -> None:
    c.write("dkim.pem", "-----BEGIN NOTHING-----\nabc\n")
    c.set("email", "dkim_key", "dkim.pem")
    c.set("email", "dkim_selector", "s1")


def smtp_refused(c: Case) -> None:
    c.set("smtp", "host", "127.0.0.1")
    c.set("smtp", "port", free_port())  # nothing listens there
    c.set("smtp", "mode", "plain")


def smtp_login_refused(c: Case) -> None:
    c.start_smtp(accept_login=False)
    c.set("smtp", "username", "digest")
    c.set("smtp", "allow_plain", True)
    c.env["DIGEST_SMTP_PASSWORD"] = "wrong password"


def smtp_refuses_as_unauthenticated(reply: str) -> Callable[[Case], None]:
    return lambda c: c.start_smtp(refusal=reply) and None


def smtp_rejects_everyone(c: Case) -> None:
    c.start_smtp()
    c.set("delivery", "error_budget", 2)
    c.write("subscribers.yaml", "subscribers:\n" + "".join(f"  - email: nobody{n}@example.com\n" for n in range(6)))
    assert c.smtp is not None
    c.smtp.reject = True


def smtp_tls_untrusted(c: Case) -> None:
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    folder = c.site.parent / "tls"
    folder.mkdir()
    cert, key_file = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-keyout", str(key_file), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key_file)
    port = free_port()
    controller = Controller(MemoryHandler(), hostname="127.0.0.1", port=port, tls_context=context)
    controller.start()
    c.cleanups.append(controller.stop)
    c.set("smtp", "host", "127.0.0.1")
    c.set("smtp", "port", port)
    c.set("smtp", "mode", "starttls")


def database_down(c: Case) -> None:
    c.env["DIGEST_DATABASE_URL"] = f"postgresql+psycopg://digest@127.0.0.1:{free_port()}/digest"


def full_disk_for_output(c: Case) -> None:
    c.tmpfs("_digest", "16k")


def read_only_output(c: Case) -> None:
    c.tmpfs("_digest", read_only=True)


def full_disk_for_the_ledger(c: Case) -> None:
    # room for the ledger to open and plan, not for a whole send to 400 people: it fills up mid-send
    c.write("subscribers.yaml", "subscribers:\n" + "".join(f"  - email: p{n:03d}@example.com\n" for n in range(400)))
    c.set("outbox", "maildir", str(c.site.parent / "outbox"))
    c.set("delivery", "connections", 1)
    c.tmpfs(".digest", "300k")


def row(name: str, change: Callable[[Case], None], command: list[str], code: int, needle: str) -> Any:
    """One bad input: what it changes, the command, the exit code, what the one line says."""
    return pytest.param(change, command, code, needle, id=name)


ROWS = [
    # posts: a bad file is a warning and never stops a run; --strict makes it an error
    row(
        "post front matter", post("2026-11-17-bad.md", "---\ntitle: [\n---\nx\n"), ["preview", "--strict"], 1, "bad.md"
    ),
    row("post not UTF-8", post("2026-11-17-bad.md", b"---\ntitle: \xff\n---\n"), ["preview", "--strict"], 1, "UTF-8"),
    row("post empty", post("2026-11-17-bad.md", ""), ["preview", "--strict"], 1, "empty file"),
    row("post date", post("2026-11-17-bad.md", "---\ntitle: x\ndate: soon\n---\nx\n"), ["run", "--strict"], 1, "soon"),
    row("post 2019-02-30", post("x.md", "---\ntitle: x\ndate: 2019-02-30\n---\nx\n"), ["send", "--strict"], 1, "x.md"),
    row(
        "post 0000-01-01", post("y.md", "---\ntitle: y\ndate: 0000-01-01\n---\ny\n"), ["publish", "--strict"], 1, "y.md"
    ),
    row(
        "post huge",
        post("2026-11-17-big.md", "---\ntitle: x\n---\n" + "x" * 6_000_000),
        ["preview", "--strict"],
        1,
        "5 MB",
    ),
    # config
    row("unknown key", key("site", "titel", "x"), ["preview"], 1, "unknown key 'titel'"),
    row("unknown section", key("sight", "title", "x"), ["publish"], 1, "unknown section [sight]"),
    row("not TOML", lambda c: c.write("digest.toml", "[site\n") and None, ["send"], 1, "not valid TOML"),
    row(
        "config not UTF-8", lambda c: c.write("digest.toml", b"[site]\ntitle = '\xff'\n") and None, ["run"], 1, "UTF-8"
    ),
    row("timezone", key("site", "timezone", "Mars/Olympus"), ["preview"], 1, "site.timezone"),
    row("week start", key("site", "week_start", "someday"), ["preview"], 1, "site.week_start"),
    row("feed issues", key("output", "feed_issues", 0), ["publish"], 1, "output.feed_issues"),
    row("smtp mode", key("smtp", "mode", "tls"), ["send"], 1, "smtp.mode"),
    row("site url", key("site", "url", "example.org"), ["preview"], 1, "site.url"),
    row("schedule time", key("schedule", "time", "25:00"), ["schedule", "--show"], 1, "schedule.time"),
    row("from", key("email", "from", "not an address"), ["schedule", "--show"], 1, "email.from"),
    row("reply-to", key("email", "reply_to", "a@b@c"), ["publish"], 1, "email.reply_to"),
    row("mailto", key("email", "unsubscribe_mailto", "nobody"), ["send"], 1, "email.unsubscribe_mailto"),
    row("list id", key("email", "list_id", "bad list id!"), ["send"], 1, "email.list_id"),
    row("subject", key("email", "subject", "{{ week.label "), ["schedule", "--show"], 1, "email.subject"),
    row("templates folder", key("output", "templates", "nowhere"), ["preview"], 1, "template folder"),
    row(
        "dkim missing", both(key("email", "dkim_key", "no.pem"), key("email", "dkim_selector", "s")), ["run"], 1, "DKIM"
    ),
    row("dkim not pem", dkim_not_pem, ["send"], 1, "not a PEM"),
    row("transport", key("delivery", "transport", "pigeon"), ["send"], 1, "delivery.transport"),
    row("database url", key("state", "database", "nonsense"), ["status"], 1, "state.database"),
    row(
        "postgres:// url", key("state", "database", "postgres://u@127.0.0.1/db"), ["status"], 1, "postgresql+psycopg://"
    ),
    row(
        "plain smtp", both(key("smtp", "host", "mail.example.org"), key("smtp", "mode", "plain")), ["send"], 1, "plain"
    ),
    row("source folder", key("site", "source", ["nowhere"]), ["preview"], 1, "source folder"),
    row("secret short", envvar("DIGEST_SECRET", "short"), ["serve"], 1, "DIGEST_SECRET"),
    row(
        "secret placeholder", envvar("DIGEST_SECRET", "change-me-to-a-long-random-string"), ["run"], 1, "DIGEST_SECRET"
    ),
    row("old secret", envvar("DIGEST_SECRET_OLD", "tiny"), ["serve"], 1, "DIGEST_SECRET_OLD"),
    row("clock", envvar("DIGEST_NOW", "yesterday"), ["preview"], 1, "DIGEST_NOW"),
    row("clock, far", envvar("DIGEST_NOW", "9999-12-31T23:00:00+00:00"), ["preview"], 1, "is out of range"),
    row("clock, early", envvar("DIGEST_NOW", "0001-01-01T00:00:00+00:00"), ["preview"], 1, "is out of range"),
    row("feed issues, huge", key("output", "feed_issues", 10**20), ["preview"], 1, "a whole number from 1 to 10,000"),
    row("feed issues, a million", key("output", "feed_issues", 10**6), ["preview"], 1, "from 1 to 10,000"),
    row("feed issues, negative", key("output", "feed_issues", -1), ["preview"], 1, "from 1 to 10,000"),
    # subscribers
    row("address", subscribers("subscribers:\n  - email: nobody\n"), ["send"], 1, "subscribers.yaml:2"),
    row("duplicate", subscribers("subscribers:\n  - email: a@x.org\n  - email: A@x.org\n"), ["run"], 1, "twice"),
    row("not YAML", subscribers("subscribers:\n  - email: a@x.org\n   name: x\n"), ["send"], 1, "YAML"),
    row("subscriber key", subscribers("subscribers:\n  - email: a@x.org\n    colour: red\n"), ["run"], 1, "colour"),
    row(
        "no file",
        lambda c: (c.site / "subscribers.yaml").unlink() or c.set("subscribers", "file", ""),
        ["send"],
        1,
        "no subscribers file",
    ),  # noqa: E501
    # templates
    row("template syntax", template("email.html.j2", "{% if %}"), ["send"], 1, "email.html.j2"),
    row("no unsubscribe", template("email.txt.j2", "{{ site.title }}\n"), ["run"], 1, "unsubscribe"),
    row("template variable", template("issue_body.html.j2", "{{ nope.x }}"), ["publish"], 1, "issue_body.html.j2"),
    # the file system
    row("output is a file", both(file_in_the_way("out"), key("output", "dir", "out")), ["preview"], 1, "output.dir"),
    row("state is a file", both(file_in_the_way("state"), key("state", "dir", "state")), ["send"], 1, "state.dir"),
    row("corrupt ledger", corrupt_sqlite, ["send"], 1, "state database"),
    row("outbox is a file", both(file_in_the_way("box"), key("outbox", "maildir", "box")), ["send"], 1, "outbox"),
    pytest.param(full_disk_for_output, ["publish"], 1, "No space left", marks=ROOT_ONLY, id="full disk (output)"),
    pytest.param(read_only_output, ["preview"], 1, "Read-only", marks=ROOT_ONLY, id="read-only output"),
    pytest.param(full_disk_for_the_ledger, ["send"], 1, "full", marks=ROOT_ONLY, id="full disk (ledger)"),
    # the database
    row("database down", database_down, ["send"], 1, "cannot open the state database"),
    # SMTP
    row("smtp refused", smtp_refused, ["send"], 1, "cannot connect to the SMTP server"),
    row("smtp login", smtp_login_refused, ["run"], 1, "refused the login"),
    row("smtp tls", smtp_tls_untrusted, ["send"], 1, "certificate"),
    row("smtp rejects all", smtp_rejects_everyone, ["send"], 3, "error budget"),
    row("gmail unauthenticated", smtp_refuses_as_unauthenticated("550 5.7.26 unauthenticated"), ["send"], 1, "5.7.26"),
    row("outlook unauthenticated", smtp_refuses_as_unauthenticated("550 5.7.515 Access denied"), ["run"], 1, "5.7.515"),
    row("language", key("site", "language", "korean!"), ["preview"], 1, "BCP 47 language tag"),
    row("language word", key("site", "language", "korean"), ["publish"], 1, "site.language"),
    row("permalink token", key("site", "permalink", "/:bogus/:title/"), ["preview"], 1, ":bogus is not one"),
    row(
        "jekyll lang",
        lambda c: c.write("_config.yml", "title: x\nlang: korean!\n") and c.write("_posts/.keep", "") and None,
        ["preview"],
        1,
        "_config.yml:2: lang",
    ),
    row(
        "jekyll permalink",
        lambda c: (
            c.write("_config.yml", "title: x\n\npermalink: /:year/:nope/\n") and c.write("_posts/.keep", "") and None
        ),
        ["preview"],
        1,
        "_config.yml:3: permalink '/:year/:nope/' has the unknown token :nope",
    ),
    row(
        "hugo permalink",
        lambda c: (
            c.write("hugo.toml", "title = 'x'\n\n[permalinks]\n  posts = '/:year/:nope/'\n")
            and c.write("content/posts/.keep", "")
            and None
        ),
        ["preview"],
        1,
        "hugo.toml:4: permalinks.posts '/:year/:nope/' has the unknown token :nope",
    ),
    row(
        "jekyll timezone",
        lambda c: (
            c.write("_config.yml", "title: x\ntimezone: Mars/Base\n")
            and c.write("_posts/.keep", "")
            and c.write("digest.toml", "[site]\ntitle = 'x'\n")  # no timezone: the site's own applies
            and None
        ),
        ["preview"],
        1,
        "_config.yml:2: timezone",
    ),
    row(
        "jekyll url a number",
        lambda c: c.write("_config.yml", "title: x\nurl: 12\n") and c.write("_posts/.keep", "") and None,
        ["run"],
        1,
        "_config.yml:2: url = 12 is not text",
    ),
    row(
        "jekyll url without scheme",
        lambda c: c.write("_config.yml", "title: x\nurl: blog.example.net\n") and c.write("_posts/.keep", "") and None,
        ["run"],
        1,
        "_config.yml:2: url = 'blog.example.net' has no scheme (write the whole address, such as 'https://blog",
    ),
    row(
        "jekyll timezone a number",
        lambda c: c.write("_config.yml", "title: x\n\ntimezone: 9\n") and c.write("_posts/.keep", "") and None,
        ["preview"],
        1,
        "_config.yml:3: timezone = 9 is not text",
    ),
    row(
        "hugo timeZone a number",
        lambda c: c.write("hugo.toml", 'title = "x"\ntimeZone = 5\n') and None,
        ["preview"],
        1,
        "hugo.toml:2: timeZone = 5 is not text",
    ),
    row(
        "pelican SITEURL without scheme",
        lambda c: c.write("pelicanconf.py", 'SITENAME = "x"\nSITEURL = "example.org/blog"\n') and None,
        ["preview"],
        1,
        "pelicanconf.py:2: SITEURL = 'example.org/blog' has no scheme",
    ),
    row(
        "hugo languageCode",
        lambda c: c.write("hugo.toml", 'title = "x"\nlanguageCode = "en us"\n') and None,
        ["preview"],
        1,
        "hugo.toml:2: languageCode",
    ),
    row(
        "hugo language key",
        lambda c: c.write("hugo.toml", 'title = "x"\n[languages.english]\nweight = 1\n') and None,
        ["preview"],
        1,
        "hugo.toml:2: languages.english",
    ),
    row(
        "pelican DEFAULT_LANG",
        lambda c: c.write("pelicanconf.py", 'SITENAME = "x"\nDEFAULT_LANG = "kor ean"\n') and None,
        ["preview"],
        1,
        "pelicanconf.py:2: DEFAULT_LANG",
    ),
    row(
        "subscribers not UTF-8",
        lambda c: c.write("subscribers.yaml", b"subscribers:\n  - email: \xff\n") and None,
        ["subscribers", "check"],
        1,
        "UTF-8",
    ),
    row("subscribers bad YAML", subscribers("subscribers:\n - email: [a\n"), ["subscribers", "check"], 1, "YAML"),
    row("subscribers bad value", subscribers("subscribers:\n  - email: bad\n"), ["subscribers", "check"], 1, "'bad'"),
    row("remove unknown", lambda c: None, ["subscribers", "remove", "nobody@example.com"], 1, "not a subscriber"),
    row(
        "add, bad language",
        lambda c: None,
        ["subscribers", "add", "new@example.com", "--language", "klingon"],
        2,
        "--language 'klingon' is not a language code",
    ),
    row(
        "add, unknown language",
        lambda c: None,
        ["subscribers", "add", "new@example.com", "--language", "zz"],
        2,
        "--language 'zz' is not a language code",
    ),
    row(
        "subscribers unknown language",
        subscribers("subscribers:\n  - email: a@example.com\n    language: zz\n"),
        ["subscribers", "check"],
        1,
        ":3: language: 'zz' is not a language code",
    ),
    # usage
    row("week", lambda c: None, ["send", "--week", "2026-W99"], 2, "2026-W99"),
    row("until", lambda c: None, ["publish", "--until", "2026-11-20"], 2, "--until needs --since"),
    row("to", lambda c: None, ["send", "--to", "nobody"], 2, "--to"),
    # the service runs on the real clock: a pinned one would have it send the real week
    row("schedule, pinned clock", lambda c: None, ["schedule"], 2, "DIGEST_NOW is set, and `digest schedule` runs on"),
    # a week with no post: the address is still checked first
    row("to, empty week", lambda c: None, ["send", "--to", "nobody", "--week", "2020-W10"], 2, "--to 'nobody'"),
]


def arrived(case: Case) -> list[str]:
    """The recipients of every message that reached the Maildir outbox or the SMTP server."""
    if case.smtp is not None:
        return case.smtp.recipients()
    found = []
    data = tomllib.loads(case.config.read_text("utf-8")) if case.config.is_file() else {}
    folder = Path(data.get("outbox", {}).get("maildir", "") or case.site / "_digest" / "outbox")
    folder = folder if folder.is_absolute() else case.site / folder
    if (folder / "new").is_dir():
        for message in mailbox.Maildir(folder, create=False):
            found.append(str(message["To"]).split("<")[-1].rstrip(">").lower())
    return found


def sent_rows(case: Case) -> list[str] | None:
    path = case.site / ".digest" / "digest.sqlite3"
    if not path.is_file() or path.stat().st_size < 100:
        return None
    with contextlib.suppress(sa.exc.DBAPIError):
        engine = sa.create_engine(f"sqlite:///{path}")
        with engine.connect() as conn:
            return [r for (r,) in conn.execute(sa.text("SELECT recipient FROM deliveries WHERE state = 'sent'"))]
    return None


LINED = [
    ("[email]\nfrom = 'bad address'\n", 2, "email.from"),
    ("[site]\ntitle = 'x'\n\n[email]\nsubject = '{{ week.label '\n", 5, "email.subject"),
    ("[delivery]\n\ntransport = 'pigeon'\n", 3, "delivery.transport"),
    ("[output]\ntemplates = 'nowhere'\n", 2, "output.templates"),
    ("[site]\n\nsource = ['nowhere']\n", 3, "site.source"),
    ("[site]\nlanguage = 'korean!'\n", 2, "site.language"),
    ("[site]\npermalink = '/:bogus/:title/'\n", 2, ":bogus"),
]


@pytest.mark.parametrize(("toml", "line", "needle"), LINED)
def test_value_errors_of_digest_toml_name_the_line(case: Case, toml: str, line: int, needle: str) -> None:
    case.config.write_text(toml, "utf-8")
    code, out, err = run(case, "send", "--dry-run")
    assert code == 1, (out, err)
    assert f"digest.toml:{line}: " in err and needle in err, err


@pytest.mark.parametrize("written", ["korean!", "english", "xx", "[ko]"])
def test_a_post_with_a_bad_lang_is_a_warning_and_in_the_site_language(case: Case, written: str) -> None:
    case.write("posts/2026-11-17-bad-lang.md", f"---\ntitle: Bad lang\ndate: 2026-11-17\nlang: '{written}'\n---\nx\n")
    code, out, err = run(case, "preview", "--week", "2026-W47", "--json")
    assert code == 0, err
    warnings = json.loads(out)["warnings"]
    assert [w["source"] for w in warnings] == ["posts/2026-11-17-bad-lang.md"], warnings
    assert "BCP 47" in warnings[0]["message"] and written in warnings[0]["message"]
    entry = next(e for e in json.loads(out)["entries"] if e["title"] == "Bad lang")
    assert entry["language"] == ""  # the site's own language, in the site's issue


def test_the_table_is_long_enough() -> None:
    assert len(ROWS) >= 40


@pytest.mark.parametrize(("change", "command", "exit_code", "needle"), ROWS)
def test_bad_input_is_one_line_an_exit_code_and_nothing_lost(
    case: Case, change: Callable[[Case], None], command: list[str], exit_code: int, needle: str
) -> None:
    change(case)
    code, out, err = run(case, *command)
    assert code == exit_code, (out, err)
    assert "Traceback" not in out + err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    if exit_code in (1, 2):
        assert len(errors) == 1 and needle in errors[0], err
        assert len(err.strip().splitlines()) == 1, err  # nothing but that line (no notice, no progress)
    else:
        assert needle in out + err
    rows = sent_rows(case)
    if rows is not None:
        got = arrived(case)
        assert set(rows) <= set(got), "a row is marked sent for a message that never arrived"
        # what arrived without being marked is what was in flight when the run failed: a rerun sends it again
        connections = tomllib.loads(case.config.read_text("utf-8")).get("delivery", {}).get("connections", 4)
        assert len(set(got) - set(rows)) <= connections * IN_FLIGHT_PER_CONNECTION


# -- the database going away in the middle of a send ------------------------------------------------


def test_postgresql_stopping_mid_send_is_one_line_and_loses_nothing(case: Case) -> None:
    url = os.environ.get("DIGEST_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("set DIGEST_TEST_POSTGRES_URL (the CI does) to run against PostgreSQL")
    real = sa.make_url(url)
    schema_db = f"{real.database}_midsend_{os.getpid()}"
    admin = sa.create_engine(real, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{schema_db}"'))
        conn.execute(sa.text(f'CREATE DATABASE "{schema_db}"'))
    proxy = Proxy(real.host or "127.0.0.1", real.port or 5432)
    box = case.start_smtp(delay=0.01)
    readers = [f"r{n:03d}@example.com" for n in range(300)]
    case.write("subscribers.yaml", "subscribers:\n" + "".join(f"  - email: {r}\n" for r in readers))
    case.env["DIGEST_DATABASE_URL"] = real.set(host="127.0.0.1", port=proxy.port, database=schema_db).render_as_string(
        hide_password=False
    )

    def cut_later() -> None:
        while len(box.recipients()) < 40:
            threading.Event().wait(0.01)
        proxy.cut()

    threading.Thread(target=cut_later, daemon=True).start()
    code, out, err = run(case, "send")
    assert code == 1 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and "state database" in err, err
    # the database is back (without the proxy): every row marked sent arrived; at most the messages in
    # flight when it went away (4 connections x 8) arrived without being marked
    engine = sa.create_engine(real.set(database=schema_db))
    with engine.connect() as conn:
        sent = {r for (r,) in conn.execute(sa.text("SELECT recipient FROM deliveries WHERE state = 'sent'"))}
    engine.dispose()
    received = set(box.recipients())
    assert sent <= received and len(received - sent) <= 32
    case.env["DIGEST_DATABASE_URL"] = str(real.set(database=schema_db).render_as_string(hide_password=False))
    code, out, err = run(case, "send")  # a rerun finishes the issue
    assert code == 0, out + err
    assert sorted(set(box.recipients())) == readers
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{schema_db}" WITH (FORCE)'))
    admin.dispose()
