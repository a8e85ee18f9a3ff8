"""The background status reporter: order per Download, newest report wins, bounded flush."""

from __future__ import annotations

import threading
import time

from cdl_tui.core.farm.reporter import Report, Reporter


def status(download_id: str, state: str, **kw) -> Report:
    return Report(download_id, download_id, "status", state, **kw)


class Recorder:
    def __init__(self, hold: threading.Event | None = None) -> None:
        self.sent: list[tuple[str, str]] = []
        self.hold = hold
        self.lock = threading.Lock()

    def __call__(self, report: Report) -> None:
        if self.hold is not None:
            self.hold.wait(5)
        with self.lock:
            self.sent.append((report.download_id, report.status or report.kind))


def test_every_report_is_sent_and_flush_waits_for_them():
    sent = Recorder()
    reporter = Reporter(sent)
    for n in range(50):
        reporter.submit(status(f"d{n}", "downloaded"))
    assert reporter.flush(5)
    assert sorted(sent.sent) == sorted((f"d{n}", "downloaded") for n in range(50))
    assert reporter.pending() == 0


def test_a_waiting_report_is_replaced_by_a_newer_one_about_the_same_download():
    gate = threading.Event()
    sent = Recorder(hold=gate)
    reporter = Reporter(sent, senders=1)
    reporter.submit(status("busy", "downloading"))  # occupies the only sender
    time.sleep(0.1)
    reporter.submit(status("d1", "downloading"))
    reporter.submit(status("d1", "downloaded"))
    gate.set()
    assert reporter.flush(5)
    assert sent.sent == [("busy", "downloading"), ("d1", "downloaded")]


def test_reports_about_one_download_never_overtake_each_other():
    gate = threading.Event()
    sent = Recorder(hold=gate)
    reporter = Reporter(sent, senders=4)
    reporter.submit(status("d1", "downloading"))
    time.sleep(0.1)  # in flight, held
    reporter.submit(status("d1", "downloaded"))  # must wait although senders are free
    time.sleep(0.1)
    assert sent.sent == []
    gate.set()
    assert reporter.flush(5)
    assert sent.sent == [("d1", "downloading"), ("d1", "downloaded")]


def test_a_fail_report_is_not_replaced_by_a_status():
    sent = Recorder(hold=threading.Event())
    reporter = Reporter(sent, senders=1)
    reporter.submit(Report("d1", "d1", "fail", message="md5 mismatch"))
    reporter.submit(status("d1", "pending"))
    sent.hold.set()
    assert reporter.flush(5)
    assert sent.sent == [("d1", "fail"), ("d1", "pending")]


def test_a_delayed_claim_waits_and_a_final_report_takes_its_place():
    sent = Recorder()
    reporter = Reporter(sent)
    reporter.submit(status("d1", "downloading", not_before=time.monotonic() + 5))
    time.sleep(0.2)
    assert sent.sent == []  # still waiting for its time
    reporter.submit(status("d1", "downloaded"))
    assert reporter.flush(5)
    assert sent.sent == [("d1", "downloaded")]


def test_a_delayed_claim_is_sent_when_its_time_comes():
    sent = Recorder()
    reporter = Reporter(sent)
    reporter.submit(status("d1", "downloading", not_before=time.monotonic() + 0.2))
    deadline = time.monotonic() + 5
    while not sent.sent and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sent.sent == [("d1", "downloading")]


def test_flush_sends_delayed_reports_at_once():
    sent = Recorder()
    reporter = Reporter(sent)
    reporter.submit(status("d1", "downloading", not_before=time.monotonic() + 60))
    started = time.monotonic()
    assert reporter.flush(5)
    assert time.monotonic() - started < 2
    assert sent.sent == [("d1", "downloading")]


def test_close_gives_up_on_a_farm_that_does_not_answer():
    stuck = threading.Event()  # never set: the send hangs
    reporter = Reporter(Recorder(hold=stuck), senders=1)
    reporter.submit(status("d1", "pending"))
    started = time.monotonic()
    reporter.close(0.3)
    assert time.monotonic() - started < 2
    stuck.set()


def test_a_replaced_report_goes_behind_what_was_queued_meanwhile():
    # A delayed claim, then a failure: its /fail is queued, then `pending` replaces the
    # claim. The farm must hear the failure before the release, not after.
    sent = Recorder()
    reporter = Reporter(sent, senders=1)
    reporter.submit(status("d1", "downloading", not_before=time.monotonic() + 60))
    reporter.submit(Report("d1", "d1", "fail", message="md5 mismatch"))
    reporter.submit(status("d1", "pending"))
    assert reporter.flush(5)
    assert sent.sent == [("d1", "fail"), ("d1", "pending")]


class Slow:
    """A farm that takes `seconds` per report, for any number of reports at once."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.sent: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, report: Report) -> None:
        time.sleep(self.seconds)
        with self.lock:
            self.sent.append(report.download_id)


def test_close_sends_the_releases_of_an_exit_side_by_side():
    farm = Slow(0.25)
    reporter = Reporter(farm, senders=1)
    for n in range(12):
        reporter.submit(status(f"d{n}", "pending"))
    started = time.monotonic()
    reporter.close(5)
    # one sender would take 3 s; the extra senders of close() do it in a few rounds
    assert time.monotonic() - started < 1.5
    assert sorted(farm.sent) == sorted(f"d{n}" for n in range(12))
    assert not reporter.gave_up.is_set()


def test_a_report_after_close_is_dropped_and_gave_up_tells_in_flight_sends_to_end():
    stuck = threading.Event()
    sent = Recorder(hold=stuck)
    reporter = Reporter(sent, senders=1)
    reporter.submit(status("d1", "downloaded"))
    reporter.close(0.2)
    assert reporter.gave_up.is_set()  # the engine's client gives up its retries on this
    reporter.submit(status("d2", "pending"))  # no sender left: dropped, with a warning
    stuck.set()
    time.sleep(0.2)
    assert ("d2", "pending") not in sent.sent


def test_heartbeat_rounds_behind_a_slow_farm_reach_every_download_in_turn():
    # The farm answers 10 reports per round; 20 Downloads are leased. Each round must
    # take up where the last left off, or the last 10 would never be heard of.
    farm = Slow(0.02)
    reporter = Reporter(farm, senders=1)
    ids = [f"d{n:02d}" for n in range(20)]
    for _ in range(6):
        for download_id in ids:
            reporter.submit(status(download_id, "downloading", quick=True))
        time.sleep(0.2)
    reporter.close(0.01)
    assert set(farm.sent) == set(ids)


def test_one_sender_serves_a_farm_that_keeps_up():
    sent = Recorder()
    reporter = Reporter(sent, senders=4)
    for n in range(40):
        reporter.submit(status(f"d{n}", "downloaded"))
        time.sleep(0.005)  # reports arrive slower than the farm answers
    assert reporter.flush(5)
    assert len(sent.sent) == 40
    assert len(reporter._senders) <= 2  # 1, but for a machine stalled for GROW_AFTER


def test_more_senders_start_when_reports_wait_for_a_slow_farm():
    farm = Slow(0.3)
    reporter = Reporter(farm, senders=4)
    started = time.monotonic()
    for n in range(8):
        reporter.submit(status(f"d{n}", "downloaded"))
        time.sleep(0.1)  # each later report finds the line behind
    assert reporter.flush(5)
    # one sender alone would take 8 x 0.3 s
    assert time.monotonic() - started < 2.0
    assert sorted(farm.sent) == sorted(f"d{n}" for n in range(8))
    assert 2 <= len(reporter._senders) <= 4


class Hangs:
    """A farm that hangs on the reports of one Download until `release` is set."""

    def __init__(self, stuck: str) -> None:
        self.stuck = stuck
        self.release = threading.Event()
        self.sent: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, report: Report) -> None:
        if report.download_id == self.stuck:
            self.release.wait(10)
        with self.lock:
            self.sent.append(report.download_id)


def wait_until(check, seconds: float = 3.0) -> bool:
    deadline = time.monotonic() + seconds
    while not check() and time.monotonic() < deadline:
        time.sleep(0.02)
    return check()


def test_a_report_behind_one_that_hangs_gets_a_sender_without_more_reports():
    farm = Hangs("stuck")
    reporter = Reporter(farm, senders=4)
    reporter.submit(status("stuck", "downloaded"))  # the only sender hangs on it
    time.sleep(0.1)
    reporter.submit(status("d1", "downloaded"))  # and nothing is submitted after this
    assert wait_until(lambda: "d1" in farm.sent)
    farm.release.set()
    assert reporter.flush(5)


def test_a_hanging_download_first_in_line_does_not_hold_the_others():
    farm = Hangs("stuck")
    reporter = Reporter(farm, senders=4)
    reporter.submit(status("stuck", "downloading"))
    time.sleep(0.1)
    reporter.submit(status("stuck", "downloaded"))  # first in line, its Download busy
    reporter.submit(status("d1", "downloaded"))
    assert wait_until(lambda: "d1" in farm.sent)
    assert farm.sent == ["d1"]
    farm.release.set()
    assert reporter.flush(5)
    assert farm.sent == ["d1", "stuck", "stuck"]
