"""Immutable views of the engine's state, for UIs to poll a few times a second.

`Engine.snapshot()` builds an `EngineSnapshot` under the engine's lock from pieces that are
already immutable (pending entries, history entries), so taking one costs little even with
10,000 pending Downloads.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from functools import cached_property

from .states import FileState, Outcome

FLEETING = 60.0  # seconds a problem without a key stays current


class Severity(str, Enum):
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Problem:
    severity: Severity
    text: str
    first_at: float  # wall clock
    last_at: float
    count: int = 1  # how many times it happened (repeats merge)
    key: str | None = None  # standing until cleared, e.g. "farm", "job 08285"
    retry_at: float | None = None  # wall clock of the next try, if one is planned
    cleared_at: float | None = None

    def current(self, now: float) -> bool:
        """Does it still matter at `now`?"""
        if self.cleared_at is not None:
            return False
        return self.key is not None or now - self.last_at < FLEETING


def current_problems(problems: tuple[Problem, ...], now: float) -> list[Problem]:
    """The problems that still matter, newest first."""
    return [p for p in problems if p.current(now)]


@dataclass(frozen=True, slots=True)
class FileView:
    path: str
    size: int
    state: FileState
    done: int  # bytes hashed (HASHING) or received (DOWNLOADING)
    detail: str = ""  # a failure reason

    @property
    def percent(self) -> float:
        return 100.0 if self.size == 0 else min(100.0, 100.0 * self.done / self.size)


@dataclass(frozen=True, slots=True)
class ActiveView:
    download_id: str
    job_id: str
    task_id: str
    worker: str
    size: int
    done: int  # bytes fetched or verified so far
    files: tuple[FileView, ...]
    started_at: float
    attempt: int
    paused: bool
    rate: float  # bytes/s over the last seconds

    @property
    def percent(self) -> float:
        return 100.0 if self.size == 0 else min(100.0, 100.0 * self.done / self.size)

    @property
    def eta(self) -> float | None:
        if self.rate <= 0 or self.paused:
            return None
        return max(0.0, (self.size - self.done) / self.rate)


@dataclass(frozen=True, slots=True)
class PendingView:
    download_id: str
    job_id: str
    task_id: str
    files: int
    size: int
    attempts: int
    last_error: str | None
    held: bool  # paused while queued
    not_before: float  # wall-clock time before which it will not start (backoff)
    waiting: str | None = None  # "WAITING FOR DISK" or "BUSY" while parked


@dataclass(frozen=True, slots=True)
class FailedView:
    download_id: str | None
    job_id: str | None
    task_id: str | None
    files: int
    size: int
    attempts: int
    reason: str
    outcome: Outcome  # FAILED, CANCELLED or REFUSED
    at: float


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    kind: str  # "file" or "task"
    outcome: Outcome
    download_id: str
    job_id: str
    task_id: str
    path: str  # the file's final path, or the Download's root folder for a task
    size: int
    seconds: float
    finished_at: float
    reason: str = ""
    run_started: float = 0.0  # when the run that wrote it started (0: not known)


@dataclass(frozen=True, slots=True)
class JobView:
    job_id: str
    listed: int
    finished: int
    failed: int
    listing_complete: bool
    error: str | None = None  # the job failed as a whole (not on the farm, unreadable)
    bytes_total: int = 0  # of the Downloads listed
    bytes_done: int = 0  # of those done, and of those running so far
    rate: float = 0.0  # bytes/s of its Downloads running now

    @property
    def complete(self) -> bool:
        return self.error is None and self.listing_complete and self.finished >= self.listed

    @property
    def pending(self) -> int:
        """Downloads listed and not finished (queued, running, waiting)."""
        return self.listed - self.finished

    @property
    def eta(self) -> float | None:
        """Seconds until its bytes are in at the rate of now (None: nothing moves)."""
        left = self.bytes_total - self.bytes_done
        return left / self.rate if self.rate > 0 and left > 0 else None

    @property
    def state(self) -> str:
        """LISTING, DOWNLOADING, COMPLETE, INCOMPLETE (finished, with failures) or FAILED
        (the job as a whole: `error` says why)."""
        if self.error is not None:
            return "FAILED"
        if not self.listing_complete:
            return "LISTING"
        if self.finished < self.listed:
            return "DOWNLOADING"
        return "INCOMPLETE" if self.failed else "COMPLETE"


@dataclass(frozen=True, slots=True)
class Totals:
    files_downloaded: int = 0
    bytes_downloaded: int = 0
    files_cached: int = 0
    bytes_cached: int = 0
    files_skipped: int = 0
    files_failed: int = 0
    downloads_done: int = 0
    downloads_failed: int = 0
    downloads_cancelled: int = 0
    downloads_refused: int = 0
    jobs_failed: int = 0  # jobs that could not be listed (not on the farm, bad answers)
    files_hashed: int = 0  # existing files hashed (not trusted from the journal)
    bytes_hashed: int = 0

    @property
    def failed(self) -> int:
        """What failed in this run, as the header, the summary, the report and the exit code
        count it: Downloads given up or refused, and jobs that could not be listed. A
        Download retried to success is not among them."""
        return self.downloads_failed + self.downloads_refused + self.jobs_failed


@dataclass(frozen=True)
class EngineSnapshot:
    taken_at: float
    uptime: float
    mode: str  # "daemon", "jobs" or "daemon+jobs"
    farm: str
    location: str | None
    paused: bool
    stopping: bool
    threads: int
    busy: int
    active: tuple[ActiveView, ...]
    pending: tuple[PendingView, ...]
    failed: tuple[FailedView, ...]
    recent_files: tuple[HistoryEntry, ...]  # newest first
    recent_tasks: tuple[HistoryEntry, ...]  # newest first
    history_files: int  # how many file entries history holds in all
    history_tasks: int
    history_serial: int  # entries ever added (see Engine.history_since)
    totals: Totals
    rate: float  # bytes/s over the last few seconds
    rate_history: tuple[float, ...]  # bytes/s per second for the last minute, oldest first
    jobs: tuple[JobView, ...]
    feeder: str  # what the feeder is doing, in words
    bandwidth_limit: float | None = None  # bytes/s for all workers, if limited
    problems: tuple[Problem, ...] = ()  # recent warnings and errors, newest first

    @cached_property
    def remaining_bytes(self) -> int:
        """Bytes still to move for what is known now: the active Downloads' rest and every
        pending one (a daemon's queue grows as the farm offers more)."""
        left = sum(max(0, a.size - a.done) for a in self.active)
        return left + sum(p.size for p in self.pending)

    @property
    def eta(self) -> float | None:
        """Seconds until `remaining_bytes` are moved at the current rate; None if unknown."""
        if self.paused or self.rate <= 0 or not self.remaining_bytes:
            return None
        return self.remaining_bytes / self.rate


MIN_AGE = 0.5  # seconds: younger, a rate is too noisy to be worth showing as such


class RateMeter:
    """Bytes per second, from per-second buckets (thread-safe, O(1) per update)."""

    def __init__(self, seconds: int = 60, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._born = clock()  # a young meter divides by its age, not the whole window
        self._buckets: deque[list[float]] = deque(maxlen=seconds)  # [second, bytes]
        self._lock = threading.Lock()

    def add(self, count: int) -> None:
        second = int(self._clock())
        with self._lock:
            if self._buckets and self._buckets[-1][0] == second:
                self._buckets[-1][1] += count
            else:
                self._buckets.append([second, count])

    def rate(self, window: int = 5) -> float:
        """Mean bytes/s over the last `window` whole seconds plus the current one, or over
        the meter's age while it is younger than that (a download 1 s old that moved
        1 MiB runs at 1 MiB/s, not 200 KiB/s)."""
        now = self._clock()
        current = int(now)
        with self._lock:
            total = sum(b for s, b in self._buckets if s > current - window)
        span = min(window - 1 + (now - current), max(MIN_AGE, now - self._born))
        return total / span if span > 0 else 0.0

    def history(self, seconds: int = 60) -> tuple[float, ...]:
        """Bytes in each of the last `seconds` whole seconds, oldest first (0 when idle)."""
        current = int(self._clock())
        with self._lock:
            by_second = {int(s): b for s, b in self._buckets}
        return tuple(float(by_second.get(s, 0)) for s in range(current - seconds, current))


# -- details(): everything known about one Download ----------------------------------------


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One attempt of a Download: who ran it, when, and how it ended."""

    number: int  # 1, 2, ... counted over the whole run (a retried Download goes on counting)
    worker: str  # the worker thread's name
    started_at: float  # wall clock (time.time())
    ended_at: float | None  # None while it runs
    outcome: str  # "running", "done", "failed", "cancelled", "given back", "waiting for disk"...
    error: str  # "" unless it failed; scrubbed of secrets


@dataclass(frozen=True, slots=True)
class FileDetail:
    """One file of a Download: where it lands, the temp file it is written through."""

    relative_path: str  # as the farm listed it
    final_path: str  # where it lands (or landed); "" if not known yet
    temp_path: str  # the temp file beside it while it is not in place; "" if none or not known
    size: int
    md5: str
    state: str  # the FileState value while it runs, else its outcome (DL, CACHED...) or "queued"
    reason: str  # "" unless it failed


@dataclass(frozen=True, slots=True)
class DownloadDetail:
    """Everything this run knows about one Download; no URL, only the hosts of its files."""

    download_id: str | None
    wire_id: str  # the ID as the farm sent it, its type showing: 9007199254740993 or "ab12"
    job_id: str | None
    task_id: str | None
    # Which list it is in: "active" (outcome DOWNLOADING), "pending" (PENDING, WAITING FOR
    # DISK or BUSY), "failed" (FAILED, CANCELLED or REFUSED), "done" (DL, CACHED or
    # SKIPPED) or "history" (RELEASED: a daemon's Download that waited too long and was
    # given back to the farm).
    where: str
    outcome: str
    reason: str  # full, never cut: why it failed, or why its last attempt did
    attempts: tuple[AttemptRecord, ...]
    files: tuple[FileDetail, ...]
    url_hosts: tuple[str, ...]  # host[:port] of the file URLs, each once
    size: int
    origin: str  # "daemon" or the job it was listed for, "" if unknown
