"""What this run has settled: the counters, and the Downloads it gave up on.

Owned data: the counters and the given-up Downloads, under the state lock (their callers
hold it; nothing here locks or calls out). `Totals`, the snapshot's frozen copy, is made
by `Counters.frozen()`.
"""

from __future__ import annotations

from dataclasses import dataclass

from cdl_tui.core.model.states import Outcome
from cdl_tui.core.model.views import FailedView, Totals
from cdl_tui.core.state.details import DownloadDetail
from cdl_tui.core.state.scheduler import QueuedDownload


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


@dataclass(eq=False)
class GivenUp:
    """A Download this run gave up on (failed, cancelled or refused), kept for retry."""

    view: FailedView
    item: QueuedDownload | None
    failed_files: int = 0  # counted in files_failed; taken back if it is retried
    refused: DownloadDetail | None = None  # without an item: all details() knows of it
