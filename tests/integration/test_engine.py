"""The engine against a real farm: modes, caching, faults, paths, commands, events."""

import itertools
import os
import time

import pytest

from cdl_tui.core.files.transfer import RESUME_MIN
from cdl_tui.core.model import faults
from cdl_tui.core.model.events import (
    DownloadDone,
    DownloadQueued,
    DownloadStarted,
    EngineDrained,
    EngineStopped,
    FileDone,
    FileStateChanged,
)
from cdl_tui.core.model.jobspec import parse_job_specs
from cdl_tui.core.model.states import FileState, Outcome

from .conftest import farm_files, files_on_disk, temp_files, wait_for


def run_to_end(engine, timeout=60):
    engine.start()
    assert engine.stop_event.wait(timeout), "the engine did not finish"
    return engine.shutdown()


def test_job_mode_downloads_every_file_verified(start_farm, make_engine, tmp_path):
    farm = start_farm(jobs=2, tasks=14, files=3)
    engine = make_engine(farm, tmp_path, jobs=farm.job_ids, exit_when_done=True)
    assert run_to_end(engine) == 0
    store = farm.store()
    for job in farm.job_ids:
        assert files_on_disk(tmp_path / job) == farm_files(store, job)
    assert store.status_counts() == {"pending": 0, "downloading": 0, "downloaded": 28}
    snap = engine.snapshot()
    assert snap.totals.downloads_done == 28
    assert snap.totals.files_downloaded == sum(len(farm_files(store, j)) for j in farm.job_ids)
    assert not temp_files(tmp_path)
    # zero-byte files and Downloads without files are handled
    assert any(p.stat().st_size == 0 for p in tmp_path.rglob("*.exr"))


def test_a_rerun_is_all_cached_and_fetches_nothing(start_farm, make_engine, tmp_path):
    farm = start_farm(jobs=1, tasks=10, files=2)
    assert run_to_end(make_engine(farm, tmp_path, jobs=farm.job_ids, exit_when_done=True)) == 0
    requests_before = farm.stats()["counters"]["file_requests"]
    rerun = make_engine(farm, tmp_path, jobs=farm.job_ids, exit_when_done=True)
    assert run_to_end(rerun) == 0
    totals = rerun.snapshot().totals
    assert totals.files_downloaded == 0
    assert totals.files_cached == sum(1 for _ in farm_files(farm.store(), farm.job_ids[0]))
    assert farm.stats()["counters"]["file_requests"] == requests_before  # zero file GETs
    assert farm.store().status_counts()["downloaded"] == 10


def test_daemon_mode_takes_only_its_location(start_farm, make_engine, tmp_path):
    farm = start_farm(jobs=4, tasks=6, locations=("studio-a", "studio-b"))
    engine = make_engine(farm, tmp_path, location="studio-b")
    engine.start()
    store = farm.store()
    b_jobs = [j for j in farm.job_ids if int(j) % 2 == 0]  # jobs alternate a, b, a, b
    wait_for(
        lambda: engine.snapshot().totals.downloads_done == 12 and not engine.snapshot().active,
        what="the studio-b downloads",
    )
    time.sleep(0.6)  # one more poll: nothing else may come
    assert engine.shutdown() == 0
    for job in farm.job_ids:
        on_disk = files_on_disk(tmp_path / job)
        assert on_disk == (farm_files(store, job) if job in b_jobs else {})
    rows = store.conn.execute("SELECT location, status, COUNT(*) FROM downloads GROUP BY 1, 2")
    assert {tuple(r) for r in rows} == {("studio-a", "pending", 12), ("studio-b", "downloaded", 12)}


def test_server_faults_end_with_every_file_correct(start_farm, make_engine, tmp_path):
    farm = start_farm(
        "--faults", "500=0.1,503=0.1,cut=0.15,corrupt=0.15,seed=11", jobs=2, tasks=12, files=3
    )
    engine = make_engine(farm, tmp_path, jobs=farm.job_ids, exit_when_done=True, max_attempts=10)
    assert run_to_end(engine, timeout=120) == 0
    store = farm.store()
    for job in farm.job_ids:
        assert files_on_disk(tmp_path / job) == farm_files(store, job)
    counters = farm.stats()["counters"]
    assert counters["fault_corrupt"] > 0 and counters["fault_cut"] > 0  # md5 mismatch, then OK
    assert counters.get("fault_status500", 0) + counters.get("fault_status503", 0) > 0
    assert not temp_files(tmp_path)


def test_client_side_fault_injection_is_survived(start_farm, make_engine, tmp_path):
    farm = start_farm(jobs=1, tasks=12, files=3)
    faults.configure("chunk=0.1,api=0.1,hash=0.2,rename=0.05,mkdir=0.05,seed=5")
    try:
        engine = make_engine(
            farm, tmp_path, jobs=farm.job_ids, exit_when_done=True, max_attempts=20
        )
        assert run_to_end(engine, timeout=120) == 0
        injected = dict(faults.injected)
    finally:
        faults.configure(None)
    assert files_on_disk(tmp_path / farm.job_ids[0]) == farm_files(farm.store(), farm.job_ids[0])
    assert sum(injected.values()) > 5, injected
    assert not temp_files(tmp_path)


def test_a_download_that_keeps_failing_is_failed_reported_and_the_rest_go_on(
    start_farm, make_engine, tmp_path
):
    farm = start_farm(jobs=1, tasks=4, files=1, size=2000)
    store = farm.store()
    victim = store.conn.execute(
        "SELECT download_id FROM downloads WHERE task_index = 1"
    ).fetchone()[0]
    store.conn.execute(  # the farm now lists a wrong md5 for that file: it can never verify
        "UPDATE files SET md5 = 'AAAAAAAAAAAAAAAAAAAAAA==' WHERE download_pk = "
        "(SELECT id FROM downloads WHERE download_id = ?)",
        (victim,),
    )
    engine = make_engine(farm, tmp_path, jobs=farm.job_ids, exit_when_done=True, max_attempts=3)
    assert run_to_end(engine) == 1
    snap = engine.snapshot()
    assert snap.totals.downloads_failed == 1
    assert snap.totals.downloads_done == 3
    assert [f.download_id for f in snap.failed] == [victim]
    assert "md5 mismatch" in snap.failed[0].reason
    assert snap.failed[0].attempts == 3
    fails = store.audit_rows("fail")
    assert [r["download_id"] for r in fails] == [victim]
    assert store.download(victim).status == "pending"
    assert not temp_files(tmp_path)
    # nothing was left at the final path
    name = store.conn.execute(
        "SELECT relative_path FROM files f JOIN downloads d ON d.id = f.download_pk "
        "WHERE d.download_id = ?",
        (victim,),
    ).fetchone()[0]
    assert not (tmp_path / farm.job_ids[0] / name).exists()


MALICIOUS = [
    ("/etc/cdl-escape.exr", "is absolute"),
    ("../../cdl-escape.exr", "climbs out"),
    ("C:/cdl-escape.exr", "names a drive"),
    ("renders\\..\\..\\cdl-escape.exr", "backslash"),
    ("cdl-escape\x00.exr", "NUL byte"),
    ("x/" + "n" * 300 + ".exr", "longer than 255 bytes"),
]


@pytest.mark.parametrize(("path", "reason"), MALICIOUS)
def test_malicious_paths_are_refused_with_nothing_written(
    start_farm, make_engine, tmp_path, path, reason
):
    farm = start_farm(jobs=1, tasks=3, files=2)
    store = farm.store()
    victim, first_file = store.conn.execute(
        "SELECT d.download_id, MIN(f.id) FROM downloads d JOIN files f ON f.download_pk = d.id "
        "WHERE d.task_index = 0"
    ).fetchone()
    store.conn.execute("UPDATE files SET relative_path = ? WHERE id = ?", (path, first_file))
    out = tmp_path / "out"
    engine = make_engine(farm, out, jobs=farm.job_ids, exit_when_done=True)
    assert run_to_end(engine) == 1
    refused = engine.snapshot().failed
    assert [f.download_id for f in refused] == [victim]
    assert refused[0].outcome is Outcome.REFUSED
    assert reason in refused[0].reason
    assert not list(tmp_path.rglob("cdl-escape*"))
    assert not (out / farm.job_ids[0]).exists() or not [
        p
        for p in (out / farm.job_ids[0]).rglob("*")
        if "1001" in p.name  # task 0 = frame 1001
    ]
    assert [r["download_id"] for r in store.audit_rows("fail")] == [victim]
    assert engine.snapshot().totals.downloads_done == 2  # the other tasks went on


def test_a_symlink_at_a_files_name_is_replaced_and_duplicate_paths_are_refused(
    start_farm, make_engine, tmp_path
):
    farm = start_farm(jobs=1, tasks=3, files=2)
    store = farm.store()
    job = farm.job_ids[0]
    rows = store.conn.execute(
        "SELECT d.task_index, f.id, f.relative_path FROM files f "
        "JOIN downloads d ON d.id = f.download_pk ORDER BY f.id"
    ).fetchall()
    by_task = {}
    for task, file_id, rel in rows:
        by_task.setdefault(task, []).append((file_id, rel))
    # task 0: one of its files is a symlink that leads outside the output root
    out = tmp_path / "out"
    outside = tmp_path / "outside"
    outside.mkdir()
    link = out / job / by_task[0][0][1]
    link.parent.mkdir(parents=True)
    link.symlink_to(outside / "target.exr")
    # task 1: both files map to one path
    store.conn.execute(
        "UPDATE files SET relative_path = ? WHERE id = ?", (by_task[1][0][1], by_task[1][1][0])
    )
    engine = make_engine(farm, out, jobs=farm.job_ids, exit_when_done=True)
    assert run_to_end(engine) == 1
    reasons = {f.task_id: f.reason for f in engine.snapshot().failed}
    assert "would be written twice" in reasons["001"]
    assert "000" not in reasons  # the link at a file's name was replaced, not followed
    assert list(outside.iterdir()) == []
    assert not link.is_symlink() and link.is_file()
    assert engine.snapshot().totals.downloads_done == 2


def test_event_order_for_a_download(start_farm, make_engine, tmp_path):
    farm = start_farm(jobs=1, tasks=1, files=3)
    engine = make_engine(farm, tmp_path, jobs=farm.job_ids, exit_when_done=True, threads=1)
    events = []
    engine.bus.subscribe(events.append)
    assert run_to_end(engine) == 0
    kinds = [type(e) for e in events if not e.name.startswith(("job_", "feeder"))]
    assert kinds[0] is DownloadQueued
    assert kinds[1] is DownloadStarted
    per_file = [e for e in events if isinstance(e, FileStateChanged | FileDone)]
    for path in {e.path for e in per_file}:
        sequence = [
            e.state if isinstance(e, FileStateChanged) else "done"
            for e in per_file
            if e.path == path
        ]
        assert sequence == [FileState.PREPARING, FileState.DOWNLOADING, "done"]
    assert kinds[-3:] == [DownloadDone, EngineDrained, EngineStopped]
    assert events[-1].exit_code == 0
    assert all(a.at <= b.at for a, b in itertools.pairwise(events))


def test_snapshots_while_workers_run_keep_their_invariants(start_farm, make_engine, tmp_path):
    farm = start_farm("--faults", "bandwidth=4MiB", jobs=2, tasks=10, files=3, size=150_000)
    engine = make_engine(farm, tmp_path, jobs=farm.job_ids, exit_when_done=True)
    engine.start()
    seen = []
    while not engine.stop_event.is_set():
        seen.append(engine.snapshot())
        time.sleep(0.01)
    engine.shutdown()
    seen.append(engine.snapshot())
    assert len(seen) > 20
    fields = ("files_downloaded", "bytes_downloaded", "downloads_done")
    for before, after in itertools.pairwise(seen):
        for name in fields:
            assert getattr(after.totals, name) >= getattr(before.totals, name)
    for snap in seen:
        assert snap.busy == len(snap.active) <= snap.threads
        for view in snap.active:
            assert 0 <= view.done <= view.size
            assert sum(f.done for f in view.files) == view.done
    files, tasks = engine.history()
    last = seen[-1].totals
    assert last.bytes_downloaded == sum(e.size for e in files if e.outcome is Outcome.DL)
    assert last.files_downloaded == sum(1 for e in files if e.outcome is Outcome.DL)
    assert last.downloads_done == len(tasks) == 20


def throttled_farm(start_farm, **shape):
    return start_farm("--faults", "bandwidth=256KiB", **shape)


def bytes_moving(engine, seconds=0.6):
    before = sum(a.done for a in engine.snapshot().active)
    time.sleep(seconds)
    return sum(a.done for a in engine.snapshot().active) - before


def test_pause_stops_byte_growth_and_resume_restarts_it(
    start_farm, make_engine, both_engines, tmp_path
):
    farm = throttled_farm(start_farm, jobs=1, tasks=4, files=1, size=3_000_000)
    engine = make_engine(farm, tmp_path, jobs=farm.job_ids, exit_when_done=True, threads=2)
    engine.start()
    wait_for(lambda: sum(a.done for a in engine.snapshot().active) > 0, what="bytes")
    engine.pause()
    time.sleep(0.3)  # workers stop at their next chunk
    assert bytes_moving(engine) == 0
    assert engine.snapshot().paused
    engine.resume()
    assert bytes_moving(engine) > 0
    # pause one Download only
    target = engine.snapshot().active[0].download_id
    engine.pause_download(target)
    time.sleep(0.3)
    view = next(a for a in engine.snapshot().active if a.download_id == target)
    time.sleep(0.5)
    again = next(a for a in engine.snapshot().active if a.download_id == target)
    assert again.paused and again.done == view.done
    engine.pause_download(target, False)
    engine.stop()
    engine.shutdown()


def test_cancel_reports_pending_and_leaves_no_temp_file(
    start_farm, make_engine, both_engines, tmp_path
):
    farm = throttled_farm(start_farm, jobs=1, tasks=3, files=1, size=3_000_000)
    engine = make_engine(farm, tmp_path, jobs=farm.job_ids, exit_when_done=True, threads=1)
    engine.start()
    wait_for(lambda: any(a.done for a in engine.snapshot().active), what="an active download")
    wait_for(lambda: temp_files(tmp_path), what="a temp file")
    target = engine.snapshot().active[0].download_id
    assert engine.cancel(target)
    wait_for(lambda: any(f.download_id == target for f in engine.snapshot().failed), what="cancel")
    cancelled = next(f for f in engine.snapshot().failed if f.download_id == target)
    assert cancelled.outcome is Outcome.CANCELLED
    wait_for(lambda: farm.store().download(target).status == "pending", what="pending report")
    cancelled_names = {
        f.relative_path.rsplit("/", 1)[-1] for d in [farm.store().download(target)] for f in d.files
    }
    assert not [p for p in temp_files(tmp_path) if any(n in p.name for n in cancelled_names)]
    assert engine.retry(target)  # a cancelled Download can be retried
    assert target in {p.download_id for p in engine.snapshot().pending}
    # cancel a queued one too
    queued = engine.snapshot().pending[0].download_id
    assert engine.cancel(queued)
    assert queued not in {p.download_id for p in engine.snapshot().pending}
    engine.stop()
    engine.shutdown()
    # What a shutdown leaves is only big partials, for the next run to resume.
    assert all(p.stat().st_size >= RESUME_MIN for p in temp_files(tmp_path))
    assert farm.store().status_counts()["downloading"] == 0


def test_retry_describes_a_failed_download_afresh_and_runs_it_again(
    start_farm, make_engine, tmp_path
):
    farm = start_farm(jobs=1, tasks=3, files=1, size=2000)
    store = farm.store()
    victim = store.conn.execute(
        "SELECT download_id FROM downloads WHERE task_index = 2"
    ).fetchone()[0]
    good_md5 = store.conn.execute(
        "SELECT md5 FROM files f JOIN downloads d ON d.id = f.download_pk WHERE d.download_id = ?",
        (victim,),
    ).fetchone()[0]
    store.conn.execute(
        "UPDATE files SET md5 = 'AAAAAAAAAAAAAAAAAAAAAA==' WHERE download_pk = "
        "(SELECT id FROM downloads WHERE download_id = ?)",
        (victim,),
    )
    engine = make_engine(farm, tmp_path, jobs=farm.job_ids, max_attempts=2)  # no exit-when-done
    engine.start()
    wait_for(lambda: engine.snapshot().failed, what="the failure")
    assert engine.snapshot().failed[0].download_id == victim
    # the farm fixes the file, and the job is listed again: the retry command is what re-runs it
    store.conn.execute(
        "UPDATE files SET md5 = ? "
        "WHERE download_pk = (SELECT id FROM downloads WHERE download_id = ?)",
        (good_md5, victim),
    )
    time.sleep(1.2)  # a re-listing happens; a known Download is not queued twice
    assert engine.snapshot().failed and engine.snapshot().totals.downloads_done == 2
    # the retry command asks the farm afresh, so the fixed md5 is used
    assert engine.retry_failed() == 1
    wait_for(lambda: engine.snapshot().totals.downloads_done == 3, what="the retried download")
    assert engine.snapshot().failed == ()
    totals = engine.snapshot().totals
    assert (totals.files_failed, totals.downloads_failed) == (0, 0)  # made good: no failure
    assert engine.retry(victim) is False  # nothing left to retry
    engine.stop()
    assert engine.shutdown() == 0  # the failure was made good
    assert files_on_disk(tmp_path / farm.job_ids[0]) == farm_files(store, farm.job_ids[0])


def test_add_job_while_running_and_thread_changes(start_farm, make_engine, tmp_path):
    farm = start_farm(jobs=2, tasks=5, files=2)
    first, second = farm.job_ids
    engine = make_engine(farm, tmp_path, jobs=[first], threads=2)  # keeps re-listing
    engine.start()
    wait_for(lambda: engine.snapshot().totals.downloads_done == 5, what="the first job")
    assert engine.add_jobs(parse_job_specs([second])) == parse_job_specs([second])
    assert engine.add_jobs(parse_job_specs([second])) == []  # already there
    assert engine.set_threads(5) == 5
    wait_for(lambda: engine.snapshot().totals.downloads_done == 10, what="the added job")
    assert engine.snapshot().threads == 5
    assert engine.set_threads(1) == 1
    wait_for(
        lambda: sum(t.is_alive() for t in engine._workers.threads()) == 1, what="workers to retire"
    )
    engine.stop()
    assert engine.shutdown() == 0
    assert files_on_disk(tmp_path / second) == farm_files(farm.store(), second)


def test_a_job_that_is_not_on_the_farm_fails_the_run_but_not_the_others(
    start_farm, make_engine, tmp_path
):
    farm = start_farm(jobs=1, tasks=2)
    engine = make_engine(farm, tmp_path, jobs=[farm.job_ids[0], "99999"], exit_when_done=True)
    assert run_to_end(engine) == 1
    snap = engine.snapshot()
    assert snap.totals.downloads_done == 2
    assert any(j.job_id == "99999" for j in snap.jobs)


def test_existing_files_follow_on_conflict(start_farm, make_engine, tmp_path):
    farm = start_farm(jobs=1, tasks=1, files=2, size=5000)
    job = farm.job_ids[0]
    run_to_end(make_engine(farm, tmp_path / "a", jobs=[job], exit_when_done=True))
    target = next(p for p in (tmp_path / "a" / job).rglob("*.exr") if p.stat().st_size)
    good = target.read_bytes()
    for policy in ("skip", "backup", "overwrite"):
        target.write_bytes(b"x" * len(good))  # same size, different md5
        engine = make_engine(
            farm, tmp_path / "a", jobs=[job], exit_when_done=True, on_conflict=policy
        )
        assert run_to_end(engine) == 0
        if policy == "skip":
            assert target.read_bytes() == b"x" * len(good)
            assert engine.snapshot().totals.files_skipped == 1
        else:
            assert target.read_bytes() == good
    backups = list(target.parent.glob(f"{target.name}.cdl-backup-*"))
    assert len(backups) == 1 and backups[0].read_bytes() == b"x" * len(good)
    # --force fetches even a good file
    forced = make_engine(farm, tmp_path / "a", jobs=[job], exit_when_done=True, force=True)
    assert run_to_end(forced) == 0
    assert forced.snapshot().totals.files_downloaded == 2


def test_regex_keeps_only_matching_files(start_farm, make_engine, tmp_path):
    farm = start_farm(jobs=1, tasks=3, files=3)
    engine = make_engine(farm, tmp_path, jobs=farm.job_ids, exit_when_done=True, regex=r"\.deep\.")
    assert run_to_end(engine) == 0
    names = [p.name for p in tmp_path.rglob("*.exr")]
    assert names and all(".deep." in n for n in names)


def test_permissions_are_applied(start_farm, make_engine, tmp_path):
    from cdl_tui.core.model.settings import Permissions

    farm = start_farm(jobs=1, tasks=1, files=1)
    old = os.umask(0o077)
    try:
        engine = make_engine(
            farm,
            tmp_path / "out",
            jobs=farm.job_ids,
            exit_when_done=True,
            permissions=Permissions(file_mode=0o640, dir_mode=0o750),
        )
        assert run_to_end(engine) == 0
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    dirs = [p for p in (tmp_path / "out").rglob("*") if p.is_dir()]
    assert files and {oct(p.stat().st_mode & 0o777) for p in files} == {"0o640"}
    assert {oct(p.stat().st_mode & 0o777) for p in dirs} == {"0o750"}


def test_heartbeats_keep_a_slow_download_leased(start_farm, make_engine, tmp_path):
    farm = start_farm(
        "--lease-timeout",
        "1",
        "--faults",
        "bandwidth=200KiB",
        jobs=1,
        tasks=2,
        files=1,
        size=500_000,
    )
    engine = make_engine(farm, tmp_path, threads=1, heartbeat_interval=0.3)  # daemon mode
    engine.start()
    wait_for(lambda: engine.snapshot().totals.downloads_done == 2, timeout=60, what="downloads")
    engine.stop()
    engine.shutdown()
    store = farm.store()
    assert store.audit_rows("expired") == []  # the queued one was heartbeaten too
    assert len(store.audit_rows("heartbeat")) > 3
    assert store.downloads_fetched_under_two_leases() == []
