"""Shared pieces for the readers' tests: bounce samples filled in for one subscriber, a Maildir to drop them
in, and a real Dovecot IMAP server (TLS, one test user) on 127.0.0.1."""

from __future__ import annotations

import mailbox
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support_service import free_port

SAMPLES = Path(__file__).resolve().parent / "samples" / "bounces"
RETURN_PATH = "bounces@notes.example.org"


def sample(name: str, recipient: str, tag: str) -> bytes:
    """A sample message (written for these tests in the shape its MTA produces) about `recipient`."""
    text = (SAMPLES / f"{name}.eml").read_text("utf-8")
    return text.replace("RCPT", recipient).replace("TAG", tag).replace("\n", "\r\n").encode("utf-8")


def drop_in_maildir(folder: Path, messages: list[bytes]) -> None:
    box = mailbox.Maildir(folder, create=True)
    for raw in messages:
        box.add(raw)
    box.close()


@dataclass
class Dovecot:
    host: str
    port: int
    user: str
    password: str
    cert: Path


def _certificate(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    """Dovecot with implicit TLS on a free port, a passwd-file user and Maildirs under tmp_path."""
    binary = shutil.which("dovecot") or ("/usr/sbin/dovecot" if os.path.exists("/usr/sbin/dovecot") else None)
    if binary is None or shutil.which("openssl") is None:
        pytest.skip("Dovecot is not installed (Debian: apt-get install dovecot-imapd; .ci/run installs it)")
    if os.geteuid() != 0:
        pytest.skip("Dovecot's test instance needs root to drop to its own users")
    # not under pytest's tmp_path: that is private to root (0700), and Dovecot's auth and mail processes
    # run as their own users
    root = Path(tempfile.mkdtemp(prefix="digest-dovecot-"))
    root.chmod(0o755)
    (root / "run").mkdir(parents=True)
    (root / "mail").mkdir()
    cert, key = _certificate(root)
    port = free_port()
    password = "imap-test-password"
    shutil.chown(root / "mail", "nobody", "nogroup")
    (root / "users").write_text(f"bounces:{{PLAIN}}{password}:65534:65534::{root / 'mail'}/bounces\n")
    config = root / "dovecot.conf"
    config.write_text(
        f"""base_dir = {root / "run"}
state_dir = {root / "run"}
instance_name = digest-test-{port}
protocols = imap
listen = 127.0.0.1
log_path = {root / "log"}
ssl = required
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = yes
auth_mechanisms = plain
first_valid_uid = 1
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = {root / "users"}
}}
userdb {{
  driver = passwd-file
  args = {root / "users"}
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = {port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
"""
    )
    # Dovecot forks into the background: its children would hold a pipe open forever, so output goes to a file
    with (root / "start.log").open("w") as output:
        started = subprocess.run([binary, "-c", str(config)], stdout=output, stderr=output)
    if started.returncode != 0:
        pytest.fail(f"dovecot did not start: {(root / 'start.log').read_text().strip()}")
    try:
        deadline = time.monotonic() + 10
        import socket

        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    log = (root / "log").read_text() if (root / "log").exists() else ""
                    pytest.fail(f"dovecot is not listening on {port}: {log[-500:]}")
                time.sleep(0.05)
        yield Dovecot("127.0.0.1", port, "bounces", password, cert)
    finally:
        subprocess.run([binary, "-c", str(config), "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(root, ignore_errors=True)
