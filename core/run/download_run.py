"""One worker's handling of one Download: plan, check, fetch, verify, report.

For each file: make its folder (PREPARING DIRECTORY); if it exists with the expected size,
hash it (HASHING EXISTING FILE) and keep it if the md5 matches (CACHED); a differing file
follows --on-conflict; otherwise fetch it (DOWNLOADING) through a verified temp file
(COMPLETE). A file is tried `file_attempts` times; if it still fails, this attempt of the
Download fails and the engine queues it again with backoff, up to `max_attempts`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import time
from pathlib import Path, PurePosixPath
from stat import S_ISDIR, S_ISREG
from typing import TYPE_CHECKING

from cdl_tui.core.files.destination import plan_files
from cdl_tui.core.files.diskguard import WaitForDisk
from cdl_tui.core.files.folders import Folder, FolderTree, LinkRefused
from cdl_tui.core.files.transfer import (
    DestinationBusy,
    Progress,
    StopRequested,
    Target,
    TransferError,
    destination_lock,
    fetch_file,
    hash_fd,
    partial_bytes,
    remove_partial,
)
from cdl_tui.core.model.errors import AuthError, CdlError
from cdl_tui.core.model.events import DownloadStarted
from cdl_tui.core.model.models import Download, RemoteFile
from cdl_tui.core.model.paths import UnsafePath
from cdl_tui.core.model.states import FarmStatus, FileState
from cdl_tui.core.state.active import ActiveDownload, ActiveFile
from cdl_tui.core.state.scheduler import QueuedDownload

if TYPE_CHECKING:
    from cdl_tui.core.engine import Engine

log = logging.getLogger("cdl.worker")

# Seconds a worker's `downloading` claim waits in the report queue. The farm learns of the
# claim a moment later (a daemon's Downloads are leased by /downloads/next already); in
# exchange a Download done within it costs one request, not two.
CLAIM_GRACE = 1.0
# Fresh URLs one file may get in one attempt: each must take the file further than it
# ever was (see _fetch), and this bounds a farm whose listing never stops answering.
MAX_REFRESHES = 64


class AttemptFailed(CdlError):
    """This attempt of the Download failed (on `afile`, if one file was the cause)."""

    def __init__(
        self, message: str, *, retryable: bool = True, afile: ActiveFile | None = None
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.afile = afile


class DownloadRun:
    def __init__(self, engine: Engine, item: QueuedDownload, worker: str) -> None:
        self.engine = engine
        self.item = item
        self.active: ActiveDownload = engine.begin(item, worker)
        self.config = engine.config
        self._tree: FolderTree | None = None  # the Download's folders, opened safely
        # Folders (relative parts) whose renames are not synced yet.
        self._renamed_into: set[tuple[str, ...]] = set()

    def run(self) -> None:
        engine, active = self.engine, self.active
        download = self.item.download
        engine.publish(
            DownloadStarted(
                download_id=download.download_id,
                job_id=download.job_id,
                task_id=download.task_id,
                worker=active.worker,
                attempt=self.item.attempts + 1,
            )
        )
        reservation = None
        try:
            # The claim waits a moment: a Download done within it is reported once.
            engine.leases.report(self.item, FarmStatus.DOWNLOADING, 0, delay=CLAIM_GRACE)
            if self.item.refresh:
                engine.refresh(self.item)
                download = self.item.download
            root, planned = self._plan(download)
            engine.claim_paths(active)
            if not self.config.force:
                reservation = engine.disk.reserve_for(root, planned)
            engine.unpark(self.item)
            for afile in active.files:
                self._handle_file(afile)
            self._sync_dirs()
        except StopRequested:
            engine.released(active)
            return
        except WaitForDisk as exc:
            engine.wait_for_disk(active, str(exc))
            return
        except DestinationBusy as exc:
            engine.requeue_busy(active, str(exc))
            return
        except AttemptFailed as exc:
            if engine.gives_up(self.item, retryable=exc.retryable):
                self._remove_partials()  # no later try will resume them
            engine.attempt_failed(active, str(exc), retryable=exc.retryable, afile=exc.afile)
            return
        except AuthError as exc:
            engine.fatal(exc)
            engine.released(active)
            return
        except Exception as exc:  # a bug or an unforeseen OS error: fail the attempt, go on
            log.exception("unexpected error on %s", download.label)
            if engine.gives_up(self.item, retryable=True):
                self._remove_partials()
            engine.attempt_failed(active, f"unexpected error: {exc}", retryable=True)
            return
        finally:
            engine.disk.release(reservation)
            engine.release_paths(active)
            if self._tree is not None:
                self._tree.close()
        engine.finish(active)

    @property
    def _stall(self) -> tuple[float, float] | None:
        config = self.config
        return (config.stall_timeout, config.stall_min_rate) if config.stall_min_rate else None

    def _plan(self, download: Download) -> tuple[Path, list[tuple[RemoteFile, Path]]]:
        """The root (a real path, checked) and each file's destination; the folder tree."""
        root, warning = self.engine.policy.root_for(download)
        if warning:
            self.engine.warn_once(str(root), f"{download.label}: {warning}")
        try:
            planned = plan_files(download, root)
        except UnsafePath as exc:
            raise AttemptFailed(f"refused: {exc}", retryable=False) from None
        self.engine.set_files(self.active, root, planned)
        perms = self.config.permissions
        self._tree = FolderTree(root, perms.dir_mode, perms.group)
        return root, planned

    def _checkpoint(self) -> None:
        self.engine.control.checkpoint(self.active)

    @property
    def tree(self) -> FolderTree:
        if self._tree is None:
            raise RuntimeError("the Download's folders are known once its files are planned")
        return self._tree

    def _target(self, afile: ActiveFile) -> Target:
        """The file's folder, created and opened without following links, and its name."""
        parts = _parts(afile)
        try:
            folder = self.tree.folder(parts[:-1])
        except LinkRefused as exc:
            # Someone put a link (or a file) where our folder goes: never write through it.
            raise self._file_failed(afile, f"refused: {exc.strerror}", retryable=False) from None
        except OSError as exc:
            where = afile.dest.parent
            raise self._file_failed(afile, f"cannot create {where}: {_why(exc)}") from None
        return Target(folder, parts[-1])

    def _handle_file(self, afile: ActiveFile) -> None:
        engine, active = self.engine, self.active
        started = time.monotonic()
        self._checkpoint()
        target = None
        if active.item.settled.get(afile.remote.relative_path) is not None:
            target = self._target(afile)
            if engine.restore_settled(active, afile, target.folder.lstat(target.name)):
                # Renamed by an earlier attempt of this Download, which failed before syncing.
                self._renamed_into.add(_parts(afile)[:-1])
                return
        engine.set_file_state(active, afile, FileState.PREPARING)
        target = target or self._target(afile)
        if not self.config.force and target.folder.lstat(target.name) is not None:
            kept = self._existing(afile, target)
            if kept is not None:
                engine.file_finished(active, afile, kept, time.monotonic() - started)
                return
        engine.set_file_state(active, afile, FileState.DOWNLOADING)
        self._fetch(afile, target, started)

    def _fetch(self, afile: ActiveFile, target: Target, started: float) -> None:
        """Fetch the file through a verified temp file, up to `file_attempts` tries.

        A refused URL (expired) is replaced at once by a fresh one from the farm, keeping
        the bytes on disk. Tries are counted so that storage cannot keep a worker for
        ever: the refusal of a URL that had gone stale costs no try, and neither does the
        rest of the file once a fresh URL has brought it further than it ever was (its
        tries start again); a fresh URL refused before any new byte costs one.
        """
        engine, active = self.engine, self.active
        attempts = self.config.file_attempts
        tries = refreshes = 0
        fresh_url = False  # the URL was just refreshed and has not been tried yet
        furthest = partial_bytes(target, afile.remote)  # bytes on disk at best so far
        while True:
            tries += 1
            progress = Progress(
                on_bytes=lambda n: engine.progress(active, afile, n, network=True),
                on_resumed=lambda n: engine.progress(active, afile, n, network=False),
                check_stop=self._checkpoint,
                throttle=engine.throttle.consume,
                largest_read=engine.throttle.largest_read,
                stall=self._stall,
            )
            try:
                resumed = fetch_file(
                    engine.fetcher,
                    afile.remote,
                    target,
                    permissions=self.config.permissions,
                    progress=progress,
                )
            except TransferError as exc:
                if exc.no_space:
                    raise WaitForDisk(str(exc)) from None
                kept = partial_bytes(target, afile.remote)
                if fresh_url and kept > furthest:
                    tries = 1  # a fresh URL took the file further: its tries start again
                furthest = max(furthest, kept)
                stale = exc.expired and not fresh_url  # not a fresh URL refused at once
                fresh_url = False
                if exc.unsafe:
                    raise self._file_failed(afile, str(exc), retryable=False) from None
                if not exc.retryable or (tries >= attempts and not stale):
                    raise self._file_failed(afile, str(exc)) from None
                log.info("%s: %s (try %d/%d)", afile.remote.relative_path, exc, tries, attempts)
                engine.set_file_state(active, afile, FileState.DOWNLOADING)  # resets progress
                if exc.expired and refreshes < MAX_REFRESHES and self._refresh_url(afile):
                    # A fresh signed URL, at once; the bytes on disk are kept and resumed.
                    refreshes += 1
                    fresh_url = True
                    if stale:
                        tries -= 1  # a URL that went stale is not this file's failure
                    continue
                if tries >= attempts:  # stale, and the farm had no fresh URL
                    raise self._file_failed(afile, str(exc)) from None
                backoff = self.config.file_retry_delay * 2 ** (tries - 1)
                engine.control.sleep(active, backoff * random.uniform(0.5, 1.0))  # jitter
                continue
            self._renamed_into.add(_parts(afile)[:-1])
            if resumed:
                log.info("%s: resumed from byte %d", afile.remote.relative_path, resumed)
            engine.verified.remember(afile.dest, afile.remote, target.folder.lstat(target.name))
            engine.file_finished(active, afile, FileState.COMPLETE, time.monotonic() - started)
            return

    def _sync_dirs(self) -> None:
        """Make this Download's renames durable before it is reported `downloaded`: once
        per folder, not once per file."""
        for parts in self._renamed_into:
            folder = self.tree.existing(parts)
            if folder is not None:
                folder.sync()
        self._renamed_into.clear()

    def _remove_partials(self) -> None:
        """The Download is given up: its temp files go, each under its lock (one another
        process is writing is left to it), links at their names removed, never followed.
        Folders that do not exist hold none of ours, and none are created for this."""
        if self._tree is None:
            return
        for afile in self.active.files:
            parts = _parts(afile)
            with contextlib.suppress(CdlError, OSError):
                folder = self._tree.existing(parts[:-1])
                if folder is not None:
                    target = Target(folder, parts[-1])
                    with destination_lock(target, afile.remote):
                        remove_partial(target, afile.remote)

    def _refresh_url(self, refused: ActiveFile) -> bool:
        """Ask the farm for this Download afresh and give every file not yet in place its
        fresh URL (matched by relative path). False if the refused file got none."""
        old_url = refused.remote.url
        if not self.engine.refresh(self.item):
            return False
        fresh = {remote.relative_path: remote for remote in self.item.download.files}
        for afile in self.active.files:
            in_place = afile.state.finished and afile.state is not FileState.FAILED
            if not in_place and afile.remote.relative_path in fresh:
                afile.remote = fresh[afile.remote.relative_path]
        if refused.remote.url == old_url:
            log.warning("%s: the farm gave no fresh URL", refused.remote.relative_path)
            return False
        log.info("%s: fresh URLs from the farm", self.item.download.label)
        return True

    def _existing(self, afile: ActiveFile, target: Target) -> FileState | None:
        """CACHED or SKIPPED if the file on disk settles it; None if it must be fetched.
        A link at the file's name is never followed: it differs, by definition."""
        engine, active, remote, dest = self.engine, self.active, afile.remote, afile.dest
        folder, name = target.folder, target.name
        st = folder.lstat(name)
        if st is not None and S_ISDIR(st.st_mode):
            raise self._file_failed(afile, "a folder stands where the file goes", retryable=False)
        if st is not None and not S_ISREG(st.st_mode):
            # A link (or a FIFO...) is never read or written through: the rename replaces it.
            log.warning("%s is not a regular file; it is replaced", dest)
            return None
        if engine.verified.trusted(dest, remote, st):
            return FileState.CACHED
        if engine.verified.journal_md5(dest, st) == remote.md5:
            engine.verified.remember(dest, remote, st)  # trusted for the rest of this run
            return FileState.CACHED
        if st is not None and S_ISREG(st.st_mode) and st.st_size == remote.size:
            engine.set_file_state(active, afile, FileState.HASHING)
            try:
                fd = folder.open(name, os.O_RDONLY)
                try:
                    digest = hash_fd(
                        fd,
                        on_bytes=lambda n: engine.progress(active, afile, n, network=False),
                        check_stop=self._checkpoint,
                    )
                    st = os.fstat(fd)
                finally:
                    os.close(fd)
                engine.count_hashed(remote.size)
            except OSError as exc:
                log.warning("cannot hash %s (%s); fetching it again", dest, _why(exc))
                digest = None
            if digest == remote.md5:
                engine.verified.remember(dest, remote, st)
                return FileState.CACHED
        policy = self.config.on_conflict
        if policy == "skip":
            log.warning("%s differs from the farm's file; kept (--on-conflict skip)", dest)
            return FileState.SKIPPED
        if policy == "backup":
            backup = _backup_name(folder, name)
            try:
                folder.rename(name, backup)
            except OSError as exc:
                raise AttemptFailed(f"cannot back up {dest}: {_why(exc)}") from None
            log.warning("%s differed from the farm's file; moved it to %s", dest, backup)
        return None

    def _file_failed(
        self, afile: ActiveFile, reason: str, *, retryable: bool = True
    ) -> AttemptFailed:
        self.engine.file_failed(self.active, afile, reason)
        return AttemptFailed(
            f"{afile.remote.relative_path}: {reason}", retryable=retryable, afile=afile
        )


def _parts(afile: ActiveFile) -> tuple[str, ...]:
    return PurePosixPath(afile.remote.relative_path).parts


def _backup_name(folder: Folder, name: str) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate = f"{name}.cdl-backup-{stamp}"
    serial = 1
    while folder.lstat(candidate) is not None:
        candidate = f"{name}.cdl-backup-{stamp}-{serial}"
        serial += 1
    return candidate


def _why(exc: OSError) -> str:
    with contextlib.suppress(AttributeError):
        if exc.strerror:
            return exc.strerror
    return str(exc) or type(exc).__name__
