"""An in-process sliding-window limiter (failed logins, registrations).

Counts events per key (an email, a client address) in a sliding window, and
attempts still in flight: an attempt counts as an event made now from the
moment it is admitted until it ends. Without that, a burst of concurrent
requests all pass the check before the first of them is counted (the check
comes before a ~100 ms password hash, the count after it). Once a key
reaches its limit, further attempts are refused until enough events leave
the window. It lives in one server process: behind a load balancer with N
processes an attacker gets at most N times the limit, which still turns an
online guessing attack from millions of tries into dozens. Memory is
bounded: keys whose events have all expired are dropped.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

# Retry-After when only attempts still in flight reach a limit: by then they
# have ended, as events (the limit holds) or not (the key may try again).
IN_FLIGHT_RETRY_S = 1.0


class SlidingWindowLimiter:
    def __init__(self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic):
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._events: dict[str, deque[float]] = {}
        self._in_flight: dict[str, int] = {}

    def _recent(self, key: str) -> deque[float] | None:
        q = self._events.get(key)
        if q is None:
            return None
        cutoff = self._clock() - self.window_s
        while q and q[0] <= cutoff:
            q.popleft()
        if not q:
            del self._events[key]
            return None
        return q

    def retry_after(self, key: str) -> float:
        """Seconds until `key` may try again; 0 when it may now."""
        events = self._recent(key) or ()
        if len(events) + self._in_flight.get(key, 0) < self.limit:
            return 0.0
        if len(events) < self.limit:
            # Attempts in flight are what reach the limit; they end within moments.
            return IN_FLIGHT_RETRY_S
        # Back under the limit once the (len - limit + 1)-th oldest event leaves.
        return max(0.0, events[len(events) - self.limit] + self.window_s - self._clock())

    def record(self, key: str) -> None:
        """An event now (a failed login, a registration)."""
        q = self._recent(key)
        if q is None:
            q = self._events[key] = deque()
        q.append(self._clock())
        if len(self._events) > 100_000:  # bound memory under a spray of keys
            for k in list(self._events)[:10_000]:
                self._recent(k)

    def begin(self, key: str) -> None:
        """An attempt in flight: it counts like an event until `end`."""
        self._in_flight[key] = self._in_flight.get(key, 0) + 1

    def end(self, key: str) -> None:
        left = self._in_flight.pop(key) - 1
        if left:
            self._in_flight[key] = left

    def reset(self, key: str) -> None:
        """Forget the key's events (not its attempts in flight)."""
        self._events.pop(key, None)
