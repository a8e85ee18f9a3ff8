"""Every job's files as frame sequences (model/frames.py), kept as Downloads are listed
and as their files land, so that a job's view is ready when it is asked for.

Owned data: one FrameCatalog per job, under this part's own lock, a leaf: grouping a batch
of paths takes about a millisecond per hundred, and is never done under the state lock.
A daemon sees job after job for weeks: the catalogs of the jobs least recently listed or
landed go first beyond MAX_JOBS.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from cdl_tui.core.model.frames import FrameCatalog, FramesView
from cdl_tui.core.model.models import Download

MAX_JOBS = 200


class JobFrames:
    def __init__(self, max_jobs: int = MAX_JOBS) -> None:
        self._lock = threading.Lock()
        self._catalogs: OrderedDict[str, FrameCatalog] = OrderedDict()
        self._max_jobs = max_jobs

    def listed(self, download: Download) -> None:
        """The Download's files are listed (paths relative to its job's folder)."""
        with self._lock:
            catalog = self._catalogs.get(download.job_id)
            if catalog is None:
                catalog = self._catalogs[download.job_id] = FrameCatalog(download.job_id)
                while len(self._catalogs) > self._max_jobs:
                    self._catalogs.popitem(last=False)
            self._catalogs.move_to_end(download.job_id)
            for remote in download.files:
                catalog.listed(remote.relative_path, remote.size)

    def placed(self, job_id: str, relative_path: str, size: int | None) -> None:
        """The file is on disk with `size` bytes (None: it is not)."""
        with self._lock:
            catalog = self._catalogs.get(job_id)
            if catalog is not None:
                catalog.placed(relative_path, size)
                self._catalogs.move_to_end(job_id)

    def view(self, job_id: str) -> FramesView | None:
        """The job's sequences and single files now; None if no file of it was listed."""
        with self._lock:
            catalog = self._catalogs.get(job_id)
            return catalog.view() if catalog is not None else None
