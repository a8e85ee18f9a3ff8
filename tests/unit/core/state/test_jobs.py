"""A job's tracker: its bytes as its Downloads finish or come back, and its state."""

from __future__ import annotations

from cdl_tui.core.model.jobspec import JobSpec
from cdl_tui.core.model.states import Outcome
from cdl_tui.core.model.views import JobView
from cdl_tui.core.state.jobs import JobTracker


def test_bytes_done_follow_outcomes_and_a_retry_takes_them_back() -> None:
    tracker = JobTracker(JobSpec("08285"))
    tracker.note("7", None, 100)
    tracker.note("8", Outcome.CACHED, 50)  # listed, already in place
    tracker.note("8", None, 999)  # listed again: counted once
    assert (tracker.bytes_listed, tracker.bytes_finished) == (150, 50)
    tracker.settle("7", Outcome.DL)
    assert tracker.bytes_finished == 150
    tracker.settle("7", Outcome.FAILED)  # a failure is no bytes done
    assert tracker.bytes_finished == 50
    tracker.announced = True
    tracker.settle("7", None)  # retried: ours again, the job not done any more
    assert tracker.bytes_finished == 50 and not tracker.announced
    view = tracker.view()
    assert (view.bytes_total, view.bytes_done, view.pending) == (150, 50, 1)


def test_a_jobs_state_and_eta() -> None:
    def job(**kw) -> JobView:
        return JobView(**{"job_id": "08285", "listed": 4, "finished": 4, "failed": 0,
                          "listing_complete": True, **kw})  # fmt: skip

    assert job(listing_complete=False).state == "LISTING"
    assert job(finished=3).state == "DOWNLOADING"
    assert job().state == "COMPLETE" and job().complete
    assert job(failed=1).state == "INCOMPLETE"
    assert job(error="job 08285 not found").state == "FAILED"
    moving = job(finished=3, bytes_total=1000, bytes_done=400, rate=100.0)
    assert moving.eta == 6.0 and moving.pending == 1
    assert job(bytes_total=1000, bytes_done=1000, rate=100.0).eta is None
