"""Exact pacing on an injected clock: no window of a limit's length ever holds more than its count."""

from __future__ import annotations

import bisect
import threading

import pytest

from digest.sender.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.lock = threading.Lock()

    def time(self) -> float:
        with self.lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


def most_in_any_window(starts: list[float], seconds: float) -> int:
    """The largest number of starts inside any half-open window [t, t + seconds)."""
    starts = sorted(starts)
    return max((bisect.bisect_left(starts, t + seconds) - i for i, t in enumerate(starts)), default=0)


@pytest.mark.parametrize(
    ("per_second", "per_hour", "messages", "window", "count", "span"),
    [
        (0.0, 100, 350, 3600.0, 100, 3 * 3600.0),  # a token bucket starting full sent 200 in the first hour
        (50.0, 0, 500, 1.0, 50, 9.0),  # and 99 in the first second at 50/s
        (7.0, 0, 100, 1.0, 7, 14.0),
        (0.5, 0, 20, 2.0, 1, 38.0),  # one every two seconds
        (50.0, 60, 200, 3600.0, 60, 3 * 3600.0),  # both limits hold at once
        (50.0, 60, 200, 1.0, 50, 3 * 3600.0),
    ],
)
def test_no_window_ever_holds_more_than_the_limit(
    per_second: float, per_hour: int, messages: int, window: float, count: int, span: float
) -> None:
    clock = Clock()
    limiter = RateLimiter(per_second, per_hour, clock.time, clock.sleep)
    starts = []
    for _ in range(messages):
        assert limiter.acquire()
        starts.append(clock.time())
    assert most_in_any_window(starts, window) == count  # exactly the limit: never more, and not starved
    # the rate is met over the long run: the last message starts as soon as the windows allow, not later
    assert starts[-1] - starts[0] == pytest.approx(span, abs=0.01)


def test_four_threads_share_the_limit() -> None:
    clock = Clock()
    limiter = RateLimiter(0.0, 100, clock.time, clock.sleep)
    starts: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(75):
            limiter.acquire()
            with lock:
                starts.append(clock.time())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(starts) == 300 and most_in_any_window(starts, 3600.0) == 100


def test_a_stop_while_waiting_returns_false() -> None:
    clock = Clock()
    limiter = RateLimiter(1.0, 0, clock.time, clock.sleep)
    assert limiter.acquire()
    assert limiter.acquire(should_stop=lambda: True) is False


def test_no_limit_costs_nothing() -> None:
    limiter = RateLimiter(0.0, 0, lambda: 0.0, lambda s: None)
    assert not limiter.limited and all(limiter.acquire() for _ in range(1000))


def test_domain_limits_hold_over_any_window_on_top_of_the_global_ones() -> None:
    clock = Clock()
    limiter = RateLimiter(
        0.0,
        0,
        clock.time,
        clock.sleep,
        domains_per_second=[("gmail.com", 20.0), ("outlook.com, hotmail.com, live.com", 10.0)],
    )
    queue = [f"g{n}@gmail.com" for n in range(200)] + [
        f"m{n}@{d}" for n in range(50) for d in ("outlook.com", "hotmail.com")
    ]
    queue += [f"o{n}@example.org" for n in range(100)]
    starts: dict[str, list[float]] = {"gmail": [], "microsoft": [], "other": []}
    while queue:
        index = limiter.pick(queue)
        assert index is not None
        recipient = queue.pop(index)
        kind = "gmail" if "gmail" in recipient else "other" if "example" in recipient else "microsoft"
        starts[kind].append(clock.time())
    assert most_in_any_window(starts["gmail"], 1.0) == 20
    assert most_in_any_window(starts["microsoft"], 1.0) == 10  # one window shared by the group
    # the other domains never waited behind a full gmail or microsoft window
    assert starts["other"][-1] == starts["other"][0] == 1000.0


def test_a_global_limit_still_holds_with_domain_limits() -> None:
    clock = Clock()
    limiter = RateLimiter(30.0, 0, clock.time, clock.sleep, domains_per_second=[("gmail.com", 20.0)])
    queue = [f"g{n}@gmail.com" for n in range(100)] + [f"o{n}@example.org" for n in range(100)]
    everything, gmail = [], []
    while queue:
        index = limiter.pick(queue)
        assert index is not None
        recipient = queue.pop(index)
        everything.append(clock.time())
        if "gmail" in recipient:
            gmail.append(clock.time())
    assert most_in_any_window(everything, 1.0) == 30 and most_in_any_window(gmail, 1.0) == 20
