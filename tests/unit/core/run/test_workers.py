"""The worker pool with fakes for the queue and the run: counts, retiring, crashes."""

from __future__ import annotations

import queue
import threading
import time

from cdl_tui.core.run.workers import MAX_THREADS, WorkerPool


def wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError("timed out")


class Harness:
    def __init__(self, count: int) -> None:
        self.items: queue.Queue[int] = queue.Queue()
        self.done: list[tuple[int, str]] = []
        self.stop = threading.Event()
        self.crashes: list[Exception] = []
        self.pool: WorkerPool[int] = WorkerPool(
            count,
            threading.RLock(),
            take=self.take,
            run=lambda item, name: self.done.append((item, name)),
            stopping=self.stop.is_set,
            crashed=self.crashes.append,
        )

    def take(self) -> int | None:
        try:
            return self.items.get(timeout=0.02)
        except queue.Empty:
            return None

    def alive(self) -> int:
        return sum(1 for t in self.pool.threads() if t.is_alive())


def test_workers_take_items_by_name_and_stop_with_the_run() -> None:
    h = Harness(3)
    h.pool.start()
    for n in range(20):
        h.items.put(n)
    wait_for(lambda: len(h.done) == 20)
    assert sorted(item for item, _ in h.done) == list(range(20))
    assert {name for _, name in h.done} <= {"worker-1", "worker-2", "worker-3"}
    h.stop.set()
    wait_for(lambda: h.alive() == 0)


def test_set_threads_grows_at_once_and_shrinks_as_workers_come_back() -> None:
    h = Harness(2)
    h.pool.start()
    assert h.pool.set_threads(5) == 5
    wait_for(lambda: h.alive() == 5)
    assert h.pool.set_threads(1) == 1
    wait_for(lambda: h.alive() == 1)
    assert h.pool.set_threads(0) == 1 and h.pool.set_threads(1000) == MAX_THREADS
    h.stop.set()
    wait_for(lambda: h.alive() == 0)


def test_an_escaping_error_is_reported_not_swallowed() -> None:
    h = Harness(1)

    def broken() -> int | None:
        raise RuntimeError("queue bug")

    h.pool._take = broken
    h.pool.work()  # in this thread: returns after reporting
    assert [str(e) for e in h.crashes] == ["queue bug"]
