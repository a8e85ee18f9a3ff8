"""Pause and stop, as the workers see them between chunks.

`checkpoint()` is called between two chunks of a transfer: it raises StopRequested on a
stop or a cancel, and waits while everything or this Download is paused. `sleep()` waits
between retries and ends at once on a stop or cancel.

Owned data: the `paused` and `stopping` flags and the condition workers wait on, built on
the state lock given at construction (a pause is read with the rest of the state).
`stopping` only ever goes from False to True. A Download's `paused` and `cancelled` flags
belong to it (state/active.py); `wake()` tells waiting workers that one changed.
"""

from __future__ import annotations

import threading
import time

from cdl_tui.core.model.errors import StopRequested
from cdl_tui.core.state.active import ActiveDownload

PAUSE_POLL = 0.5  # seconds: a paused worker looks again this often even unwoken


class RunControl:
    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self._changed = threading.Condition(lock)
        self._paused = False
        self._stopping = False

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def stopping(self) -> bool:
        return self._stopping

    def may_start(self) -> bool:
        """Whether a worker may start another Download now."""
        return not self._paused and not self._stopping

    def pause(self) -> None:
        with self._lock:
            self._paused = True

    def resume(self) -> None:
        with self._lock:
            self._paused = False
            self._changed.notify_all()

    def stop(self) -> bool:
        """Stop for good; False if it was stopping already. Call with the lock held to
        make other changes at the same moment."""
        with self._lock:
            if self._stopping:
                return False
            self._stopping = True
            self._changed.notify_all()
            return True

    def wake(self) -> None:
        """A Download's own pause or cancel flag changed: waiting workers look again."""
        with self._lock:
            self._changed.notify_all()

    def checkpoint(self, active: ActiveDownload) -> None:
        """Between chunks: stop if asked to, and wait here while paused."""
        self._raise_if_stopped(active)
        if not (self._paused or active.paused):
            return
        with self._lock:
            while (self._paused or active.paused) and not (self._stopping or active.cancelled):
                self._changed.wait(PAUSE_POLL)
        self._raise_if_stopped(active)

    def sleep(self, active: ActiveDownload, seconds: float) -> None:
        """Wait between retries; a stop or cancel ends the wait at once."""
        deadline = time.monotonic() + seconds
        with self._lock:
            while not (self._stopping or active.cancelled):
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._changed.wait(left)
        raise StopRequested("cancelled" if active.cancelled else "stopping")

    def _raise_if_stopped(self, active: ActiveDownload) -> None:
        if self._stopping or active.cancelled:
            raise StopRequested("cancelled" if active.cancelled else "stopping")
