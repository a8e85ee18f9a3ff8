"""Where listed Downloads come in: the FeederHost the feeder (run/feeder.py) talks to.

A listed Download is queued once per run (a second listing of it, by another job or by
/downloads/next, is noted, not queued); a badly described one is refused and reported,
never retried; a lease of a Download this run already knows is settled (see
`release_known`). `refresh` describes a queued Download afresh, for a retry or for fresh
signed URLs.

Owned data: the feeder's status line (one string, replaced whole). Everything else it
changes belongs to the ledger, the queue or the farm's leases.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import replace

from cdl_tui.core.farm.api import FarmClient
from cdl_tui.core.model.errors import AuthError, CdlError
from cdl_tui.core.model.events import DownloadFailed, DownloadQueued, JobDone
from cdl_tui.core.model.models import Download, RejectedDownload
from cdl_tui.core.model.secrets import scrub
from cdl_tui.core.model.settings import EngineConfig
from cdl_tui.core.model.states import DAEMON_ORIGIN, FarmStatus, Outcome
from cdl_tui.core.state.jobs import JobTracker
from cdl_tui.core.state.ledger import Ledger
from cdl_tui.core.state.problems import download_problem
from cdl_tui.core.state.scheduler import QueuedDownload
from cdl_tui.core.state.shared import Shared

log = logging.getLogger("cdl.engine")


class Intake:
    def __init__(
        self,
        shared: Shared,
        client: FarmClient,
        config: EngineConfig,
        ledger: Ledger,
        *,
        threads: Callable[[], int],
        fatal: Callable[[CdlError], None],
    ) -> None:
        self.client = client
        self.config = config
        self.publish = shared.publish
        self._lock = shared.lock
        self.fatal = fatal
        self._ledger = ledger
        self._queue = shared.queue
        self._active = shared.active
        self._leases = shared.leases
        self._control = shared.control
        self._frames = shared.frames
        self._threads = threads
        self._regex = re.compile(config.regex) if config.regex else None
        self.status = "listing: starting"

    @property
    def stopping(self) -> bool:
        return self._control.stopping

    def trackers(self) -> list[JobTracker]:
        return self._ledger.trackers()

    def set_feeder_status(self, text: str) -> None:
        self.status = text

    def daemon_slots(self) -> int:
        """How many more Downloads the daemon may lease (pending at most 2 x threads)."""
        return 2 * self._threads() - self._queue.count(DAEMON_ORIGIN)

    def enqueue(self, download: Download, origin: str, *, leased: bool) -> bool:
        """Queue a Download unless this run has seen it; True if it was queued."""
        if self._control.stopping:
            if leased:  # leased just as we stop: give it straight back
                self._leases.report_raw(
                    download.download_id,
                    download.wire_id,
                    FarmStatus.PENDING,
                    0,
                    download.size,
                    quick=True,
                )
            return False
        download = self._filtered(download)
        if not self._ledger.first_sight(download.download_id, origin, download.size):
            return False  # seen this run: listed, not queued
        self._frames.listed(download)
        self.queue(QueuedDownload(download, origin, leased=leased))
        return True

    def queue(self, item: QueuedDownload) -> None:
        d = item.download
        self.publish(
            DownloadQueued(
                download_id=d.download_id,
                job_id=d.job_id,
                task_id=d.task_id,
                files=len(d.files),
                size=d.size,
                origin=item.origin,
            )
        )
        self._ledger.open(item)
        self._queue.put(item)

    def _filtered(self, download: Download) -> Download:
        """The Download with only the files --regex keeps."""
        if self._regex is None:
            return download
        kept = tuple(f for f in download.files if self._regex.search(f.relative_path))
        return replace(download, files=kept, size=sum(f.size for f in kept))

    def refresh(self, item: QueuedDownload) -> bool:
        """Describe the Download afresh from the farm (its task's listing), with fresh
        signed URLs; False if the farm could not (then what we had is kept)."""
        d = item.download
        try:
            for batch in self.client.iter_job_downloads(d.job_id, (d.task_id,), page_size=10):
                for fresh in batch.downloads:
                    if fresh.download_id == d.download_id:
                        # Reports keep the ID's type as first given, whatever this says.
                        item.download = replace(self._filtered(fresh), wire_id=d.wire_id)
                        item.refresh = False
                        item.changed()
                        return True
        except AuthError:
            raise
        except CdlError as exc:
            log.warning("could not describe %s afresh (%s); using what we had", d.label, exc)
            return False
        log.warning("%s is no longer in its task's listing; using what we had", d.label)
        return False

    def refuse_listed(
        self, rejected: RejectedDownload, origin: str, *, leased: bool, foreign: bool = False
    ) -> None:
        """A Download the farm described badly: report it, never retry it.

        `foreign`: a Download of another job, found in `origin`'s listing. It is refused
        for that listing only: it is not ours to fail on the farm, and its own job (if we
        list it too) still downloads it."""
        rejected = replace(rejected, reason=scrub(rejected.reason))
        download_id = rejected.download_id
        if not self._ledger.refused(rejected, origin, foreign=foreign):
            return
        log.error(
            "refused download %s: %s",
            download_id or "(no id)",
            rejected.reason,
            extra={"problem": download_problem(download_id) if download_id else None},
        )
        self.publish(
            DownloadFailed(
                download_id=download_id,
                job_id=rejected.job_id,
                task_id=rejected.task_id,
                reason=rejected.reason,
                attempt=0,
                will_retry=False,
                outcome=Outcome.REFUSED,
            )
        )
        if rejected.wire_id is not None and self._leases.reporting and not foreign:
            self._leases.report_fail(str(rejected.wire_id), rejected.reason)
            if leased:
                self._leases.report_raw(
                    str(rejected.wire_id), rejected.wire_id, FarmStatus.PENDING, 0, 0
                )
        self._ledger.check_drained()

    def job_failed(self, tracker: JobTracker, reason: str) -> None:
        """A job that cannot be listed at all (not on the farm): it counts as failed."""
        reason = scrub(reason)
        log.error("%s", reason, extra={"problem": f"job {tracker.job_id}"})
        self._ledger.job_failed(tracker, reason)
        self.publish(JobDone(job_id=tracker.job_id, downloads=0, failed=1))
        self._ledger.check_drained()

    def listing_finished(self, tracker: JobTracker) -> None:
        self._ledger.listing_finished(tracker)

    def release_known(self, download: Download) -> None:
        """The daemon was leased a Download this run already knows: settle the lease.

        Queued or running here (a job listing found it first): the lease is ours now, so
        its item is marked leased and heartbeats cover it. Done here: the farm did not get
        our report; say it again. Failed here: hold it (farm/leases.py) rather than handing
        it straight back, or the farm would offer it first again and starve the daemon.
        """
        download_id = download.download_id
        with self._lock:  # its outcome and where it is, seen at one moment
            _, outcome = self._ledger.outcome_of(download_id)
            active = self._active.get(download_id)
        if outcome is None:
            item = active.item if active is not None else None
            item = item or next(
                (i for i in self._queue.items() if i.download_id == download_id), None
            )
            if item is not None:
                item.leased = True
            return
        if outcome.ok:
            self._leases.report_raw(
                download.download_id, download.wire_id, FarmStatus.DOWNLOADED, 0, download.size
            )
            return
        item = self._ledger.given_up_item(download_id)
        if item is not None and outcome is Outcome.FAILED:
            item.leased = True
            self._leases.hold(item)
        else:
            self._leases.report_raw(
                download.download_id, download.wire_id, FarmStatus.PENDING, 0, download.size
            )
