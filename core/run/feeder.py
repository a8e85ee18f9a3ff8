"""The feeder: fills the pending queue from job listings and from /downloads/next.

Job mode lists each job page by page, queueing as each page arrives (so downloads start
long before a 10,000-task listing ends); without --exit-when-done every job is listed
again each nap to pick up tasks that finished rendering since. Daemon mode asks
/downloads/next for at most the free slots (the queue holds at most 2 x threads of its
Downloads, 20 per request) and naps when nothing new comes back. The nap ends early on
stop, on an added job, or when a worker makes room.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Protocol, runtime_checkable

from cdl_tui.core.farm.api import FARM_PROBLEM, MAX_NEXT_COUNT, FarmClient
from cdl_tui.core.model.errors import ApiError, AuthError, CdlError, TransientError
from cdl_tui.core.model.events import Event, FeederIdle, JobListed
from cdl_tui.core.model.jobspec import JobSpec
from cdl_tui.core.model.models import Download, DownloadBatch, RejectedDownload
from cdl_tui.core.model.states import DAEMON_ORIGIN
from cdl_tui.core.state.jobs import JobTracker


@runtime_checkable
class ListingSettings(Protocol):
    """The settings the feeder reads (model/settings.py's EngineConfig has them)."""

    @property
    def daemon(self) -> bool: ...
    @property
    def exit_when_done(self) -> bool: ...
    @property
    def location(self) -> str | None: ...
    @property
    def page_size(self) -> int: ...
    @property
    def poll_interval(self) -> float: ...
    @property
    def unreachable_max(self) -> float: ...


@runtime_checkable
class FeederHost(Protocol):
    """What the feeder needs of the run (state/intake.py provides it): the farm, where
    listed Downloads go, and the job trackers whose listings it drives. The feeder
    reads the trackers; it changes them only through these methods."""

    @property
    def client(self) -> FarmClient: ...
    @property
    def config(self) -> ListingSettings: ...
    @property
    def stopping(self) -> bool: ...

    def trackers(self) -> list[JobTracker]: ...
    def daemon_slots(self) -> int: ...
    def enqueue(self, download: Download, origin: str, *, leased: bool) -> bool: ...
    def refuse_listed(
        self, rejected: RejectedDownload, origin: str, *, leased: bool, foreign: bool = False
    ) -> None: ...
    def release_known(self, download: Download) -> None: ...
    def listing_finished(self, tracker: JobTracker) -> None: ...
    def job_failed(self, tracker: JobTracker, reason: str) -> None: ...
    def set_feeder_status(self, text: str) -> None: ...
    def publish(self, event: Event) -> None: ...
    def fatal(self, error: CdlError) -> None: ...


log = logging.getLogger("cdl.feeder")

# With --exit-when-done, a job whose listing fails this many times in a row (each after the
# client's own retries) counts as failed, so a run cannot wait for ever.
MAX_LISTING_FAILURES = 10


class _Result(Enum):
    WORKED = "worked"  # something was listed or leased: go on at once
    FULL = "full"  # the daemon's share of the queue is full: wait for room
    IDLE = "idle"  # nothing to do: nap


@dataclass(eq=False)
class Cursor:
    """Where the feeder is in one job's listing. Owned by the feeder's thread alone."""

    pages: Iterator[DownloadBatch] | None = None  # the listing in progress
    next_listing_at: float = 0.0  # monotonic
    failures: int = 0  # listing attempts failed in a row


class Feeder:
    def __init__(self, engine: FeederHost) -> None:
        self.engine = engine
        self._cursors: dict[JobSpec, Cursor] = {}
        self._wake = threading.Event()
        self.thread = threading.Thread(target=self._run, name="feeder", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        engine = self.engine
        while not engine.stopping:
            try:
                result = self._feed_once()
            except AuthError as exc:
                engine.fatal(exc)
                return
            except Exception:  # never let the feeder die silently
                log.exception("feeder error")
                result = _Result.IDLE
            if engine.stopping or result is _Result.WORKED:
                continue
            nap = self._nap_length()
            if result is _Result.IDLE:
                engine.set_feeder_status(self._idle_words(time.time() + nap))
                engine.publish(FeederIdle(seconds=nap))
            else:
                engine.set_feeder_status("listing waits: the queue is full until a worker is free")
            self._wake.wait(nap)
            self._wake.clear()
        engine.set_feeder_status("listing stopped")

    def _idle_words(self, wake_at: float) -> str:
        """What the listing does while it naps, in words that cannot be read as the whole
        run being idle (workers may be busy all the while)."""
        config = self.engine.config
        at = time.strftime("%H:%M:%S", time.localtime(wake_at))
        trackers = self.engine.trackers()
        listed = all(t.listing_complete or t.error for t in trackers)
        if config.daemon:
            return f"listing: the farm offers nothing new; asks again at {at}"
        if listed and config.exit_when_done:
            return f"listing done ({len(trackers)} job{'s' if len(trackers) != 1 else ''})"
        if listed:
            return f"listing done; lists again at {at} for new tasks"
        return f"listing: next page at {at}"

    def cursor(self, tracker: JobTracker) -> Cursor:
        cursor = self._cursors.get(tracker.spec)
        if cursor is None:
            cursor = self._cursors[tracker.spec] = Cursor()
        return cursor

    def _nap_length(self) -> float:
        config = self.engine.config
        nap = config.poll_interval
        now = time.monotonic()
        for tracker in self.engine.trackers():
            cursor = self.cursor(tracker)
            if (
                cursor.pages is None
                and not tracker.error
                and not (tracker.listing_complete and config.exit_when_done)
            ):
                nap = min(nap, max(0.0, cursor.next_listing_at - now))
        return max(0.05, nap)

    def _feed_once(self) -> _Result:
        engine = self.engine
        config = engine.config
        listed = False
        now = time.monotonic()
        for tracker in engine.trackers():
            if engine.stopping:
                return _Result.IDLE
            if tracker.error:
                continue
            cursor = self.cursor(tracker)
            if cursor.pages is None:
                if tracker.listing_complete and config.exit_when_done:
                    continue
                if now < cursor.next_listing_at:
                    continue
                spec = tracker.spec
                cursor.pages = engine.client.iter_job_downloads(
                    spec.job_id, spec.task_ids, page_size=config.page_size
                )
            listed = self._list_page(tracker, cursor, cursor.pages) or listed
        polled = self._poll() if config.daemon and not engine.stopping else _Result.IDLE
        return _Result.WORKED if listed else polled

    def _list_page(
        self, tracker: JobTracker, cursor: Cursor, pages: Iterator[DownloadBatch]
    ) -> bool:
        engine = self.engine
        job_id = tracker.job_id
        engine.set_feeder_status(f"listing job {job_id}")
        try:
            batch = next(pages)
        except StopIteration:
            cursor.pages = None
            cursor.next_listing_at = time.monotonic() + engine.config.poll_interval
            engine.listing_finished(tracker)
            engine.publish(JobListed(job_id=job_id, listed=len(tracker.outcomes), complete=True))
            return True
        except AuthError:
            raise
        except Exception as exc:
            if not isinstance(exc, ApiError):
                # A bug or an answer we choke on: the job fails loudly, never "complete".
                log.exception("unexpected error while listing job %s", job_id)
                cursor.pages = None
                engine.job_failed(tracker, f"job {job_id}: unexpected error while listing: {exc!r}")
                return True
            cursor.pages = None
            cursor.failures += 1
            permanent = not isinstance(exc, TransientError)  # 404, 400, a malformed answer
            unreachable = engine.client.unreachable_for()
            if engine.config.exit_when_done and unreachable > engine.config.unreachable_max:
                engine.job_failed(
                    tracker,
                    f"job {job_id}: the farm could not be reached for {unreachable:.0f} s "
                    f"(unreachable_max): {exc}",
                )
                return True
            if permanent or (
                engine.config.exit_when_done and cursor.failures >= MAX_LISTING_FAILURES
            ):
                engine.job_failed(tracker, f"job {job_id}: {exc}")
                return True
            cursor.next_listing_at = time.monotonic() + engine.config.poll_interval
            retry_at = time.time() + engine.config.poll_interval
            log.warning(
                "listing job %s failed; next try at %s: %s",
                job_id,
                time.strftime("%H:%M:%S", time.localtime(retry_at)),
                exc,
                extra={"problem": FARM_PROBLEM, "retry_at": retry_at},
            )
            return False
        cursor.failures = 0
        for rejected in batch.rejected:
            engine.refuse_listed(rejected, job_id, leased=False)
        for download in batch.downloads:
            if download.job_id != job_id:  # never written under another job's folder
                reason = f"listed for job {job_id}, but it is a Download of job {download.job_id}"
                foreign = RejectedDownload(
                    reason,
                    download.download_id,
                    download.wire_id,
                    download.job_id,
                    download.task_id,
                )
                engine.refuse_listed(foreign, job_id, leased=False, foreign=True)
                continue
            engine.enqueue(download, job_id, leased=False)
        engine.publish(JobListed(job_id=job_id, listed=len(tracker.outcomes), complete=False))
        return True

    def _poll(self) -> _Result:
        engine = self.engine
        slots = engine.daemon_slots()
        if slots <= 0:
            return _Result.FULL
        engine.set_feeder_status("listing: asking the farm for downloads")
        try:
            batch = engine.client.next_downloads(
                location=engine.config.location, count=min(slots, MAX_NEXT_COUNT)
            )
        except AuthError:
            raise
        except ApiError as exc:
            retry_at = time.time() + self._nap_length()
            log.warning(
                "asking for the next downloads failed; next try at %s: %s",
                time.strftime("%H:%M:%S", time.localtime(retry_at)),
                exc,
                extra={"problem": FARM_PROBLEM, "retry_at": retry_at},
            )
            return _Result.IDLE
        for rejected in batch.rejected:
            engine.refuse_listed(rejected, DAEMON_ORIGIN, leased=True)
        fresh = 0
        for download in batch.downloads:
            if engine.enqueue(download, DAEMON_ORIGIN, leased=True):
                fresh += 1
            else:
                engine.release_known(download)
        return _Result.WORKED if fresh else _Result.IDLE
