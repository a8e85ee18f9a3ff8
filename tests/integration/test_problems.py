"""The engine's problem log against a farm that fails, then recovers: what the status line
and the headless summary show, and when it stops mattering."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from urllib.parse import urlsplit

from cdl_tui.core.farm.api import FARM_PROBLEM
from cdl_tui.core.state.problems import Severity, current_problems

from .conftest import wait_for
from .test_hostile_farm import CONTENT, TOKEN, listing


class FlakyFarm:
    """Answers 503 to the first listings, then lists one Download and serves its file."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.url = ""
        self.recovered = threading.Event()

    def __call__(self, request):
        path = urlsplit(request.path).path
        if path == "/blob/a.exr":
            return 200, {}, CONTENT
        if path.endswith("/downloads") and request.method == "POST":
            if self.failures > 0:
                self.failures -= 1
                return 503, {"Content-Type": "application/json"}, b'{"error": "busy"}'
            self.recovered.set()
            return 201, {"Content-Type": "application/json"}, listing(self.url)
        return 201, {"Content-Type": "application/json"}, b"{}"


def test_a_farm_that_answers_503_is_a_standing_problem_until_it_answers(
    hostile_server, make_engine, tmp_path
):
    farm = FlakyFarm(failures=2)
    farm.url = hostile_server(farm).url
    engine = make_engine(
        SimpleNamespace(url=farm.url, token=TOKEN), tmp_path, jobs=["08285"], exit_when_done=True
    )
    engine.start()

    def farm_problem():
        snap = engine.snapshot()
        return [p for p in current_problems(snap.problems, snap.taken_at) if p.key == FARM_PROBLEM]

    wait_for(farm_problem, 10, "the farm's problem")
    problem = farm_problem()[0]
    assert problem.severity is Severity.WARNING and problem.retry_at is not None
    assert "503" in problem.text and "listing job 08285" in problem.text
    wait_for(engine.stop_event.is_set, 30, "the end of the run")
    assert engine.shutdown() == 0
    snap = engine.snapshot()
    assert farm_problem() == []
    (entry,) = [p for p in snap.problems if p.key == FARM_PROBLEM]
    assert entry.cleared_at is not None and entry.count == 2  # two 503s, one entry


def test_a_job_not_on_the_farm_stays_a_current_error(start_farm, make_engine, tmp_path):
    farm = start_farm(jobs=1, tasks=1, files=1)
    engine = make_engine(farm, tmp_path, jobs=["99999"], exit_when_done=True)
    engine.start()
    wait_for(engine.stop_event.is_set, 30, "the end of the run")
    assert engine.shutdown() == 1
    snap = engine.snapshot()
    (problem,) = current_problems(snap.problems, snap.taken_at + 3600)
    assert problem.severity is Severity.ERROR and problem.key == "job 99999"
    assert "99999" in problem.text


def test_a_failed_attempt_stops_mattering_once_its_download_is_done(
    start_farm, make_engine, tmp_path
):
    farm = start_farm("--faults", "503=1.0", jobs=1, tasks=1, files=1)
    engine = make_engine(farm, tmp_path, jobs=farm.job_ids, max_attempts=3)
    engine.start()

    def download_problems():
        snap = engine.snapshot()
        return [p for p in snap.problems if (p.key or "").startswith("download ")]

    wait_for(download_problems, 30, "a failed attempt")
    assert all(p.severity is Severity.WARNING for p in download_problems())
    wait_for(lambda: any(p.severity is Severity.ERROR for p in download_problems()), 60, "given up")
    snap = engine.snapshot()
    (given_up,) = download_problems()
    assert given_up.count == 4 and given_up.cleared_at is None  # 3 attempts, then FAILED
    (failed,) = snap.failed
    assert engine.retry(failed.download_id)
    (retried,) = download_problems()
    assert retried.cleared_at is not None  # retried: no longer a problem


def test_a_download_released_to_the_farm_stops_mattering(start_farm, make_engine, tmp_path):
    """A daemon's Download that waited for disk too long goes back to the farm: it is no
    longer ours, so its WAITING FOR DISK problem is over."""
    farm = start_farm(jobs=1, tasks=1, files=1, size=5000)
    engine = make_engine(
        farm,
        tmp_path,
        threads=1,
        free_space=lambda path: 0,
        disk_retry=0.1,
        disk_release_after=0.3,
        poll_interval=30,
    )
    engine.start()
    wait_for(
        lambda: any("to the farm after" in p.text for p in engine.snapshot().problems),
        20,
        "release",
    )
    snap = engine.snapshot()
    waits = [p for p in snap.problems if (p.key or "").startswith("download ")]
    # The first wait ended with the release; the farm may offer it again at once (it is
    # pending there now), and then it waits anew: a new entry, current again.
    assert waits[-1].cleared_at is not None, [(p.text, p.cleared_at) for p in waits]
