"""The lease keeper with a fake farm client: what it reports, when, and what it holds."""

from __future__ import annotations

import time

from cdl_tui.core.farm.leases import Leases
from cdl_tui.core.model.errors import AuthError, TransientError
from cdl_tui.core.model.models import Download, RemoteFile
from cdl_tui.core.state.scheduler import QueuedDownload

MD5 = "ZZZZZZZZZZZZZZZZZZZZZZ=="


def item(download_id: str = "7", *, leased: bool = False) -> QueuedDownload:
    files = (RemoteFile("http://s/a.exr", MD5, "a.exr", 10),)
    download = Download(download_id, int(download_id), "08285", "001", "/out", 10, files)
    return QueuedDownload(download, "daemon", leased=leased)


def keeper(farm, **kw) -> tuple[Leases, list[AuthError]]:
    refused: list[AuthError] = []
    settings = {"reporting": True, "heartbeat_interval": 0.01, "failed_hold": 60.0, **kw}
    leases = Leases(farm, refused_key=refused.append, **settings)  # type: ignore[arg-type]
    return leases, refused


def wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError("timed out")


def test_pending_goes_only_to_what_the_farm_counts_as_ours(make_farm) -> None:
    farm = make_farm()
    leases, _ = keeper(farm)
    queued = item()

    def sent(*args, **kw) -> None:  # one at a time: a queued report yields to a newer one
        leases.report(queued, *args, **kw)
        leases.reporter.flush(5)

    sent("pending", 0, closing=True)  # never claimed: nothing to undo
    sent("downloading", 0)
    assert queued.leased and queued.claimed
    sent("pending", 0, closing=True)
    assert not queued.leased
    sent("pending", 0, closing=True)  # no longer ours: not again...
    sent("pending", 0, closing=True, force=True)  # ...unless forced
    leases.close(5)
    assert farm.seen == [(7, "downloading", 0), (7, "pending", 0), (7, "pending", 0)]


def test_nothing_is_reported_when_reporting_is_off(make_farm) -> None:
    farm = make_farm()
    leases, _ = keeper(farm, reporting=False)
    leases.report(item(), "downloading", 0)
    leases.start_heartbeats(lambda: [(item(leased=True), 1)])
    leases.close(5)
    assert farm.seen == [] and not leases.thread.is_alive()


def test_heartbeats_go_to_ours_and_survive_a_bad_round(make_farm) -> None:
    farm = make_farm()
    leases, _ = keeper(farm)
    rounds = iter([RuntimeError("a bug")])
    running = item("8", leased=True)

    def ours():
        failure = next(rounds, None)
        if failure is not None:
            raise failure
        return [(running, 5), (item("9"), 0)]  # 9 is not leased: no heartbeat for it

    leases.start_heartbeats(ours)
    wait_for(lambda: "downloading" in farm.statuses())
    leases.stop_heartbeats(5)
    leases.close(5)
    assert {(w, s, d) for w, s, d in farm.seen} == {(8, "downloading", 5)}


def test_a_held_lease_beats_until_its_time_then_goes_back(make_farm) -> None:
    farm = make_farm()
    leases, _ = keeper(farm, failed_hold=0.2)
    failed = item("10", leased=True)
    leases.hold(failed)
    leases.hold(failed)  # once only
    assert [i for i, _ in leases.leased()] == [failed]
    time.sleep(0.25)
    assert leases.leased() == []  # its time is up: handed back
    leases.close(5)
    assert farm.seen[-1] == (10, "pending", 0) and not failed.leased
    assert leases.take_held() == []


def test_a_refused_key_ends_the_run_and_other_errors_are_logged(make_farm) -> None:
    leases, refused = keeper(make_farm(fail_with=AuthError("the farm refused the key")))
    leases.report_raw("7", 7, "downloading", 0, 10)
    leases.close(5)
    assert [str(e) for e in refused] == ["the farm refused the key"]
    leases, refused = keeper(make_farm(fail_with=TransientError("busy", 503)))
    leases.report_raw("7", 7, "downloading", 0, 10)
    leases.close(5)
    assert refused == []
