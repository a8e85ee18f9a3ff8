"""The bandwidth limit with a fake clock: a window's bytes stay within the rate."""

from __future__ import annotations

from cdl_tui.core.files.throttle import TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept += seconds
        self.now += seconds


def test_reads_at_any_pace_average_the_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(1000.0, clock=clock, sleep=clock.sleep)
    for _ in range(50):
        bucket.consume(200)  # 10,000 bytes asked for at once
    assert 9.8 <= clock.now - 100.0 <= 10.0  # about 10 s at 1,000 B/s (a 0.1 s burst)


def test_no_limit_costs_nothing_and_a_limit_can_be_lifted() -> None:
    clock = Clock()
    bucket = TokenBucket(None, clock=clock, sleep=clock.sleep)
    bucket.consume(10**9)
    assert clock.slept == 0 and bucket.largest_read() is None
    bucket.set_rate(50_000.0)
    assert bucket.largest_read() == 5000  # a tenth of a second of bytes
    bucket.consume(50_000)
    assert clock.slept > 0.9
    bucket.set_rate(0)
    assert bucket.rate is None and bucket.largest_read() is None
    assert TokenBucket(10.0).largest_read() == 4096  # never smaller than a page
