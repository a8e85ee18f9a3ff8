"""What this run has settled: counters, outcomes, jobs, history, given-up Downloads.

Owned data, all under the state lock given at construction (the engine's one lock for
state/, so that a snapshot sees it as one with the queue and the active set): the
counters, the outcome of every Download this run has seen (None while it is ours), the
job trackers, the history, the detail records (state/details.py) and the Downloads given
up (kept for the retry command). Methods take the lock themselves (it is re-entrant);
events and log lines go out after it is released. `Totals`, the snapshot's frozen copy of
the counters, is made by `Counters.frozen()`.

The rules of a job's end: a job is complete when its listing reached its last page and
every Download it listed has an outcome; then JobDone is published once (and again if a
retry reopens it and it completes again), and `on_job_complete` is told. With
--exit-when-done (jobs only), the run is drained when every job is complete or failed and
nothing is queued or running: `on_drained` is called once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from cdl_tui.core.files.journal import Journal
from cdl_tui.core.model.events import Event, JobDone
from cdl_tui.core.model.jobspec import JobSpec
from cdl_tui.core.model.models import Download, RejectedDownload
from cdl_tui.core.model.settings import EngineConfig
from cdl_tui.core.model.states import Outcome
from cdl_tui.core.model.views import (
    ActiveView,
    DownloadDetail,
    FailedView,
    HistoryEntry,
    JobView,
    Totals,
)
from cdl_tui.core.state.details import (
    DEFAULT_KEEP_FINISHED,
    DetailBook,
    DownloadRecord,
    refused_detail,
)
from cdl_tui.core.state.history import History
from cdl_tui.core.state.jobs import JobTracker
from cdl_tui.core.state.scheduler import QueuedDownload

log = logging.getLogger("cdl.engine")


@dataclass
class Counters:
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
    jobs_failed: int = 0
    files_hashed: int = 0
    bytes_hashed: int = 0

    def frozen(self) -> Totals:
        return Totals(**self.__dict__)

    def given_up(self, outcome: Outcome, change: int = 1) -> None:
        """Count (or, with -1, take back) a Download given up as `outcome`: FAILED,
        REFUSED or CANCELLED."""
        if outcome is Outcome.CANCELLED:
            self.downloads_cancelled += change
        elif outcome is Outcome.REFUSED:
            self.downloads_refused += change
        elif outcome is Outcome.FAILED:
            self.downloads_failed += change
        else:
            raise ValueError(f"{outcome} is not an outcome a Download is given up with")

    def file_placed(self, outcome: Outcome, size: int) -> None:
        """A file is in place: DL (downloaded), CACHED or SKIPPED."""
        if outcome is Outcome.DL:
            self.files_downloaded += 1
            self.bytes_downloaded += size
        elif outcome is Outcome.CACHED:
            self.files_cached += 1
            self.bytes_cached += size
        else:
            self.files_skipped += 1


@dataclass(eq=False)
class GivenUp:
    """A Download this run gave up on (failed, cancelled or refused), kept for retry."""

    view: FailedView
    item: QueuedDownload | None
    failed_files: int = 0  # counted in files_failed; taken back if it is retried
    refused: DownloadDetail | None = None  # without an item: all details() knows of it


class Ledger:
    def __init__(
        self,
        lock: threading.RLock,
        publish: Callable[[Event], None],
        config: EngineConfig,
        journal: Journal | None,
        *,
        idle: Callable[[], bool],
        on_drained: Callable[[], None],
        on_job_complete: Callable[[JobView], None],
    ) -> None:
        jobs, history_size = config.jobs, config.history_size
        keep_details = DEFAULT_KEEP_FINISHED if history_size is None else history_size
        drains = config.exit_when_done and not config.daemon
        self._lock = lock
        self._publish = publish
        self.counters = Counters()
        self.history = History(history_size)
        self.book = DetailBook(keep_details)  # what details() shows
        self.run_started = time.time()
        self._journal = journal
        self._drains = drains  # --exit-when-done in job mode: stop once all is done
        self._idle = idle  # nothing queued or running, and no stop asked for
        self._on_drained = on_drained
        self._on_job_complete = on_job_complete
        self._drained = False
        self._trackers = [JobTracker(spec) for spec in dict.fromkeys(jobs)]  # each job once
        self._known: dict[str, Outcome | None] = {}  # every download_id this run has seen
        # In the order they were given up: ours by ID (the retry command's list); those
        # refused without an ID, or in another job's listing, by (origin, ID, serial).
        self._given_up: dict[str | tuple[str, str | None, int], GivenUp] = {}
        self._refused_seen: set[tuple[str, str | None]] = set()  # (origin, ID) of those
        self._refused_serial = 0

    # -- listings --------------------------------------------------------------------------

    def trackers(self) -> list[JobTracker]:
        with self._lock:
            return list(self._trackers)

    def add_jobs(self, specs: Iterable[JobSpec]) -> list[JobSpec]:
        with self._lock:
            existing = {t.spec for t in self._trackers}
            added = []
            for spec in specs:
                if spec not in existing:
                    self._trackers.append(JobTracker(spec))
                    existing.add(spec)
                    added.append(spec)
            return added

    def open(self, item: QueuedDownload) -> DownloadRecord:
        """The detail record of a queued Download (see DetailBook.open)."""
        with self._lock:
            return self.book.open(item)

    def first_sight(self, download_id: str, origin: str, size: int = 0) -> bool:
        """Note that `origin` listed the Download (of `size` bytes); True if this run had
        not seen it."""
        with self._lock:
            seen = download_id in self._known
            if not seen:
                self._known[download_id] = None
            self._note_listed(origin, download_id, self._known[download_id], size)
            return not seen

    def outcome_of(self, download_id: str) -> tuple[bool, Outcome | None]:
        """(seen by this run, its outcome: None while it is ours)."""
        with self._lock:
            return download_id in self._known, self._known.get(download_id)

    def given_up_item(self, download_id: str) -> QueuedDownload | None:
        with self._lock:
            given = self._given_up.get(download_id)
            return given.item if given is not None else None

    def refused(self, rejected: RejectedDownload, origin: str, *, foreign: bool) -> bool:
        """Note a Download the farm described badly; False if it was noted already.
        `foreign`: another job's, refused for `origin`'s listing only."""
        download_id = rejected.download_id
        with self._lock:
            if foreign or download_id is None:
                key = (origin, download_id)
                if download_id is not None and key in self._refused_seen:
                    return False
                self._refused_seen.add(key)
            else:
                if download_id in self._known:
                    return False
                self._known[download_id] = Outcome.REFUSED
                self._note_listed(origin, download_id, Outcome.REFUSED)
            self.counters.given_up(Outcome.REFUSED)
            given = GivenUp(
                _failed_view(rejected, Outcome.REFUSED, rejected.reason),
                None,
                refused=refused_detail(rejected, origin),
            )
            if foreign or download_id is None:
                self._refused_serial += 1
                self._given_up[(origin, download_id, self._refused_serial)] = given
            else:
                self._given_up[download_id] = given
            return True

    def job_failed(self, tracker: JobTracker, reason: str) -> None:
        with self._lock:
            if tracker.error is None:
                self.counters.jobs_failed += 1
            tracker.error = reason

    def listing_finished(self, tracker: JobTracker) -> None:
        with self._lock:
            tracker.listing_complete = True
        self.check_job(tracker)
        self.check_drained()

    def _note_listed(
        self, origin: str, download_id: str, outcome: Outcome | None, size: int = 0
    ) -> None:
        for tracker in self._trackers:
            if tracker.job_id == origin:
                tracker.note(download_id, outcome, size)

    # -- outcomes --------------------------------------------------------------------------

    def record(self, entry: HistoryEntry) -> None:
        """Add to this run's history (and to the journal's)."""
        entry = replace(entry, run_started=self.run_started)
        with self._lock:
            self.history.add(entry)
        if self._journal is not None:
            self._journal.record_history(entry)

    def done(self, entry: HistoryEntry, detail: DownloadDetail) -> None:
        """A Download is done (every file in place): `entry` is its task's history."""
        with self._lock:
            self.book.close(entry.download_id, detail)
            self.counters.downloads_done += 1
            self.record(entry)
            self.set_outcome(entry.download_id, entry.outcome)

    def gave_up(self, item: QueuedDownload, given: GivenUp, entry: HistoryEntry) -> None:
        """A Download is given up (FAILED, CANCELLED or REFUSED), kept for a retry."""
        outcome = given.view.outcome
        with self._lock:
            self.counters.given_up(outcome)
            self._given_up[item.download_id] = given
            self.record(entry)
            self.set_outcome(item.download_id, outcome)

    def take_back(self, download_id: str) -> QueuedDownload | None:
        """The retry command: the given-up Download, no longer given up (None if there is
        none to retry). Its failure, and the files it failed on, are taken back."""
        with self._lock:
            given = self._given_up.get(download_id)
            if given is None or given.item is None:
                return None
            del self._given_up[download_id]
            self.set_outcome(download_id, None)
            self.counters.given_up(given.view.outcome, -1)
            self.counters.files_failed -= given.failed_files
            return given.item

    def retryable(self) -> list[str]:
        with self._lock:
            return [
                i for i, g in self._given_up.items() if isinstance(i, str) and g.item is not None
            ]

    def forget(self, download_id: str, detail: DownloadDetail) -> None:
        """Released to the farm: not ours, and no outcome (it may come back)."""
        with self._lock:
            self._known.pop(download_id, None)
            self.book.close(download_id, detail)

    def set_outcome(self, download_id: str, outcome: Outcome | None) -> None:
        with self._lock:
            self._known[download_id] = outcome
            for tracker in self._trackers:
                if download_id in tracker.outcomes:
                    tracker.settle(download_id, outcome)

    def after_outcome(self, download_id: str) -> None:
        """Jobs that listed the Download may be complete now, and the run drained."""
        with self._lock:
            trackers = [t for t in self._trackers if download_id in t.outcomes]
        for tracker in trackers:
            self.check_job(tracker)
        self.check_drained()

    def check_job(self, tracker: JobTracker) -> None:
        with self._lock:
            if tracker.announced or not tracker.complete:
                return
            tracker.announced = True
            view = tracker.view()
        log.info("job %s done: %d downloads, %d failed", view.job_id, view.listed, view.failed)
        self._publish(JobDone(job_id=view.job_id, downloads=view.listed, failed=view.failed))
        self._on_job_complete(view)

    def check_drained(self) -> None:
        if not self._drains:
            return
        with self._lock:
            if self._drained or not self._idle():
                return
            if not all(t.complete or t.error for t in self._trackers):
                return
            self._drained = True
        self._on_drained()

    # -- views -----------------------------------------------------------------------------

    def totals(self) -> Totals:
        with self._lock:
            return self.counters.frozen()

    def failed_views(self) -> tuple[FailedView, ...]:
        with self._lock:
            return tuple(g.view for g in self._given_up.values())

    def job_views(self, running: Iterable[ActiveView] = ()) -> tuple[JobView, ...]:
        """Each job asked for; with the bytes and rates of its Downloads `running` now."""
        done: dict[str, int] = {}
        rates: dict[str, float] = {}
        for active in running:
            done[active.job_id] = done.get(active.job_id, 0) + active.done
            rates[active.job_id] = rates.get(active.job_id, 0.0) + active.rate
        with self._lock:
            views = [t.view() for t in self._trackers]
        return tuple(
            replace(
                v,
                bytes_done=v.bytes_done + done.get(v.job_id, 0),
                rate=rates.get(v.job_id, 0.0),
            )
            for v in views
        )

    def job_history(self, job_id: str) -> tuple[list[HistoryEntry], list[HistoryEntry]]:
        """The job's file and task entries still kept."""
        with self._lock:
            files = [e for e in self.history.files if e.job_id == job_id]
            tasks = [e for e in self.history.tasks if e.job_id == job_id]
        return files, tasks

    def detail(self, download_id: str) -> DownloadDetail | None:
        """details() of a Download not running now."""
        with self._lock:
            given = self._given_up.get(download_id)
            if given is not None and given.item is None:
                return given.refused
            record = self.book.record(download_id)
            if record is not None and given is not None:
                return record.detail("failed", given.view.outcome.value, given.view.reason)
            if record is not None:
                item = record.item
                return record.detail("pending", item.waiting or "PENDING", item.last_error or "")
            finished = self.book.finished(download_id)
            if finished is not None:
                return finished
            # Refused in another job's listing: kept under that listing's key.
            return next(
                (
                    g.refused
                    for key, g in self._given_up.items()
                    if not isinstance(key, str) and g.view.download_id == download_id
                ),
                None,
            )


def _failed_view(
    download: Download | RejectedDownload,
    outcome: Outcome,
    reason: str,
    *,
    attempts: int = 0,
) -> FailedView:
    full = download if isinstance(download, Download) else None
    return FailedView(
        download_id=download.download_id,
        job_id=download.job_id,
        task_id=download.task_id,
        files=len(full.files) if full else 0,
        size=full.size if full else 0,
        attempts=attempts,
        reason=reason,
        outcome=outcome,
        at=time.time(),
    )


def given_up(item: QueuedDownload, outcome: Outcome, reason: str, failed_files: int) -> GivenUp:
    """The record of a Download given up now."""
    view = _failed_view(item.download, outcome, reason, attempts=item.attempts)
    return GivenUp(view, item, failed_files)
