"""Status reports to the farm, sent in the background, in order, newest first to go.

A worker must not wait for the farm to acknowledge `downloading` before it fetches, nor
for `downloaded` before it takes the next Download: on a farm a few milliseconds away that
wait was a third of the time of a small-file job (see bench/). So reports are queued here
and sent by a few sender threads, with two rules:

- reports about one Download go out one at a time, in the order they were made, so a
  heartbeat can never land after the final `downloaded`;
- a report still waiting in the queue is replaced by a newer one about the same Download
  (the farm only needs to know the latest state). A Download fetched faster than the
  queue drains is reported once, `downloaded`; a heartbeat round never piles up behind a
  slow farm.

A worker's first `downloading` may also wait a moment (`not_before`) for that reason: a
Download done within it is reported once, `downloaded`, which halves the requests of a
job of small tasks. Heartbeats and final reports go at once.

One sender starts; more (up to `senders`) start only when a report that could go has
waited GROW_AFTER while every sender was busy: a farm that answers fast is served by one
thread, which keeps its sockets' wake-ups out of the workers' way, and a slow or distant
one (or one request that hangs) gets the senders it needs. With every sender busy, a
timer looks again when the oldest such report is due to have waited that long.

`flush()` waits until everything queued has been sent (or given up): shutdown uses it,
bounded, so a farm that does not answer cannot hold the exit. `close()` adds senders for
the releases an exit queues at once, and sets `gave_up` when its time runs out, so that
the retries of reports still in flight end too (the engine's stop does not end them: the
last `downloaded` of a run is worth its retries).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from cdl_tui.core.model.models import WireId

log = logging.getLogger("cdl.reporter")

SENDERS = 4  # enough to keep heartbeats flowing to a farm with a long round trip
GROW_AFTER = 0.25  # seconds a due report waits before another sender starts
CLOSING_SENDERS = 16  # at exit: releases of every queued Download go out together


@dataclass(frozen=True)
class Report:
    download_id: str  # the text: keys the queue
    wire_id: WireId  # as the farm sent it: what a status report sends
    kind: str  # "status" or "fail"
    status: str = ""  # for "status": downloading, downloaded or pending
    done: int = 0
    total: int = 0
    quick: bool = False
    message: str = ""  # for "fail"
    not_before: float = 0.0  # time.monotonic() before which it is not sent


class Reporter:
    """Queue of reports; `send` delivers one and must not raise (it logs its errors)."""

    def __init__(self, send: Callable[[Report], None], senders: int = SENDERS) -> None:
        self._send = send
        self._cond = threading.Condition()
        # (download_id, kind) -> the newest report not yet sent. A `fail` and a status of
        # one Download are separate entries: the one does not replace the other.
        self._waiting: OrderedDict[tuple[str, str], Report] = OrderedDict()
        self._queued_at: dict[tuple[str, str], float] = {}  # when each entry first waited
        self._busy: set[str] = set()  # Downloads with a report being sent right now
        self._closed = False
        self._hurry = False  # flushing: what waits for its time goes now
        self._most = max(1, senders)
        self._senders: list[threading.Thread] = []
        self._sending = 0  # senders inside send() now
        self._timer: threading.Timer | None = None  # a look at the line, when all are busy
        self.gave_up = threading.Event()  # set when close() ran out of time

    def _sender(self) -> threading.Thread:
        name = f"reporter-{len(self._senders)}"
        return threading.Thread(target=self._run, name=name, daemon=True)

    def _add_sender(self) -> None:
        """Start one more sender (called under the lock)."""
        thread = self._sender()
        self._senders.append(thread)
        thread.start()

    def _grow_if_behind(self, now: float) -> None:
        """Start another sender if every sender is busy and the oldest report that could
        go (its Download has none in flight, its time has come) has waited GROW_AFTER;
        if it has not yet, look again then (under the lock)."""
        if len(self._senders) >= self._most or self._sending < len(self._senders):
            return
        for key, report in self._waiting.items():
            if report.download_id in self._busy or (report.not_before > now and not self._hurry):
                continue
            due = max(self._queued_at.get(key, now), report.not_before)
            if now - due >= GROW_AFTER:
                self._add_sender()
            elif self._timer is None and not self._closed:
                self._timer = threading.Timer(due + GROW_AFTER - now, self._look_again)
                self._timer.daemon = True
                self._timer.start()
            return

    def _look_again(self) -> None:
        with self._cond:
            self._timer = None
            if not self._closed:
                self._grow_if_behind(time.monotonic())

    def submit(self, report: Report) -> None:
        with self._cond:
            if self._closed:
                log.warning("status report after the exit not sent: %s", report)
                return
            now = time.monotonic()
            if not self._senders:
                self._add_sender()
            # A newer report replaces a waiting one and keeps its place in the line (so a
            # heartbeat round behind a slow farm reaches every Download in turn)...
            key = (report.download_id, report.kind)
            self._waiting[key] = report
            self._queued_at.setdefault(key, now)
            # ...unless the Download's other kind of report waits too: then the newer one
            # goes after it (a `pending` after the `fail` queued behind a delayed claim).
            other = "fail" if report.kind == "status" else "status"
            if (report.download_id, other) in self._waiting:
                self._waiting.move_to_end(key)
            self._grow_if_behind(now)
            self._cond.notify()

    def pending(self) -> int:
        with self._cond:
            return len(self._waiting) + len(self._busy)

    def flush(self, timeout: float) -> bool:
        """Wait until every queued report is sent; False if `timeout` ran out first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._hurry = True
            self._cond.notify_all()
            try:
                while self._waiting or self._busy:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    self._cond.wait(left)
                return True
            finally:
                self._hurry = False

    def close(self, timeout: float) -> None:
        """Send what is queued (for at most `timeout` seconds), then stop the senders.
        What did not get through is left to the farm's lease timeout."""
        with self._cond:
            extra = min(len(self._waiting), CLOSING_SENDERS) - len(self._senders)
            if self._senders:
                for _ in range(max(0, extra)):
                    self._add_sender()
        if not self.flush(timeout):
            self.gave_up.set()
            with self._cond:
                left = len(self._waiting) + len(self._busy)
            log.warning("%d status reports were not sent before the exit", left)
        with self._cond:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._cond.notify_all()

    def _next(self) -> Report | None:
        """The oldest report whose Download has none in flight (waits for one)."""
        with self._cond:
            while True:
                if self._closed:
                    return None
                now = time.monotonic()
                soonest = None
                for key, report in self._waiting.items():
                    if report.download_id in self._busy:
                        continue
                    if report.not_before > now and not self._hurry:
                        soonest = min(soonest or report.not_before, report.not_before)
                        continue
                    del self._waiting[key]
                    self._queued_at.pop(key, None)
                    self._busy.add(report.download_id)
                    self._sending += 1
                    self._grow_if_behind(now)  # what is left behind it, still waiting
                    return report
                self._cond.wait(None if soonest is None else soonest - now)

    def _run(self) -> None:
        while (report := self._next()) is not None:
            try:
                self._send(report)
            except Exception:  # send() logs its own errors; this is a bug
                log.exception("sending %s failed", report)
            finally:
                with self._cond:
                    self._sending -= 1
                    self._busy.discard(report.download_id)
                    self._cond.notify_all()
