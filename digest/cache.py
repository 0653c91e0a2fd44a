"""The private cache: what earlier runs parsed and rendered, kept in `<state.dir>/cache.sqlite3` so that the
next `digest preview`, `publish` or `send` reads and renders only what changed.

What is kept, and what makes it stale (each stage checks its own, see digest.models.Memo):
- a post's parsed front matter and entries, by path: stale when the file's size, mtime, ctime or inode
  changes, or the site config does; a post that links to other posts also when any post of the site
  changes (a renamed or edited target moves the link);
- a rendered entry, by post and item: stale when its revision (the above) changes.
The whole file is emptied when digest's code changes (an upgrade, or an edited checkout), and a file
that is not such a cache (damaged, or something else at that path) is replaced, with one warning.

Storage: SQLite from the standard library. Measured on bench/bench_preview.py's 5,000-post site after one
preview: the 5,000 post rows come in one query and are unpickled in 34 ms, the 200 rendered entries a
preview needs are read by key in 7 ms; one pickle file holding the same rows and a rendered body for every
post (18.5 MB) takes 98 ms to load and 105 ms to write again, whole, on every run that changes anything.
SQLite also commits atomically and locks between two processes (a `preview --serve` and the service).
Values are pickled: the state folder is private to its owner.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import logging
import os
import pickle
import sqlite3
import sys
from pathlib import Path
from typing import Any

FORMAT = 1  # of the tables below; a different one is emptied like a different version
FILE_NAME = "cache.sqlite3"
_MAGIC = "digest cache"
# Kinds read in one query at first use: a run needs most of them (one row per post of the site).
_BULK = frozenset({"post"})
# One line on stderr from the command line (logging's last resort), one line in the service's log.
LOG = logging.getLogger("digest.cache")


# The libraries whose output a cached rendering holds (Markdown, templates, CSS inlining, HTML cleaning,
# feeds, front matter, image sizes): a new version of any of them may render differently.
RENDERING_LIBRARIES = (
    "markdown_it", "mdit_py_plugins", "linkify_it", "jinja2", "markupsafe", "premailer", "cssutils", "cssselect",
    "lxml", "lxml_html_clean", "feedgen", "frontmatter", "yaml", "imagesize",
)  # fmt: skip


def library_folders() -> list[Path]:
    """The folders the rendering libraries are installed in (a virtual environment's site-packages, the
    system's): found without importing them."""
    folders = set()
    for name in RENDERING_LIBRARIES:
        with contextlib.suppress(ImportError, ValueError):
            spec = importlib.util.find_spec(name)
            if spec is not None and spec.origin:
                origin = Path(spec.origin).parent
                folders.add(origin.parent if spec.submodule_search_locations is not None else origin)
    return sorted(folders)


def installed(folder: Path) -> list[str]:
    """The distributions installed in `folder`, by the names of their metadata folders (name and version:
    `markdown_it_py-3.0.0.dist-info`)."""
    with contextlib.suppress(OSError):
        return sorted(e.name for e in os.scandir(folder) if e.name.endswith((".dist-info", ".egg-info")))
    return []


@functools.cache
def code_version() -> str:
    """What digest's own code is: its version (digest.__version__, from the name of the installed
    distribution's metadata folder beside the package, or a source tree's PKG-INFO) and every module and
    built-in template by name, size and time, and the versions installed beside the libraries that render
    (any `pip install` there). An upgrade (pip writes new files and a new metadata folder) or an edit of a
    checkout changes it; importlib.metadata would find the same versions by scanning every folder of
    sys.path, which costs more than the rest of a cached preview's start."""
    package = Path(__file__).resolve().parent
    stamps = [f"{FORMAT}", sys.version]
    for folder in library_folders():
        stamps += [f"{folder}:{name}" for name in installed(folder)]
    with contextlib.suppress(OSError):
        for entry in os.scandir(package.parent):
            if (
                entry.name.startswith("digest-")
                and entry.name.endswith(".dist-info")
                or entry.name == "digest.egg-info"
            ):
                info = Path(entry.path) / ("PKG-INFO" if entry.name.endswith("egg-info") else "METADATA")
                with contextlib.suppress(OSError):
                    st = info.stat()
                    stamps.append(f"{entry.name}:{st.st_size}:{st.st_mtime_ns}")
    folders = [package, *sorted(p for p in package.iterdir() if p.is_dir() and p.name != "__pycache__")]
    templates = package.parent / "templates"
    if templates.is_dir():
        folders.append(templates)
    for folder in folders:
        with contextlib.suppress(OSError):
            for entry in sorted(os.scandir(folder), key=lambda e: e.name):
                if entry.is_file() and entry.name.endswith((".py", ".j2", ".css")):
                    st = entry.stat()
                    stamps.append(f"{folder.name}/{entry.name}:{st.st_size}:{st.st_mtime_ns}")
    return hashlib.sha256("\n".join(stamps).encode()).hexdigest()[:32]


class Cache:
    """One cache file: reads go to the file at first use, writes are kept in memory and committed in one
    transaction by close(). Any failure of the file makes it a cache that keeps nothing: a run never fails
    because of its cache."""

    def __init__(self, path: Path, version: str | None = None) -> None:
        self.path = path
        self.warnings: list[str] = []
        self._version = version or code_version()
        self._db: sqlite3.Connection | None = None
        self._read: dict[str, dict[str, Any]] = {}  # kinds read in bulk
        self._loaded: dict[tuple[str, str], Any] = {}  # their values unpickled (a build asks twice or more)
        self._new: dict[tuple[str, str], bytes] = {}
        self._fetched: dict[tuple[str, str], bytes | None] = {}  # read ahead by prefetch(), each handed out once
        self._kept: dict[str, set[str]] = {}  # kinds pruned to these keys on close
        self._open()

    # -- opening ------------------------------------------------------------------------------------

    def _open(self) -> None:
        try:
            self._db = self._connect()
            return
        except sqlite3.OperationalError as exc:  # cannot open or write it: a read-only or full folder, a lock
            self._warn(f"the cache {self.path} cannot be used ({exc}): this run keeps nothing")
            return
        except sqlite3.DatabaseError as exc:
            self._warn(f"the cache {self.path} is not one digest can read ({exc}): it is replaced")
        except OSError as exc:
            self._warn(f"the cache {self.path} cannot be used ({exc.strerror or exc}): this run keeps nothing")
            return
        with contextlib.suppress(OSError):
            self.path.unlink(missing_ok=True)
        try:
            self._db = self._connect()
        except (sqlite3.DatabaseError, OSError) as exc:  # already warned: one line per run
            self.warnings.append(str(exc))

    def _connect(self) -> sqlite3.Connection:
        fresh = not self.path.exists()
        if not fresh and self.path.stat().st_size and not _looks_like_sqlite(self.path):
            raise sqlite3.DatabaseError("file is not a database")
        db = sqlite3.connect(self.path, timeout=5, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=DELETE")
            if not {"meta", "pieces"} <= _tables(db):
                # Both tables in one transaction, checked under its lock: a process opening the file at the
                # same moment sees neither or both, never one (which would look like another program's).
                db.execute("BEGIN IMMEDIATE")
                tables = _tables(db)
                if not fresh and tables and not {"meta", "pieces"} <= tables:
                    db.execute("ROLLBACK")
                    raise sqlite3.DatabaseError("tables of another program")
                db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
                db.execute(
                    "CREATE TABLE IF NOT EXISTS pieces (kind TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,"
                    " PRIMARY KEY (kind, key)) WITHOUT ROWID"
                )
                db.execute("COMMIT")
            meta = dict(db.execute("SELECT name, value FROM meta").fetchall())
            if meta.get("magic", _MAGIC) != _MAGIC:
                raise sqlite3.DatabaseError("not digest's cache")
            if meta.get("version") != self._version:
                # another digest (an upgrade, an edited checkout) made these: none of them can be trusted
                db.execute("BEGIN IMMEDIATE")
                db.execute("DELETE FROM pieces")
                db.execute("INSERT OR REPLACE INTO meta VALUES ('magic', ?), ('version', ?)", (_MAGIC, self._version))
                db.execute("COMMIT")
        except BaseException:
            db.close()
            raise
        with contextlib.suppress(OSError):
            os.chmod(self.path, 0o600)
        return db

    def _warn(self, text: str) -> None:
        if not self.warnings:  # one line per run, whatever else goes wrong with the file
            LOG.warning(text)
        self.warnings.append(text)

    # -- reading and writing -----------------------------------------------------------------------

    def get(self, kind: str, key: str) -> Any:
        if self._db is None:
            return None
        pending = self._new.get((kind, key))  # written by this run (a second pass over the posts)
        if pending is not None:
            try:
                return pickle.loads(pending)
            except Exception:
                return None
        try:
            if kind in _BULK:
                if kind not in self._read:
                    rows = self._db.execute("SELECT key, value FROM pieces WHERE kind = ?", (kind,)).fetchall()
                    self._read[kind] = {k: v for k, v in rows}
                if (kind, key) in self._loaded:
                    return self._loaded[(kind, key)]
                blob = self._read[kind].get(key)
            elif (kind, key) in self._fetched:
                blob = self._fetched.pop((kind, key))
            else:
                row = self._db.execute("SELECT value FROM pieces WHERE kind = ? AND key = ?", (kind, key)).fetchone()
                blob = row[0] if row else None
        except sqlite3.DatabaseError as exc:
            self._fail(exc)
            return None
        if blob is None:
            return None
        try:
            value = pickle.loads(blob)
        except Exception:  # a row written by other code, or damaged: a miss, written anew
            value = None
        if kind in _BULK:
            self._loaded[(kind, key)] = value
        return value

    def prefetch(self, kind: str, keys: list[str]) -> None:
        """Read the rows of `keys` in a few queries (a publish asks for 500 feed entries and 500 pages, one
        query each cost about as much again as reading their values); get() then finds them here."""
        if self._db is None:
            return
        wanted = [k for k in dict.fromkeys(keys) if (kind, k) not in self._new]
        try:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                marks = ",".join("?" * len(chunk))
                query = f"SELECT key, value FROM pieces WHERE kind = ? AND key IN ({marks})"  # placeholders only
                found = dict(self._db.execute(query, (kind, *chunk)).fetchall())
                self._fetched.update({(kind, k): found.get(k) for k in chunk})
        except sqlite3.DatabaseError as exc:
            self._fail(exc)

    def put(self, kind: str, key: str, value: Any) -> None:
        if self._db is None:
            return
        try:
            self._new[(kind, key)] = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError):
            return

    def has(self, kind: str) -> bool:
        """Whether the file or this run holds any value of `kind` (a cold run holds none)."""
        if self._db is None:
            return False
        if any(k == kind for k, _ in self._new):
            return True
        try:
            return self._db.execute("SELECT 1 FROM pieces WHERE kind = ? LIMIT 1", (kind,)).fetchone() is not None
        except sqlite3.DatabaseError as exc:
            self._fail(exc)
            return False

    def merge(self, pickled: dict[tuple[str, str], bytes]) -> None:
        """Values another process made for this run (see Recorder), kept as if put() here."""
        if self._db is not None:
            self._new.update(pickled)

    def keep_only(self, kind: str, keys: set[str]) -> None:
        """On close, forget the rows of `kind` not in `keys` (the posts of files that are gone); a key
        "<k>#<part>" is kept with its "<k>" (a rendered body with its file)."""
        self._kept[kind] = set(keys)

    def close(self) -> None:
        """Commit what this run added (one transaction) and close the file. Another process holding the
        file for longer than the timeout only costs this run's additions."""
        db, self._db = self._db, None
        if db is None:
            return
        try:
            if self._new or self._kept:
                db.execute("BEGIN IMMEDIATE")
                db.executemany(
                    "INSERT OR REPLACE INTO pieces (kind, key, value) VALUES (?, ?, ?)",
                    [(kind, key, blob) for (kind, key), blob in self._new.items()],
                )
                for kind, keys in self._kept.items():
                    stored = [k for (k,) in db.execute("SELECT key FROM pieces WHERE kind = ?", (kind,))]
                    db.executemany(
                        "DELETE FROM pieces WHERE kind = ? AND key = ?",
                        [(kind, k) for k in stored if k not in keys and k.split("#", 1)[0] not in keys],
                    )
                db.execute("COMMIT")
        except sqlite3.OperationalError as exc:  # a full or read-only folder, or another process held it too long
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            self._warn(f"the cache {self.path} could not be saved ({exc}): the next run reads the posts again")
        except sqlite3.DatabaseError as exc:
            self._fail(exc)
        finally:
            self._new.clear()
            db.close()

    def _fail(self, exc: Exception) -> None:
        """The file broke while in use: keep nothing more this run; the next run replaces it."""
        self._warn(f"the cache {self.path} cannot be read ({exc}): it is rebuilt")
        db, self._db = self._db, None
        if db is not None:
            with contextlib.suppress(sqlite3.Error):
                db.close()
        with contextlib.suppress(OSError):
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> Cache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Recorder:
    """A memo that keeps nothing from earlier runs and records what is put, pickled as Cache.put pickles it:
    a helper process renders into one, and the run's Cache takes its values with merge()."""

    def __init__(self) -> None:
        self.pickled: dict[tuple[str, str], bytes] = {}

    def get(self, kind: str, key: str) -> Any:
        blob = self.pickled.get((kind, key))
        return pickle.loads(blob) if blob is not None else None

    def put(self, kind: str, key: str, value: Any) -> None:
        try:
            self.pickled[(kind, key)] = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError):
            return


def unusable(path: Path, exc: OSError) -> None:
    """The one warning of a run whose state folder cannot hold the cache (it goes on without one)."""
    LOG.warning(f"the cache {path} cannot be used ({exc.strerror or exc}): this run keeps nothing")


def _tables(db: sqlite3.Connection) -> set[str]:
    return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _looks_like_sqlite(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False
