"""DKIM benchmark: MessageFactory.build with and without signing, on the same ~43 KB issue and subscribers.

Each mode builds the same messages from `--threads` threads (default 4, like `delivery.connections`, since
that is how `digest send` calls build), `--repeat` times in rotating order; the median rate is reported:

  unsigned          no DKIM key
  dkimpy            the previous signer, dkim.sign() per message (pure-Python RSA); fewer messages
  rsa, in process   RSA-2048 through cryptography, `delivery.signing_processes = 0`
  rsa, helpers      the same with helper processes (`"auto"`: one per CPU)
  rsa + ed25519     both signatures (RFC 8463), helpers

One message of every signed mode is verified with dkimpy first, so the figures are of signatures that
verify. The load average is printed before and after: the machines are shared, compare ratios.

With `--send`, the same modes (unsigned and RSA with helpers) also send the messages for real, as
`digest send` does: deliver() with a fresh SQLite ledger and SmtpTransport over `delivery.connections`
(4) connections to Postfix's smtp-sink on 127.0.0.1 (which accepts and discards everything).

    python bench/bench_dkim.py                 # 5,000 messages, 5 repetitions
    python bench/bench_dkim.py --send          # and the end-to-end send, signed and unsigned
    python bench/bench_dkim.py --quick         # 1,000 messages, 1 repetition
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import _fixtures
import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from digest.config import Settings, load_settings
from digest.models import RenderedIssue, Subscriber
from digest.sender.deliver import deliver
from digest.sender.dkimsign import ED25519, RSA, load_key
from digest.sender.ledger import Ledger
from digest.sender.message import MessageFactory
from digest.sender.transports import SmtpTransport

TARGET_SIGNED = 1000.0  # signed messages/s with a 2048-bit RSA key
VARIANT = ((), "html")


def write_keys(folder: Path) -> tuple[Path, Path]:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ed_key = ed25519.Ed25519PrivateKey.generate()
    paths = (folder / "rsa.pem", folder / "ed25519.pem")
    for path, key in zip(paths, (rsa_key, ed_key), strict=True):
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    return paths


def make_settings(folder: Path, rsa_path: Path, ed_path: Path) -> dict[str, Settings]:
    (folder / "posts").mkdir(parents=True, exist_ok=True)
    config = folder / "digest.toml"
    config.write_text(
        f"""[site]
title = "Bench Weekly"
url = "{_fixtures.BASE_URL}"
timezone = "{_fixtures.TZ}"
source = "posts"

[email]
from = "Bench Weekly <digest@bench.example.com>"
public_url = "{_fixtures.BASE_URL}"
""",
        encoding="utf-8",
    )
    base = load_settings(config, env={"DIGEST_SECRET": _fixtures.SECRET})
    signed = dataclasses.replace(base.email, dkim_key=rsa_path, dkim_selector="bench")
    both = dataclasses.replace(signed, dkim_ed25519_key=ed_path, dkim_ed25519_selector="bench-ed")

    def with_email(email: Any, processes: int) -> Settings:
        return dataclasses.replace(
            base, email=email, delivery=dataclasses.replace(base.delivery, signing_processes=processes)
        )

    return {
        "unsigned": base,
        "rsa, in process": with_email(signed, 0),
        "rsa, helpers": with_email(signed, -1),
        "rsa + ed25519, helpers": with_email(both, -1),
    }


def render(settings: Settings, target: int = 43_000) -> RenderedIssue:
    """A real rendering of invented entries, scaled until the message is about `target` bytes."""
    from digest.templater import render_email

    scale = 1.0
    probe = Subscriber(email="user12345@example.com", name="Reader 12345")
    for _ in range(4):
        issue = _fixtures.make_issue(settings.site, entries=max(1, round(12 * scale)))
        rendered = render_email(issue, settings, summarize=False)
        size = len(MessageFactory({VARIANT: rendered}, settings, _fixtures.NOW_AT).build(probe).data)
        if abs(size - target) < target * 0.03:
            break
        scale *= target / size
    return rendered


def cpu_seconds() -> float:
    """User and system time of this process and of its children that have exited (the signing helpers,
    once a factory is closed)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def build_all(factory: Any, subs: Sequence[Subscriber], threads: int) -> float:
    """Seconds to build every message, the list shared out over `threads` threads."""
    chunks = [subs[i::threads] for i in range(threads)]
    errors: list[BaseException] = []

    def work(chunk: Sequence[Subscriber]) -> None:
        try:
            for sub in chunk:
                factory.build(sub)
        except BaseException as exc:  # reported after the join
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(chunk,)) for chunk in chunks]
    started = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - started


def dkimpy_rate(settings: Settings, rendered: RenderedIssue, subs: Sequence[Subscriber]) -> float:
    """The signer this project used before: the unsigned message, then dkim.sign() on it."""
    factory = MessageFactory({VARIANT: rendered}, settings, _fixtures.NOW_AT)
    key_path = settings.email.dkim_key
    assert key_path is not None
    key = key_path.read_bytes()
    headers = [b"from", b"subject", b"date", b"message-id", b"list-unsubscribe", b"list-unsubscribe-post", b"to"]
    started = time.perf_counter()
    for sub in subs:
        data = factory.build(sub).data
        dkim.sign(data, b"bench", b"bench.example.com", key, include_headers=headers)
    return len(subs) / (time.perf_counter() - started)


def verify(settings: Settings, rendered: RenderedIssue) -> None:
    """Every signature of one message of this mode verifies with dkimpy (keys served from memory)."""
    email = settings.email
    records: dict[bytes, bytes] = {}
    for path, selector, algorithm in (
        (email.dkim_key, email.dkim_selector, RSA),
        (email.dkim_ed25519_key, email.dkim_ed25519_selector, ED25519),
    ):
        if path is not None:
            key = load_key(path, selector, email.dkim_domain, algorithm)
            records[f"{key.record_name}.".encode()] = key.record.encode()
    if not records:
        return
    factory = MessageFactory({VARIANT: rendered}, settings, _fixtures.NOW_AT)
    data = factory.build(Subscriber(email="check@example.com", name="검증")).data
    factory.close()
    for index in range(len(records)):
        checker = dkim.DKIM(data)
        if not checker.verify(idx=index, dnsfunc=lambda name, timeout=5: records.get(name)):
            raise SystemExit(f"signature {index} of the bench message does not verify")


@contextlib.contextmanager
def smtp_sink() -> Iterator[int]:
    """Postfix's smtp-sink on a free port of 127.0.0.1."""
    sink = shutil.which("smtp-sink") or shutil.which("smtp-sink", path="/usr/sbin:/usr/local/sbin")
    if not sink:
        raise SystemExit("--send needs Postfix's smtp-sink (Debian: apt-get install postfix)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    user = ["-u", "nobody"] if os.geteuid() == 0 else []  # smtp-sink refuses to keep root privileges
    proc = subprocess.Popen([sink, *user, f"127.0.0.1:{port}", "1024"], stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def send_rate(settings: Settings, rendered: RenderedIssue, subs: Sequence[Subscriber], port: int, db: Path) -> float:
    """What `digest send` does, timed from the call to deliver() to its return."""
    smtp = dataclasses.replace(settings.smtp, host="127.0.0.1", port=port, mode="plain", timeout=60)
    factory = MessageFactory({VARIANT: rendered}, settings, _fixtures.NOW_AT)
    ledger = Ledger(f"sqlite:///{db}")
    try:
        started = time.perf_counter()
        report = deliver(
            factory, subs, ledger, lambda: SmtpTransport(smtp), settings.delivery, lambda: datetime.now(UTC)
        )
        seconds = time.perf_counter() - started
    finally:
        factory.close()
        ledger.store.close()
        db.unlink(missing_ok=True)
    if report.sent != len(subs):
        raise SystemExit(f"the send sent {report.sent} of {len(subs)}: {report.stopped}")
    return len(subs) / seconds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=5_000, help="messages per mode and repetition")
    parser.add_argument("--repeat", type=int, default=5, help="repetitions; medians are reported")
    parser.add_argument("--threads", type=int, default=4, help="building threads (digest send: delivery.connections)")
    parser.add_argument("--dkimpy", type=int, default=200, help="messages signed with dkimpy per repetition")
    parser.add_argument("--send", action="store_true", help="also send through smtp-sink, signed and unsigned")
    parser.add_argument("--quick", action="store_true", help="1,000 messages, 1 repetition")
    args = parser.parse_args(argv)
    if args.quick:
        args.messages, args.repeat, args.dkimpy = 1_000, 1, 50
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="digest-bench-dkim-") as tmp:
        folder = Path(tmp)
        modes = make_settings(folder, *write_keys(folder))
        rendered = render(modes["unsigned"])
        subs = tuple(_fixtures.subscribers(args.messages))
        size = len(MessageFactory({VARIANT: rendered}, modes["unsigned"], _fixtures.NOW_AT).build(subs[0]).data)
        for settings in modes.values():
            verify(settings, rendered)
        rates: dict[str, list[float]] = {name: [] for name in [*modes, "dkimpy"]}
        cpu: dict[str, list[float]] = {name: [] for name in [*modes, "dkimpy", "send, unsigned", "send, rsa, helpers"]}
        steps: list[tuple[str, Callable[[], float]]] = []
        for name, settings in modes.items():

            def step(settings: Settings = settings) -> float:
                factory = MessageFactory({VARIANT: rendered}, settings, _fixtures.NOW_AT)
                try:
                    return len(subs) / build_all(factory, subs, args.threads)
                finally:
                    factory.close()

            steps.append((name, step))
        steps.append(("dkimpy", lambda: dkimpy_rate(modes["rsa, in process"], rendered, subs[: args.dkimpy])))
        with contextlib.ExitStack() as stack:
            if args.send:
                port = stack.enter_context(smtp_sink())
                for name in ("unsigned", "rsa, helpers"):
                    label = f"send, {name}"
                    rates[label] = []

                    def send(settings: Settings = modes[name], label: str = label) -> float:
                        return send_rate(settings, rendered, subs, port, folder / f"{label}.sqlite3")

                    steps.append((label, send))
            for rep in range(args.repeat):
                shift = rep % len(steps)
                for name, step in steps[shift:] + steps[:shift]:
                    before = cpu_seconds()
                    rates[name].append(step())
                    count = args.dkimpy if name == "dkimpy" else len(subs)
                    cpu[name].append((cpu_seconds() - before) / count * 1e6)
                    print(f"  repetition {rep + 1}: {name:<24} {rates[name][-1]:8.0f} msgs/s", file=sys.stderr)
    load_after = os.getloadavg()
    medians = {name: statistics.median(values) for name, values in rates.items()}
    cpu_medians = {name: statistics.median(values) for name, values in cpu.items() if values}
    unsigned = medians["unsigned"]
    print(
        f"\nMessageFactory.build, {args.messages:,} messages of {size:,} bytes from {args.threads} threads, "
        f"median of {args.repeat}; {os.cpu_count()} CPUs, load average {load_before[0]:.1f} → {load_after[0]:.1f}"
    )
    print(f"{'mode':<26}{'msgs/s':>10}{'of unsigned':>14}{'CPU µs/msg':>12}  target")
    for name, rate in sorted(medians.items(), key=lambda item: (item[0].startswith("send"), -item[1])):
        base = medians["send, unsigned"] if name.startswith("send") else unsigned
        target = ""
        if name.startswith(("rsa", "send, rsa")):
            target = f"≥ {TARGET_SIGNED:,.0f}: {'PASS' if rate >= TARGET_SIGNED else 'FAIL'}"
        note = " (1 thread)" if name == "dkimpy" else ""
        print(f"{name + note:<26}{rate:>10,.0f}{rate / base:>13.1%}{cpu_medians[name]:>12,.0f}  {target}")
    print(
        "CPU µs/msg: this process and its signing helpers together (smtp-sink not counted). The helpers spread "
        "the RSA work over the CPUs, so with the machine to itself a send is bound near CPUs / CPU time per message."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
