"""Exponential backoff with jitter, bounded in attempts and in total time.

Used by the API client for transient failures and by the engine for file transfers. The
clock, sleep and random source are injectable so the policy is unit-tested without waiting.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from cdl_tui.core.model.errors import TransientError

log = logging.getLogger("cdl.retry")

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try.

    Delay before retry n (1-based) is `min(max_delay, base_delay * 2**(n-1))`, scaled by a
    random factor in [1 - jitter, 1]; a server's Retry-After overrides it (capped by
    max_delay). Gives up after `max_attempts` attempts or once `max_elapsed` seconds have
    passed, whichever comes first.
    """

    max_attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_elapsed: float = 120.0
    jitter: float = 0.5

    def delay(self, retry_number: int, rng: random.Random | None = None) -> float:
        raw = min(self.max_delay, self.base_delay * (2.0 ** (retry_number - 1)))
        factor = 1.0 - self.jitter * (rng or random).random()
        return raw * factor


@dataclass
class Retrier:
    """Runs a callable under a RetryPolicy, retrying only TransientError."""

    policy: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    rng: random.Random = field(default_factory=random.Random)
    problem: str | None = None  # logs its waits as this standing problem (core.problems)

    def call(self, func: Callable[[], T]) -> T:
        """Call `func`; retry it on TransientError (whose message says what failed)."""
        start = self.clock()
        attempt = 1
        while True:
            try:
                return func()
            except TransientError as exc:
                elapsed = self.clock() - start
                if attempt >= self.policy.max_attempts:
                    raise TransientError(
                        f"{exc} (gave up after {attempt} attempts)", exc.status
                    ) from exc
                pause = self.policy.delay(attempt, self.rng)
                if exc.retry_after is not None:
                    pause = min(self.policy.max_delay, max(0.0, exc.retry_after))
                if elapsed + pause > self.policy.max_elapsed:
                    raise TransientError(
                        f"{exc} (gave up after {elapsed:.0f}s, {attempt} attempts)", exc.status
                    ) from exc
                log.warning(
                    "%s; retry %d/%d in %.1fs",
                    exc,
                    attempt,
                    self.policy.max_attempts - 1,
                    pause,
                    extra={"problem": self.problem, "retry_at": time.time() + pause},
                )
                self.sleep(pause)
                attempt += 1
