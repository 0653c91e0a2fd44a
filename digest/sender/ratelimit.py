"""A token bucket per limit (messages per second, per hour), shared by all worker threads."""

from __future__ import annotations

import threading
from collections.abc import Callable


class _Bucket:
    def __init__(self, per_second: float, capacity: float, start: float) -> None:
        self.rate = per_second
        self.capacity = capacity
        self.tokens = capacity
        self.last = start

    def refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
        self.last = now

    def wait(self) -> float:
        return 0.0 if self.tokens >= 1 - 1e-9 else (1 - self.tokens) / self.rate


class RateLimiter:
    """`acquire()` returns once a message may go. The clock and sleep are injected, so tests need no waiting.

    The per-second bucket holds one second's worth (a short burst); the per-hour bucket holds the hour's
    quota. With neither limit set, acquire() costs one comparison.
    """

    MIN_NAP = 0.001
    MAX_NAP = 1.0  # seconds: short naps keep the stop flag and lease renewals responsive

    def __init__(
        self,
        per_second: float,
        per_hour: int,
        now: Callable[[], float],
        sleep: Callable[[float], None],
    ) -> None:
        self._now = now
        self._sleep = sleep
        self._lock = threading.Lock()
        start = now()
        self._buckets = []
        if per_second > 0:
            self._buckets.append(_Bucket(per_second, max(1.0, per_second), start))
        if per_hour > 0:
            self._buckets.append(_Bucket(per_hour / 3600.0, float(per_hour), start))

    @property
    def limited(self) -> bool:
        return bool(self._buckets)

    def acquire(
        self, should_stop: Callable[[], bool] = lambda: False, on_wait: Callable[[], None] | None = None
    ) -> bool:
        """Take one token; False when `should_stop()` became true while waiting."""
        if not self._buckets:
            return True
        while True:
            with self._lock:
                now = self._now()
                for bucket in self._buckets:
                    bucket.refill(now)
                wait = max(b.wait() for b in self._buckets)
                if wait <= 0:
                    for bucket in self._buckets:
                        bucket.tokens -= 1
                    return True
            if should_stop():
                return False
            if on_wait is not None:
                on_wait()
            # at least a millisecond: a clock with microsecond steps would otherwise never move
            self._sleep(min(max(wait, self.MIN_NAP), self.MAX_NAP))
