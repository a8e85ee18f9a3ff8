"""The worker threads: N of them, each taking one Download at a time.

`set_threads` changes N while running: new workers start at once; extra ones retire when
they next come back for work (a Download in progress is never cut for it).

Owned data: the list of threads, the target count and how many are to retire, under the
lock given at construction (the engine's state lock: the snapshot reads the count).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger("cdl.worker")

Item = TypeVar("Item")
MAX_THREADS = 64


class WorkerPool(Generic[Item]):
    """`take()` gives the next item or None (then the worker checks `stopping()` and asks
    again); `run(item, worker_name)` handles it and must not raise. Anything that escapes
    anyway is a bug: `crashed(exc)` is told (the engine stops the run loudly)."""

    def __init__(
        self,
        count: int,
        lock: threading.RLock,
        *,
        take: Callable[[], Item | None],
        run: Callable[[Item, str], None],
        stopping: Callable[[], bool],
        crashed: Callable[[Exception], None],
    ) -> None:
        self._lock = lock
        self._take = take
        self._run = run
        self._stopping = stopping
        self._crashed = crashed
        self.target = max(1, min(MAX_THREADS, count))
        self._threads: list[threading.Thread] = []
        self._retiring = 0
        self._serial = 0

    def start(self) -> None:
        with self._lock:
            for _ in range(self.target):
                self._spawn()

    def threads(self) -> list[threading.Thread]:
        with self._lock:
            return list(self._threads)

    def set_threads(self, count: int) -> int:
        """Change the number of workers (1 to MAX_THREADS); returns the new count."""
        count = max(1, min(MAX_THREADS, count))
        with self._lock:
            self.target = count
            alive = sum(1 for w in self._threads if w.is_alive()) - self._retiring
            while alive < count:
                if self._retiring:
                    self._retiring -= 1
                else:
                    self._spawn()
                alive += 1
            if alive > count:
                self._retiring += alive - count
        return count

    def _spawn(self) -> None:
        self._serial += 1
        thread = threading.Thread(target=self.work, name=f"worker-{self._serial}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _should_retire(self) -> bool:
        with self._lock:
            if self._retiring > 0:
                self._retiring -= 1
                # Leave the list now, so set_threads never counts a worker on its way out.
                self._leave()
                return True
        return False

    def _leave(self) -> None:
        me = threading.current_thread()
        self._threads = [w for w in self._threads if w is not me]

    def work(self) -> None:
        """A worker's life (the thread's target)."""
        try:
            name = threading.current_thread().name
            while not self._stopping():
                if self._should_retire():
                    break
                item = self._take()
                if item is not None:
                    self._run(item, name)
        except Exception as exc:
            log.exception("a worker failed")
            self._crashed(exc)
        finally:
            with self._lock:
                self._leave()
