"""`cdl-tui --headless` as a process: signals, two daemons on one farm, reports, scripts."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import farm_files, files_on_disk, temp_files, wait_for


def cdl_tui_command() -> list[str]:
    return [str(Path(sys.executable).parent / "cdl-tui")]


def start(farm, *args, cwd, env_extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CDL_", "CONDUCTOR_"))}
    env.update(
        {
            "CDL_API_KEY": farm.token,
            "XDG_CONFIG_HOME": str(cwd / "config"),
            "XDG_STATE_HOME": str(cwd / "state"),
        }
    )
    env.update(env_extra or {})
    return subprocess.Popen(
        [*cdl_tui_command(), "--headless", "--api-url", farm.url, *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run(farm, *args, cwd, env_extra=None, timeout=120):
    proc = start(farm, *args, cwd=cwd, env_extra=env_extra)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


@pytest.mark.parametrize(
    ("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)]
)
def test_a_signal_stops_promptly_and_cleanly(start_farm, tmp_path, sig, code):
    farm = start_farm("--faults", "bandwidth=300KiB", jobs=1, tasks=6, files=2, size=2_000_000)
    out = tmp_path / "out"
    proc = start(
        farm,
        farm.job_ids[0],
        "--exit-when-done",
        "--output",
        str(out),
        "--threads",
        "3",
        cwd=tmp_path,
    )
    wait_for(lambda: temp_files(out), timeout=30, what="transfers under way")
    wait_for(lambda: farm.store().status_counts()["downloading"] >= 3, what="leases")
    started = time.monotonic()
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == code, stderr
    assert time.monotonic() - started < 10
    assert not temp_files(out)
    counts = farm.store().status_counts()
    assert counts["downloading"] == 0, counts
    assert counts["pending"] == 6
    assert "RUN HISTORY" in stdout  # the final summary still prints
    assert signal.Signals(sig).name in stderr


def test_two_daemons_never_fetch_the_same_download(start_farm, tmp_path):
    farm = start_farm(jobs=3, tasks=20, files=2, size=40_000)
    procs = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        procs.append(
            start(
                farm,
                "--output",
                str(tmp_path / name / "out"),
                "--threads",
                "4",
                "--poll-interval",
                "0.3",
                cwd=tmp_path / name,
            )
        )
    store = farm.store()
    wait_for(lambda: store.status_counts()["downloaded"] == 60, timeout=90, what="everything")
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    codes = [proc.wait(30) for proc in procs]
    assert codes == [143, 143]
    farm.stats()  # flush the farm's audit trail
    assert store.downloads_fetched_under_two_leases() == []
    fetchers = {r["client"] for r in store.audit_rows("file")}
    assert len(fetchers) == 2  # both daemons really worked
    leases = store.audit_rows("lease")
    assert len({r["download_id"] for r in leases}) == len(leases) == 60  # each leased once
    union = {}
    for name in ("a", "b"):
        for job in farm.job_ids:
            for path, md5 in files_on_disk(tmp_path / name / "out" / job).items():
                assert (job, path) not in union
                union[(job, path)] = md5
    expected = {(job, p): m for job in farm.job_ids for p, m in farm_files(store, job).items()}
    assert union == expected


def test_summary_report_and_events_for_scripts(start_farm, tmp_path):
    farm = start_farm("--faults", "bandwidth=2MiB", jobs=1, tasks=5, files=2, size=300_000)
    report = tmp_path / "report.json"
    code, stdout, stderr = run(
        farm,
        farm.job_ids[0],
        "--exit-when-done",
        "--output",
        str(tmp_path / "out"),
        "--summary-interval",
        "0.3",
        "--report",
        str(report),
        "--events-jsonl",
        "-",
        cwd=tmp_path,
    )
    assert code == 0, stderr
    events = [json.loads(line) for line in stdout.splitlines()]
    names = [e["event"] for e in events]
    assert names.count("download_done") == 5
    assert names[-2:] == ["engine_drained", "engine_stopped"]
    assert events[-1]["exit_code"] == 0
    # with events on stdout, the human summary goes to stderr
    assert "##### ACTIVE DOWNLOADS" in stderr
    assert "DOWNLOADING" in stderr
    assert "RUN HISTORY" in stderr
    data = json.loads(report.read_text())
    assert data["exit_code"] == 0
    assert data["totals"]["downloads_done"] == 5
    (job,) = data["jobs"]
    assert job["job_id"] == farm.job_ids[0] and job["complete"] is True
    assert len(job["tasks"]) == 5
    files = [f for t in job["tasks"] for f in t["files"]]
    assert {f["outcome"] for f in files} == {"DL"}
    assert all(Path(f["path"]).is_file() for f in files)


def test_verify_and_dry_run_write_nothing(start_farm, tmp_path):
    farm = start_farm(jobs=1, tasks=4, files=2, size=20_000)
    job = farm.job_ids[0]
    out = tmp_path / "out"
    code, stdout, _ = run(farm, job, "--dry-run", "--output", str(out), cwd=tmp_path)
    assert code == 0
    assert "would fetch" in stdout and not out.exists()
    code, stdout, _ = run(farm, job, "--verify", "--output", str(out), cwd=tmp_path)
    assert code == 1 and "no frame on disk  missing 1001-1004" in stdout
    assert run(farm, job, "--exit-when-done", "--output", str(out), cwd=tmp_path)[0] == 0
    requests = farm.stats()["counters"]["file_requests"]
    reports = len(farm.store().audit_rows())
    victim = next(p for p in out.rglob("*.exr") if p.stat().st_size)
    victim.write_bytes(b"\0" * victim.stat().st_size)
    code, stdout, _ = run(farm, job, "--verify", "--output", str(out), cwd=tmp_path)
    assert code == 1
    assert stdout.count("MD5 DIFFERS") == 1 and str(victim) in stdout
    code, stdout, _ = run(farm, job, "--dry-run", "--output", str(out), cwd=tmp_path)
    assert code == 0 and "would fetch 1 files" in stdout
    assert farm.stats()["counters"]["file_requests"] == requests  # nothing was fetched
    assert len(farm.store().audit_rows()) == reports  # nothing leased or reported


def test_a_failed_run_exits_1_and_says_why(start_farm, tmp_path):
    farm = start_farm(jobs=1, tasks=2, files=1, size=3000)
    farm.store().conn.execute("UPDATE files SET md5 = 'AAAAAAAAAAAAAAAAAAAAAA==' WHERE id = 1")
    code, stdout, _ = run(
        farm,
        farm.job_ids[0],
        "--exit-when-done",
        "--output",
        str(tmp_path / "out"),
        "--max-attempts",
        "2",
        cwd=tmp_path,
        env_extra={"CDL_POLL_INTERVAL": "0.2"},
    )
    assert code == 1
    assert "FAILED" in stdout and "md5 mismatch" in stdout
    assert "failed: 1 (1 task" in stdout.splitlines()[-1]
