"""What a running attempt reports into, and asks of the rest: the AttemptHost of a run.

`begin` opens an attempt (its ActiveDownload, its record, the `downloading` claim);
`prepare` plans its files and holds their paths and disk space while it runs; the file
methods move each file's state and bytes, count what finished and record it in history.
Like rclone's accounting, the run reports into this and this never calls the run back.

Owned data: the rate meter of the whole run (its own lock), the set of warnings already
given. The ActiveDownload and its files belong to the active set, and are written here
under the state lock; events go out after it is released.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cdl_tui.core.files.destination import DestinationPolicy, plan_files
from cdl_tui.core.files.diskguard import DiskGuard
from cdl_tui.core.files.folders import OpenRoots
from cdl_tui.core.files.place import DownloadFiles
from cdl_tui.core.files.transfer import Transfer
from cdl_tui.core.files.verified import VerifiedFiles
from cdl_tui.core.model.events import (
    DownloadStarted,
    FileDone,
    FileFailed,
    FileStateChanged,
)
from cdl_tui.core.model.secrets import scrub
from cdl_tui.core.model.settings import EngineConfig, Permissions
from cdl_tui.core.model.states import FarmStatus, FileState, file_outcome
from cdl_tui.core.model.views import HistoryEntry, RateMeter
from cdl_tui.core.state.active import ActiveDownload, ActiveFile
from cdl_tui.core.state.ledger import Ledger
from cdl_tui.core.state.outcomes import Outcomes
from cdl_tui.core.state.scheduler import QueuedDownload
from cdl_tui.core.state.shared import Shared

log = logging.getLogger("cdl.engine")

# Seconds a worker's `downloading` claim waits in the report queue. The farm learns of the
# claim a moment later (a daemon's Downloads are leased by /downloads/next already); in
# exchange a Download done within it costs one request, not two.
CLAIM_GRACE = 1.0


@dataclass(frozen=True)
class FilesSettings:
    permissions: Permissions
    on_conflict: str = "overwrite"
    force: bool = False  # fetch every file, and reserve no disk space

    @classmethod
    def of(cls, config: EngineConfig) -> FilesSettings:
        return cls(config.permissions, config.on_conflict, config.force)


class Attempts:
    def __init__(
        self,
        shared: Shared,
        settings: FilesSettings,
        ledger: Ledger,
        outcomes: Outcomes,
        *,
        policy: DestinationPolicy,
        disk: DiskGuard,
        verified: VerifiedFiles,
        transfer: Transfer,
        refresh: Callable[[QueuedDownload], bool],
    ) -> None:
        self._lock = shared.lock
        self._publish = shared.publish
        self._active = shared.active
        self._control = shared.control
        self._leases = shared.leases
        self._frames = shared.frames
        self._settings = settings
        self._ledger = ledger
        self._outcomes = outcomes
        self._policy = policy
        self._disk = disk
        self._verified = verified
        self._transfer = transfer
        self._refresh = refresh
        self.meter = RateMeter()  # bytes received by every worker
        self._warned: set[str] = set()
        self.roots = OpenRoots()  # Downloads' roots, kept open between them: close()

    def begin(self, item: QueuedDownload, worker: str) -> ActiveDownload:
        """A worker starts an attempt of the Download."""
        with self._lock:
            active = ActiveDownload(item=item, worker=worker, record=self._ledger.open(item))
            active.record.start_attempt(worker, active.started_at)
            self._active.add(active)
        d = item.download
        self._publish(
            DownloadStarted(
                download_id=d.download_id,
                job_id=d.job_id,
                task_id=d.task_id,
                worker=worker,
                attempt=item.attempts + 1,
            )
        )
        # The claim waits a moment: a Download done within it is reported once.
        self._leases.report(item, FarmStatus.DOWNLOADING, 0, delay=CLAIM_GRACE)
        return active

    # -- the AttemptHost of run/download_run.py --------------------------------------------

    @contextmanager
    def prepare(self, active: ActiveDownload) -> Iterator[DownloadFiles]:
        download = active.download
        root, warning = self._policy.root_for(download)
        if warning:
            self._warn_once(str(root), f"{download.label}: {warning}")
        planned = plan_files(download, root)
        with self._lock:
            active.root = root
            active.files = [ActiveFile(remote, dest) for remote, dest in planned]
        settings = self._settings
        files = DownloadFiles(
            root,
            permissions=settings.permissions,
            verified=self._verified,
            transfer=self._transfer,
            on_conflict=settings.on_conflict,
            force=settings.force,
            roots=self.roots,
        )
        reservation = None
        try:
            # The only Download in this process writing these paths (two of one job can
            # name the same file); raises DestinationBusy.
            self._active.claim_paths(active)
            if not settings.force:
                reservation = self._disk.reserve_for(root, planned)
            self._outcomes.unpark(active.item)
            yield files
        finally:
            self._disk.release(reservation)
            self._active.release_paths(active)
            files.close()

    def refresh(self, active: ActiveDownload) -> bool:
        return self._refresh(active.item)

    def checkpoint(self, active: ActiveDownload, wait: float = 0.0) -> None:
        if wait > 0:
            self._control.sleep(active, wait)
        self._control.checkpoint(active)

    def file_state(
        self, active: ActiveDownload, afile: ActiveFile, state: FileState, reason: str = ""
    ) -> None:
        download_id = active.download.download_id
        if state is FileState.FAILED:
            # A file failed every try of this attempt (history records it if we give up).
            reason = scrub(reason)
            with self._lock:
                self._count_hashed(afile)
                afile.state = state
                afile.detail = reason
            path = afile.remote.relative_path
            self._publish(FileFailed(download_id=download_id, path=path, reason=reason))
            return
        with self._lock:
            self._count_hashed(afile)
            afile.state = state
            if state in (FileState.HASHING, FileState.DOWNLOADING):
                active.done -= afile.done
                afile.done = 0
        if state is FileState.DOWNLOADING:  # fetched (again): not in place until it is
            self._frames.placed(active.download.job_id, afile.remote.relative_path, None)
        self._publish(
            FileStateChanged(download_id=download_id, path=afile.remote.relative_path, state=state)
        )

    def file_done(
        self, active: ActiveDownload, afile: ActiveFile, state: FileState, seconds: float
    ) -> None:
        d = active.download
        size = afile.remote.size
        again = seconds < 0  # an earlier attempt placed it, counted and recorded it
        outcome = file_outcome(state)
        with self._lock:
            self._count_hashed(afile)
            afile.state = state
            active.done += size - afile.done
            afile.done = size
            if not again:
                self._ledger.counters.file_placed(outcome, size)
                active.item.settled[afile.remote.relative_path] = state
                self._ledger.record(
                    HistoryEntry(
                        kind="file",
                        outcome=outcome,
                        download_id=d.download_id,
                        job_id=d.job_id,
                        task_id=d.task_id,
                        path=str(afile.dest),
                        size=size,
                        seconds=seconds,
                        finished_at=time.time(),
                    )
                )
        # A kept differing file (SKIPPED) is on disk with its own size.
        on_disk = _size_of(afile.dest) if state is FileState.SKIPPED else size
        self._frames.placed(d.job_id, afile.remote.relative_path, on_disk)
        if again:
            return
        self._publish(
            FileDone(
                download_id=d.download_id,
                job_id=d.job_id,
                task_id=d.task_id,
                path=afile.remote.relative_path,
                size=size,
                outcome=outcome,
                seconds=seconds,
            )
        )

    def progress(
        self, active: ActiveDownload, afile: ActiveFile, count: int, *, network: bool
    ) -> None:
        with self._lock:
            afile.done += count
            active.done += count
        if network:
            self.meter.add(count)
            active.meter.add(count)

    def _count_hashed(self, afile: ActiveFile) -> None:
        """A file leaving HASHING was checked by hashing it. Call with the lock held."""
        if afile.state is FileState.HASHING:
            self._ledger.counters.files_hashed += 1
            self._ledger.counters.bytes_hashed += afile.remote.size

    def _warn_once(self, key: str, message: str) -> None:
        """Log a warning the first time `key` comes up (e.g. a fallback output folder)."""
        with self._lock:
            if key in self._warned:
                return
            self._warned.add(key)
        log.warning("%s", message)


def _size_of(path: Path) -> int:
    try:
        return path.lstat().st_size
    except OSError:
        return 0
