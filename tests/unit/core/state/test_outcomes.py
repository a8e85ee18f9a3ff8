"""How an attempt ends: backoff, giving up, parking, stopping; with a fake farm client.

The parts are real (active set, queue, ledger, lease keeper, problem log); only the farm
is a fake that records what it is told.
"""

from __future__ import annotations

import threading
import time

from cdl_tui.core.model.attempts import AttemptEnd, AttemptResult
from cdl_tui.core.model.errors import AuthError
from cdl_tui.core.model.events import (
    DownloadCancelled,
    DownloadDone,
    DownloadFailed,
    DownloadWaiting,
    JobDone,
)
from cdl_tui.core.model.states import DAEMON_ORIGIN, FileState, Outcome
from cdl_tui.core.state.active import ActiveDownload
from cdl_tui.core.state.outcomes import MAX_BACKOFF, OutcomeRules
from cdl_tui.core.state.problems import Severity, download_problem


def running(parts, make_active, download_id: str = "7", **item) -> ActiveDownload:
    """A Download listed by job 08285, leased, running now."""
    active = make_active(download_id, "a.exr", "b.exr")
    for name, value in {"leased": True, "claimed": True, **item}.items():
        setattr(active.item, name, value)
    parts.ledger.first_sight(download_id, active.item.origin)
    active.record = parts.ledger.open(active.item)
    active.record.start_attempt(active.worker, time.time())
    parts.ledger.listing_finished(parts.ledger.trackers()[0])
    parts.shared.active.add(active)
    return active


def test_a_failed_attempt_waits_a_growing_backoff_and_job_mode_lets_the_lease_go(
    parts, make_active
) -> None:
    p = parts(OutcomeRules(max_attempts=5, retry_delay=4.0))
    active = running(p, make_active)
    before = time.monotonic()
    p.outcomes.settle(active, AttemptResult(AttemptEnd.FAILED, "a.exr: HTTP 500"))
    item = active.item
    assert (item.attempts, item.last_error) == (1, "a.exr: HTTP 500")
    assert 2.0 <= item.not_before - before <= 4.1  # 4 s x jitter in [0.5, 1]
    assert p.shared.queue.items() == [item] and len(p.shared.active) == 0
    (failed,) = p.of(DownloadFailed)
    assert failed.will_retry and failed.outcome is Outcome.FAILED
    assert p.statuses() == ["pending"] and not item.leased  # job mode: not ours meanwhile
    assert p.ledger.failed_views() == ()
    problem = p.shared.problems.view()[-1]
    assert problem.key == download_problem("7") and problem.severity is Severity.WARNING
    rules = OutcomeRules(retry_delay=4.0)
    assert MAX_BACKOFF / 2 <= rules.backoff(20) <= MAX_BACKOFF  # capped


def test_a_daemon_keeps_its_lease_through_the_backoff(parts, make_active) -> None:
    p = parts()
    active = running(p, make_active, origin=DAEMON_ORIGIN)
    p.outcomes.settle(active, AttemptResult(AttemptEnd.FAILED, "cut"))
    assert p.statuses() == [] and active.item.leased


def test_the_last_attempt_gives_up_counts_the_file_and_tells_the_farm(parts, make_active) -> None:
    p = parts(OutcomeRules(max_attempts=2))
    active = running(p, make_active, attempts=1)
    active.files[1].detail = "md5 mismatch"
    result = AttemptResult(AttemptEnd.FAILED, "b.exr: md5 mismatch", failed_path="b.exr")
    p.outcomes.settle(active, result)
    (view,) = p.ledger.failed_views()
    assert (view.outcome, view.attempts, view.reason) == (Outcome.FAILED, 2, result.reason)
    totals = p.ledger.totals()
    assert (totals.downloads_failed, totals.files_failed, totals.failed) == (1, 1, 1)
    kinds = [(e.kind, e.outcome, e.reason) for e in p.ledger.history.entries]
    assert kinds == [
        ("file", Outcome.FAILED, "md5 mismatch"),
        ("task", Outcome.FAILED, result.reason),
    ]
    assert not p.of(DownloadFailed)[0].will_retry
    p.shared.leases.close(5)
    assert p.farm.fails == [("7", result.reason)] and p.farm.statuses() == ["pending"]
    assert p.of(JobDone) and p.drained == [True]  # its job is complete: the run drains
    # The retry command takes it all back.
    assert p.ledger.take_back("7") is active.item
    assert p.ledger.totals().failed == 0 and p.ledger.totals().files_failed == 0


def test_a_daemon_holds_a_lease_it_gave_up_on(parts, make_active) -> None:
    p = parts(OutcomeRules(max_attempts=1))
    active = running(p, make_active, origin=DAEMON_ORIGIN)
    p.outcomes.settle(active, AttemptResult(AttemptEnd.FAILED, "broken"))
    assert [item for item, _ in p.shared.leases.leased()] == [active.item]
    assert p.statuses() == []  # held, not handed straight back


def test_data_the_farm_got_wrong_is_refused_at_the_first_attempt(parts, make_active) -> None:
    p = parts(OutcomeRules(max_attempts=5))
    active = running(p, make_active)
    p.outcomes.settle(active, AttemptResult(AttemptEnd.FAILED, "refused: ..", retryable=False))
    (view,) = p.ledger.failed_views()
    assert view.outcome is Outcome.REFUSED and p.ledger.totals().downloads_refused == 1


def test_no_disk_space_parks_it_once_then_fails_it_after_disk_wait_max(parts, make_active) -> None:
    p = parts(OutcomeRules(disk_retry=3.0, disk_wait_max=3600))
    active = running(p, make_active)
    item = active.item
    p.outcomes.settle(active, AttemptResult(AttemptEnd.NO_SPACE, "200 MiB short"))
    assert item.waiting == "WAITING FOR DISK" and p.shared.queue.items() == [item]
    assert 2.9 <= item.not_before - time.monotonic() <= 3.0
    assert item.attempts == 0  # a wait is no failed attempt
    p.shared.queue.remove("7")
    p.shared.active.add(active)
    p.outcomes.settle(active, AttemptResult(AttemptEnd.NO_SPACE, "200 MiB short"))
    assert len(p.of(DownloadWaiting)) == 1  # said once while it waits
    item.waiting_since -= 3601  # an hour later
    p.shared.queue.remove("7")
    p.shared.active.add(active)
    p.outcomes.settle(active, AttemptResult(AttemptEnd.NO_SPACE, "200 MiB short"))
    (view,) = p.ledger.failed_views()
    assert view.outcome is Outcome.FAILED and "disk_wait_max" in view.reason
    assert p.shared.queue.items() == []


def test_a_daemon_lets_go_of_a_download_that_waits_too_long(parts, make_active) -> None:
    p = parts(OutcomeRules(disk_release_after=60))
    active = running(p, make_active, origin=DAEMON_ORIGIN)
    active.item.waiting, active.item.waiting_since = "BUSY", time.monotonic() - 61
    p.outcomes.settle(active, AttemptResult(AttemptEnd.BUSY, "another process writes a.exr"))
    assert p.shared.queue.items() == [] and p.ledger.outcome_of("7") == (False, None)
    assert p.statuses() == ["pending"]
    assert p.ledger.detail("7").outcome == "RELEASED"


def test_busy_waits_at_least_two_seconds(parts, make_active) -> None:
    p = parts(OutcomeRules(disk_retry=0.1))
    active = running(p, make_active)
    p.outcomes.settle(active, AttemptResult(AttemptEnd.BUSY, "a.exr is written elsewhere"))
    assert active.item.waiting == "BUSY"
    assert active.item.not_before - time.monotonic() > 1.9


def test_a_cancel_gives_it_up_as_cancelled_and_a_shutdown_gives_it_back(parts, make_active) -> None:
    p = parts()
    cancelled = running(p, make_active, "7")
    cancelled.cancelled = True
    p.outcomes.settle(cancelled, AttemptResult(AttemptEnd.STOPPED, "cancelled"))
    assert p.of(DownloadCancelled) and p.ledger.failed_views()[0].outcome is Outcome.CANCELLED
    assert p.ledger.totals().failed == 0  # a cancel is no failure
    stopped = running(p, make_active, "8")
    p.outcomes.settle(stopped, AttemptResult(AttemptEnd.STOPPED, "stopping"))
    assert [v.download_id for v in p.ledger.failed_views()] == ["7"]
    assert p.statuses() == ["pending", "pending"] and not stopped.item.leased


def test_a_fatal_error_ends_the_run_and_gives_the_download_back(parts, make_active) -> None:
    p = parts()
    active = running(p, make_active)
    error = AuthError("the farm refused the key")
    p.outcomes.settle(active, AttemptResult(AttemptEnd.FATAL, str(error), error=error))
    assert p.fatal == [error] and p.statuses() == ["pending"]


def test_done_reports_downloaded_records_the_task_and_completes_the_job(parts, make_active) -> None:
    p = parts()
    active = running(p, make_active)
    for afile, state in zip(active.files, (FileState.COMPLETE, FileState.CACHED), strict=True):
        afile.state = state
    p.outcomes.settle(active, AttemptResult(AttemptEnd.DONE))
    (done,) = p.of(DownloadDone)
    assert done.outcome is Outcome.DL and done.bytes_downloaded == 10
    assert p.ledger.outcome_of("7") == (True, Outcome.DL)
    assert p.ledger.totals().downloads_done == 1 and p.ledger.detail("7").where == "done"
    assert p.statuses() == ["downloaded"]
    (job,) = p.of(JobDone)
    assert (job.job_id, job.downloads, job.failed) == ("08285", 1, 0) and p.drained == [True]


def test_a_snapshot_sees_a_download_running_or_done_never_in_between(
    parts, make_active, monkeypatch
) -> None:
    """Another thread (a snapshot, details()) takes the state lock while it is settled."""
    p = parts()
    active = running(p, make_active)
    seen: list[tuple[str, int, int]] = []
    real_done = p.ledger.done

    def look() -> None:
        with p.shared.lock:
            where = p.ledger.detail("7").where if p.shared.active.get("7") is None else "active"
            seen.append((where, len(p.shared.active), p.ledger.totals().downloads_done))

    def done_while_another_thread_looks(*args, **kwargs) -> None:
        other = threading.Thread(target=look)
        other.start()
        other.join(0.2)  # it waits for the lock (or, if it did not, has looked already)
        real_done(*args, **kwargs)

    monkeypatch.setattr(p.ledger, "done", done_while_another_thread_looks)
    look()
    p.outcomes.settle(active, AttemptResult(AttemptEnd.DONE))
    time.sleep(0.05)
    assert seen == [("active", 1, 0), ("done", 0, 1)]
