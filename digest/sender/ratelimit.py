"""Exact pacing: over any window of a limit's length, no more than its number of messages start.

Each limit keeps the start times of its last N messages (a sliding log); a message may start when the
oldest of them is at least one window old. The log starts empty, so the first window allows N and the
first hour of `rate_per_hour = 100` sends 100, not the 200 a token bucket that starts full would let
through. The clock and sleep are injected, so tests need no waiting. (The `limits` package has the same
moving window, but reads the wall clock itself.) A fractional rate per second below 1 becomes one message
per 1/rate seconds; above 1, its whole part per second.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable, Sequence


class Window:
    """At most `count` starts in any `seconds`-long window."""

    def __init__(self, count: int, seconds: float) -> None:
        self.count = count
        self.seconds = seconds
        self.starts: deque[float] = deque(maxlen=count)

    def wait(self, now: float) -> float:
        if len(self.starts) < self.count:
            return 0.0
        return max(0.0, self.starts[0] + self.seconds - now)

    def take(self, now: float) -> None:
        self.starts.append(now)  # maxlen drops the oldest


def per_second(rate: float) -> Window:
    if rate >= 1:
        return Window(math.floor(rate), 1.0)
    return Window(1, 1.0 / rate)


class RateLimiter:
    """`acquire()` returns once a message may go, for every limit at once; shared by the worker threads.

    Besides the global limits, a recipient domain (or a group of domains sharing one limit, such as the
    Microsoft consumer domains) may have limits of its own, on top of the global ones. `pick()` lets a
    worker send to another domain while one domain's window is full, instead of waiting behind it.
    With no limit set, acquire() and pick() cost one comparison.
    """

    MIN_NAP = 0.001
    MAX_NAP = 1.0  # seconds: short naps keep the stop flag and lease renewals responsive

    def __init__(
        self,
        per_second_rate: float,
        per_hour: int,
        now: Callable[[], float],
        sleep: Callable[[float], None],
        *,
        domains_per_second: Sequence[tuple[str, float]] = (),
        domains_per_hour: Sequence[tuple[str, int]] = (),
    ) -> None:
        self._now = now
        self._sleep = sleep
        self._lock = threading.Lock()
        self._windows: list[Window] = []
        if per_second_rate > 0:
            self._windows.append(per_second(per_second_rate))
        if per_hour > 0:
            self._windows.append(Window(per_hour, 3600.0))
        # group name ("outlook.com, hotmail.com") -> its windows; each domain -> its group
        self._groups: dict[str, list[Window]] = {}
        self._group_of: dict[str, str] = {}
        for group, rate in domains_per_second:
            self._add(group, per_second(rate))
        for group, count in domains_per_hour:
            self._add(group, Window(count, 3600.0))

    def _add(self, group: str, window: Window) -> None:
        self._groups.setdefault(group, []).append(window)
        for domain in group.split(","):
            self._group_of[domain.strip().lower()] = group

    @property
    def limited(self) -> bool:
        return bool(self._windows or self._groups)

    def _windows_for(self, recipient: str | None) -> list[Window]:
        if recipient is None or not self._groups:
            return self._windows
        group = self._group_of.get(recipient.rpartition("@")[2].lower())
        return self._windows + self._groups[group] if group else self._windows

    def _try(self, recipient: str | None) -> float:
        """Take one start in every window of `recipient` and return 0, or return how long to wait."""
        windows = self._windows_for(recipient)
        if not windows:
            return 0.0
        now = self._now()
        wait = max(w.wait(now) for w in windows)
        if wait <= 0:
            for window in windows:
                window.take(now)
        return wait

    def _nap(self, wait: float, should_stop: Callable[[], bool], on_wait: Callable[[], None] | None) -> bool:
        if should_stop():
            return False
        if on_wait is not None:
            on_wait()
        # at least a millisecond: a clock with microsecond steps would otherwise never move
        self._sleep(min(max(wait, self.MIN_NAP), self.MAX_NAP))
        return True

    def acquire(
        self,
        should_stop: Callable[[], bool] = lambda: False,
        on_wait: Callable[[], None] | None = None,
        recipient: str | None = None,
    ) -> bool:
        """Take one start in every window (the recipient's domain's too); False when `should_stop()`
        became true while waiting."""
        if not self.limited:
            return True
        while True:
            with self._lock:
                wait = self._try(recipient)
            if wait <= 0:
                return True
            if not self._nap(wait, should_stop, on_wait):
                return False

    def pick(
        self,
        recipients: Sequence[str],
        should_stop: Callable[[], bool] = lambda: False,
        on_wait: Callable[[], None] | None = None,
    ) -> int | None:
        """The index of the first of `recipients` (a worker's claimed batch) that may go now, its start
        taken; waits while none may; None when `should_stop()` became true while waiting."""
        if not self.limited or not recipients:
            return 0 if recipients else None
        while True:
            if not recipients:  # a renewal while waiting dropped them (another sender took them)
                return None
            with self._lock:
                waits = []
                for index in range(len(recipients)):
                    wait = self._try(recipients[index])
                    if wait <= 0:
                        return index
                    waits.append(wait)
            if not self._nap(min(waits), should_stop, on_wait):
                return None
