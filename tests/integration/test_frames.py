"""Is the job complete, and which frames are missing? The same answer in the final summary,
`--report` and `--verify`, from a real farm: frames 1001-1100 of one sequence, where
1050-1052 and 1077 are not on the farm and 1090 is an empty file."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re

import pytest
from rich.console import Console
from textual.widgets import TabbedContent

from cdl_tui.tui.screens.modals import TextScreen
from cdl_tui.tui.widgets.lists import JobsList

from .test_headless import run
from .tui_driver import drive, until

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


def modal_text(screen) -> str:
    console = Console(width=100, file=io.StringIO(), record=True, color_system=None)
    console.print(screen.body)
    return console.export_text()


def test_the_jobs_view_says_complete_and_enter_shows_the_missing_frames(
    gappy_farm, make_engine, tmp_path
):
    job = gappy_farm.job_ids[0]
    engine = make_engine(gappy_farm, tmp_path / "out", jobs=[job])

    async def scenario(app, pilot):
        await pilot.press("4")
        jobs = app.main.query_one(JobsList)
        await until(
            pilot,
            lambda: jobs.selected is not None and jobs.selected.state == "COMPLETE",
            what="the job complete",
            show=lambda: jobs.selected,
        )
        row = jobs.row_text(0, 100).plain
        assert row.split()[:3] == [job, "COMPLETE", "96/96"]
        assert str(app.main.query_one(TabbedContent).get_tab("jobs").label) == "Jobs (1)"
        await pilot.press("enter")
        assert isinstance(app.screen, TextScreen)
        text = modal_text(app.screen)
        assert re.search(r"missing +1050-1052,1077 *$", text, re.M)
        assert re.search(r"empty +1090 *$", text, re.M)
        assert re.search(r"on disk +1001-1049,1053-1076,1078-1100 ", text)
        await pilot.press("escape")

    drive(engine, scenario)


def test_a_job_still_listing_says_so_and_counts_what_is_not_here_yet_as_missing(
    start_farm, make_engine, tmp_path
):
    farm = start_farm("--faults", "bandwidth=64KiB", jobs=1, tasks=30, files=1, size=40_000)
    job = farm.job_ids[0]
    engine = make_engine(farm, tmp_path / "out", jobs=[job], page_size=5, threads=1)

    async def scenario(app, pilot):
        await pilot.press("4")
        jobs = app.main.query_one(JobsList)
        await until(pilot, lambda: jobs.selected is not None, what="the job's row")
        first = jobs.selected
        assert first.state in ("LISTING", "DOWNLOADING")
        await until(pilot, lambda: engine.frames(job) is not None, what="files listed")
        frames = engine.frames(job)
        listed = sum(s.listed for s in frames.sequences) + len(frames.singles)
        on_disk = sum(s.files for s in frames.sequences)
        assert on_disk < listed  # the rest is missing until it lands
        assert all(s.missing for s in frames.sequences if s.files < s.listed)
        await pilot.press("enter")
        assert isinstance(app.screen, TextScreen)
        assert "missing" in modal_text(app.screen)
        await pilot.press("escape")

    drive(engine, scenario)
