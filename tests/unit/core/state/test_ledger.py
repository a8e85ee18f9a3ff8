"""The ledger: counters, outcomes, jobs completing, the run draining, refused Downloads."""

from __future__ import annotations

import threading

import pytest

from cdl_tui.core.model.events import JobDone
from cdl_tui.core.model.jobspec import JobSpec
from cdl_tui.core.model.models import Download, RejectedDownload
from cdl_tui.core.model.settings import EngineConfig
from cdl_tui.core.model.states import Outcome
from cdl_tui.core.model.views import FailedView, HistoryEntry
from cdl_tui.core.state.details import refused_detail
from cdl_tui.core.state.ledger import Counters, GivenUp, Ledger
from cdl_tui.core.state.scheduler import QueuedDownload


def test_given_up_downloads_count_by_outcome_and_retries_take_them_back() -> None:
    counters = Counters()
    for outcome in (Outcome.FAILED, Outcome.FAILED, Outcome.REFUSED, Outcome.CANCELLED):
        counters.given_up(outcome)
    totals = counters.frozen()
    assert (totals.downloads_failed, totals.downloads_refused) == (2, 1)
    assert totals.downloads_cancelled == 1 and totals.failed == 3  # cancelled is no failure
    counters.given_up(Outcome.FAILED, -1)
    assert counters.frozen().failed == 2


def test_a_finished_outcome_is_not_a_way_to_give_up() -> None:
    with pytest.raises(ValueError, match="DL"):
        Counters().given_up(Outcome.DL)


def _ledger(*jobs: str, idle: bool = True, **config):
    events: list = []
    drained: list[bool] = []
    completed: list = []
    ledger = Ledger(
        threading.RLock(),
        events.append,
        EngineConfig(jobs=tuple(JobSpec(j) for j in jobs), exit_when_done=True, **config),
        None,
        idle=lambda: idle,
        on_drained=lambda: drained.append(True),
        on_job_complete=completed.append,
    )
    return ledger, events, drained, completed


def _task(download_id: str, outcome: Outcome) -> HistoryEntry:
    return HistoryEntry("task", outcome, download_id, "08285", "001", "", 1, 0.0, 0.0)


def test_a_job_asked_for_twice_is_one_job() -> None:
    ledger, *_ = _ledger("08285", "08285", "08286")
    assert [t.job_id for t in ledger.trackers()] == ["08285", "08286"]


def test_a_download_is_queued_once_however_often_it_is_listed() -> None:
    ledger, *_ = _ledger("08285", "08286")
    assert ledger.first_sight("7", "08285")
    assert not ledger.first_sight("7", "08286")  # listed again by another job: noted only
    assert not ledger.first_sight("7", "daemon")
    assert [t.outcomes for t in ledger.trackers()] == [{"7": None}, {"7": None}]
    assert ledger.outcome_of("7") == (True, None) and ledger.outcome_of("8") == (False, None)


def test_a_job_completes_once_and_again_after_a_retry_then_the_run_drains() -> None:
    ledger, events, drained, completed = _ledger("08285")
    (tracker,) = ledger.trackers()
    ledger.first_sight("7", "08285")
    ledger.listing_finished(tracker)
    assert completed == [] and drained == []  # listed, not finished
    item = QueuedDownload(Download("7", "7", "08285", "001", "/out", 0, ()), "08285")
    given = GivenUp(FailedView("7", "08285", "001", 1, 1, 1, "no", Outcome.FAILED, 0.0), item)
    ledger.gave_up(item, given, _task("7", Outcome.FAILED))
    ledger.after_outcome("7")
    ledger.after_outcome("7")
    assert [(v.job_id, v.failed) for v in completed] == [("08285", 1)]
    assert [e.failed for e in events if isinstance(e, JobDone)] == [1] and drained == [True]
    assert ledger.take_back("7") is item and ledger.retryable() == []
    assert ledger.trackers()[0].outcomes == {"7": None}  # open again
    ledger.done(_task("7", Outcome.DL), refused_detail(RejectedDownload("x", "7"), "08285"))
    ledger.after_outcome("7")
    assert [(v.job_id, v.failed) for v in completed] == [("08285", 1), ("08285", 0)]


def test_no_drain_while_something_runs_or_in_daemon_mode() -> None:
    busy, _, drained, _ = _ledger("08285", idle=False)
    busy.listing_finished(busy.trackers()[0])
    assert drained == []
    daemon, _, drained, _ = _ledger("08285", daemon=True)
    daemon.listing_finished(daemon.trackers()[0])
    assert drained == []


def test_refused_downloads_without_an_id_are_all_kept_and_another_jobs_once() -> None:
    ledger, *_ = _ledger("08285")
    assert ledger.refused(RejectedDownload("no id"), "08285", foreign=False)
    assert ledger.refused(RejectedDownload("no id either"), "08285", foreign=False)
    foreign = RejectedDownload("another job's", "9", 9, "08286", "001")
    assert ledger.refused(foreign, "08285", foreign=True)
    assert not ledger.refused(foreign, "08285", foreign=True)  # listed again: noted once
    assert ledger.outcome_of("9") == (False, None)  # its own job may still download it
    assert ledger.refused(RejectedDownload("bad", "5"), "08285", foreign=False)
    assert not ledger.refused(RejectedDownload("bad", "5"), "08285", foreign=False)
    reasons = [v.reason for v in ledger.failed_views()]
    assert reasons == ["no id", "no id either", "another job's", "bad"]  # as they came
    assert ledger.totals().downloads_refused == 4 and ledger.retryable() == []
    assert ledger.detail("9").job_id == "08286" and ledger.detail("5").where == "failed"
