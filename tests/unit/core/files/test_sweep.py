"""The start-up sweep with planted files: only our old temp files go, links stay links."""

from __future__ import annotations

import os
from pathlib import Path

from cdl_tui.core.files.sweep import sweep_stale_temps
from cdl_tui.core.files.transfer import temp_path_for
from cdl_tui.core.model.models import RemoteFile

DAY = 86400.0
NOW = 2_000_000_000.0


def aged(path: Path, age: float) -> Path:
    os.utime(path, (NOW - age, NOW - age), follow_symlinks=False)
    return path


def test_only_our_old_temp_files_are_removed(tmp_path: Path) -> None:
    shot = tmp_path / "shot" / "beauty"
    shot.mkdir(parents=True)
    remote = RemoteFile("http://s/a.exr", "ZZZZZZZZZZZZZZZZZZZZZZ==", "beauty/a.exr", 5)
    old_temp = temp_path_for(shot / "a.exr", remote)
    old_temp.write_bytes(b"part")
    aged(old_temp, 3 * DAY)
    young_temp = temp_path_for(shot / "b.exr", remote)
    young_temp.write_bytes(b"part")
    aged(young_temp, 3600)
    frame = shot / "a.exr.part"  # not our name: a user's file
    frame.write_bytes(b"mine")
    aged(frame, 3 * DAY)
    assert sweep_stale_temps([tmp_path, tmp_path / "missing"], 2 * DAY, now=NOW) == 1
    assert not old_temp.exists() and young_temp.exists() and frame.exists()


def test_links_are_neither_followed_nor_removed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    remote = RemoteFile("http://s/a.exr", "ZZZZZZZZZZZZZZZZZZZZZZ==", "a.exr", 5)
    precious = temp_path_for(outside / "a.exr", remote)  # ours by name, but elsewhere
    precious.write_bytes(b"elsewhere")
    aged(precious, 3 * DAY)
    root = tmp_path / "out"
    root.mkdir()
    (root / "linked").symlink_to(outside)  # a folder link inside the output folder
    planted = temp_path_for(root / "a.exr", remote)
    planted.symlink_to(precious)  # a link with our name, pointing at a file of ours
    aged(planted, 3 * DAY)
    assert sweep_stale_temps([root], 2 * DAY, now=NOW) == 0
    assert precious.exists() and planted.is_symlink()
