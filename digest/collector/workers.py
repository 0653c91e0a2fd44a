"""Helper processes for a cold collect of many posts: reading, front matter and above all markdown-it-py
(pure Python) cost about 1.5 ms of one CPU per post, one post after another.

`Helpers` runs jobs of a module-level function in chunks, one helper process per CPU, and gives the
results back in the order the jobs were added. The collector gives it one job per file it has not read
yet (entries.py); each helper runs the very functions the serial path runs, so what comes back is the same
bytes, and a chunk whose helper fails (it was killed, the pool could not start, a job could not be sent)
is done here instead, where a real error in a job is raised as the serial path would raise it.

Helpers start only once `START` jobs are waiting and there is more than one CPU: a weekly run that reads
and renders a few dozen posts, or finds them in the cache, starts none. A process that has other threads
(the weekly service runs its jobs in threads, the web server has its own) starts them from a fresh
forkserver process, never by forking itself: a fork copies only the calling thread, and a lock another
thread held stays locked in the copy forever.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from concurrent.futures import Future, ProcessPoolExecutor

# multiprocessing and concurrent.futures are imported when helpers start: importing them cost 20 ms of
# every start-up, and a preview served from the cache starts none.

# A post costs about 1.5 ms to read and render, and 0.1-0.15 ms more to send to a helper and back (pickling
# its record, bodies and, without a memo, what the reader kept); a helper costs about 20 ms to fork, or a
# few hundred ms to start from a forkserver (an interpreter and the imports). Below a few hundred posts
# helpers would not pay for themselves.
START = 200  # jobs waiting before helpers are started
CHUNK = 50  # jobs per task: big enough to cost little in pickling, small enough to spread the tail
MAX_HELPERS = 8

Job = tuple[Any, ...]


def cpus() -> int:
    """The CPUs this process may run on (a container's cpuset, `taskset`), not the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _context() -> Any:
    import multiprocessing

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
        from concurrent.futures import ProcessPoolExecutor

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
        # The helpers are forked at the first task. What this process holds is frozen for the collector
        # of the helpers first: a full collection there would otherwise walk (and so copy) every page
        # inherited from here.
        gc.freeze()
        try:
            while len(self.pending) >= CHUNK:
                self._submit()
        finally:
            gc.unfreeze()

    def _submit(self) -> None:
        chunk, self.pending = self.pending[:CHUNK], self.pending[CHUNK:]
        future: Future[list[Any]] | None = None
        if self.pool is not None:
            try:
                future = self.pool.submit(_run, self.work, chunk)
            except Exception:  # noqa: BLE001
                # The helpers start with the first task: a daemonic process may have no children, a
                # container may refuse a process. This chunk and the rest are done here by results().
                self.failed = True
                self.pool.shutdown(wait=False, cancel_futures=True)
                self.pool = None
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
