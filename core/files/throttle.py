"""A bandwidth limit shared by every worker: a token bucket that sleeps its callers.

The bucket holds at most a tenth of a second of tokens, so bursts stay small and any 5 s
window stays within a few percent of the limit. `set_rate(None)` removes the limit (then
`consume` costs one attribute read).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    BURST_SECONDS = 0.1

    def __init__(
        self,
        rate: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep
        self.rate: float | None = None
        self._tokens = 0.0
        self._stamp = clock()
        self.set_rate(rate)

    def set_rate(self, rate: float | None) -> None:
        with self._lock:
            self.rate = rate if rate and rate > 0 else None
            self._tokens = 0.0
            self._stamp = self._clock()

    def largest_read(self) -> int | None:
        """Reads larger than the bucket would come in bursts: the cap, if limited."""
        rate = self.rate
        return None if rate is None else max(4096, int(rate * self.BURST_SECONDS))

    def consume(self, count: int) -> None:
        """Take `count` bytes' worth of tokens, sleeping until they are there."""
        rate = self.rate
        if rate is None:  # no limit: no lock on the hot path
            return
        with self._lock:
            rate = self.rate  # again: set_rate() may have lifted the limit meanwhile
            if rate is None:
                return
            now = self._clock()
            self._tokens = min(rate * self.BURST_SECONDS, self._tokens + (now - self._stamp) * rate)
            self._stamp = now
            self._tokens -= count
            debt = -self._tokens / rate if self._tokens < 0 else 0.0
        if debt > 0:
            self._sleep(debt)
