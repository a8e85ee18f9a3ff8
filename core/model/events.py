"""Typed, immutable lifecycle events, delivered from one dispatcher thread.

Events mark moments (a Download queued, started, finished...). Byte progress is not an
event: it lives in counters that `Engine.snapshot()` exposes, so a UI polls it at its own
pace instead of receiving a message per chunk.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .states import FileState, Outcome

log = logging.getLogger("cdl.events")


@dataclass(frozen=True)
class Event:
    name: ClassVar[str] = "event"
    at: float = field(default_factory=time.time, kw_only=True)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: {"event": name, ...fields}; enums become their values."""
        data: dict[str, Any] = {"event": self.name}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, FileState | Outcome):
                value = value.value
            elif isinstance(value, tuple):
                value = list(value)
            data[f.name] = value
        return data


@dataclass(frozen=True)
class DownloadQueued(Event):
    name: ClassVar[str] = "download_queued"
    download_id: str
    job_id: str
    task_id: str
    files: int
    size: int
    origin: str  # "daemon" or the job ID it was listed for


@dataclass(frozen=True)
class DownloadStarted(Event):
    name: ClassVar[str] = "download_started"
    download_id: str
    job_id: str
    task_id: str
    worker: str
    attempt: int


@dataclass(frozen=True)
class FileStateChanged(Event):
    name: ClassVar[str] = "file_state_changed"
    download_id: str
    path: str
    state: FileState


@dataclass(frozen=True)
class FileDone(Event):
    """A file is in place: downloaded and verified (DL), or already there (CACHED/SKIPPED)."""

    name: ClassVar[str] = "file_done"
    download_id: str
    job_id: str
    task_id: str
    path: str
    size: int
    outcome: Outcome
    seconds: float


@dataclass(frozen=True)
class FileFailed(Event):
    name: ClassVar[str] = "file_failed"
    download_id: str
    path: str
    reason: str


@dataclass(frozen=True)
class DownloadDone(Event):
    name: ClassVar[str] = "download_done"
    download_id: str
    job_id: str
    task_id: str
    outcome: Outcome  # DL if any file was fetched, else CACHED/SKIPPED
    files: int
    bytes_downloaded: int
    seconds: float


@dataclass(frozen=True)
class DownloadFailed(Event):
    """An attempt failed. `will_retry` False means it is given up (FAILED or REFUSED)."""

    name: ClassVar[str] = "download_failed"
    download_id: str | None
    job_id: str | None
    task_id: str | None
    reason: str
    attempt: int
    will_retry: bool
    outcome: Outcome = Outcome.FAILED


@dataclass(frozen=True)
class DownloadWaiting(Event):
    """Parked for a while: WAITING FOR DISK (not enough free space), or BUSY (another
    process is writing one of its files). It is tried again a few seconds later."""

    name: ClassVar[str] = "download_waiting"
    download_id: str
    job_id: str
    task_id: str
    state: str
    reason: str


@dataclass(frozen=True)
class DownloadCancelled(Event):
    name: ClassVar[str] = "download_cancelled"
    download_id: str
    job_id: str
    task_id: str


@dataclass(frozen=True)
class JobListed(Event):
    name: ClassVar[str] = "job_listed"
    job_id: str
    listed: int  # Downloads in the listing so far
    complete: bool  # the listing reached its last page


@dataclass(frozen=True)
class JobDone(Event):
    name: ClassVar[str] = "job_done"
    job_id: str
    downloads: int
    failed: int


@dataclass(frozen=True)
class FeederIdle(Event):
    name: ClassVar[str] = "feeder_idle"
    seconds: float  # until the next poll


@dataclass(frozen=True)
class EngineDrained(Event):
    """Everything asked for is done (the end of an --exit-when-done run)."""

    name: ClassVar[str] = "engine_drained"


@dataclass(frozen=True)
class EngineStopped(Event):
    name: ClassVar[str] = "engine_stopped"
    exit_code: int
    reason: str


Subscriber = Callable[[Event], None]
DISPATCH_PAUSE = 0.02  # seconds between two batches of events (at most 50 wake-ups/s)
_CLOSE = object()


class EventBus:
    """Fan-out of events to subscribers, in publication order, from one thread."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="events", daemon=True)
        self._thread.start()

    def subscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            self._subscribers.append(subscriber)

    def publish(self, event: Event) -> None:
        self._queue.put(event)

    def close(self, timeout: float = 10.0) -> None:
        """Deliver everything published so far, then stop the dispatcher."""
        self._queue.put(_CLOSE)
        self._thread.join(timeout)

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until every event published so far has been delivered."""
        done = threading.Event()
        self._queue.put(done)
        done.wait(timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            while True:
                if item is _CLOSE:
                    return
                self._deliver(item)
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            # Events come in bursts (several per file); waking for each one costs a thread
            # switch per event on the workers' cores. A short nap delivers them in batches.
            time.sleep(DISPATCH_PAUSE)

    def _deliver(self, item: Any) -> None:
        if isinstance(item, threading.Event):
            item.set()
            return
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            try:
                subscriber(item)
            except Exception:
                log.exception("an event subscriber failed on %s", item.name)
