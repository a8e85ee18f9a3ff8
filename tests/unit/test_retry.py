import random

import pytest

from cdl_tui.core.farm.retry import Retrier, RetryPolicy
from cdl_tui.core.model.errors import ApiError, TransientError


class Recorder:
    def __init__(self):
        self.sleeps = []
        self.now = 0.0

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self):
        return self.now


def failing(times, error=None):
    calls = []

    def func():
        calls.append(1)
        if len(calls) <= times:
            raise error or TransientError("HTTP 503", 503)
        return "ok"

    return func, calls


def test_delays_grow_exponentially_within_the_jitter_band():
    policy = RetryPolicy(base_delay=1.0, max_delay=30.0, jitter=0.5)
    rng = random.Random(3)
    for n, raw in [(1, 1), (2, 2), (3, 4), (4, 8), (6, 30), (10, 30)]:
        for _ in range(50):
            assert raw * 0.5 <= policy.delay(n, rng) <= raw


def test_transient_errors_are_retried_until_success():
    rec = Recorder()
    retrier = Retrier(RetryPolicy(max_attempts=5), rec.sleep, rec.clock, random.Random(1))
    func, calls = failing(3)
    assert retrier.call(func) == "ok"
    assert len(calls) == 4
    assert len(rec.sleeps) == 3


def test_attempts_are_bounded():
    rec = Recorder()
    retrier = Retrier(RetryPolicy(max_attempts=3), rec.sleep, rec.clock)
    func, calls = failing(10)
    with pytest.raises(TransientError, match="gave up after 3 attempts"):
        retrier.call(func)
    assert len(calls) == 3


def test_total_time_is_bounded():
    rec = Recorder()
    policy = RetryPolicy(max_attempts=100, base_delay=10, max_delay=10, max_elapsed=35, jitter=0)
    func, calls = failing(100)
    with pytest.raises(TransientError, match=r"gave up after 30s, 4 attempts"):
        Retrier(policy, rec.sleep, rec.clock).call(func)
    assert rec.now <= 35
    assert len(calls) == 4


def test_retry_after_is_honoured_but_capped():
    rec = Recorder()
    policy = RetryPolicy(max_attempts=3, max_delay=5)
    func, _ = failing(2, TransientError("429", 429, retry_after=120))
    Retrier(policy, rec.sleep, rec.clock).call(func)
    assert rec.sleeps == [5, 5]


def test_other_errors_are_not_retried():
    rec = Recorder()
    func, calls = failing(5, ApiError("404"))
    with pytest.raises(ApiError):
        Retrier(RetryPolicy(), rec.sleep, rec.clock).call(func)
    assert len(calls) == 1
    assert rec.sleeps == []
