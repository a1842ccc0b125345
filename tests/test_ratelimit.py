"""The sliding-window limiter behind the login and registration limits, on a fake clock."""

from pulsestack.services.ratelimit import IN_FLIGHT_RETRY_S, SlidingWindowLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_events_reach_the_limit_until_the_oldest_leaves_the_window():
    clock = Clock()
    limiter = SlidingWindowLimiter(3, 60, clock)
    for at in (0, 10, 20):
        clock.now = 1000 + at
        assert limiter.retry_after("k") == 0
        limiter.record("k")

    assert limiter.retry_after("k") == 40  # the first event (at 0) leaves at 60; it is 20 now
    assert limiter.retry_after("other") == 0
    clock.now = 1060
    assert limiter.retry_after("k") == 0


def test_attempts_in_flight_count_until_they_end():
    clock = Clock()
    limiter = SlidingWindowLimiter(3, 60, clock)
    limiter.record("k")
    limiter.begin("k")
    limiter.begin("k")

    assert limiter.retry_after("k") == IN_FLIGHT_RETRY_S  # one event and two in flight reach the limit
    limiter.end("k")  # one ends without an event (a login that succeeded)
    assert limiter.retry_after("k") == 0
    limiter.end("k")  # the other ends as one (a login that failed)
    limiter.record("k")
    limiter.record("k")
    assert limiter.retry_after("k") == 60  # three events, all made now


def test_reset_forgets_events_but_not_attempts_in_flight():
    limiter = SlidingWindowLimiter(2, 60, Clock())
    limiter.record("k")
    limiter.record("k")
    limiter.begin("k")
    limiter.begin("k")

    limiter.reset("k")

    assert limiter.retry_after("k") == IN_FLIGHT_RETRY_S
    limiter.end("k")
    assert limiter.retry_after("k") == 0
