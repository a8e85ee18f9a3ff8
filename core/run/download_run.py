"""One worker's attempt at one Download: plan, check, fetch, verify; then say how it ended.

For each file: make its folder (PREPARING DIRECTORY); if it exists with the expected size,
hash it (HASHING EXISTING FILE) and keep it if the md5 matches (CACHED); a differing file
follows --on-conflict; otherwise fetch it (DOWNLOADING) through a verified temp file
(COMPLETE). A file is tried `file_attempts` times; if it still fails, this attempt fails.

The run returns an AttemptResult and decides nothing about the Download's future: the
state's outcome rules (state/outcomes.py) report it, requeue it with backoff, park it or
give it up. It sees the rest of the engine only through `AttemptHost` (six names) and its
files on disk through `FilesOnDisk`, both Protocols below; tests give it fakes.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from cdl_tui.core.model.attempts import AttemptEnd, AttemptResult, is_last_attempt
from cdl_tui.core.model.errors import (
    AttemptProblem,
    AuthError,
    DestinationBusy,
    FileProblem,
    StopRequested,
    TransferError,
    WaitForDisk,
)
from cdl_tui.core.model.models import RemoteFile
from cdl_tui.core.model.paths import UnsafePath
from cdl_tui.core.model.settings import EngineConfig
from cdl_tui.core.model.states import FileState
from cdl_tui.core.state.active import ActiveDownload, ActiveFile

log = logging.getLogger("cdl.worker")

# Fresh URLs one file may get in one attempt: each must take the file further than it
# ever was (see _fetch), and this bounds a farm whose listing never stops answering.
MAX_REFRESHES = 64

TargetT = TypeVar("TargetT")


class FilesOnDisk(Protocol[TargetT]):
    """One Download's files on disk (files/place.py): `TargetT` is where one file goes,
    opaque to the run."""

    def target(self, remote: RemoteFile, dest: Path) -> TargetT: ...
    def still_in_place(
        self, remote: RemoteFile, dest: Path, target: TargetT, settled: FileState
    ) -> bool: ...
    def existing(
        self,
        remote: RemoteFile,
        dest: Path,
        target: TargetT,
        *,
        hashing: Callable[[], None],
        on_bytes: Callable[[int], None],
        check_stop: Callable[[], None],
    ) -> FileState | None: ...
    def fetch(
        self,
        remote: RemoteFile,
        dest: Path,
        target: TargetT,
        *,
        on_bytes: Callable[[int], None],
        on_resumed: Callable[[int], None],
        check_stop: Callable[[], None],
        stall: tuple[float, float] | None,
    ) -> int: ...
    def partial(self, remote: RemoteFile, target: TargetT) -> int: ...
    def sync(self) -> None: ...
    def remove_partials(self, remotes: list[RemoteFile]) -> None: ...


class AttemptHost(Protocol[TargetT]):
    """What a run asks of the engine's state and of the farm; the six names it uses."""

    def prepare(self, active: ActiveDownload) -> AbstractContextManager[FilesOnDisk[TargetT]]:
        """Plan the files (root, destinations), claim their paths, reserve disk space;
        released when the block ends. Raises UnsafePath, DestinationBusy, WaitForDisk."""
        ...

    def refresh(self, active: ActiveDownload) -> bool:
        """Describe the Download afresh (fresh signed URLs); False if the farm could not."""
        ...

    def checkpoint(self, active: ActiveDownload, wait: float = 0.0) -> None:
        """Wait `wait` seconds, then while paused; raises StopRequested on a stop or cancel."""
        ...

    def file_state(
        self, active: ActiveDownload, afile: ActiveFile, state: FileState, reason: str = ""
    ) -> None:
        """PREPARING, HASHING, DOWNLOADING (progress starts again) or FAILED (`reason`)."""
        ...

    def file_done(
        self, active: ActiveDownload, afile: ActiveFile, state: FileState, seconds: float
    ) -> None:
        """The file is in place: COMPLETE, CACHED or SKIPPED; `seconds` < 0: an earlier
        attempt placed it (counted then)."""
        ...

    def progress(
        self, active: ActiveDownload, afile: ActiveFile, count: int, *, network: bool
    ) -> None:
        """`count` more bytes of the file: received (`network`), or found on disk."""
        ...


@dataclass(frozen=True)
class RunSettings:
    max_attempts: int = 5  # attempts per Download (the last removes its temp files)
    file_attempts: int = 3  # tries per file within one attempt
    file_retry_delay: float = 0.5  # base of the backoff between tries of a file
    stall: tuple[float, float] | None = (60.0, 1024.0)  # (seconds, bytes/s); None: off

    @classmethod
    def of(cls, config: EngineConfig) -> RunSettings:
        stall = (config.stall_timeout, config.stall_min_rate) if config.stall_min_rate else None
        return cls(config.max_attempts, config.file_attempts, config.file_retry_delay, stall)


class _FileFailed(Exception):
    def __init__(self, afile: ActiveFile, reason: str, *, retryable: bool) -> None:
        super().__init__(f"{afile.remote.relative_path}: {reason}")
        self.afile = afile
        self.retryable = retryable


class DownloadRun:
    def __init__(
        self, active: ActiveDownload, host: AttemptHost[TargetT], settings: RunSettings
    ) -> None:
        self.active = active
        self.host = host
        self.settings = settings

    def run(self) -> AttemptResult:
        """Work on the Download until it is done, fails, must wait or is stopped."""
        active = self.active
        try:
            if active.item.refresh:
                self.host.refresh(active)
            with self.host.prepare(active) as files:
                self._place_all(files)
        except StopRequested as exc:
            return AttemptResult(AttemptEnd.STOPPED, str(exc))
        except WaitForDisk as exc:
            return AttemptResult(AttemptEnd.NO_SPACE, str(exc))
        except DestinationBusy as exc:
            return AttemptResult(AttemptEnd.BUSY, str(exc))
        except UnsafePath as exc:
            return AttemptResult(AttemptEnd.FAILED, f"refused: {exc}", retryable=False)
        except AttemptProblem as exc:
            return AttemptResult(AttemptEnd.FAILED, str(exc))
        except _FileFailed as exc:
            return AttemptResult(
                AttemptEnd.FAILED,
                str(exc),
                retryable=exc.retryable,
                failed_path=exc.afile.remote.relative_path,
            )
        except AuthError as exc:
            return AttemptResult(AttemptEnd.FATAL, str(exc), error=exc)
        except Exception as exc:  # a bug or an unforeseen OS error: fail the attempt, go on
            log.exception("unexpected error on %s", active.download.label)
            return AttemptResult(AttemptEnd.FAILED, f"unexpected error: {exc}")
        return AttemptResult(AttemptEnd.DONE)

    def _place_all(self, files: FilesOnDisk[TargetT]) -> None:
        try:
            for afile in self.active.files:
                self._place(files, afile)
            files.sync()
        except (StopRequested, WaitForDisk, DestinationBusy, AuthError):
            raise
        except Exception as exc:
            retryable = exc.retryable if isinstance(exc, _FileFailed) else True
            attempts = self.active.item.attempts
            if is_last_attempt(attempts, self.settings.max_attempts, retryable=retryable):
                # No later try will resume them.
                files.remove_partials([f.remote for f in self.active.files])
            raise

    def _checkpoint(self) -> None:
        self.host.checkpoint(self.active)

    def _place(self, files: FilesOnDisk[TargetT], afile: ActiveFile) -> None:
        host, active, remote, dest = self.host, self.active, afile.remote, afile.dest
        started = time.monotonic()
        self._checkpoint()
        target = None
        settled = active.item.settled.get(remote.relative_path)
        if settled is not None:
            target = self._target(files, afile)
            if files.still_in_place(remote, dest, target, settled):
                host.file_done(active, afile, settled, -1.0)
                return
        host.file_state(active, afile, FileState.PREPARING)
        if target is None:
            target = self._target(files, afile)
        try:
            kept = files.existing(
                remote,
                dest,
                target,
                hashing=lambda: host.file_state(active, afile, FileState.HASHING),
                on_bytes=lambda n: host.progress(active, afile, n, network=False),
                check_stop=self._checkpoint,
            )
        except FileProblem as exc:
            raise self._failed(afile, str(exc), retryable=exc.retryable) from None
        if kept is not None:
            host.file_done(active, afile, kept, time.monotonic() - started)
            return
        host.file_state(active, afile, FileState.DOWNLOADING)
        self._fetch(files, afile, target, started)

    def _target(self, files: FilesOnDisk[TargetT], afile: ActiveFile) -> TargetT:
        try:
            return files.target(afile.remote, afile.dest)
        except FileProblem as exc:
            raise self._failed(afile, str(exc), retryable=exc.retryable) from None

    def _fetch(
        self, files: FilesOnDisk[TargetT], afile: ActiveFile, target: TargetT, started: float
    ) -> None:
        """Fetch the file through a verified temp file, up to `file_attempts` tries.

        A refused URL (expired) is replaced at once by a fresh one from the farm, keeping
        the bytes on disk. Tries are counted so that storage cannot keep a worker for
        ever: the refusal of a URL that had gone stale costs no try, and neither does the
        rest of the file once a fresh URL has brought it further than it ever was (its
        tries start again); a fresh URL refused before any new byte costs one.
        """
        host, active = self.host, self.active
        attempts = self.settings.file_attempts
        tries = refreshes = 0
        fresh_url = False  # the URL was just refreshed and has not been tried yet
        furthest = files.partial(afile.remote, target)  # bytes on disk at best so far
        while True:
            tries += 1
            try:
                resumed = files.fetch(
                    afile.remote,
                    afile.dest,
                    target,
                    on_bytes=lambda n: host.progress(active, afile, n, network=True),
                    on_resumed=lambda n: host.progress(active, afile, n, network=False),
                    check_stop=self._checkpoint,
                    stall=self.settings.stall,
                )
            except TransferError as exc:
                if exc.no_space:
                    raise WaitForDisk(str(exc)) from None
                kept = files.partial(afile.remote, target)
                if fresh_url and kept > furthest:
                    tries = 1  # a fresh URL took the file further: its tries start again
                furthest = max(furthest, kept)
                stale = exc.expired and not fresh_url  # not a fresh URL refused at once
                fresh_url = False
                if exc.unsafe:
                    raise self._failed(afile, str(exc), retryable=False) from None
                if not exc.retryable or (tries >= attempts and not stale):
                    raise self._failed(afile, str(exc)) from None
                log.info("%s: %s (try %d/%d)", afile.remote.relative_path, exc, tries, attempts)
                host.file_state(active, afile, FileState.DOWNLOADING)  # resets progress
                if exc.expired and refreshes < MAX_REFRESHES and self._refresh_url(afile):
                    # A fresh signed URL, at once; the bytes on disk are kept and resumed.
                    refreshes += 1
                    fresh_url = True
                    if stale:
                        tries -= 1  # a URL that went stale is not this file's failure
                    continue
                if tries >= attempts:  # stale, and the farm had no fresh URL
                    raise self._failed(afile, str(exc)) from None
                backoff = self.settings.file_retry_delay * 2 ** (tries - 1)
                host.checkpoint(active, backoff * random.uniform(0.5, 1.0))  # jitter
                continue
            if resumed:
                log.info("%s: resumed from byte %d", afile.remote.relative_path, resumed)
            host.file_done(active, afile, FileState.COMPLETE, time.monotonic() - started)
            return

    def _refresh_url(self, refused: ActiveFile) -> bool:
        """Ask the farm for this Download afresh and give every file not yet in place its
        fresh URL (matched by relative path). False if the refused file got none."""
        old_url = refused.remote.url
        item = self.active.item
        if not self.host.refresh(self.active):
            return False
        fresh = {remote.relative_path: remote for remote in item.download.files}
        for afile in self.active.files:
            in_place = afile.state.finished and afile.state is not FileState.FAILED
            if not in_place and afile.remote.relative_path in fresh:
                afile.remote = fresh[afile.remote.relative_path]
        if refused.remote.url == old_url:
            log.warning("%s: the farm gave no fresh URL", refused.remote.relative_path)
            return False
        log.info("%s: fresh URLs from the farm", item.download.label)
        return True

    def _failed(self, afile: ActiveFile, reason: str, *, retryable: bool = True) -> _FileFailed:
        self.host.file_state(self.active, afile, FileState.FAILED, reason)
        return _FileFailed(afile, reason, retryable=retryable)
