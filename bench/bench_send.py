"""Delivery benchmark: one ~40 KB issue to N subscribers through Postfix's smtp-sink on 127.0.0.1.

In the same run, interleaved per repetition so the machine's noise hits all three alike:
  digest       MessageFactory + deliver() + SmtpTransport + a SQLite Ledger (what `digest send` does)
  naive        an EmailMessage per subscriber and a new smtplib connection per message
  smtp-source  Postfix's C client, same message count and size, same number of parallel connections,
               connections reused (-d): the ceiling of this machine

Peak memory is measured in a fresh subprocess per list size (ru_maxrss), next to the RSS of the same
interpreter right after the imports.

    python bench/bench_send.py                      # 10,000 subscribers, 3 repetitions, memory at 10k/100k
    python bench/bench_send.py --quick              # a smoke run of a few seconds
Exit status: 0 when the figures were measured (targets missed or not), 2 when the setup failed.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import importlib
import json
import os
import resource
import shutil
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid
from pathlib import Path
from typing import Any

import _fixtures

from digest.config import Settings, load_settings
from digest.models import RECIPIENT_EMAIL_MARK, UNSUBSCRIBE_URL_MARK, RenderedIssue, Subscriber

TARGET_RATE = 1000.0  # messages/s
TARGET_VS_NAIVE = 8.0
TARGET_VS_SOURCE = 0.35
TARGET_PEAK_MB = 150.0
# "Flat": going from 10k to 100k subscribers may add at most this much to the peak beyond what the
# subscriber objects themselves take (they are the input, held by the caller).
FLAT_SLACK_MB = 15.0


class SetupError(Exception):
    """The benchmark cannot run here (missing tool, missing module, server that will not start)."""


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")
    if not found:
        raise SetupError(f"{name} not found: install Postfix (Debian: apt-get install postfix)")
    return found


# ---------------------------------------------------------------------------------------------
# smtp-sink


@contextlib.contextmanager
def smtp_sink() -> Iterator[int]:
    """Run smtp-sink on a free port of 127.0.0.1; yield the port."""
    sink = _tool("smtp-sink")
    for _attempt in range(5):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        cmd = [sink]
        if os.geteuid() == 0:  # smtp-sink refuses to keep root privileges
            cmd += ["-u", "nobody"]
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
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
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


# ---------------------------------------------------------------------------------------------
# The three senders. Each returns the wall-clock seconds of sending `count` messages.


def run_smtp_source(port: int, count: int, size: int, sessions: int) -> float:
    """Postfix's C client; -d keeps each of the `sessions` connections open across messages."""
    source = _tool("smtp-source")
    cmd = [source, "-d", "-s", str(sessions), "-l", str(size), "-m", str(count)]
    cmd += ["-f", "digest@bench.example.com", "-t", "user@example.com", f"127.0.0.1:{port}"]
    started = time.perf_counter()
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SetupError(f"smtp-source failed: {done.stderr.decode(errors='replace').strip()}")
    return seconds


def naive_message(rendered: RenderedIssue, settings: Settings, sub: Subscriber) -> EmailMessage:
    """What a first attempt looks like: personalise the strings, then let the email package build it all."""
    payload = sub.email.encode()
    token = hmac.new(settings.secret.encode(), payload, hashlib.sha256).hexdigest()[:32]
    unsubscribe = f"{settings.email.public_url}unsubscribe?token={token}"
    msg = EmailMessage()
    msg["Subject"] = rendered.subject
    msg["From"] = settings.email.sender
    msg["To"] = formataddr((sub.name, sub.email))
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain="bench.example.com")
    msg["List-Id"] = f"<{settings.email.list_id}>"
    msg["List-Unsubscribe"] = f"<mailto:digest@bench.example.com?subject=unsubscribe>, <{unsubscribe}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"

    def personal(text: str) -> str:
        return text.replace(UNSUBSCRIBE_URL_MARK, unsubscribe).replace(RECIPIENT_EMAIL_MARK, sub.email)

    msg.set_content(personal(rendered.text))
    msg.add_alternative(personal(rendered.html), subtype="html")
    return msg


def run_naive(port: int, rendered: RenderedIssue, settings: Settings, subs: Sequence[Subscriber]) -> float:
    started = time.perf_counter()
    for sub in subs:
        msg = naive_message(rendered, settings, sub)
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
            smtp.send_message(msg)
    return time.perf_counter() - started


# ---------------------------------------------------------------------------------------------
# digest itself


@dataclass
class DigestRun:
    seconds: float
    sent: int
    summary: str


@dataclass
class Digest:
    """The code under test, imported late so the rest of the benchmark runs while it is being written."""

    settings: Settings
    rendered: RenderedIssue
    workdir: Path
    real_template: bool
    mods: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, workdir: Path, port: int, connections: int, synthetic: bool) -> Digest:
        settings = make_settings(workdir, port, connections)
        mods = import_sender()
        rendered, real = render_issue(settings, synthetic, mods["MessageFactory"])
        return cls(settings, rendered, workdir, real, mods)

    def factory(self) -> Any:
        return self.mods["MessageFactory"]({((), "html"): self.rendered}, self.settings, _fixtures.NOW_AT)

    def message_size(self) -> int:
        return len(self.factory().build(PROBE).data)

    def build_rate(self, subs: Sequence[Subscriber]) -> float:
        """MessageFactory.build alone, no network and no ledger: the per-subscriber hot path."""
        factory = self.factory()
        started = time.perf_counter()
        for sub in subs:
            factory.build(sub)
        return len(subs) / (time.perf_counter() - started)

    def send(self, subs: Sequence[Subscriber], tag: str) -> DigestRun:
        db = self.workdir / f"ledger-{tag}.sqlite3"
        ledger = self.mods["Ledger"](f"sqlite:///{db}")
        transport = self.mods["SmtpTransport"]
        smtp = self.settings.smtp
        factory = self.factory()
        started = time.perf_counter()
        report = self.mods["deliver"](factory, subs, ledger, lambda: transport(smtp), self.settings.delivery, _clock)
        seconds = time.perf_counter() - started
        with contextlib.suppress(OSError):
            db.unlink()
        return DigestRun(seconds, _sent(report), repr(report)[:300])


def make_settings(workdir: Path, port: int, connections: int) -> Settings:
    config = _fixtures.write_site(workdir / "site", port, connections)
    return load_settings(config, env={"DIGEST_SECRET": _fixtures.SECRET})


def _clock() -> datetime:
    return datetime.now(UTC)


def _sent(report: Any) -> int:
    for name in ("sent", "n_sent", "delivered"):
        value = getattr(report, name, None)
        if isinstance(value, int):
            return value
    return -1


def import_sender() -> dict[str, Any]:
    names = {
        "deliver": "digest.sender.deliver",
        "Ledger": "digest.sender.ledger",
        "MessageFactory": "digest.sender.message",
        "SmtpTransport": "digest.sender.transports",
    }
    found: dict[str, Any] = {}
    for name, module in names.items():
        try:
            found[name] = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as exc:
            raise SetupError(f"digest.sender is not complete yet ({exc})") from exc
    return found


PROBE = Subscriber(email="user12345@example.com", name="Reader 12345")


def render_issue(
    settings: Settings, synthetic: bool, factory: Any = None, target: int = 40_000
) -> tuple[RenderedIssue, bool]:
    """An issue whose message is about `target` bytes: a real rendering of invented entries when the templater
    exists, else a synthetic one of the same shape. The size is calibrated on digest's own message when
    MessageFactory exists (else on the naive one): transfer encodings make a message larger than its parts."""
    render: Callable[[float], RenderedIssue] | None = None
    if not synthetic:
        try:
            from digest.templater import render_email
        except ImportError:
            pass
        else:

            def render(scale: float) -> RenderedIssue:
                issue = _fixtures.make_issue(settings.site, entries=max(1, round(12 * scale)))
                return render_email(issue, settings, summarize=False)

    real = render is not None
    if render is None:

        def render(scale: float) -> RenderedIssue:
            return _fixtures.synthetic_rendered(_fixtures.make_issue(settings.site), round(target * scale))

    scale = 1.0
    for _ in range(3):
        rendered = render(scale)
        if factory is not None:
            size = len(factory({((), "html"): rendered}, settings, _fixtures.NOW_AT).build(PROBE).data)
        else:
            size = len(bytes(naive_message(rendered, settings, PROBE)))
        if abs(size - target) < target * 0.03:
            break
        scale *= target / size
    return rendered, real


# ---------------------------------------------------------------------------------------------
# Memory: one subprocess per list size


def rss_mb(field: str = "VmHWM") -> float:
    """VmHWM (peak) or VmRSS (now) of this process, in MB.

    Not ru_maxrss: Linux carries a parent's peak across fork + exec into the child's ru_maxrss, so a
    child started by a big parent would report the parent's peak. VmHWM belongs to the new address space.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def memory_child(count: int, port: int, workdir: Path, synthetic: bool) -> None:
    """Runs in its own interpreter: prints JSON with the RSS after imports, the list's size and the peak."""
    import_sender()
    if not synthetic:
        with contextlib.suppress(ImportError):
            importlib.import_module("digest.templater")
    baseline = rss_mb()  # an idle interpreter with every import the send needs
    digest = Digest.load(workdir, port, 4, synthetic)
    before_list = rss_mb("VmRSS")
    subs = tuple(_fixtures.subscribers(count))
    list_mb = rss_mb("VmRSS") - before_list
    run = digest.send(subs, f"mem{count}")
    result = {"count": count, "baseline_mb": baseline, "list_mb": list_mb, "peak_mb": rss_mb()}
    print(json.dumps(result | {"sent": run.sent, "seconds": run.seconds}))


def measure_memory(count: int, port: int, workdir: Path, synthetic: bool) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--memory-child", str(count), "--port", str(port)]
    cmd += ["--workdir", str(workdir)] + (["--synthetic"] if synthetic else [])
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SetupError(f"memory run for {count} failed:\n{done.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# ---------------------------------------------------------------------------------------------


@dataclass
class Figures:
    digest: list[float] = field(default_factory=list)  # rates, messages/s
    naive: list[float] = field(default_factory=list)
    source: list[float] = field(default_factory=list)
    build: list[float] = field(default_factory=list)
    memory: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    load: list[float] = field(default_factory=list)  # 1-minute load average before and after


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _fmt(value: float | None, unit: str = "", digits: int = 0) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}{unit}"


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def _k(count: int) -> str:
    return f"{count // 1000}k" if count >= 1000 and count % 1000 == 0 else f"{count:,}"


def print_table(fig: Figures, args: argparse.Namespace) -> None:
    d, n, s = _median(fig.digest), _median(fig.naive), _median(fig.source)
    vs_naive = d / n if d and n else None
    vs_source = d / s if d and s else None
    rows: list[tuple[str, str, str, str]] = [
        (
            "digest send (msgs/s, median)",
            _fmt(d),
            f"≥ {TARGET_RATE:,.0f}",
            _verdict(None if d is None else d >= TARGET_RATE),
        ),
        ("  MessageFactory.build alone (msgs/s)", _fmt(_median(fig.build)), "", ""),
        ("naive sender (msgs/s, median)", _fmt(n), "", ""),
        ("smtp-source (msgs/s, median)", _fmt(s), "", ""),
        (
            "digest / naive",
            _fmt(vs_naive, "×", 1),
            f"≥ {TARGET_VS_NAIVE:.0f}×",
            _verdict(None if vs_naive is None else vs_naive >= TARGET_VS_NAIVE),
        ),
        (
            "digest / smtp-source",
            _fmt(None if vs_source is None else vs_source * 100, " %", 1),
            f"≥ {TARGET_VS_SOURCE * 100:.0f} %",
            _verdict(None if vs_source is None else vs_source >= TARGET_VS_SOURCE),
        ),
    ]
    for m in fig.memory:
        k = _k(m["count"])
        rows.append(
            (
                f"peak RSS, {k} subscribers",
                f"{m['peak_mb']:.1f} MB",
                f"≤ {TARGET_PEAK_MB:.0f} MB",
                _verdict(m["peak_mb"] <= TARGET_PEAK_MB),
            )
        )
        rows.append(
            (
                f"  idle interpreter / delta, {k}",
                f"{m['baseline_mb']:.1f} / +{m['peak_mb'] - m['baseline_mb']:.1f} MB",
                "",
                "",
            )
        )
        rows.append((f"  of which the subscriber list, {k}", f"{m['list_mb']:.1f} MB", "", ""))
    if len(fig.memory) >= 2:
        small, big = fig.memory[0], fig.memory[-1]
        growth = (big["peak_mb"] - small["peak_mb"]) - (big["list_mb"] - small["list_mb"])
        rows.append(
            (
                f"peak growth {_k(small['count'])}→{_k(big['count'])} beyond the list",
                f"{growth:+.1f} MB",
                f"≤ {FLAT_SLACK_MB:.0f} MB (flat)",
                _verdict(growth <= FLAT_SLACK_MB),
            )
        )
    width = max(len(r[0]) for r in rows) + 2
    print(f"\n{args.subscribers:,} subscribers, {args.repeat} repetition(s), {args.connections} connections")
    for note in fig.notes:
        print(note)
    if fig.load:
        loads = " → ".join(f"{x:.1f}" for x in fig.load)
        print(f"load average (1 min) {loads} on {os.cpu_count()} CPUs: other work on the machine skews every figure")
    print()
    print(f"{'measure':<{width}}{'value':>22}  {'target':<18}result")
    for name, value, target, result in rows:
        print(f"{name:<{width}}{value:>22}  {target:<18}{result}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=10_000, help="list size for the rate (default 10,000)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions; medians are reported (default 3)")
    parser.add_argument("--naive", type=int, default=2_000, help="messages the naive sender sends per repetition")
    parser.add_argument("--connections", type=int, default=4, help="parallel SMTP connections (digest, smtp-source)")
    parser.add_argument("--memory-sizes", default="10000,100000", help="list sizes for the memory runs ('' = skip)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1,000 subscribers, 1 repetition, small memory")
    parser.add_argument("--synthetic", action="store_true", help="use the synthetic issue even if the templater exists")
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child is not None:
        memory_child(args.memory_child, args.port, args.workdir, args.synthetic)
        return 0
    if args.quick:
        args.subscribers, args.repeat, args.naive, args.memory_sizes = 1_000, 1, 200, "1000,10000"
    try:
        fig = run(args)
    except SetupError as exc:
        log(f"setup error: {exc}")
        return 2
    print_table(fig, args)
    return 0


def run(args: argparse.Namespace) -> Figures:
    fig = Figures(load=[os.getloadavg()[0]])
    with tempfile.TemporaryDirectory(prefix="digest-bench-") as tmp, smtp_sink() as port:
        workdir = Path(tmp)
        settings = make_settings(workdir, port, args.connections)
        digest: Digest | None = None
        try:
            mods = import_sender()
        except SetupError as exc:
            fig.notes.append(f"digest not measured: {exc}")
            mods = {}
        rendered, real = render_issue(settings, args.synthetic, mods.get("MessageFactory"))
        if mods:
            digest = Digest(settings, rendered, workdir, real, mods)
        subs = tuple(_fixtures.subscribers(args.subscribers))
        naive_subs = subs[: args.naive]
        naive_size = len(bytes(naive_message(rendered, settings, subs[0])))
        size = digest.message_size() if digest else naive_size
        fig.notes.append(
            f"message: {size:,} bytes from digest, {naive_size:,} bytes from the naive sender "
            f"({'templater' if real else 'synthetic'} issue, html {len(rendered.html.encode()):,} B);"
            f" naive sender timed over {len(naive_subs):,} messages per repetition"
        )
        for rep in range(args.repeat):
            steps: list[tuple[str, Callable[[], None]]] = []
            if digest is not None:
                dg = digest

                def step_digest(rep: int = rep, dg: Digest = dg) -> None:
                    result = dg.send(subs, f"rep{rep}")
                    if result.sent not in (-1, len(subs)):
                        raise SetupError(f"digest sent {result.sent} of {len(subs)}: {result.summary}")
                    fig.digest.append(len(subs) / result.seconds)
                    fig.build.append(dg.build_rate(subs))
                    log(f"  digest       {len(subs) / result.seconds:8.0f} msgs/s  ({result.seconds:.2f} s)")

                steps.append(("digest", step_digest))

            def step_naive() -> None:
                seconds = run_naive(port, rendered, settings, naive_subs)
                fig.naive.append(len(naive_subs) / seconds)
                log(f"  naive        {len(naive_subs) / seconds:8.0f} msgs/s  ({seconds:.2f} s)")

            def step_source() -> None:
                seconds = run_smtp_source(port, len(subs), size, args.connections)
                fig.source.append(len(subs) / seconds)
                log(f"  smtp-source  {len(subs) / seconds:8.0f} msgs/s  ({seconds:.2f} s)")

            steps += [("naive", step_naive), ("smtp-source", step_source)]
            # Rotate the order so no sender always runs first (warm caches) or last.
            shift = rep % len(steps)
            log(f"repetition {rep + 1}/{args.repeat}")
            for _name, step in steps[shift:] + steps[:shift]:
                step()
        if digest is not None and args.memory_sizes:
            for count in (int(x) for x in args.memory_sizes.split(",") if x.strip()):
                log(f"memory: {count:,} subscribers in a subprocess")
                fig.memory.append(measure_memory(count, port, workdir / f"mem{count}", args.synthetic))
        fig.load.append(os.getloadavg()[0])
        if digest is None:
            raise_later = SetupError("digest.sender is not available; only the baselines were measured")
            print_table(fig, args)
            raise raise_later
    return fig


if __name__ == "__main__":
    sys.exit(main())
