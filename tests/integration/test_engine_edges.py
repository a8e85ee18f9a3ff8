"""Edge cases found in review: shared paths, untrusted output_dir, leases that must not
be forced, starved or leaked, a frozen farm at shutdown, a listing that always fails."""

import os
import signal
import time

from cdl_tui.core.engine import Engine, EngineConfig
from cdl_tui.core.farm.api import FarmClient
from cdl_tui.core.farm.credentials import credentials_from_text
from cdl_tui.core.farm.retry import RetryPolicy
from cdl_tui.core.files.destination import output_dir_problem
from cdl_tui.core.model.jobspec import parse_job_specs

from .conftest import farm_files, files_on_disk, wait_for


def run_to_end(engine, timeout=60):
    engine.start()
    assert engine.stop_event.wait(timeout), "the engine did not finish"
    return engine.shutdown()


def test_two_downloads_naming_one_file_never_share_a_temp_file(start_farm, make_engine, tmp_path):
    farm = start_farm("--faults", "bandwidth=1MiB", jobs=1, tasks=2, files=1, size=2_000_000)
    store = farm.store()
    first, second = store.conn.execute(
        "SELECT f.id FROM files f JOIN downloads d ON d.id = f.download_pk ORDER BY d.task_index"
    ).fetchall()
    store.conn.execute(  # task 1's file is task 0's, byte for byte
        "UPDATE files SET relative_path = (SELECT relative_path FROM files WHERE id = ?), "
        "md5 = (SELECT md5 FROM files WHERE id = ?), size = (SELECT size FROM files WHERE "
        "id = ?), content_start = (SELECT content_start FROM files WHERE id = ?) WHERE id = ?",
        (first[0], first[0], first[0], first[0], second[0]),
    )
    engine = make_engine(
        farm, tmp_path, jobs=farm.job_ids, exit_when_done=True, threads=2, retry_delay=0.2
    )
    assert run_to_end(engine) == 0
    assert files_on_disk(tmp_path / farm.job_ids[0]) == farm_files(store, farm.job_ids[0])
    totals = engine.snapshot().totals
    assert totals.downloads_done == 2
    assert (totals.files_downloaded, totals.files_cached) == (1, 1)  # fetched once, then kept


def test_the_farms_output_dir_cannot_aim_at_home_or_system_folders():
    home = os.path.expanduser("~")
    assert output_dir_problem(home) in ("is the home folder or above it", "is a system folder")
    assert output_dir_problem(os.path.dirname(home) or "/") is not None
    assert output_dir_problem("/") == "is a system folder"
    assert output_dir_problem("/etc/cron.d") == "is a system folder"
    assert output_dir_problem(f"{home}/.ssh") == "goes through a hidden or relative folder"
    assert output_dir_problem("/mnt/shows/../etc") == "goes through a hidden or relative folder"


def test_cancelling_an_untouched_queued_download_does_not_reset_the_farm(
    start_farm, make_engine, tmp_path
):
    farm = start_farm(jobs=1, tasks=6, files=1, size=10_000)
    assert run_to_end(make_engine(farm, tmp_path, jobs=farm.job_ids, exit_when_done=True)) == 0
    store = farm.store()
    assert store.status_counts()["downloaded"] == 6
    engine = make_engine(farm, tmp_path / "again", jobs=farm.job_ids, threads=1)
    engine.pause()  # nothing starts: everything stays queued
    engine.start()
    wait_for(lambda: len(engine.snapshot().pending) == 6, what="the queue")
    assert engine.cancel(engine.snapshot().pending[-1].download_id)
    engine.stop()
    engine.shutdown()
    assert store.status_counts()["downloaded"] == 6


def test_a_daemon_is_not_starved_by_downloads_it_gave_up(start_farm, make_engine, tmp_path):
    farm = start_farm(jobs=2, tasks=8, files=1, size=2000)
    store = farm.store()
    store.conn.execute(  # every task of the first job can never verify
        "UPDATE files SET md5 = 'AAAAAAAAAAAAAAAAAAAAAA==' WHERE download_pk IN "
        "(SELECT id FROM downloads WHERE job_id = ?)",
        (farm.job_ids[0],),
    )
    engine = make_engine(farm, tmp_path, threads=1, max_attempts=1, poll_interval=0.2)
    engine.start()
    wait_for(
        lambda: engine.snapshot().totals.downloads_done == 8,
        timeout=60,
        what="the good job despite 8 failures ahead of it",
    )
    assert engine.snapshot().totals.downloads_failed == 8
    engine.stop()
    engine.shutdown()
    counts = store.status_counts()
    assert counts["downloading"] == 0  # the held leases were given back at the end
    assert len(store.audit_rows("fail")) == 8


def test_daemon_and_jobs_keep_the_lease_of_a_download_both_found(start_farm, make_engine, tmp_path):
    farm = start_farm(
        "--lease-timeout",
        "2",
        "--faults",
        "bandwidth=128KiB",
        jobs=1,
        tasks=3,
        files=1,
        size=600_000,
    )
    engine = make_engine(
        farm,
        tmp_path,
        jobs=farm.job_ids,
        daemon=True,
        threads=1,
        heartbeat_interval=0.3,
        poll_interval=0.2,
    )
    assert engine.config.mode == "daemon+jobs"
    engine.start()
    wait_for(lambda: engine.snapshot().totals.downloads_done == 3, timeout=60, what="all")
    engine.stop()
    engine.shutdown()
    assert farm.store().audit_rows("expired") == []  # queued ones were heartbeaten
    assert farm.store().downloads_fetched_under_two_leases() == []


def test_shutdown_is_bounded_when_the_farm_freezes(start_farm, make_engine, tmp_path):
    farm = start_farm("--faults", "bandwidth=64KiB", jobs=1, tasks=12, files=1, size=2_000_000)
    engine = make_engine(farm, tmp_path, threads=2)  # daemon: 4 more queued and leased
    engine.start()
    wait_for(lambda: len(engine.snapshot().active) == 2, what="transfers")
    wait_for(lambda: len(engine.snapshot().pending) >= 2, what="a leased queue")
    os.kill(farm.proc.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        engine.shutdown(timeout=3)
        took = time.monotonic() - started
    finally:
        os.kill(farm.proc.pid, signal.SIGCONT)
    assert took < 15, took


def test_a_listing_that_always_fails_ends_an_exit_when_done_run(start_farm, make_engine, tmp_path):
    farm = start_farm(jobs=1, tasks=2)
    engine = make_engine(farm, tmp_path, jobs=["99999"], exit_when_done=True)
    assert run_to_end(engine) == 1
    assert "not found" in next(t.error for t in engine.trackers() if t.job_id == "99999")


def test_a_skipped_file_is_counted_once_across_attempts(start_farm, make_engine, tmp_path):
    farm = start_farm(jobs=1, tasks=1, files=2, size=5000)
    store = farm.store()
    job = farm.job_ids[0]
    assert run_to_end(make_engine(farm, tmp_path, jobs=[job], exit_when_done=True)) == 0
    files = sorted((p for p in (tmp_path / job).rglob("*.exr")), key=lambda p: p.name)
    files[0].write_bytes(b"x" * files[0].stat().st_size)  # differs: will be SKIPPED
    store.conn.execute(  # the other can never verify: the Download fails 3 times
        "UPDATE files SET md5 = 'AAAAAAAAAAAAAAAAAAAAAA==' WHERE relative_path LIKE ?",
        (f"%{files[1].name}",),
    )
    files[1].unlink()
    engine = make_engine(
        farm, tmp_path, jobs=[job], exit_when_done=True, max_attempts=3, on_conflict="skip"
    )
    assert run_to_end(engine) == 1
    assert engine.snapshot().totals.files_skipped == 1


def test_the_last_downloaded_report_is_retried_after_the_run_ends(start_farm, tmp_path):
    # --exit-when-done stops the engine right after the last Download is done, while its
    # `downloaded` report may still be on its way: a farm error then must be retried, not
    # given up because the engine is stopping (the farm would keep it pending).
    farm = start_farm("--faults", "api500=0.5,seed=4", jobs=1, tasks=6, files=1)
    patient = RetryPolicy(max_attempts=20, base_delay=0.01, max_delay=0.1)
    client = FarmClient(farm.url, credentials_from_text(farm.token, "test"), retry=patient)
    config = EngineConfig(
        jobs=tuple(parse_job_specs(farm.job_ids)),
        output=tmp_path,
        threads=2,
        exit_when_done=True,
        history_size=None,
    )
    engine = Engine(client, config)
    try:
        assert run_to_end(engine) == 0
    finally:
        client.close()
    assert farm.stats()["counters"]["fault_api500"] > 0
    assert farm.store().status_counts()["downloaded"] == 6
