"""The rules for how an attempt ends, and for giving a Download up or back.

A worker's run (run/download_run.py) returns an AttemptResult; `settle` applies it:

- DONE: report `downloaded`, record the task, count it.
- FAILED: back to the queue after a backoff (retry_delay x 2^(attempts-1), at most 60 s,
  with jitter), or given up after `max_attempts` (or at once if not retryable: REFUSED).
  Job mode gives the farm its Download back during the backoff; a daemon keeps its lease.
- NO_SPACE / BUSY: parked, looked at again in a few seconds. A Download waiting for disk
  longer than disk_wait_max is FAILED; a leased one waiting longer than
  disk_release_after goes back to the farm (a daemon lets it go entirely).
- STOPPED: cancelled (given up as CANCELLED) or stopped by a shutdown (given back).
- FATAL: the run ends (`fatal`), the Download is given back.

Giving up (FAILED, CANCELLED, REFUSED) tells the farm and keeps the Download for the retry
command; a daemon holds a failed lease for a while (farm/leases.py) instead of handing it
straight back, or the farm would offer it first again.

Owned data: none of its own; it changes the active set, the queue and the ledger, each
under its lock, and publishes after. Every reason that reaches a screen, a report, the
journal or the farm passes through `scrub` here or in the ledger's doors: a farm may have
echoed a secret into it.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from cdl_tui.core.model.attempts import AttemptEnd, AttemptResult, is_last_attempt
from cdl_tui.core.model.errors import CdlError
from cdl_tui.core.model.events import (
    DownloadCancelled,
    DownloadDone,
    DownloadFailed,
    DownloadWaiting,
)
from cdl_tui.core.model.models import Download
from cdl_tui.core.model.secrets import scrub
from cdl_tui.core.model.settings import EngineConfig
from cdl_tui.core.model.states import DAEMON_ORIGIN, FarmStatus, FileState, Outcome
from cdl_tui.core.model.views import HistoryEntry
from cdl_tui.core.state.active import ActiveDownload, ActiveFile
from cdl_tui.core.state.ledger import Ledger, given_up
from cdl_tui.core.state.problems import download_problem
from cdl_tui.core.state.scheduler import QueuedDownload
from cdl_tui.core.state.shared import Shared

log = logging.getLogger("cdl.engine")

WAITING_FOR_DISK = "WAITING FOR DISK"
BUSY = "BUSY"
MAX_BACKOFF = 60.0  # seconds between two attempts of a Download, at most


@dataclass(frozen=True)
class OutcomeRules:
    max_attempts: int = 5
    retry_delay: float = 2.0  # base of the backoff between attempts
    disk_retry: float = 5.0  # seconds between looks for a Download waiting for space
    disk_release_after: float = 120.0
    disk_wait_max: float = 1800.0

    @classmethod
    def of(cls, config: EngineConfig) -> OutcomeRules:
        return cls(
            max_attempts=config.max_attempts,
            retry_delay=config.retry_delay,
            disk_retry=config.disk_retry,
            disk_release_after=config.disk_release_after,
            disk_wait_max=config.disk_wait_max,
        )

    def backoff(self, attempts: int) -> float:
        """Seconds before the next attempt, after `attempts` failed ones (with jitter)."""
        delay = min(MAX_BACKOFF, self.retry_delay * 2.0 ** (attempts - 1))
        return delay * random.uniform(0.5, 1.0)


class Outcomes:
    def __init__(
        self,
        shared: Shared,
        rules: OutcomeRules,
        ledger: Ledger,
        fatal: Callable[[CdlError], None],
    ) -> None:
        self._lock = shared.lock
        self._publish = shared.publish
        self._active = shared.active
        self._queue = shared.queue
        self._leases = shared.leases
        self._control = shared.control
        self._problems = shared.problems
        self.rules = rules
        self._ledger = ledger
        self._fatal = fatal

    def settle(self, active: ActiveDownload, result: AttemptResult) -> None:
        """Apply how an attempt ended (the worker's run is over)."""
        end = result.end
        if end is AttemptEnd.DONE:
            self._finish(active)
        elif end is AttemptEnd.FAILED:
            self._failed(active, result)
        elif end is AttemptEnd.NO_SPACE:
            self._park(active, WAITING_FOR_DISK, result.reason, self.rules.disk_retry)
        elif end is AttemptEnd.BUSY:
            self._park(active, BUSY, result.reason, max(2.0, self.rules.disk_retry))
        else:
            if end is AttemptEnd.FATAL and result.error is not None:
                self._fatal(result.error)
            self._stopped(active)

    def _end_attempt(self, active: ActiveDownload, outcome: str, error: str = "") -> None:
        with self._lock:
            self._active.pop(active.download.download_id)
            files = active.file_details(running=False)
            active.record.end_attempt(outcome, time.time(), files, error)

    def _finish(self, active: ActiveDownload) -> None:
        """Every file is in place: report `downloaded`, record the task."""
        d = active.download
        self._leases.report(active.item, FarmStatus.DOWNLOADED, d.size, closing=True)
        states = {f.state for f in active.files}
        if FileState.COMPLETE in states or not states:  # a task without files is done too
            outcome = Outcome.DL
        elif states == {FileState.SKIPPED}:
            outcome = Outcome.SKIPPED
        else:
            outcome = Outcome.CACHED
        seconds = time.monotonic() - active.started
        fetched = sum(f.remote.size for f in active.files if f.state is FileState.COMPLETE)
        entry = task_entry(d, outcome, path=str(active.root or ""), seconds=seconds)
        with self._lock:  # from running to done in one step, as a snapshot sees it
            self._end_attempt(active, "done")
            self._ledger.done(entry, active.record.detail("done", outcome.value, ""))
        self._problems.clear(download_problem(d.download_id))
        self._publish(
            DownloadDone(
                download_id=d.download_id,
                job_id=d.job_id,
                task_id=d.task_id,
                outcome=outcome,
                files=len(active.files),
                bytes_downloaded=fetched,
                seconds=seconds,
            )
        )
        self._ledger.after_outcome(d.download_id)

    def _failed(self, active: ActiveDownload, result: AttemptResult) -> None:
        """One attempt failed: back to the queue with backoff, or given up after the last."""
        reason = scrub(result.reason)
        item = active.item
        retryable = result.retryable
        give_up = is_last_attempt(item.attempts, self.rules.max_attempts, retryable=retryable)
        item.attempts += 1
        item.last_error = reason
        item.changed()
        outcome = Outcome.FAILED if retryable else Outcome.REFUSED
        d = item.download
        log.warning(
            "%s attempt %d/%d failed: %s",
            d.label,
            item.attempts,
            self.rules.max_attempts,
            reason,
            extra={"problem": download_problem(d.download_id)},
        )
        self._end_attempt(active, "failed", reason)
        self._publish(
            DownloadFailed(
                download_id=d.download_id,
                job_id=d.job_id,
                task_id=d.task_id,
                reason=reason,
                attempt=item.attempts,
                will_retry=not give_up,
                outcome=outcome,
            )
        )
        if give_up:
            afile = _file_at(active, result.failed_path)
            if afile is not None:
                self._record_failed_file(active, afile)
            self.give_back(item, outcome, reason, failed_files=1 if afile is not None else 0)
            return
        if item.origin != DAEMON_ORIGIN:
            # Job mode: we are not working on it until the backoff ends; let it go.
            self._leases.report(item, FarmStatus.PENDING, 0, closing=True)
        item.not_before = time.monotonic() + self.rules.backoff(item.attempts)
        item.changed()
        self._queue.put(item)

    def _record_failed_file(self, active: ActiveDownload, afile: ActiveFile) -> None:
        d = active.download
        with self._lock:
            self._ledger.counters.files_failed += 1
            self._ledger.record(
                HistoryEntry(
                    kind="file",
                    outcome=Outcome.FAILED,
                    download_id=d.download_id,
                    job_id=d.job_id,
                    task_id=d.task_id,
                    path=str(afile.dest),
                    size=afile.remote.size,
                    seconds=time.monotonic() - active.started,
                    finished_at=time.time(),
                    reason=afile.detail,
                )
            )

    def _park(self, active: ActiveDownload, state: str, reason: str, delay: float) -> None:
        """Not now (no disk space, a file busy elsewhere): queued again after `delay`."""
        item = active.item
        self._end_attempt(active, state.lower())
        now = time.monotonic()
        if item.waiting != state:
            item.waiting, item.waiting_since = state, now
            log.warning(
                "%s %s: %s",
                item.download.label,
                state,
                reason,
                extra={"problem": download_problem(item.download_id)},
            )
            self._publish(
                DownloadWaiting(
                    download_id=item.download_id,
                    job_id=item.download.job_id,
                    task_id=item.download.task_id,
                    state=state,
                    reason=reason,
                )
            )
        item.last_error = reason
        item.not_before = now + delay
        item.changed()
        waited = now - item.waiting_since
        if state == WAITING_FOR_DISK and waited > self.rules.disk_wait_max:
            item.waiting = None
            reason = f"waited {waited:.0f} s for disk space (disk_wait_max): {reason}"
            self.give_back(item, Outcome.FAILED, reason)
            return
        if waited > self.rules.disk_release_after and item.leased:
            # Held long: give the farm its Download back. A daemon lets it go entirely
            # (another daemon may have room); job mode keeps it queued.
            self._leases.report(item, FarmStatus.PENDING, 0, closing=True)
            if item.origin == DAEMON_ORIGIN:
                released = active.record.detail("history", "RELEASED", reason)
                self._ledger.forget(item.download_id, released)
                self._problems.clear(download_problem(item.download_id))  # no longer ours
                label = item.download.label
                log.warning("%s released to the farm after waiting %.0fs", label, waited)
                return
        self._queue.put(item)

    def unpark(self, item: QueuedDownload) -> None:
        """The Download got what it waited for (disk space, its files): it is running."""
        if item.waiting is not None:
            log.info("%s no longer %s", item.download.label, item.waiting)
            self._problems.clear(download_problem(item.download_id))
            item.waiting = None
            item.changed()

    def _stopped(self, active: ActiveDownload) -> None:
        """Stopped mid-Download (cancel or shutdown): its temp files are dealt with."""
        self._end_attempt(active, "cancelled" if active.cancelled else "given back")
        if active.cancelled:
            self.give_back(active.item, Outcome.CANCELLED, "cancelled")
        else:
            self._leases.report(
                active.item, FarmStatus.PENDING, 0, closing=True, quick=self._control.stopping
            )

    def give_back(
        self, item: QueuedDownload, outcome: Outcome, reason: str, failed_files: int = 0
    ) -> None:
        """FAILED, CANCELLED or REFUSED: tell the farm, keep it for the retry command."""
        reason = scrub(reason)
        d = item.download
        if outcome is not Outcome.CANCELLED and self._leases.reporting:
            self._leases.report_fail(d.download_id, reason)
        if outcome is Outcome.FAILED and item.origin == DAEMON_ORIGIN and item.leased:
            self._leases.hold(item)  # handed straight back, it would be offered to us first
        else:
            # `pending` only if this run ever claimed it: a queued job-mode Download we
            # never touched may be `downloaded` on the farm already.
            self._leases.report(item, FarmStatus.PENDING, 0, closing=True, force=item.claimed)
        entry = task_entry(d, outcome, reason=reason)
        self._ledger.gave_up(item, given_up(item, outcome, reason, failed_files), entry)
        if outcome is Outcome.CANCELLED:
            self._problems.clear(download_problem(d.download_id))
            self._publish(
                DownloadCancelled(download_id=d.download_id, job_id=d.job_id, task_id=d.task_id)
            )
        else:
            log.error(
                "%s %s: %s",
                d.label,
                outcome.value,
                reason,
                extra={"problem": download_problem(d.download_id)},
            )
        self._ledger.after_outcome(d.download_id)


def _file_at(active: ActiveDownload, relative_path: str | None) -> ActiveFile | None:
    if relative_path is None:
        return None
    return next((f for f in active.files if f.remote.relative_path == relative_path), None)


def task_entry(
    download: Download, outcome: Outcome, *, path: str = "", seconds: float = 0.0, reason: str = ""
) -> HistoryEntry:
    """The history entry of a Download that ended (`path`: the folder its files went to)."""
    return HistoryEntry(
        kind="task",
        outcome=outcome,
        download_id=download.download_id,
        job_id=download.job_id,
        task_id=download.task_id,
        path=path,
        size=download.size,
        seconds=seconds,
        finished_at=time.time(),
        reason=reason,
    )
