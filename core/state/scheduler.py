"""The queue of Downloads waiting for a worker.

Ordered (first in, first out, with "move to top"), each entry at most once, entries can be
held (paused while queued) or wait out a backoff. `take()` blocks until an entry may start.
Each entry caches its immutable view, so the snapshot of a 10,000-entry queue is one tuple.

Owned data: the entries and their order, under the queue's own condition, which is taken
after the state lock, never before (a snapshot holds the state lock and asks for views).
A QueuedDownload's fields are written by whoever holds it: the worker running it, or the
outcome rules settling it, one at a time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cdl_tui.core.model.models import Download
from cdl_tui.core.model.states import FileState
from cdl_tui.core.model.views import PendingView


@dataclass(eq=False)
class QueuedDownload:
    """A Download and what this run knows about it while it is ours."""

    download: Download
    origin: str  # "daemon" (leased from /downloads/next) or the job ID that listed it
    attempts: int = 0  # attempts made so far
    last_error: str | None = None
    not_before: float = 0.0  # monotonic time before which it must not start (backoff)
    held: bool = False
    # Reporting: `leased` is True while the farm counts this Download as ours (leased from
    # /downloads/next, or reported `downloading`); heartbeats go only to leased entries.
    leased: bool = False
    claimed: bool = False  # this run reported it `downloading` at least once
    hold_until: float = 0.0  # monotonic: until when a given-up lease is kept
    report_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # Files an earlier attempt put in place (relative path -> COMPLETE/CACHED/SKIPPED), so a
    # retry neither fetches nor counts them again.
    settled: dict[str, FileState] = field(default_factory=dict, repr=False)
    # Ask the farm for this Download again before the next attempt (after a retry command:
    # the farm may have fixed it, and its signed URLs may have expired).
    refresh: bool = False
    waiting: str | None = None  # "WAITING FOR DISK" / "BUSY" while parked
    waiting_since: float = 0.0  # monotonic
    _view: PendingView | None = field(default=None, repr=False)

    @property
    def download_id(self) -> str:
        return self.download.download_id

    def changed(self) -> None:
        self._view = None

    def view(self) -> PendingView:
        if self._view is None:
            wait = max(0.0, self.not_before - time.monotonic())
            d = self.download
            self._view = PendingView(
                download_id=d.download_id,
                job_id=d.job_id,
                task_id=d.task_id,
                files=len(d.files),
                size=d.size,
                attempts=self.attempts,
                last_error=self.last_error,
                held=self.held,
                not_before=time.time() + wait if wait else 0.0,
                waiting=self.waiting,
            )
        return self._view


class PendingQueue:
    def __init__(self) -> None:
        self._items: list[QueuedDownload] = []
        self._cond = threading.Condition()
        self._views: tuple[PendingView, ...] | None = None
        self._closed = False  # the engine stops: every take() returns None at once

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    def count(self, origin: str) -> int:
        with self._cond:
            return sum(1 for item in self._items if item.origin == origin)

    def put(self, item: QueuedDownload, *, front: bool = False) -> None:
        with self._cond:
            if front:
                self._items.insert(0, item)
            else:
                self._items.append(item)
            self._views = None
            self._cond.notify()

    def take(self, timeout: float, may_start: Callable[[], bool]) -> QueuedDownload | None:
        """The first entry that may start now; None after `timeout`, or at once when the
        queue is closed (idle workers wait here, and must not outlive a stop)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._closed:
                now = time.monotonic()
                wait = deadline - now
                if may_start():
                    for index, item in enumerate(self._items):
                        if not item.held and item.not_before <= now:
                            del self._items[index]
                            self._views = None
                            return item
                    waiting = [i.not_before for i in self._items if not i.held]
                    if waiting:
                        wait = min(wait, min(waiting) - now)
                if deadline - now <= 0:
                    return None
                self._cond.wait(max(0.01, wait))
            return None

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def close(self) -> None:
        """Wake every waiting take() with None, now and from now on."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def remove(self, download_id: str) -> QueuedDownload | None:
        with self._cond:
            for index, item in enumerate(self._items):
                if item.download_id == download_id:
                    del self._items[index]
                    self._views = None
                    return item
        return None

    def move_to_top(self, download_id: str) -> bool:
        item = self.remove(download_id)
        if item is None:
            return False
        item.not_before = 0.0
        item.changed()
        self.put(item, front=True)
        return True

    def set_held(self, download_id: str, held: bool) -> bool:
        with self._cond:
            for item in self._items:
                if item.download_id == download_id:
                    item.held = held
                    item.changed()
                    self._views = None
                    self._cond.notify_all()
                    return True
        return False

    def items(self) -> list[QueuedDownload]:
        with self._cond:
            return list(self._items)

    def drain(self) -> list[QueuedDownload]:
        with self._cond:
            items, self._items = self._items, []
            self._views = None
            return items

    def views(self) -> tuple[PendingView, ...]:
        with self._cond:
            if self._views is None:
                self._views = tuple(item.view() for item in self._items)
            return self._views
