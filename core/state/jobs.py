"""What the engine knows about each job it was asked for (job mode).

Owned data: the trackers belong to the ledger (state/ledger.py) and change under the state
lock; the feeder reads them and changes them only through its FeederHost. Where the feeder
is in a job's listing (its page iterator, the next listing, failures in a row) is its own
(run/feeder.py's Cursor).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cdl_tui.core.model.jobspec import JobSpec
from cdl_tui.core.model.states import Outcome
from cdl_tui.core.model.views import JobView


@dataclass(eq=False)
class JobTracker:
    """A job's listing and the outcome of each Download it listed.

    A job is complete when its listing reached the last page and every listed Download
    has an outcome (downloaded, cached, failed, cancelled or refused).
    """

    spec: JobSpec
    outcomes: dict[str, Outcome | None] = field(default_factory=dict)  # download_id -> ...
    listing_complete: bool = False
    error: str | None = None  # why the job cannot be listed (e.g. not on the farm)
    announced: bool = False  # JobDone was published
    sizes: dict[str, int] = field(default_factory=dict)  # download_id -> bytes, as listed
    bytes_listed: int = 0
    bytes_finished: int = 0  # of the Downloads done (DL, CACHED, SKIPPED)
    # Counted as outcomes change (a job of 100,000 tasks asks "complete?" after each one).
    unsettled: int = 0  # listed Downloads with no outcome yet
    not_ok: int = 0  # outcomes that are not a success

    def note(self, download_id: str, outcome: Outcome | None, size: int) -> None:
        """The job listed this Download (first time only)."""
        if download_id in self.outcomes:
            return
        self.outcomes[download_id] = None
        self.unsettled += 1
        self.sizes[download_id] = size
        self.bytes_listed += size
        self.settle(download_id, outcome)

    def settle(self, download_id: str, outcome: Outcome | None) -> None:
        """The Download's outcome now (None: it is ours again, e.g. retried)."""
        before = self.outcomes[download_id]
        self.outcomes[download_id] = outcome
        self.unsettled += (outcome is None) - (before is None)
        self.not_ok += _not_ok(outcome) - _not_ok(before)
        was_done, is_done = bool(before and before.ok), bool(outcome and outcome.ok)
        if was_done != is_done:
            size = self.sizes.get(download_id, 0)
            self.bytes_finished += size if is_done else -size
        if outcome is None:
            self.announced = False

    @property
    def job_id(self) -> str:
        return self.spec.job_id

    @property
    def finished(self) -> int:
        return len(self.outcomes) - self.unsettled

    @property
    def failed(self) -> int:
        return self.not_ok + (1 if self.error else 0)

    @property
    def complete(self) -> bool:
        return self.listing_complete and not self.unsettled

    def view(self) -> JobView:
        return JobView(
            job_id=self.job_id,
            listed=len(self.outcomes),
            finished=self.finished,
            failed=self.failed,
            listing_complete=self.listing_complete,
            error=self.error,
            bytes_total=self.bytes_listed,
            bytes_done=self.bytes_finished,
        )


def _not_ok(outcome: Outcome | None) -> int:
    return 1 if outcome is not None and not outcome.ok else 0
