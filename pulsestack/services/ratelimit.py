"""An in-process limiter for failed logins.

Counts failures per key (an email, a client address) in a sliding window;
once a key reaches its limit, further attempts are refused until the oldest
failure leaves the window. It lives in one server process: behind a load
balancer with N processes an attacker gets at most N times the limit, which
still turns an online guessing attack from millions of tries into dozens.
Memory is bounded: keys whose failures have all expired are dropped.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class FailureLimiter:
    def __init__(self, max_failures: int, window_s: float, clock: Callable[[], float] = time.monotonic):
        self.max_failures = max_failures
        self.window_s = window_s
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str) -> deque[float] | None:
        q = self._failures.get(key)
        if q is None:
            return None
        cutoff = self._clock() - self.window_s
        while q and q[0] <= cutoff:
            q.popleft()
        if not q:
            del self._failures[key]
            return None
        return q

    def retry_after(self, key: str) -> float:
        """Seconds until `key` may try again; 0 when it may now."""
        q = self._recent(key)
        if q is None or len(q) < self.max_failures:
            return 0.0
        return max(0.0, q[0] + self.window_s - self._clock())

    def failed(self, key: str) -> None:
        q = self._recent(key)
        if q is None:
            q = self._failures[key] = deque()
        q.append(self._clock())
        if len(self._failures) > 100_000:  # bound memory under a spray of keys
            for k in list(self._failures)[:10_000]:
                self._recent(k)

    def reset(self, key: str) -> None:
        self._failures.pop(key, None)
