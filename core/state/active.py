"""The Downloads being worked on now, their files, and the final paths they claim.

Owned data: the map of active Downloads and the path claims, under the state lock given
at construction (the engine's one lock for state/, so that a snapshot sees them as one
with the queue and the counters). An ActiveDownload's fields are written by its worker
under that lock too; `cancelled` and `paused` are flags its worker reads between chunks.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from cdl_tui.core.files.transfer import temp_path_for
from cdl_tui.core.model.errors import DestinationBusy
from cdl_tui.core.model.models import Download, RemoteFile
from cdl_tui.core.model.states import FileState, file_outcome
from cdl_tui.core.model.views import ActiveView, DownloadDetail, FileDetail, FileView, RateMeter
from cdl_tui.core.state.details import FILE_QUEUED, DownloadRecord
from cdl_tui.core.state.scheduler import QueuedDownload


@dataclass(eq=False)
class ActiveFile:
    remote: RemoteFile
    dest: Path
    state: FileState = FileState.QUEUED
    done: int = 0
    detail: str = ""

    def view(self) -> FileView:
        return FileView(
            path=self.remote.relative_path,
            size=self.remote.size,
            state=self.state,
            done=self.done,
            detail=self.detail,
        )

    def file_detail(self, *, running: bool) -> FileDetail:
        """The file for details(): as it is now (`running`), or as its attempt left it (an
        unfinished file is queued again; a finished one shows its outcome)."""
        if running:
            state = self.state.value
        elif self.state.finished:
            state = file_outcome(self.state).value
        else:
            state = FILE_QUEUED
        in_place = self.state.finished and self.state is not FileState.FAILED
        return FileDetail(
            relative_path=self.remote.relative_path,
            final_path=str(self.dest),
            temp_path="" if in_place else str(temp_path_for(self.dest, self.remote)),
            size=self.remote.size,
            md5=self.remote.md5,
            state=state,
            reason=self.detail if self.state is FileState.FAILED else "",
        )


@dataclass(eq=False)
class ActiveDownload:
    item: QueuedDownload
    worker: str
    record: DownloadRecord  # what details() shows of it, attempts and all
    started_at: float = field(default_factory=time.time)
    started: float = field(default_factory=time.monotonic)
    files: list[ActiveFile] = field(default_factory=list)
    root: Path | None = None
    done: int = 0
    paused: bool = False
    cancelled: bool = False
    meter: RateMeter = field(default_factory=lambda: RateMeter(seconds=10))

    @property
    def download(self) -> Download:
        return self.item.download

    def view(self, paused_all: bool = False) -> ActiveView:
        """`paused_all`: everything is paused, so this one is too (at its next chunk)."""
        d = self.download
        return ActiveView(
            download_id=d.download_id,
            job_id=d.job_id,
            task_id=d.task_id,
            worker=self.worker,
            size=d.size,
            done=self.done,
            files=tuple(f.view() for f in self.files),
            started_at=self.started_at,
            attempt=self.item.attempts + 1,
            paused=self.paused or paused_all,
            rate=self.meter.rate(),
        )

    def file_details(self, *, running: bool) -> tuple[FileDetail, ...]:
        return tuple(f.file_detail(running=running) for f in self.files)


class ActiveSet:
    """Active Downloads by ID, and which Download writes each final path."""

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self._active: dict[str, ActiveDownload] = {}
        self._claims: dict[str, str] = {}  # final path -> the Download writing it

    def __len__(self) -> int:
        return len(self._active)

    def add(self, active: ActiveDownload) -> None:
        with self._lock:
            self._active[active.download.download_id] = active

    def get(self, download_id: str) -> ActiveDownload | None:
        with self._lock:
            return self._active.get(download_id)

    def flag(
        self, download_id: str, *, paused: bool | None = None, cancelled: bool | None = None
    ) -> bool:
        """Set a running Download's own pause or cancel flag; False if it is not running.
        (Its worker reads them between chunks: tell it with RunControl.wake().)"""
        with self._lock:
            active = self._active.get(download_id)
            if active is None:
                return False
            if paused is not None:
                active.paused = paused
            if cancelled is not None:
                active.cancelled = cancelled
            return True

    def pop(self, download_id: str) -> ActiveDownload | None:
        with self._lock:
            return self._active.pop(download_id, None)

    def all(self) -> list[ActiveDownload]:
        with self._lock:
            return list(self._active.values())

    def detail(self, download_id: str) -> DownloadDetail | None:
        """details() of a running Download: its files as they are now."""
        with self._lock:
            active = self._active.get(download_id)
            if active is None:
                return None
            live = active.file_details(running=True)
            reason = active.item.last_error or ""
            return active.record.detail("active", "DOWNLOADING", reason, live)

    def views(self, paused_all: bool) -> tuple[ActiveView, ...]:
        with self._lock:
            return tuple(a.view(paused_all) for a in self._active.values())

    def claim_paths(self, active: ActiveDownload) -> None:
        """Make `active` the only Download in this process writing its final paths: two
        Downloads of one job can name the same file, and both would stream into the same
        temp file. Raises DestinationBusy naming the other Download."""
        download_id = active.download.download_id
        paths = [str(f.dest) for f in active.files]
        with self._lock:
            for path in paths:
                owner = self._claims.get(path)
                if owner is not None and owner != download_id:
                    raise DestinationBusy(f"{path} is being written by download {owner}")
            for path in paths:
                self._claims[path] = download_id

    def release_paths(self, active: ActiveDownload) -> None:
        download_id = active.download.download_id
        with self._lock:
            for afile in active.files:
                if self._claims.get(str(afile.dest)) == download_id:
                    del self._claims[str(afile.dest)]
