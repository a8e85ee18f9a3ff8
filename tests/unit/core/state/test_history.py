"""History and job trackers: what a UI asks for by serial, and when a job is complete."""

from __future__ import annotations

from cdl_tui.core.model.jobspec import JobSpec
from cdl_tui.core.model.states import Outcome
from cdl_tui.core.model.views import HistoryEntry
from cdl_tui.core.state.history import History
from cdl_tui.core.state.jobs import JobTracker


def entry(n: int, kind: str = "file") -> HistoryEntry:
    return HistoryEntry(kind, Outcome.DL, str(n), "08285", "001", f"/out/{n}.exr", 1, 0.1, n)


def test_since_gives_what_is_new_and_what_is_still_kept() -> None:
    history = History(limit=2)
    for n in range(3):
        history.add(entry(n))
    history.add(entry(3, "task"))
    assert history.serial == 4
    assert [e.download_id for e in history.since(2)] == ["2", "3"]
    assert [e.download_id for e in history.since(0)] == ["0", "1", "2", "3"][-4:]  # 2 x limit
    assert history.since(4) == []
    assert [e.download_id for e in history.recent_files(5)] == ["2", "1"]  # newest first
    assert [e.download_id for e in history.recent_tasks(5)] == ["3"]


def test_an_unbounded_history_keeps_everything() -> None:
    history = History(limit=None)
    for n in range(1000):
        history.add(entry(n))
    assert len(history.since(0)) == 1000 and len(history.files) == 1000


def test_a_job_is_complete_when_listed_to_the_end_and_every_download_has_an_outcome() -> None:
    tracker = JobTracker(JobSpec("08285"))
    tracker.note("1", Outcome.DL, 10)
    tracker.note("2", None, 10)
    assert not tracker.complete
    tracker.listing_complete = True
    assert not tracker.complete and tracker.view().listed == 2
    tracker.settle("2", Outcome.FAILED)
    view = tracker.view()
    assert tracker.complete and (view.finished, view.failed) == (2, 1)
    assert view.complete  # every Download has its outcome, a failure too
    tracker.settle("2", None)  # retried: ours again
    assert not tracker.complete and (tracker.finished, tracker.failed) == (1, 0)
    tracker.settle("2", Outcome.DL)
    assert tracker.complete and (tracker.finished, tracker.failed) == (2, 0)


def test_a_job_that_cannot_be_listed_counts_as_one_failure() -> None:
    tracker = JobTracker(JobSpec("99999"))
    tracker.error = "job 99999: not on the farm"
    view = tracker.view()
    assert view.failed == 1 and view.error and not view.complete
