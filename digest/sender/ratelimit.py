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
from collections.abc import Callable


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
    With no limit set, acquire() costs one comparison."""

    MIN_NAP = 0.001
    MAX_NAP = 1.0  # seconds: short naps keep the stop flag and lease renewals responsive

    def __init__(
        self,
        per_second_rate: float,
        per_hour: int,
        now: Callable[[], float],
        sleep: Callable[[float], None],
    ) -> None:
        self._now = now
        self._sleep = sleep
        self._lock = threading.Lock()
        self._windows: list[Window] = []
        if per_second_rate > 0:
            self._windows.append(per_second(per_second_rate))
        if per_hour > 0:
            self._windows.append(Window(per_hour, 3600.0))

    @property
    def limited(self) -> bool:
        return bool(self._windows)

    def acquire(
        self, should_stop: Callable[[], bool] = lambda: False, on_wait: Callable[[], None] | None = None
    ) -> bool:
        """Take one start in every window; False when `should_stop()` became true while waiting."""
        if not self._windows:
            return True
        while True:
            with self._lock:
                now = self._now()
                wait = max(w.wait(now) for w in self._windows)
                if wait <= 0:
                    for window in self._windows:
                        window.take(now)
                    return True
            if should_stop():
                return False
            if on_wait is not None:
                on_wait()
            # at least a millisecond: a clock with microsecond steps would otherwise never move
            self._sleep(min(max(wait, self.MIN_NAP), self.MAX_NAP))
