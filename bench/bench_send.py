"""Delivery benchmark through the real command: `digest send` on a generated site, a real subscribers.yaml
and Postfix's smtp-sink on 127.0.0.1, next to baselines measured in the same run.

Modes (--modes, default all four):
  rate     `digest send --week W --json` with a fresh state database per repetition: messages/s of the send
           phase (the "seconds" digest reports) and of the whole command; next to Postfix's smtp-source
           (same count, size and connections, connections reused) and a naive sender (an EmailMessage and a
           new SMTP connection per message). SQLite ledger, and PostgreSQL when --postgres or
           DIGEST_BENCH_POSTGRES_URL is set (a new database per repetition).
  signed   the same with DKIM on (a 2048-bit RSA key made with openssl), next to unsigned on the same list.
  kill     SIGKILL `digest send` at random moments while it sends, rerun at once, --kill times, then a clean
           run; smtp-sink appends every message to a dump file, whose RCPT lines say who got how many copies:
           lost (never received) must be 0, duplicates per kill at most delivery.connections.
  memory   `digest send --dry-run` with 10,000 and 100,000 subscribers in subscribers.yaml: the child's peak
           RSS (wait4) and CPU seconds, and the growth beyond the subscriber list itself.

    python bench/bench_send.py                      # 10,000 subscribers, 3 repetitions, every mode
    python bench/bench_send.py --quick              # a smoke run (1,000 subscribers, 1 repetition)
    python bench/bench_send.py --modes kill --kill 20
Exit status: 0 when the figures were measured (targets met or not), 2 when the setup failed.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import json
import os
import random
import re
import secrets
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid
from pathlib import Path
from typing import Any

import _run
import _sites
from _run import Report, SetupError, fmt, log, median, paired, ratio_of, verdict

TARGET_VS_SOURCE = 0.50  # digest's send phase / smtp-source, same run
TARGET_RATE = 1000.0  # messages/s at full speed
TARGET_VS_NAIVE = 8.0
TARGET_PG_VS_SQLITE = 0.90
TARGET_PEAK_MB = 150.0
TARGET_CPU_S = 10.0
FLAT_SLACK_MB = 15.0

WEEK_MONDAY = datetime(2024, 3, 4, tzinfo=_sites.TZ)
WEEK = _sites.week_label(WEEK_MONDAY)  # 2024-W10
FROM = "digest@bench.example.com"
EXAMPLE = "subscriber@example.com"  # the address `digest preview` personalises email.* for
MODES = ("rate", "signed", "kill", "memory")


def _tool(name: str) -> str:
    return _run.tool(name, "install Postfix (Debian: apt-get install postfix); its test programs live in /usr/sbin")


# -- smtp-sink -----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def smtp_sink(dump: Path | None = None) -> Iterator[int]:
    """smtp-sink on a free port of 127.0.0.1 (with -D: every message appended to `dump`); yields the port."""
    sink = _tool("smtp-sink")
    proc: subprocess.Popen[bytes] | None = None
    for _attempt in range(5):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        cmd = [sink]
        if os.geteuid() == 0:  # smtp-sink refuses to keep root privileges
            cmd += ["-u", "nobody"]
        if dump is not None:
            cmd += ["-D", str(dump)]
        cmd += [f"127.0.0.1:{port}", "1024"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if _wait_for_port(port, proc):
            try:
                yield port
            finally:
                proc.terminate()
                proc.wait(10)
            return
        proc.kill()
        proc.wait()
    err = proc.stderr.read().decode(errors="replace") if proc and proc.stderr else ""
    raise SetupError(f"smtp-sink did not start: {err.strip()}")


def _wait_for_port(port: int, proc: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.05)
    return False


# -- the site ------------------------------------------------------------------------------------------------


@dataclass
class Site:
    root: Path
    secret: str
    connections: int
    postgres: str = ""
    message_bytes: int = 0
    html_bytes: int = 0
    html: str = ""
    text: str = ""
    _dbs: int = 0

    def config(self, name: str, port: int, subscribers: str, *, dkim: bool = False) -> Path:
        """A digest.toml in the site folder: SMTP (plain) to a sink on 127.0.0.1, the subscribers file given."""
        dkim_keys = 'dkim_key = "dkim.pem"\ndkim_selector = "bench"\n' if dkim else ""
        path = self.root / name
        path.write_text(
            f'[email]\nfrom = "{_sites.SITE_TITLE} <{FROM}>"\npublic_url = "{_sites.SITE_URL}"\n{dkim_keys}\n'
            f'[smtp]\nhost = "127.0.0.1"\nport = {port}\nmode = "plain"\ntimeout = 60\n\n'
            f"[delivery]\nconnections = {self.connections}\n\n"
            f'[subscribers]\nfile = "{subscribers}"\n\n[state]\ndir = "state"\n\n[output]\ndir = "out"\n',
            encoding="utf-8",
        )
        return path

    def subscribers(self, count: int) -> str:
        name = f"subscribers-{count}.yaml"
        if not (self.root / name).exists():
            _sites.write_subscribers(self.root / name, count)
        return name

    def env(self, database_url: str) -> dict[str, str]:
        # No DIGEST_NOW: the send phase is timed by digest's own clock, which a pinned clock would stop.
        return _run.user_env({"DIGEST_SECRET": self.secret, "DIGEST_DATABASE_URL": database_url})

    @contextlib.contextmanager
    def database(self, kind: str) -> Iterator[str]:
        """A state database nobody used: a new SQLite file, or a new PostgreSQL database dropped afterwards."""
        self._dbs += 1
        if kind == "sqlite":
            folder = self.root / f"state-{self._dbs}"
            folder.mkdir()
            try:
                yield f"sqlite:///{folder / 'digest.sqlite3'}"
            finally:
                shutil.rmtree(folder, ignore_errors=True)
            return
        name = f"digest_bench_{os.getpid()}_{self._dbs}"
        _pg_admin(self.postgres, f'CREATE DATABASE "{name}"')
        try:
            yield _with_database(self.postgres, name)
        finally:
            _pg_admin(self.postgres, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _with_database(url: str, name: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))


def _pg_admin(url: str, statement: str) -> None:
    try:
        import psycopg
    except ImportError as exc:
        raise SetupError("PostgreSQL ledger needs psycopg: pip install 'psycopg[binary]'") from exc
    parts = urllib.parse.urlsplit(url)
    conninfo = urllib.parse.urlunsplit(parts._replace(scheme="postgresql", query=""))
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(statement.encode())
    except psycopg.Error as exc:
        raise SetupError(f"PostgreSQL at {parts.hostname}:{parts.port}: {exc}") from exc


def pg_commit_ms(url: str, commits: int = 200) -> float:
    """The median time of one committed single-row UPDATE on the server alone (autocommit, the server's
    own synchronous_commit): the wait for its log flush that every recorded outcome pays."""
    import psycopg

    parts = urllib.parse.urlsplit(url)
    conninfo = urllib.parse.urlunsplit(parts._replace(scheme="postgresql", query=""))
    table = f"digest_bench_commit_{os.getpid()}"
    times: list[float] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, n int)".encode())
        try:
            conn.execute(f"INSERT INTO {table} VALUES (1, 0)".encode())
            update = f"UPDATE {table} SET n = %s WHERE id = 1".encode()
            for i in range(commits):
                started = time.perf_counter()
                conn.execute(update, (i,))
                times.append(time.perf_counter() - started)
        finally:
            conn.execute(f"DROP TABLE {table}".encode())
    return (median(times) or 0.0) * 1000


def make_site(root: Path, connections: int, postgres: str, message_bytes: int) -> Site:
    """A Jekyll site whose week WEEK holds a few posts, sized so that one subscriber's message (HTML, text
    part, headers) is about `message_bytes`: the size grows linearly with the paragraphs per post, so two
    renderings give the slope and a third checks the size."""
    site = Site(root=root, secret=secrets.token_urlsafe(32), connections=connections, postgres=postgres)
    posts = 8
    while posts > 1:
        low, high = preview_html(site, posts, 0), preview_html(site, posts, 6)
        if low.message_bytes > message_bytes * 1.05:
            posts -= 1  # a post without paragraphs is already too much: fewer posts
            continue
        step = max(1, high.message_bytes - low.message_bytes)
        estimate = max(0, round(6 * (message_bytes - low.message_bytes) / step))
        # paragraphs differ in length, so the size is only roughly linear: try the neighbours too
        for paragraphs in sorted(range(max(0, estimate - 2), estimate + 3), key=lambda p: abs(p - estimate)):
            found = preview_html(site, posts, paragraphs)
            if not found.summarized and abs(found.message_bytes - message_bytes) <= message_bytes * 0.05:
                site.html_bytes, site.message_bytes = found.size, found.message_bytes
                site.html = (found.folder / "email.html").read_text("utf-8")
                site.text = (found.folder / "email.txt").read_text("utf-8")
                log(
                    f"site: {posts} posts in {WEEK} with {paragraphs} extra paragraphs:"
                    f" {found.message_bytes:,} B message, {found.size:,} B HTML"
                )
                return site
        posts -= 1
    raise SetupError(f"could not size the message near {message_bytes:,} B")


@dataclass
class Rendered:
    size: int
    message_bytes: int
    summarized: bool
    folder: Path


def preview_html(site: Site, posts: int, paragraphs: int) -> Rendered:
    shutil.rmtree(site.root / "_posts", ignore_errors=True)
    _sites.write_jekyll(site.root, _sites.make_posts(1, posts, WEEK_MONDAY, paragraphs=paragraphs, seed=7))
    config = site.config("preview.toml", 25, site.subscribers(1))
    with site.database("sqlite") as db:
        cmd = _run.digest_command() + ["--config", str(config), "preview", "--week", WEEK, "--json"]
        summary = json.loads(_run.run(cmd, env=site.env(db)).check("digest preview").stdout)
    sizes = summary["sizes"]
    folder = Path(summary["files"]["email.html"]).parent
    return Rendered(sizes["email.html"], sizes["email.eml"], summary["summarized"], folder)


# -- one `digest send` ---------------------------------------------------------------------------------------


@dataclass
class Send:
    sent: int
    seconds: float  # the send phase as digest reports it (plan, claims, messages, outcomes)
    wall: float  # the whole command, start-up included

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0


def digest_send(site: Site, config: Path, database_url: str, expect: int) -> Send:
    cmd = _run.digest_command() + ["--config", str(config), "send", "--week", WEEK, "--json"]
    ran = _run.run(cmd, env=site.env(database_url)).check("digest send", ok=(0, 3))
    summary = json.loads(ran.stdout.strip().splitlines()[-1])
    if summary.get("sent") != expect:
        raise SetupError(f"digest send sent {summary.get('sent')} of {expect}: {ran.stdout.strip()[:500]}")
    return Send(summary["sent"], float(summary["seconds"]), ran.wall)


def smtp_source(port: int, count: int, size: int, sessions: int) -> float:
    """Postfix's C client; -d keeps each of the `sessions` connections open across messages."""
    cmd = [_tool("smtp-source"), "-d", "-s", str(sessions), "-l", str(size), "-m", str(count)]
    cmd += ["-f", FROM, "-t", "user@example.com", f"127.0.0.1:{port}"]
    return _run.run(cmd).check("smtp-source").wall


def naive_send(site: Site, port: int, count: int) -> float:
    """A first attempt: per subscriber a new EmailMessage (text + HTML, the same headers, an HMAC token)
    and a new SMTP connection."""
    started = time.perf_counter()
    for i in range(count):
        address = _sites.subscriber_address(i)
        token = hmac.new(site.secret.encode(), address.encode(), hashlib.sha256).hexdigest()[:32]
        unsubscribe = f"{_sites.SITE_URL}unsubscribe?token={token}"
        msg = EmailMessage()
        msg["Subject"] = f"{_sites.SITE_TITLE}: {WEEK}"
        msg["From"] = formataddr((_sites.SITE_TITLE, FROM))
        msg["To"] = formataddr((f"Reader {i}", address))
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(domain="bench.example.com")
        msg["List-Id"] = "<digest.bench.example.com>"
        msg["List-Unsubscribe"] = f"<mailto:{FROM}?subject=unsubscribe>, <{unsubscribe}>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        msg.set_content(site.text.replace(EXAMPLE, address).replace("#unsubscribe", unsubscribe))
        msg.add_alternative(site.html.replace(EXAMPLE, address).replace("#unsubscribe", unsubscribe), subtype="html")
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
            smtp.send_message(msg)
    return time.perf_counter() - started


def _ledgers(site: Site) -> list[str]:
    return ["sqlite", "postgresql"] if site.postgres else ["sqlite"]


# -- rate ----------------------------------------------------------------------------------------------------


@dataclass
class RateFigures:
    sends: dict[str, list[Send]] = field(default_factory=dict)
    source: list[float] = field(default_factory=list)
    naive: list[float] = field(default_factory=list)
    commit_ms: list[float] = field(default_factory=list)  # PostgreSQL's commit alone, right after its send


def rate_mode(site: Site, port: int, args: argparse.Namespace, report: Report) -> float | None:
    n = args.subscribers
    config = site.config("rate.toml", port, site.subscribers(n))
    fig = RateFigures()
    for rep in range(args.repeat):
        steps: list[tuple[str, Any]] = []
        for kind in _ledgers(site):

            def step_digest(kind: str = kind) -> None:
                with site.database(kind) as db:
                    send = digest_send(site, config, db, n)
                    if kind == "postgresql":
                        fig.commit_ms.append(pg_commit_ms(db))
                fig.sends.setdefault(kind, []).append(send)
                log(
                    f"  digest ({kind:<10}) {send.rate:7.0f} msgs/s send phase"
                    f" ({send.seconds:.2f} s; {send.wall:.2f} s whole)"
                    + (f"; a commit alone {fig.commit_ms[-1]:.2f} ms" if kind == "postgresql" else "")
                )

            steps.append((kind, step_digest))

        def step_source() -> None:
            seconds = smtp_source(port, n, site.message_bytes, args.connections)
            fig.source.append(n / seconds)
            log(f"  smtp-source           {n / seconds:7.0f} msgs/s ({seconds:.2f} s)")

        def step_naive() -> None:
            seconds = naive_send(site, port, args.naive)
            fig.naive.append(args.naive / seconds)
            log(f"  naive                 {args.naive / seconds:7.0f} msgs/s ({seconds:.2f} s)")

        steps += [("smtp-source", step_source), ("naive", step_naive)]
        shift = rep % len(steps)  # rotate so no sender always runs first or last
        log(f"rate: repetition {rep + 1}/{args.repeat}")
        for _name, step in steps[shift:] + steps[:shift]:
            step()

    source, naive = median(fig.source), median(fig.naive)
    sqlite_rate = median([s.rate for s in fig.sends["sqlite"]])
    report.notes.append(
        f"rate: {n:,} subscribers in subscribers.yaml, {args.repeat} repetition(s) (medians),"
        f" {args.connections} connections; "
        f"message {site.message_bytes:,} B ({site.html_bytes:,} B HTML);"
        f" naive sender timed over {args.naive:,} messages"
    )
    for kind in _ledgers(site):
        sends = fig.sends[kind]
        rate, wall = median([s.rate for s in sends]), median([s.wall for s in sends])
        vs = paired([s.rate for s in sends], fig.source)
        report.add(
            f"digest send, {kind} ledger, send phase (msg/s)",
            fmt(rate),
            f"smtp-source {fmt(source)}",
            fmt(None if vs is None else vs * 100, " %", 1),
            f"≥ {TARGET_VS_SOURCE * 100:.0f} %",
            verdict(None if vs is None else vs >= TARGET_VS_SOURCE),
        )
        report.add(
            "  the same, whole command (s; msg/s)",
            f"{fmt(wall, ' s', 2)}",
            "",
            f"{fmt(ratio_of(n, wall))}/s",
        )
    report.add(
        "digest send, sqlite, send phase (msg/s)",
        fmt(sqlite_rate),
        "",
        "",
        f"≥ {TARGET_RATE:,.0f}",
        verdict(None if sqlite_rate is None else sqlite_rate >= TARGET_RATE),
    )
    sqlite_rates = [s.rate for s in fig.sends["sqlite"]]
    vs_naive = paired(sqlite_rates, fig.naive)
    report.add(
        "digest send, sqlite / naive sender",
        fmt(sqlite_rate),
        f"naive {fmt(naive)}",
        fmt(vs_naive, "×", 1),
        f"≥ {TARGET_VS_NAIVE:.0f}×",
        verdict(None if vs_naive is None else vs_naive >= TARGET_VS_NAIVE),
    )
    if site.postgres:
        pg = median([s.rate for s in fig.sends["postgresql"]])
        vs_sqlite = paired([s.rate for s in fig.sends["postgresql"]], sqlite_rates)
        report.add(
            "digest send, postgresql / sqlite ledger",
            fmt(pg),
            f"sqlite {fmt(sqlite_rate)}",
            fmt(vs_sqlite, "×", 2),
            f"≥ {TARGET_PG_VS_SQLITE}×",
            verdict(None if vs_sqlite is None else vs_sqlite >= TARGET_PG_VS_SQLITE),
        )
        commit_ms = median(fig.commit_ms)
        if commit_ms:
            # the workers no longer wait for it (the outcome journal, digest/sender/journal.py): shown to
            # tell a slow server from a slow sender
            report.add("  PostgreSQL commit alone, right after (ms)", f"{commit_ms:.2f} ms", "", "")
            report.notes.append(
                f"rate: a PostgreSQL commit alone (a single-row UPDATE, the server's own synchronous_commit), right "
                f"after each PostgreSQL send: median {commit_ms:.2f} ms; sent outcomes go to the run's journal on "
                f"disk first and to the database a group at a time behind the workers"
            )
    else:
        report.notes.append("rate: PostgreSQL ledger not measured (set --postgres or DIGEST_BENCH_POSTGRES_URL)")
    return sqlite_rate


# -- signed --------------------------------------------------------------------------------------------------


def signed_mode(site: Site, port: int, args: argparse.Namespace, report: Report) -> None:
    key = site.root / "dkim.pem"
    if not key.exists():
        openssl = _run.tool("openssl", "apt-get install openssl")
        _run.run([openssl, "genrsa", "-out", str(key), "2048"]).check("openssl genrsa")
    n = args.signed_subscribers
    subscribers = site.subscribers(n)
    configs = {
        "signed": site.config("signed.toml", port, subscribers, dkim=True),
        "unsigned": site.config("unsigned.toml", port, subscribers),
    }
    rates: dict[str, list[float]] = {"signed": [], "unsigned": []}
    for rep in range(args.repeat):
        log(f"signed: repetition {rep + 1}/{args.repeat}")
        order = ["signed", "unsigned"] if rep % 2 == 0 else ["unsigned", "signed"]
        for kind in order:
            with site.database("sqlite") as db:
                send = digest_send(site, configs[kind], db, n)
            rates[kind].append(send.rate)
            log(f"  {kind:<9} {send.rate:7.0f} msgs/s send phase ({send.seconds:.2f} s)")
    signed, unsigned = median(rates["signed"]), median(rates["unsigned"])
    report.notes.append(
        f"signed: {n:,} subscribers, DKIM with a 2048-bit RSA key, sqlite ledger, medians of {args.repeat}"
    )
    report.add(
        "digest send, DKIM-signed (msg/s)",
        fmt(signed),
        f"unsigned {fmt(unsigned)}",
        fmt(paired(rates["signed"], rates["unsigned"]), "×", 2),
    )


# -- kill ----------------------------------------------------------------------------------------------------

RCPT = re.compile(rb"^X-Rcpt-Args: <([^>]*)>", re.M)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _settle(dump: Path, quiet: float = 0.1) -> int:
    """Wait until smtp-sink has written what it received (the size stops changing); return the size."""
    size, since = _size(dump), time.monotonic()
    while time.monotonic() - since < quiet:
        time.sleep(0.01)
        now = _size(dump)
        if now != size:
            size, since = now, time.monotonic()
    return size


@dataclass
class KillRun:
    start: int  # dump offset when the run started
    sending_s: float  # from its first message in the dump to the kill
    killed: bool


def kill_mode(site: Site, args: argparse.Namespace, report: Report, rate_guess: float | None, dump_dir: Path) -> None:
    n, kills = args.subscribers, args.kill
    rng = random.Random(args.seed)
    for kind in _ledgers(site):
        dump = dump_dir / f"dump-{kind}"
        with smtp_sink(dump) as port, site.database(kind) as db:
            config = site.config(f"kill-{kind}.toml", port, site.subscribers(n))
            env = site.env(db)
            cmd = _run.digest_command() + ["--config", str(config), "send", "--week", WEEK, "--json"]
            per_message = site.message_bytes + 300  # smtp-sink adds its own header lines
            rate = rate_guess or 1000.0
            runs: list[KillRun] = []
            log(f"kill ({kind}): {kills} kills on {n:,} subscribers")
            for k in range(kills):
                start = _settle(dump)
                proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                while _size(dump) == start and proc.poll() is None:
                    time.sleep(0.001)
                first_at = time.monotonic()
                left = max(0, n - start // per_message)
                # A random moment in this run's share of what is left, so every kill falls while it sends.
                time.sleep(rng.uniform(0.2, 0.8) * left / rate / (kills - k))
                killed = proc.poll() is None
                if killed:
                    proc.send_signal(signal.SIGKILL)
                sending = time.monotonic() - first_at
                proc.wait()
                got = (_settle(dump) - start) // per_message
                if killed and sending > 0.05 and got:
                    # Only ever raised: a rate guessed too high kills earlier, still while sending; too low
                    # lets the run finish before its kill.
                    rate = max(rate, got / sending)
                runs.append(KillRun(start, sending, killed))
                log(f"  kill {k + 1}: after {sending:.2f} s of sending, ~{got:,} messages ({got / sending:.0f}/s)")
                if not killed:
                    break
            final_start = _settle(dump)
            ran = _run.run(cmd, env=env).check("the clean run after the kills", ok=(0, 3))
            final = json.loads(ran.stdout.strip().splitlines()[-1])
            again_start = _settle(dump)
            again = _run.run(cmd, env=env).check("a rerun of a complete issue")
            again_sent = json.loads(again.stdout.strip().splitlines()[-1])["sent"]
            end = _settle(dump)
        copies, run_of = _parse_dump(dump, [r.start for r in runs] + [final_start, again_start], end)
        dump.unlink()
        _kill_rows(report, kind, n, runs, copies, run_of, final, again_sent, args.connections)


def _parse_dump(dump: Path, starts: list[int], end: int) -> tuple[Counter[str], dict[str, list[int]]]:
    """Copies per recipient, and for each recipient with more than one the runs its copies came in. Read
    in chunks, not mapped: mapped pages would count in this process's RSS, which children inherit."""
    copies: Counter[str] = Counter()
    runs: dict[str, list[int]] = {}
    offset, tail = 0, b""
    with dump.open("rb") as fh:
        while offset < end:
            chunk = fh.read(min(1 << 20, end - offset))
            if not chunk:
                break
            data = tail + chunk
            cut = data.rfind(b"\n") + 1  # whole lines only; the rest starts the next chunk
            base = offset - len(tail)
            for match in RCPT.finditer(data, 0, cut):
                address = match.group(1).decode()
                copies[address] += 1
                runs.setdefault(address, []).append(bisect_right(starts, base + match.start()) - 1)
            tail = data[cut:]
            offset += len(chunk)
    return copies, {a: r for a, r in runs.items() if len(r) > 1}


def _kill_rows(
    report: Report,
    kind: str,
    n: int,
    runs: list[KillRun],
    copies: Counter[str],
    run_of: dict[str, list[int]],
    final: dict[str, Any],
    again_sent: int,
    connections: int,
) -> None:
    killed = sum(r.killed for r in runs)
    wanted = {_sites.subscriber_address(i) for i in range(n)}
    lost = len(wanted - copies.keys())
    strangers = len(copies.keys() - wanted)
    duplicates = sum(c - 1 for a, c in copies.items() if a in wanted)
    # A duplicate belongs to the kill that ended the run of its earlier copy: it was in flight then.
    per_kill = Counter(r for runs_ in run_of.values() for r in runs_[:-1])
    worst = max(per_kill.values(), default=0)
    sending = sum(r.sending_s for r in runs if r.killed)
    under_kill = sum(copies.values()) - int(final["sent"])
    report.notes.append(
        f"kill ({kind}): {killed} SIGKILLs of `digest send` at random moments while it sent to {n:,} subscribers, "
        f"each rerun at once, then a clean run (sent {final['sent']:,} at {final['rate']:,.0f} msg/s) and a rerun "
        f"of the complete issue (sent {again_sent})"
    )
    if killed < len(runs) or killed == 0:
        report.notes.append(f"kill ({kind}): a run finished before its kill; {killed} kills made")
    per = duplicates / killed if killed else None
    report.add(
        f"kill ({kind}): subscribers never reached",
        f"{lost:,}",
        f"of {n:,}",
        "",
        "0",
        verdict(lost == 0 and strangers == 0),
    )
    report.add(
        f"kill ({kind}): duplicates per kill",
        fmt(per, "", 2),
        f"{duplicates} in {killed} kills",
        "",
        f"≤ {connections} (connections)",
        verdict(None if per is None else per <= connections),
    )
    report.add(
        f"kill ({kind}): duplicates at the worst kill",
        f"{worst}",
        "",
        "",
        f"≤ {connections}",
        verdict(None if not killed else worst <= connections),
    )
    report.add(
        f"kill ({kind}): msg/s while sending until the kills",
        fmt(under_kill / sending if sending else None),
        f"clean run {final['rate']:,.0f}",
    )
    report.add(
        f"kill ({kind}): rerun of the complete issue sends", f"{again_sent}", "", "", "0", verdict(again_sent == 0)
    )


# -- memory --------------------------------------------------------------------------------------------------


def list_size_child(path: Path) -> None:
    """Runs in its own interpreter: the size of the subscriber list `digest send` holds (the tuple of
    Subscriber objects the loader returns and everything only they reference), as JSON."""
    from digest.config import load_subscribers

    subs = load_subscribers(path)
    print(json.dumps({"count": len(subs), "list_mb": _run.graph_mb(subs)}))


MEASURES = {"peak": "maxrss_mb", "hwm": "hwm_mb", "cpu": "cpu", "wall": "wall"}  # of a run, for memory_mode


def memory_mode(site: Site, args: argparse.Namespace, report: Report) -> None:
    sizes = [int(x) for x in args.memory_sizes.split(",") if x.strip()]
    runs: list[dict[str, Any]] = []
    for count in [1, *sizes]:
        name = site.subscribers(count)
        config = site.config(f"memory-{count}.toml", 25, name)
        log(f"memory: digest send --dry-run with {count:,} subscribers in {name}")
        cmd = _run.digest_command() + ["--config", str(config), "send", "--dry-run", "--week", WEEK, "--json"]
        each = []
        for _ in range(args.repeat):
            with site.database("sqlite") as db:
                ran = _run.run(cmd, env=site.env(db), sample_memory=True).check("digest send --dry-run", ok=(0, 3))
            each.append(ran)
            log(f"  peak {ran.maxrss_mb:.1f} MB (VmHWM {ran.hwm_mb:.1f}), {ran.cpu:.1f} s CPU, {ran.wall:.1f} s")
        sent = json.loads(each[-1].stdout.strip().splitlines()[-1])["sent"]
        child = [sys.executable, str(Path(__file__).resolve()), "--list-size-child", str(site.root / name)]
        sized = json.loads(_run.run(child).check("the list-size helper").stdout)
        runs.append(
            {"count": count, "sent": sent, "list": sized["list_mb"]}
            | {key: median([getattr(r, attr) for r in each]) for key, attr in MEASURES.items()}
        )
        log(f"  list {sized['list_mb']:.1f} MB; built {sent:,}")
    base = runs[0]
    report.notes.append(
        "memory: real `digest send --dry-run` (loads and validates subscribers.yaml, plans, builds every "
        f"message, sends none); peak RSS from wait4, medians of {args.repeat} runs per size; "
        f"1 subscriber: {base['peak']:.1f} MB peak, {base['cpu']:.1f} s CPU (start-up and the issue); "
        f"this process's own peak then {_run.own_peak_mb():.0f} MB"
    )
    for r in runs[1:]:
        k = _k(r["count"])
        report.add(
            f"memory: peak RSS, {k} subscribers (list itself {r['list']:.1f} MB)",
            f"{r['peak']:.1f} MB",
            f"1 sub. {base['peak']:.1f} MB",
            "",
            f"≤ {TARGET_PEAK_MB:.0f} MB",
            verdict(r["peak"] <= TARGET_PEAK_MB),
        )
        if abs(r["peak"] - r["hwm"]) > 2:
            report.notes.append(f"memory: at {k} wait4 says {r['peak']:.1f} MB, the sampled VmHWM {r['hwm']:.1f} MB")
        report.add(
            f"memory: CPU, {k} subscribers (user + sys)",
            f"{r['cpu']:.1f} s",
            f"1 sub. {base['cpu']:.1f} s",
            "",
            f"≤ {TARGET_CPU_S:.0f} s",
            verdict(r["cpu"] <= TARGET_CPU_S),
        )
    if len(runs) >= 3:
        small, big = runs[1], runs[-1]
        list_growth = big["list"] - small["list"]
        growth = (big["peak"] - small["peak"]) - list_growth
        report.add(
            f"memory: peak growth {_k(small['count'])}→{_k(big['count'])} beyond the list",
            f"{growth:+.1f} MB",
            f"list +{list_growth:.1f} MB",
            "",
            f"≤ {FLAT_SLACK_MB:.0f} MB (flat)",
            verdict(growth <= FLAT_SLACK_MB),
        )


def _k(count: int) -> str:
    return f"{count // 1000}k" if count >= 1000 and count % 1000 == 0 else f"{count:,}"


# -- main ----------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=10_000, help="list size for rate and kill (10,000)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions; medians are reported (3)")
    parser.add_argument("--connections", type=int, default=4, help="delivery.connections, and smtp-source's (4)")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)}")
    parser.add_argument("--postgres", default=os.environ.get("DIGEST_BENCH_POSTGRES_URL", ""), help="a "
                        "postgresql+psycopg:// URL (default $DIGEST_BENCH_POSTGRES_URL); a database is made and "
                        "dropped per repetition")  # fmt: skip
    parser.add_argument("--kill", type=int, default=10, help="SIGKILLs in kill mode (10)")
    parser.add_argument("--naive", type=int, default=2_000, help="messages the naive sender sends per repetition")
    parser.add_argument("--signed-subscribers", type=int, default=2_000, help="list size for signed mode (2,000)")
    parser.add_argument("--memory-sizes", default="10000,100000", help="list sizes for memory mode")
    parser.add_argument("--message-kb", type=float, default=43, help="size of one message in KB (43)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the kill moments")
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds per mode")
    parser.add_argument("--list-size-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.list_size_child:
        list_size_child(args.list_size_child)
        return 0
    if args.quick:
        args.subscribers, args.repeat, args.naive, args.kill = 1_000, 1, 200, 3
        args.signed_subscribers, args.memory_sizes = 200, "1000,10000"
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = set(modes) - set(MODES)
    if unknown:
        parser.error(f"unknown mode(s) {', '.join(sorted(unknown))}: use {', '.join(MODES)}")
    report = Report(f"bench_send: {', '.join(modes)}", loads=[_run.load1()])
    return _run.finish(report, lambda: run(args, modes, report))


def run(args: argparse.Namespace, modes: list[str], report: Report) -> None:
    _tool("smtp-sink")
    _tool("smtp-source")
    _run.warm_bytecode()
    shm = Path("/dev/shm")
    dump_parent = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
    with (
        tempfile.TemporaryDirectory(prefix="digest-bench-send-") as tmp,
        tempfile.TemporaryDirectory(prefix="digest-bench-dump-", dir=dump_parent) as dumps,
    ):
        os.chmod(dumps, 0o777)  # smtp-sink writes its dump as nobody
        site = make_site(Path(tmp), args.connections, args.postgres, int(args.message_kb * 1000))
        if "memory" in modes:
            memory_mode(site, args, report)  # first, while this process is at its smallest
        rate: float | None = None
        if "rate" in modes or "signed" in modes:
            with smtp_sink() as port:
                if "rate" in modes:
                    rate = rate_mode(site, port, args, report)
                if "signed" in modes:
                    signed_mode(site, port, args, report)
        if "kill" in modes:
            kill_mode(site, args, report, rate, Path(dumps))


if __name__ == "__main__":
    sys.exit(main())
