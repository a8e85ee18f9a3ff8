"""Every job's frames: kept as Downloads are listed and land; a daemon's old jobs go."""

from __future__ import annotations

from cdl_tui.core.model.models import Download, RemoteFile
from cdl_tui.core.state.frames import JobFrames

MD5 = "ZZZZZZZZZZZZZZZZZZZZZZ=="


def download(job: str, *frames: int) -> Download:
    files = tuple(RemoteFile(f"http://s/{f}", MD5, f"beauty/b.{f}.exr", 10) for f in frames)
    return Download(f"{job}-{frames[0]}", "1", job, "001", "/out", 10 * len(files), files)


def test_a_jobs_frames_as_listed_and_placed() -> None:
    frames = JobFrames()
    frames.listed(download("08285", 1001, 1002, 1003))
    frames.placed("08285", "beauty/b.1001.exr", 10)
    frames.placed("08299", "beauty/b.1001.exr", 10)  # a job never listed: nothing
    (seq,) = frames.view("08285").sequences
    assert (seq.frames, seq.missing) == ("1001", "1002-1003")
    assert frames.view("08299") is None


def test_the_jobs_least_recently_active_go_beyond_the_bound() -> None:
    frames = JobFrames(max_jobs=2)
    frames.listed(download("00001", 1, 2))
    frames.listed(download("00002", 1, 2))
    frames.placed("00001", "beauty/b.1.exr", 10)  # 00001 is active again
    frames.listed(download("00003", 1, 2))
    assert frames.view("00002") is None
    assert frames.view("00001") is not None and frames.view("00003") is not None
