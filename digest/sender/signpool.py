"""RSA signatures in helper processes, for sends large enough to use every CPU.

`cryptography` holds the GIL while OpenSSL signs, so however many sending threads there are, one process
makes at most one RSA-2048 signature per ~1 ms of one core (about 1,000/s on the 2-CPU machines of
bench/bench_dkim.py, with the hashing and the rest of the send on the same core). A few child processes
that only sign take that work off the sending process and spread it over the CPUs.

Each child is this file run by path (`python -P signpool.py`), so it imports nothing but `cryptography`
and starts in a fraction of a second; it reads the PEM key once from its stdin (never from argv or the
environment), answers "ok", then turns each 32-byte SHA-256 digest it reads into a PKCS#1 v1.5
signature of the key's size, and exits at the end of its input (the parent closed the pipe, or died).
Until a child is ready, and whenever one fails, the signature is made in this process instead: a child
can only make a send faster, never stop it.
"""

from __future__ import annotations

import contextlib
import os
import queue
import subprocess
import sys
import threading
import weakref
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from digest.sender.dkimsign import DkimKey

READY = b"ok"


def _read_exact(stream: IO[bytes], size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            raise EOFError("the other end closed the pipe")
        data += chunk
    return data


class _Child:
    def __init__(self, pem: bytes, signature_size: int) -> None:
        self.size = signature_size
        self.process = subprocess.Popen(
            [sys.executable, "-P", os.path.abspath(__file__)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            bufsize=0,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.stdin: IO[bytes] = self.process.stdin
        self.stdout: IO[bytes] = self.process.stdout
        self.stdin.write(len(pem).to_bytes(4, "big") + pem)

    def wait_ready(self) -> bool:
        try:
            return _read_exact(self.stdout, len(READY)) == READY
        except (OSError, EOFError, ValueError):  # ValueError: the pipe was closed by stop()
            return False

    def sign(self, digest: bytes) -> bytes:
        self.stdin.write(digest)
        return _read_exact(self.stdout, self.size)

    def stop(self) -> None:
        for stream in (self.stdin, self.stdout):
            with contextlib.suppress(OSError):
                stream.close()
        try:
            self.process.wait(2)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _stop_all(children: list[_Child]) -> None:
    for child in children:
        child.stop()


class SigningPool:
    """A DkimSigner's `sign_digest`: RSA digests go to `processes` children once `start_after` signatures
    were made (small sends, previews and `digest doctor` never start one); Ed25519 (about 50 µs a
    signature) always signs here. close() stops the children; so does the pool being collected."""

    def __init__(self, processes: int, start_after: int = 64) -> None:
        self.processes = processes
        self.start_after = start_after
        self._lock = threading.Lock()
        self._made = 0
        self._children: list[_Child] = []
        self._idle: queue.Queue[_Child] = queue.Queue()
        self._ready = 0
        self._closed = False
        self._finalizer = weakref.finalize(self, _stop_all, self._children)

    @property
    def ready(self) -> int:
        """Children that have loaded the key and take digests."""
        return self._ready

    def __call__(self, key: DkimKey, digest: bytes) -> bytes:
        if key.algorithm != "rsa-sha256" or self.processes < 1:
            return key.sign_digest(digest)
        with self._lock:
            self._made += 1
            start = self._made == self.start_after and not self._closed
        if start:
            self._start(key)
        child = self._take()
        if child is None:
            return key.sign_digest(digest)
        try:
            signature = child.sign(digest)
        except (OSError, EOFError, ValueError):  # died or stopped: this signature is made here
            with self._lock:
                self._ready -= 1
            child.stop()
            return key.sign_digest(digest)
        self._idle.put(child)
        return signature

    def _take(self) -> _Child | None:
        while True:
            with self._lock:
                if self._ready < 1 or self._closed:
                    return None
            try:
                return self._idle.get(timeout=0.5)
            except queue.Empty:
                continue  # all busy; look again whether any is still alive

    def _start(self, key: DkimKey) -> None:
        size = (int(key.private.key_size) + 7) // 8
        for _ in range(self.processes):
            try:
                child = _Child(key.pem, size)
            except OSError:
                return
            self._children.append(child)
            threading.Thread(target=self._welcome, args=(child,), name="digest-signer-start", daemon=True).start()

    def _welcome(self, child: _Child) -> None:
        if child.wait_ready():
            with self._lock:
                if self._closed:
                    return
                self._ready += 1
            self._idle.put(child)
        else:
            child.stop()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._ready = 0
        self._finalizer()


def _serve() -> None:
    """The child: read the key, then sign digests until the input ends."""
    import signal

    # Ctrl-C reaches the whole process group: the parent finishes the messages in flight, so its helpers
    # go on until it closes their input
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

    stdin = open(0, "rb", buffering=0, closefd=False)  # noqa: SIM115 (the process's own stdin and stdout)
    stdout = open(1, "wb", buffering=0, closefd=False)  # noqa: SIM115
    try:
        size = int.from_bytes(_read_exact(stdin, 4), "big")
        key: Any = serialization.load_pem_private_key(_read_exact(stdin, size), password=None)
    except (EOFError, ValueError, TypeError):
        return
    pkcs1, prehashed = padding.PKCS1v15(), Prehashed(hashes.SHA256())
    stdout.write(READY)
    while True:
        try:
            digest = _read_exact(stdin, 32)
        except EOFError:
            return
        stdout.write(key.sign(digest, pkcs1, prehashed))


if __name__ == "__main__":
    _serve()
