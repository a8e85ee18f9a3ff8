"""Is the job complete, and which frames are missing? The same answer in the final summary,
`--report` and `--verify`, from a real farm: frames 1001-1100 of one sequence, where
1050-1052 and 1077 are not on the farm and 1090 is an empty file."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from .test_headless import run

EMPTY_MD5 = base64.b64encode(hashlib.md5(b"").digest()).decode()
NOT_ON_THE_FARM = (1050, 1051, 1052, 1077)
EMPTY_FRAME = 1090


@pytest.fixture
def gappy_farm(start_farm):
    """One job of 100 tasks, one beauty frame each (1001-1100), with the holes above."""
    farm = start_farm(jobs=1, tasks=100, files=1, size=3000, uniform=True)
    conn = farm.store().conn
    for frame in NOT_ON_THE_FARM:
        (pk,) = conn.execute(
            "SELECT id FROM downloads WHERE task_index = ?", (frame - 1001,)
        ).fetchone()
        conn.execute("DELETE FROM files WHERE download_pk = ?", (pk,))
        conn.execute("DELETE FROM downloads WHERE id = ?", (pk,))
    (pk,) = conn.execute(
        "SELECT id FROM downloads WHERE task_index = ?", (EMPTY_FRAME - 1001,)
    ).fetchone()
    conn.execute("UPDATE files SET size = 0, md5 = ? WHERE download_pk = ?", (EMPTY_MD5, pk))
    conn.execute("UPDATE downloads SET size = 0 WHERE id = ?", (pk,))
    conn.commit()
    return farm


def test_the_summary_the_report_and_verify_say_which_frames_are_missing(gappy_farm, tmp_path):
    job = gappy_farm.job_ids[0]
    out, report = tmp_path / "out", tmp_path / "report.json"
    code, stdout, stderr = run(
        gappy_farm,
        job,
        "--exit-when-done",
        "--output",
        str(out),
        "--report",
        str(report),
        cwd=tmp_path,
    )
    assert code == 0, stderr
    summary = stdout + stderr
    assert f"Job {job}  COMPLETE  96/96 tasks" in summary
    (line,) = [ln for ln in summary.splitlines() if ".####.exr" in ln]
    assert "frames 1001-1049,1053-1076,1078-1100" in line
    assert "missing 1050-1052,1077" in line and "empty 1090" in line

    (entry,) = json.loads(report.read_text())["jobs"]
    (sequence,) = entry["sequences"]
    assert sequence["pattern"].endswith(".beauty.####.exr")
    assert sequence["pattern"].startswith("MJ_")  # relative to the job's folder
    assert sequence["frames"] == "1001-1049,1053-1076,1078-1100"
    assert (sequence["missing"], sequence["empty"]) == ("1050-1052,1077", "1090")
    assert sequence["files"] == 96 and sequence["bytes"] == 95 * 3000
    assert entry["single_files"] == []

    victim = next(out.rglob("*.1033.exr"))
    victim.write_bytes(b"\0" * victim.stat().st_size)
    next(out.rglob("*.1002.exr")).unlink()
    code, stdout, _ = run(gappy_farm, job, "--verify", "--output", str(out), cwd=tmp_path)
    assert code == 1
    (line,) = [ln for ln in stdout.splitlines() if ".####.exr" in ln]
    assert "missing 1002,1050-1052,1077" in line and "empty 1090" in line
    assert "frames 1001,1003-1049,1053-1076,1078-1100" in line  # 1033 is there, but wrong
    assert stdout.count("MD5 DIFFERS") == 1 and str(victim) in stdout
    assert "MISSING" not in stdout  # missing frames are ranges, not a line per file
