"""Rendering many posts in helper processes while the collector reads the rest: a cold collect of a
whole site (thousands of posts nobody rendered yet) is bound by markdown-it-py, pure Python, one post
after another on one CPU.

The collector hands each post to `Helpers.add` as soon as it has read it; posts go out in chunks, one
helper process per CPU, and `Helpers.results` gives every body back in the order given. The helpers run
the very function the serial path runs, on the same post, so the bodies are the same bytes; a chunk whose
helper fails (it was killed, the pool could not start) is rendered here instead.

Helpers are started only once enough posts are waiting (`START`), so a weekly run that renders a few
dozen posts, or one that finds its bodies in the cache, starts none. A process that has other threads
(the weekly service runs its jobs in threads, the web server has its own) starts them from a fresh
forkserver process, never by forking itself: a fork copies only the calling thread, and a lock another
thread held stays locked in the copy forever.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

# Measured with bench/bench_collect.py on 2 CPUs: a helper costs about 20 ms to fork and 150 ms to import
# markdown-it when started from a forkserver, a post about 1 ms to render; below a few hundred posts the
# helpers would not pay for themselves.
START = 200  # posts waiting before helpers are started
CHUNK = 50  # posts per task: big enough to cost little in pickling, small enough to spread the tail
MAX_HELPERS = 8

Job = tuple[Any, ...]


def cpus() -> int:
    """The CPUs this process may run on (a container's cpuset, `taskset`), not the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _context() -> Any:
    if sys.platform == "linux" and threading.active_count() == 1:
        return multiprocessing.get_context("fork")  # the helpers inherit what is imported: no start-up
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def _run(work: Callable[..., Any], jobs: list[Job]) -> list[Any]:
    return [work(*job) for job in jobs]


class Helpers:
    """Jobs for `work` (a module-level function, so a helper can import it), run in helper processes once
    `START` are waiting and there is more than one CPU, else here, in order."""

    def __init__(
        self,
        work: Callable[..., Any],
        prepare: Callable[[], object] | None = None,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
    ) -> None:
        self.work = work
        self.prepare = prepare  # imports the helpers need, made once here so forked helpers inherit them
        self.initializer = initializer  # run once in each helper: what every job shares, sent once
        self.initargs = initargs
        self.pending: list[Job] = []
        self.chunks: list[tuple[list[Job], Future[list[Any]] | None]] = []
        self.pool: ProcessPoolExecutor | None = None
        self.failed = cpus() < 2

    def add(self, *job: Any) -> None:
        self.pending.append(job)
        if self.pool is None and not self.failed and len(self.pending) >= START:
            self._start()
        if self.pool is not None and len(self.pending) >= CHUNK:
            self._submit()

    def _start(self) -> None:
        if self.prepare is not None:
            self.prepare()
        try:
            self.pool = ProcessPoolExecutor(
                max_workers=min(cpus(), MAX_HELPERS),
                mp_context=_context(),
                initializer=self.initializer,
                initargs=self.initargs,
            )
        except (OSError, ValueError, AssertionError, ImportError, NotImplementedError):
            # No helpers here (no /dev/shm for the pool's locks, a daemonic process may have no children):
            # everything is rendered in this process, as with one CPU.
            self.failed = True
            return
        while len(self.pending) >= CHUNK:
            self._submit()

    def _submit(self) -> None:
        chunk, self.pending = self.pending[:CHUNK], self.pending[CHUNK:]
        future: Future[list[Any]] | None = None
        if self.pool is not None:
            try:
                future = self.pool.submit(_run, self.work, chunk)
            except (BrokenProcessPool, RuntimeError, OSError):
                future = None  # done here by results()
        self.chunks.append((chunk, future))

    def results(self) -> list[Any]:
        """Every job's result, in the order the jobs were added."""
        if self.pending:
            if self.pool is not None:
                self._submit()
            else:
                self.chunks.append((self.pending, None))
            self.pending = []
        done: list[Any] = []
        try:
            for chunk, future in self.chunks:
                results = None
                if future is not None:
                    try:
                        results = future.result()
                    except Exception:  # noqa: BLE001
                        # A helper died (killed, out of memory) or a job could not be sent: the chunk is
                        # done here, where a real error in a job is raised again as the serial path would.
                        results = None
                done += results if results is not None else _run(self.work, chunk)
        finally:
            self.close()
        return done

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None
        self.chunks = []
        self.pending = []
