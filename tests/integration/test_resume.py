"""Never lose a byte twice: resume after a kill, fresh URLs, the md5 journal, the disk
guard, the bandwidth limit, job hooks, and destination locks - against a real farm."""

import base64
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cdl_tui.core.farm.api import FarmClient
from cdl_tui.core.farm.credentials import credentials_from_text
from cdl_tui.core.files import transfer
from cdl_tui.core.files.journal import Journal
from cdl_tui.farm.content import ContentPool

from .conftest import farm_files, files_on_disk, temp_files, wait_for


def cdl_tui() -> str:
    return str(Path(sys.executable).parent / "cdl-tui")


def headless(farm, tmp_path, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CDL_", "CONDUCTOR_"))}
    env.update(
        CDL_API_KEY=farm.token,
        XDG_STATE_HOME=str(tmp_path / "state"),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
    )
    return subprocess.Popen(
        [cdl_tui(), "--headless", "--api-url", farm.url, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def range_requests(farm):
    farm.stats()  # flush the audit trail
    return [r["detail"] for r in farm.store().audit_rows("file") if "bytes=" in r["detail"]]


def test_sigkill_mid_file_then_a_rerun_resumes_with_a_range(start_farm, tmp_path, transfer_kind):
    farm = start_farm("--faults", "bandwidth=1MiB", jobs=1, tasks=1, files=1, size=6_000_000)
    out = tmp_path / "out"
    job = farm.job_ids[0]
    first = headless(
        farm, tmp_path, job, "--exit-when-done", "--transfer", transfer_kind, "--output", str(out)
    )
    wait_for(
        lambda: any(p.stat().st_size > 2_000_000 for p in temp_files(out)),
        timeout=30,
        what="2 MB on disk",
    )
    first.kill()  # no cleanup at all
    first.wait(10)
    (partial,) = temp_files(out)
    kept = partial.stat().st_size
    assert not [p for p in out.rglob("*.exr") if not p.name.startswith(".")]  # no final file
    second = headless(
        farm, tmp_path, job, "--exit-when-done", "--transfer", transfer_kind, "--output", str(out)
    )
    assert second.wait(60) == 0, second.stderr.read()
    assert files_on_disk(out / job) == farm_files(farm.store(), job)
    assert not temp_files(out)
    resumed = [d for d in range_requests(farm) if "-> 206" in d]
    assert len(resumed) == 1
    start = int(resumed[0].split("bytes=")[1].split("-")[0])
    assert start > 0 and abs(start - kept) < 1_100_000  # from what was on disk


def write_partial(farm, out, job, keep: int):
    """The first `keep` bytes of the job's first file, where a cut transfer leaves them."""
    with FarmClient(farm.url, credentials_from_text(farm.token, "t")) as client:
        download = next(iter(client.iter_job_downloads(job))).downloads[0]
    remote = download.files[0]
    store = farm.store()
    start = store.conn.execute(
        "SELECT content_start FROM files WHERE relative_path = ?", (remote.relative_path,)
    ).fetchone()[0]
    content = ContentPool(int(store.get_meta("content_seed"))).read(start, remote.size)
    dest = out / job / remote.relative_path
    dest.parent.mkdir(parents=True)
    transfer.temp_path_for(dest, remote).write_bytes(content[:keep])
    return dest, content


def test_a_partial_is_resumed_and_a_server_ignoring_range_restarts_cleanly(
    start_farm, serve, tmp_path, transfer_kind
):
    farm = start_farm(jobs=1, tasks=1, files=1, size=3_000_000)
    job = farm.job_ids[0]

    def resume_into(out: Path) -> list[str]:
        """A third of the file left in its temp file, then a run: the Range requests."""
        dest, content = write_partial(farm, out, job, 1_000_000)
        args = ("--exit-when-done", "--transfer", transfer_kind, "--output", str(out))
        assert headless(farm, tmp_path, job, *args).wait(60) == 0
        assert dest.read_bytes() == content
        return range_requests(farm)

    assert any("bytes=1000000- -> 206" in d for d in resume_into(tmp_path / "a"))
    # the same partial against a server that ignores Range
    farm.stop()
    farm.url, farm.proc = serve(farm.data_dir, "--faults", "norange=1")
    assert any("bytes=1000000- -> 200" in d for d in resume_into(tmp_path / "b"))
    assert not temp_files(tmp_path / "b")


def test_expired_urls_are_refreshed_and_bytes_kept(start_farm, make_engine, both_engines, tmp_path):
    farm = start_farm(
        "--url-ttl",
        "2",
        "--faults",
        "bandwidth=384KiB,cut=0.35,seed=4",
        jobs=1,
        tasks=6,
        files=1,
        size=1_200_000,
    )
    engine = make_engine(
        farm, tmp_path, jobs=farm.job_ids, exit_when_done=True, threads=2, max_attempts=10
    )
    engine.start()
    assert engine.stop_event.wait(120)
    assert engine.shutdown() == 0
    job = farm.job_ids[0]
    assert files_on_disk(tmp_path / job) == farm_files(farm.store(), job)
    farm.stats()
    details = [r["detail"] for r in farm.store().audit_rows("file")]
    assert any("-> 400" in d for d in details)  # URLs did expire (as GCS says it)...
    assert any("-> 206" in d for d in details)  # ...and cut transfers resumed
    assert engine.snapshot().totals.downloads_failed == 0


@pytest.mark.parametrize(("style", "refusal"), [("gcs", "-> 400"), ("s3", "-> 403")])
def test_urls_that_expire_while_the_queue_waits_are_refreshed_per_file(
    start_farm, make_engine, tmp_path, style, refusal
):
    """One worker, a slow link and URLs that live 2 s: every task after the first finds
    its URLs expired, as storage says it. Each file gets a fresh URL when refused, within
    the one attempt a Download has here."""
    farm = start_farm(
        "--url-ttl",
        "2",
        "--expired-style",
        style,
        "--faults",
        "bandwidth=512KiB",
        jobs=1,
        tasks=4,
        files=2,
        size=400_000,
        uniform=True,
    )
    engine = make_engine(
        farm, tmp_path, jobs=farm.job_ids, exit_when_done=True, threads=1, max_attempts=1
    )
    engine.start()
    assert engine.stop_event.wait(90)
    assert engine.shutdown() == 0
    job = farm.job_ids[0]
    assert files_on_disk(tmp_path / job) == farm_files(farm.store(), job)
    assert not temp_files(tmp_path)
    farm.stats()
    details = [r["detail"] for r in farm.store().audit_rows("file")]
    assert sum(refusal in d for d in details) >= 3  # the tasks that waited were refused
    totals = engine.snapshot().totals
    assert (totals.files_downloaded, totals.downloads_failed) == (8, 0)
    assert farm.store().status_counts()["downloaded"] == 4


def test_the_md5_journal_skips_hashing_unchanged_files(start_farm, make_engine, tmp_path):
    farm = start_farm(jobs=1, tasks=4, files=2, size=200_000)
    journal = tmp_path / "state" / "journal.sqlite"
    out = tmp_path / "out"

    def run(**config):
        engine = make_engine(
            farm, out, jobs=farm.job_ids, exit_when_done=True, journal=journal, **config
        )
        engine.start()
        assert engine.stop_event.wait(60)
        assert engine.shutdown() == 0
        return engine.snapshot().totals

    files = sum(1 for _ in farm_files(farm.store(), farm.job_ids[0]))
    assert run().files_downloaded == files
    again = run()
    assert (again.files_cached, again.files_hashed, again.files_downloaded) == (files, 0, 0)
    touched = next(p for p in out.rglob("*.exr") if p.stat().st_size)
    os.utime(touched, ns=(time.time_ns(), time.time_ns()))
    after_touch = run()
    assert after_touch.files_hashed == 1  # only the touched one
    assert after_touch.files_cached == files
    without_cache = run(md5_cache=False)
    assert without_cache.files_hashed == sum(
        1 for p in out.rglob("*.exr") if p.stat().st_size
    ) + sum(1 for p in out.rglob("*.exr") if not p.stat().st_size)
    # the journal also keeps the history of every run
    history = Journal(journal).recent_history(10_000)
    assert sum(1 for e in history if e.kind == "task") == 4 * 4


def test_a_corrupt_journal_is_rebuilt_with_a_warning(tmp_path, caplog):
    path = tmp_path / "journal.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    journal = Journal(path)
    assert "unreadable" in caplog.text
    assert list(tmp_path.glob("journal.sqlite.corrupt-*"))
    target = tmp_path / "f"
    target.write_bytes(b"x")
    journal.record_verified(target, "md5")
    journal.flush()
    assert journal.cached_md5(target) == "md5"
    journal.close()


def test_the_disk_guard_holds_downloads_until_space_frees(start_farm, make_engine, tmp_path):
    farm = start_farm(jobs=1, tasks=3, files=1, size=2_000_000)
    space = {"free": 1_000_000}
    engine = make_engine(
        farm,
        tmp_path,
        jobs=farm.job_ids,
        exit_when_done=True,
        disk_margin=0,
        disk_retry=0.2,
        free_space=lambda path: space["free"],
    )
    engine.start()
    wait_for(
        lambda: any(p.waiting == "WAITING FOR DISK" for p in engine.snapshot().pending),
        what="waiting for disk",
    )
    time.sleep(0.6)
    assert engine.snapshot().totals.files_downloaded == 0
    space["free"] = 10**12
    assert engine.stop_event.wait(60)
    assert engine.shutdown() == 0
    assert files_on_disk(tmp_path / farm.job_ids[0]) == farm_files(farm.store(), farm.job_ids[0])


def tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    return result.returncode == 0


def test_a_tiny_filesystem_holds_and_resumes(start_farm, make_engine, both_engines, tmp_path):
    small = tmp_path / "small"
    if not tmpfs(small, "6m"):
        pytest.skip("cannot mount a tmpfs here; the probe-based test above covers the guard")
    try:
        farm = start_farm(jobs=1, tasks=3, files=1, size=1_200_000)
        filler = small / "filler"
        filler.write_bytes(b"\0" * 5_600_000)  # leaves ~0.6 MB: not enough for one file
        engine = make_engine(
            farm,
            small / "out",
            jobs=farm.job_ids,
            exit_when_done=True,
            disk_margin=0,
            disk_retry=0.2,
        )
        engine.start()
        wait_for(lambda: any(p.waiting for p in engine.snapshot().pending), what="waiting")
        assert engine.snapshot().totals.files_downloaded == 0
        filler.unlink()  # space frees
        assert engine.stop_event.wait(60)
        assert engine.shutdown() == 0
        job = farm.job_ids[0]
        assert files_on_disk(small / "out" / job) == farm_files(farm.store(), job)
    finally:
        subprocess.run(["umount", str(small)], capture_output=True)


def test_the_bandwidth_limit_holds_within_ten_percent(
    start_farm, make_engine, both_engines, tmp_path
):
    farm = start_farm(jobs=1, tasks=8, files=1, size=3_000_000)
    limit = 2_000_000
    engine = make_engine(
        farm, tmp_path, jobs=farm.job_ids, exit_when_done=True, threads=4, max_bandwidth=limit
    )
    engine.start()
    time.sleep(7.5)
    samples = engine.snapshot().rate_history[-7:-1]  # whole seconds, past the start-up
    engine.stop()
    engine.shutdown()
    for window in (samples[:5], samples[1:6]):
        rate = sum(window) / 5
        assert abs(rate - limit) / limit < 0.10, (rate, samples)


def test_the_job_done_hook_runs_once_per_job(start_farm, make_engine, tmp_path):
    farm = start_farm(jobs=2, tasks=3, files=1)
    log = tmp_path / "hook.log"
    command = f'echo "$CDL_JOB_ID $CDL_TASKS $CDL_FILES $CDL_OUTPUT_DIR" >> {log}'
    engine = make_engine(
        farm, tmp_path / "out", jobs=farm.job_ids, exit_when_done=True, on_job_done=command
    )
    engine.start()
    assert engine.stop_event.wait(60)
    assert engine.shutdown() == 0
    lines = sorted(log.read_text().splitlines())
    assert [line.split()[0] for line in lines] == farm.job_ids
    for line, job in zip(lines, farm.job_ids, strict=True):
        _, tasks, files, output = line.split()
        assert tasks == "3" and output == str(tmp_path / "out" / job)
        assert int(files) == len(farm_files(farm.store(), job))


def test_a_failing_hook_is_logged_and_harmless(start_farm, make_engine, tmp_path, caplog):
    farm = start_farm(jobs=1, tasks=1, files=1)
    engine = make_engine(
        farm, tmp_path, jobs=farm.job_ids, exit_when_done=True, on_job_done="echo nope >&2; exit 3"
    )
    engine.start()
    assert engine.stop_event.wait(60)
    assert engine.shutdown() == 0
    assert "exited 3: nope" in caplog.text


HOLD_LOCK = """
import sys, time
from pathlib import Path
from cdl_tui.core.model.models import RemoteFile
from cdl_tui.core.files.transfer import destination_lock, target_at
remote = RemoteFile("http://x/", "1B2M2Y8AsgTpgAmY7PhCfg==", "f.exr", 0)
with target_at(Path(sys.argv[1])) as target, destination_lock(target, remote):
    print("locked", flush=True)
    time.sleep(30)
"""


def test_two_processes_never_write_one_final_path_at_once(tmp_path):
    dest = tmp_path / "f.exr"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(dest)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        remote = transfer.RemoteFile("http://x/", "1B2M2Y8AsgTpgAmY7PhCfg==", "f.exr", 0)
        with transfer.target_at(dest) as target:
            with pytest.raises(transfer.DestinationBusy), transfer.destination_lock(target, remote):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the holder died: its lock went with it
    with transfer.target_at(dest) as target, transfer.destination_lock(target, remote):
        pass
    assert not transfer.lock_path_for(dest, remote).exists()


def md5_of(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def test_a_partial_holding_every_byte_is_checked_and_gets_the_configured_mode(
    start_farm, make_engine, both_engines, tmp_path
):
    from cdl_tui.core.model.settings import Permissions

    farm = start_farm(jobs=1, tasks=1, files=1, size=200_000)
    job = farm.job_ids[0]
    dest, content = write_partial(farm, tmp_path, job, 1 << 30)  # cut before the rename
    next(iter(temp_files(tmp_path))).chmod(0o600)
    engine = make_engine(
        farm,
        tmp_path,
        jobs=[job],
        exit_when_done=True,
        permissions=Permissions(file_mode=0o644, dir_mode=0o755),
    )
    engine.start()
    assert engine.stop_event.wait(60)
    assert engine.shutdown() == 0
    assert dest.read_bytes() == content
    assert oct(dest.stat().st_mode & 0o777) == "0o644"
    assert any("bytes=0-0" in d for d in range_requests(farm))  # only the URL was checked


def test_a_download_waiting_for_disk_fails_after_disk_wait_max(start_farm, make_engine, tmp_path):
    farm = start_farm(jobs=1, tasks=2, files=1, size=2_000_000)
    engine = make_engine(
        farm,
        tmp_path,
        jobs=farm.job_ids,
        exit_when_done=True,
        disk_margin=0,
        disk_retry=0.1,
        disk_wait_max=1.0,
        free_space=lambda path: 1_000,
    )
    engine.start()
    assert engine.stop_event.wait(30)  # --exit-when-done ends: no wait for ever
    assert engine.shutdown() == 1
    failed = engine.snapshot().failed
    assert len(failed) == 2
    assert all("for disk space (disk_wait_max)" in f.reason for f in failed)
