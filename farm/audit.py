"""The audit trail's writer for file requests."""

from __future__ import annotations

import logging
import queue
import threading

from .db import AuditRow, FarmStore

log = logging.getLogger("cdl.farm")


class AuditWriter:
    """Writes file-request audit rows from a background thread, in batches.

    File requests are the hot path; batching keeps SQLite writes off the event loop.
    Leases and status reports are audited inside their own transactions instead.
    """

    def __init__(self, store: FarmStore, interval: float = 0.1) -> None:
        self._store = store
        self._queue: queue.SimpleQueue[AuditRow | threading.Event | None] = queue.SimpleQueue()
        self._interval = interval
        self._thread = threading.Thread(target=self._run, name="farm-audit", daemon=True)
        self._thread.start()

    def add(self, row: AuditRow) -> None:
        self._queue.put(row)

    def flush(self, timeout: float = 10.0) -> None:
        done = threading.Event()
        self._queue.put(done)
        done.wait(timeout)

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(10.0)

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=self._interval)
            except queue.Empty:
                continue
            batch: list[AuditRow] = []
            waiters: list[threading.Event] = []
            stop = False
            item: AuditRow | threading.Event | None = first
            while True:
                if item is None:
                    stop = True
                elif isinstance(item, threading.Event):
                    waiters.append(item)
                else:
                    batch.append(item)
                if len(batch) >= 2000:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            try:
                self._store.append_audit(batch)
            except Exception:  # the audit must never take the server down
                log.exception("could not write %d audit rows", len(batch))
            for waiter in waiters:
                waiter.set()
            if stop:
                return
