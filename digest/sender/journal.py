"""The outcome journal: what a sender on PostgreSQL has sent, on this host's disk before it is in the database.

On PostgreSQL a commit is a round trip (2 to 10 ms inside a send, see recorder.py), and a worker that
waited for it before each final dot sent about a quarter of what it sends with SQLite. So each sent
outcome is first appended to a file of the run's own in the state folder: one write(2), which is in the
kernel once it returns and so survives a SIGKILL of the process (not a power cut: an fsync a message would
cost what the round trip did). The database gets the outcomes a group at a time behind the workers.

A run holds an exclusive lock (flock) on its file as long as it lives; the kernel drops it when the process
dies however it dies. `replay()`, called before the rows of dead workers are taken back, commits the files
nobody holds any more and deletes them: a killed run's sent messages are recorded before anyone can claim
them again. A run that ends with everything committed deletes its own file.

Only a process on this host (sharing this state folder) can replay a file. A host that never comes back
leaves its journal unread: the other hosts send its unrecorded messages again once its lease runs out, at
most UNRECORDED + 1 per connection (recorder.py holds a worker back when it is that far ahead).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path

from digest.config.folders import private_folder
from digest.errors import LedgerError
from digest.sender.outcome import SENT, SendResult

SUFFIX = ".journal"
Record = Callable[[str, Sequence[tuple[str, SendResult]], datetime], None]  # (issue, outcomes, at)


class Journal:
    """The journal of one run: created under a temporary name, locked, then given its name, so a replay
    never sees it unlocked."""

    def __init__(self, folder: Path, owner: str) -> None:
        self.folder = folder
        name = "".join(c if c.isalnum() or c in "-._" else "_" for c in owner)
        self.path = folder / f"{name}{SUFFIX}"
        try:
            private_folder(folder.parent)  # the state folder: owner only, never committed
            folder.mkdir(mode=0o700, exist_ok=True)
            temporary = folder / f".{name}.new"
            self.fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o600)
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rename(temporary, self.path)
        except OSError as exc:
            raise _failed(folder, exc) from exc

    def append(self, issue_id: str, recipient: str, outcome: SendResult, at: datetime) -> None:
        """Keep one outcome (sent ones only: an unsent message cannot arrive twice)."""
        if outcome.status != SENT:
            return
        line = json.dumps([issue_id, recipient, outcome.message_id, outcome.reply, at.isoformat()], ensure_ascii=False)
        data = (line + "\n").encode("utf-8")
        try:
            written = os.write(self.fd, data)
        except OSError as exc:
            raise _failed(self.folder, exc) from exc
        if written != len(data):  # a full disk part-way through: the line is unreadable, stop here
            raise _failed(self.folder, OSError(28, "No space left on device"))

    def close(self, *, committed: bool) -> None:
        """Delete the file when everything in it is in the database; otherwise leave it for a replay."""
        if committed:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        os.close(self.fd)


@contextlib.contextmanager
def replaying(folder: Path) -> Iterator[None]:
    """One replay at a time on this host: two sends starting together after a kill must not both see the
    dead run's journal held (by the other's replay), take it for a live run's, and hand its rows back
    before they are recorded. Held around the replay and the hand-back of dead workers' rows."""
    try:
        fd = os.open(folder / ".replaying", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:  # no journal folder (never written, or read-only): no journal to replay either
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def replay(folder: Path, record: Record) -> int:
    """Commit the journals of runs that are gone (no lock held) through ``record`` and delete them; the
    number of outcomes replayed. A journal whose run is alive is left alone."""
    replayed = 0
    for path, fd in _gone(folder, fcntl.LOCK_EX):
        try:
            try:
                if os.fstat(fd).st_ino != os.stat(path).st_ino:  # replayed and deleted while we opened it
                    continue
            except FileNotFoundError:
                continue
            for issue_id, (results, last) in _parse(_read(fd)).items():
                record(issue_id, results, last)
                replayed += len(results)
            os.unlink(path)
        finally:
            os.close(fd)
    return replayed


def unrecorded(folder: Path) -> dict[str, set[str]]:
    """{issue: recipients} the journals of runs that are gone say were sent, read without recording them
    (a dry run or a status writes nothing; the next send records them)."""
    found: dict[str, set[str]] = {}
    for _path, fd in _gone(folder, fcntl.LOCK_SH):
        try:
            for issue_id, (results, _last) in _parse(_read(fd)).items():
                found.setdefault(issue_id, set()).update(r for r, _ in results)
        finally:
            os.close(fd)
    return found


def _gone(folder: Path, lock: int) -> Iterator[tuple[Path, int]]:
    """(path, an open descriptor holding `lock`) of each journal whose run is gone; the caller closes it."""
    try:
        paths = sorted(folder.glob(f"*{SUFFIX}"))
    except OSError:
        return
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:  # replayed by someone else just now
            continue
        except OSError as exc:
            raise _failed(folder, exc) from exc
        if not _locked(fd, lock):  # its run is alive
            os.close(fd)
            continue
        yield path, fd


def _locked(fd: int, lock: int) -> bool:
    """Take `lock` on a journal unless its run holds it. A run holds its exclusive lock for life; a reader
    (unrecorded()) holds a shared one for a moment, which a replay waits for rather than take for a run's."""
    try:
        fcntl.flock(fd, lock | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        if lock != fcntl.LOCK_EX:
            return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # granted: only readers hold it, the run is gone
    except BlockingIOError:
        return False
    fcntl.flock(fd, fcntl.LOCK_EX)
    return True


def _read(fd: int) -> bytes:
    with os.fdopen(os.dup(fd), "rb") as handle:
        return handle.read()


def _parse(data: bytes) -> dict[str, tuple[list[tuple[str, SendResult]], datetime]]:
    """{issue: (its sent outcomes, the time of the last)}."""
    by_issue: dict[str, tuple[list[tuple[str, SendResult]], datetime]] = {}
    for raw in data.split(b"\n"):
        try:
            issue_id, recipient, message_id, reply, at = json.loads(raw)
            when = datetime.fromisoformat(at)
        except (ValueError, TypeError):  # the empty tail, or a line a full disk cut short
            continue
        results, last = by_issue.get(issue_id, ([], when))
        results.append((recipient, SendResult(SENT, 250, reply, message_id)))
        by_issue[issue_id] = (results, max(when, last))
    return by_issue


def _failed(folder: Path, exc: OSError) -> LedgerError:
    return LedgerError(
        f"cannot write the outcome journal in {folder}: {exc.strerror or exc}",
        "free space in the state folder or make it writable; a rerun resumes where this one stopped",
        transient=True,
    )
