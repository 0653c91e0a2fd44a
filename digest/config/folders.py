"""Where the private folders live by default (the state database, the Maildir outbox), and how they are made.

Both hold every subscriber's address, so by default they sit outside the site folder and outside the output
folder (which is published and served): in the user's state folder, one per newsletter, named after the
newsletter's public URL so that moving the site folder or working in a second copy of it keeps the same
ledger. A site with no public URL yet (the `localhost` default) is named after its folder instead.

A state folder at the old default (`.digest/` beside the config) is kept in use, so an upgrade never loses a
ledger. Every private folder digest makes gets a `.gitignore` of `*`, so `git add -A` never picks it up.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

OLD_STATE_DIR = ".digest"  # the default before 0.2: inside the site folder
STATE_HOME_ENV = "XDG_STATE_HOME"
GITIGNORE = "*\n"
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1", "")


def newsletter_name(output_url: str, site_root: Path) -> str:
    """ "notes.example.org-newsletter" for https://notes.example.org/newsletter/; for a site without a
    public URL, the folder's name plus a short hash of its path ("blog-3f2a9c1d")."""
    parts = urlsplit(output_url)
    host = (parts.hostname or "").lower()
    if host in LOCAL_HOSTS:
        path = str(site_root.resolve())
        return f"{_safe(site_root.resolve().name) or 'site'}-{hashlib.sha256(path.encode()).hexdigest()[:8]}"
    where = host + (f"-{parts.port}" if parts.port else "") + "/" + parts.path
    return _safe(where)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._]+", "-", text).strip("-.")


def state_home(env: Mapping[str, str]) -> Path:
    """$XDG_STATE_HOME, else ~/.local/state (the XDG base directory default)."""
    given = env.get(STATE_HOME_ENV, "")
    if given and Path(given).is_absolute():
        return Path(given)
    home = env.get("HOME") or os.path.expanduser("~")
    return Path(home) / ".local" / "state"


def default_state_dir(base: Path, output_url: str, site_root: Path, env: Mapping[str, str]) -> Path:
    """`base/.digest` when a ledger is already there (the old default), else the state home's
    `digest/<newsletter name>`."""
    old = base / OLD_STATE_DIR
    if old.is_dir():
        return old
    return state_home(env) / "digest" / newsletter_name(output_url, site_root)


DATABASE_FILE = "digest.sqlite3"  # the SQLite store in a state folder
OWNER_FILE = "made-for"  # in a state folder: the config file (or the site folder) it holds the state of


def owner_of(config_file: Path | None, site_root: Path) -> str:
    """What a state folder is the state of: the config file, else (no digest.toml) the site folder."""
    return str((config_file or site_root).resolve())


def mark_owner(state_dir: Path, owner: str) -> None:
    """Write (or correct) the state folder's OWNER_FILE; a folder that cannot take it only loses the check
    of earlier_state."""
    path = state_dir / OWNER_FILE
    with contextlib.suppress(OSError):
        if not path.is_file() or path.read_text("utf-8").strip() != owner:
            path.write_text(owner + "\n", "utf-8")


def earlier_state(state_dir: Path, owner: str) -> tuple[Path, bool] | None:
    """Another default state folder beside `state_dir` that may hold this newsletter's database, when
    `state_dir` holds none: (the folder, True) when it says it is the same config's (the folder of the
    newsletter's earlier URL: the default name follows the URL, so a changed `site.url` or `output.url` would
    start an empty ledger, without the unsubscribes); else (the folder, False) for one with a database that
    says nothing, written before OWNER_FILE was (an upgrade and a change of URL at once)."""
    if (state_dir / DATABASE_FILE).exists():
        return None
    try:
        folders = [entry for entry in os.scandir(state_dir.parent) if entry.name != state_dir.name]
    except OSError:
        return None
    unmarked = None
    for entry in sorted(folders, key=lambda e: e.name):
        if not Path(entry.path, DATABASE_FILE).is_file():
            continue
        try:
            made_for = Path(entry.path, OWNER_FILE).read_text("utf-8").strip()
        except FileNotFoundError:
            unmarked = unmarked or Path(entry.path)
            continue
        except (OSError, UnicodeDecodeError):
            continue
        if made_for == owner:
            return Path(entry.path), True
    return (unmarked, False) if unmarked is not None else None


def lost_ledger(state_dir: Path, traces: Iterable[Path]) -> str:
    """Which of `traces` (what earlier runs leave: the cache, the outbox) exist, when the state folder's
    SQLite database is an empty file (emptied by hand, a restore that failed, a disk that lost it); ""
    otherwise. SQLite takes an empty file for a new database, and a new ledger mails the latest issue to
    everyone again, the unsubscribed too."""
    try:
        if (state_dir / DATABASE_FILE).stat().st_size:
            return ""
    except OSError:
        return ""
    return ", ".join(path.name for path in traces if path.exists())


def private_folder(path: Path) -> Path:
    """Make `path` (and its parents) if missing, only its owner may enter a folder made here, and it gets
    a `.gitignore` of `*` unless it already has one. Returns `path`."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    ignore = path / ".gitignore"
    if not ignore.exists():
        with contextlib.suppress(OSError):  # a read-only or foreign folder still works without it
            ignore.write_text(GITIGNORE, "utf-8")
    return path
