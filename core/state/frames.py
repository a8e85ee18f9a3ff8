"""Every job's files as frame sequences (model/frames.py), kept as Downloads are listed
and as their files land, so that a job's view is ready when it is asked for.

Owned data: one FrameCatalog per job, under this part's own lock, a leaf: grouping a batch
of paths takes about a millisecond per hundred, and is never done under the state lock.
"""

from __future__ import annotations

import threading

from cdl_tui.core.model.frames import FrameCatalog, FramesView
from cdl_tui.core.model.models import Download


class JobFrames:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._catalogs: dict[str, FrameCatalog] = {}

    def listed(self, download: Download) -> None:
        """The Download's files are listed (paths relative to its job's folder)."""
        with self._lock:
            catalog = self._catalogs.get(download.job_id)
            if catalog is None:
                catalog = self._catalogs[download.job_id] = FrameCatalog(download.job_id)
            for remote in download.files:
                catalog.listed(remote.relative_path, remote.size)

    def placed(self, job_id: str, relative_path: str, size: int | None) -> None:
        """The file is on disk with `size` bytes (None: it is not)."""
        with self._lock:
            catalog = self._catalogs.get(job_id)
            if catalog is not None:
                catalog.placed(relative_path, size)

    def view(self, job_id: str) -> FramesView | None:
        """The job's sequences and single files now; None if no file of it was listed."""
        with self._lock:
            catalog = self._catalogs.get(job_id)
            return catalog.view() if catalog is not None else None
