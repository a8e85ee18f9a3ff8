"""The output folder is shared: anyone who can write there can plant links and files at
the names cdl-tui is about to create, and the farm chooses where to write. Each test plants
what a hostile probe planted and checks that nothing outside the intended root is created
or changed, against a real farm."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from cdl_tui.core.farm.api import FarmClient
from cdl_tui.core.farm.credentials import credentials_from_text
from cdl_tui.core.files import transfer
from cdl_tui.core.model.states import FileState, Outcome

from .conftest import farm_files, files_on_disk, temp_files


def run_to_end(engine, timeout=60) -> int:
    engine.start()
    assert engine.stop_event.wait(timeout), "the run did not end"
    return engine.shutdown()


def listed(farm):
    with FarmClient(farm.url, credentials_from_text(farm.token, "t")) as client:
        return [d for batch in client.iter_job_downloads(farm.job_ids[0]) for d in batch.downloads]


def snapshot_of(folder: Path) -> dict[str, tuple[int, bytes]]:
    """Every file under `folder` (links not followed) with its mode and content."""
    seen = {}
    for path in sorted(folder.rglob("*")):
        info = path.lstat()
        if stat.S_ISREG(info.st_mode):
            seen[str(path.relative_to(folder))] = (info.st_mode, path.read_bytes())
        else:
            seen[str(path.relative_to(folder))] = (info.st_mode, b"")
    return seen


def test_links_planted_at_our_temp_lock_and_sidecar_names_are_never_followed(
    start_farm, make_engine, tmp_path
):
    """The probe's run: a link at the temp name made a file outside, one at the lock
    name truncated an existing file and changed its mode, one at the sidecar name wrote
    the server's ETag into a third. Here each points outside and stays untouched. Links
    at the temp and sidecar names are replaced (the file lands); anything but a regular
    file at the lock name refuses that file (it is never removed by name)."""
    farm = start_farm(jobs=1, tasks=5, files=1, size=1_300_000, uniform=True)
    job = farm.job_ids[0]
    out, outside = tmp_path / "out", tmp_path / "outside"
    outside.mkdir()
    (outside / "existing.cfg").write_bytes(b"precious\n")
    (outside / "existing.cfg").chmod(0o600)
    (outside / "third.txt").write_bytes(b"third\n")
    (outside / "hardlinked.bin").write_bytes(b"do not truncate me\n")
    plants = [
        {"temp": "created-by-us.exr", "etag": "third.txt"},  # lands
        {"lock": "existing.cfg"},  # refused
        {"temp": "hardlinked.bin"},  # a hard link: regular, but not only ours; lands
        {"lock": "fifo"},  # opening a FIFO could hang a worker; refused
        {"lock": "folder"},  # refused, not BUSY for ever
    ]
    downloads = listed(farm)
    for download, plant in zip(downloads, plants, strict=True):
        remote = download.files[0]
        dest = out / job / remote.relative_path
        dest.parent.mkdir(parents=True, exist_ok=True)
        names = {
            "temp": transfer.temp_path_for(dest, remote),
            "lock": transfer.lock_path_for(dest, remote),
            "etag": transfer.etag_path_for(dest, remote),
        }
        for kind, target in plant.items():
            if target == "hardlinked.bin":
                os.link(outside / target, names[kind])
            elif target == "fifo":
                os.mkfifo(names[kind])
            elif target == "folder":
                names[kind].mkdir()
            else:
                names[kind].symlink_to(outside / target)
    before = snapshot_of(outside)
    engine = make_engine(farm, out, jobs=[job], exit_when_done=True)
    assert run_to_end(engine) == 1
    assert snapshot_of(outside) == before  # nothing created, truncated, written or chmod-ed
    refused = {f.task_id: f for f in engine.snapshot().failed}
    assert sorted(refused) == ["001", "003", "004"]
    assert all(f.outcome is Outcome.REFUSED and f.attempts == 1 for f in refused.values())
    assert "a symbolic link that is not ours stands at" in refused["001"].reason
    assert "a special file that is not ours" in refused["003"].reason
    assert "a folder that is not ours" in refused["004"].reason
    on_disk = files_on_disk(out / job)
    expected = farm_files(farm.store(), job)
    for index in (0, 2):
        path = downloads[index].files[0].relative_path
        assert on_disk[path] == expected[path]
    assert not temp_files(out)


def test_a_partial_that_is_not_a_plain_file_of_ours_is_not_resumed(
    start_farm, make_engine, tmp_path
):
    farm = start_farm(jobs=1, tasks=1, files=1, size=1_300_000, uniform=True)
    job = farm.job_ids[0]
    (download,) = listed(farm)
    remote = download.files[0]
    dest = tmp_path / job / remote.relative_path
    dest.parent.mkdir(parents=True)
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"x" * 500_000)  # "bytes already fetched", from elsewhere
    transfer.temp_path_for(dest, remote).symlink_to(outside)
    engine = make_engine(farm, tmp_path, jobs=[job], exit_when_done=True)
    assert run_to_end(engine) == 0
    assert outside.read_bytes() == b"x" * 500_000
    farm.stats()
    details = [r["detail"] for r in farm.store().audit_rows("file")]
    assert details == ["GET - -> 200"]  # fetched whole: the link was not a partial to resume


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to plant another user's file")
def test_a_partial_owned_by_someone_else_is_not_resumed(start_farm, make_engine, tmp_path):
    farm = start_farm(jobs=1, tasks=1, files=1, size=1_300_000, uniform=True)
    job = farm.job_ids[0]
    (download,) = listed(farm)
    remote = download.files[0]
    dest = tmp_path / job / remote.relative_path
    dest.parent.mkdir(parents=True)
    planted = transfer.temp_path_for(dest, remote)
    planted.write_bytes(b"y" * 600_000)
    os.chown(planted, 65534, 65534)
    engine = make_engine(farm, tmp_path, jobs=[job], exit_when_done=True)
    assert run_to_end(engine) == 0
    farm.stats()
    assert [r["detail"] for r in farm.store().audit_rows("file")] == ["GET - -> 200"]
    assert files_on_disk(tmp_path / job) == farm_files(farm.store(), job)


def set_output_dir(farm, output_dir: str, *, task_index: int | None = None) -> None:
    sql, params = "UPDATE downloads SET output_dir = ?", [output_dir]
    if task_index is not None:
        sql += " WHERE task_index = ?"
        params.append(task_index)
    farm.store().conn.execute(sql, params)


def test_an_output_dir_through_a_link_to_a_system_folder_falls_back(
    start_farm, make_engine, tmp_path
):
    """The probe wrote under /etc through a link in /tmp: the check read the path as
    written, not where it leads. /var/tmp stands for the system folder here (/var is one,
    and a failure of this test leaves nothing worse than a folder there)."""
    probe = Path("/var/tmp") / f"cdl-probe-{uuid.uuid4().hex[:8]}"
    link = tmp_path / "innocent"
    link.symlink_to(Path("/var/tmp"), target_is_directory=True)
    farm = start_farm(jobs=1, tasks=2, files=1)
    set_output_dir(farm, str(link / probe.name))
    fallback = tmp_path / "fallback"
    try:
        engine = make_engine(
            farm, None, jobs=farm.job_ids, exit_when_done=True, fallback_dir=fallback
        )
        assert run_to_end(engine) == 0
        assert not probe.exists()
    finally:
        subprocess.run(["rm", "-rf", str(probe)], check=False)
    job = farm.job_ids[0]
    (landed,) = (fallback / job / str(link).lstrip("/")).glob(f"{probe.name}@*")
    assert files_on_disk(landed) == farm_files(farm.store(), job)


def test_two_refused_output_dirs_never_share_a_path_under_the_fallback(
    start_farm, make_engine, tmp_path
):
    farm = start_farm(jobs=1, tasks=2, files=1)
    store = farm.store()
    # both tasks name the same file, each in its own (refused) output_dir
    store.conn.execute("UPDATE files SET relative_path = 'shot/beauty.1001.exr'")
    set_output_dir(farm, "C:\\renders\\layerA", task_index=0)
    set_output_dir(farm, "C:\\renders\\layerB", task_index=1)
    fallback = tmp_path / "fallback"
    engine = make_engine(farm, None, jobs=farm.job_ids, exit_when_done=True, fallback_dir=fallback)
    assert run_to_end(engine) == 0
    job = farm.job_ids[0]
    landed = sorted(str(p.relative_to(fallback / job)) for p in fallback.rglob("*.exr"))
    assert len(landed) == 2
    assert landed[0].startswith("C/renders/layerA@") and landed[1].startswith("C/renders/layerB@")
    assert all(path.endswith("/shot/beauty.1001.exr") for path in landed)


def test_a_hidden_folder_in_relative_path_is_refused_and_nothing_written(
    start_farm, make_engine, tmp_path
):
    """The probe wrote /home/<other user>/.ssh/authorized_keys: output_dir was a home,
    the relative path went through .ssh."""
    other_home = tmp_path / "home" / "bob"
    other_home.mkdir(parents=True)
    farm = start_farm(jobs=1, tasks=2, files=1)
    store = farm.store()
    set_output_dir(farm, str(other_home))
    victim, file_id = store.conn.execute(
        "SELECT d.download_id, f.id FROM downloads d JOIN files f ON f.download_pk = d.id "
        "WHERE d.task_index = 0"
    ).fetchone()
    store.conn.execute(
        "UPDATE files SET relative_path = '.ssh/authorized_keys' WHERE id = ?", (file_id,)
    )
    engine = make_engine(farm, None, jobs=farm.job_ids, exit_when_done=True)
    assert run_to_end(engine) == 1
    (refused,) = engine.snapshot().failed
    assert (refused.download_id, refused.outcome) == (victim, Outcome.REFUSED)
    assert "goes through a hidden name" in refused.reason
    assert not (other_home / ".ssh").exists()
    assert [r["download_id"] for r in store.audit_rows("fail")] == [victim]


def test_a_file_and_a_folder_of_one_name_refuse_the_download_without_a_traceback(
    start_farm, make_engine, tmp_path, caplog
):
    farm = start_farm(jobs=1, tasks=1, files=2)
    store = farm.store()
    ids = [r[0] for r in store.conn.execute("SELECT id FROM files ORDER BY id")]
    store.conn.execute("UPDATE files SET relative_path = 'pre' WHERE id = ?", (ids[0],))
    store.conn.execute("UPDATE files SET relative_path = 'pre/child' WHERE id = ?", (ids[1],))
    engine = make_engine(farm, tmp_path, jobs=farm.job_ids, exit_when_done=True)
    assert run_to_end(engine) == 1
    (refused,) = engine.snapshot().failed
    assert refused.outcome is Outcome.REFUSED and refused.attempts == 1
    assert "'pre' is a file and also the folder of 'pre/child'" in refused.reason
    assert "Traceback" not in caplog.text and "unexpected error" not in caplog.text
    assert store.audit_rows("fail")


def test_a_folder_swapped_for_a_link_mid_run_is_refused(start_farm, make_engine, tmp_path):
    """The plan checked the folders; then, while the first file downloads, the last
    file's folder becomes a link out. Nothing may be written through it."""
    farm = start_farm("--faults", "bandwidth=256KiB", jobs=1, tasks=1, files=3, size=300_000)
    job = farm.job_ids[0]
    (download,) = listed(farm)
    first, last = (Path(download.files[i].relative_path).parent for i in (0, -1))
    assert first != last
    out, outside = tmp_path / "out", tmp_path / "outside"
    outside.mkdir()
    for remote in download.files:
        (out / job / remote.relative_path).parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(farm, out, jobs=[job], exit_when_done=True, max_attempts=1)
    engine.start()
    deadline = time.monotonic() + 30
    while not any(
        f.state is FileState.DOWNLOADING for a in engine.snapshot().active for f in a.files
    ):
        assert time.monotonic() < deadline, "the first file never started"
        time.sleep(0.01)
    victim = out / job / last
    victim.rename(victim.with_name("moved-away"))
    victim.symlink_to(outside, target_is_directory=True)
    assert engine.stop_event.wait(60)
    assert engine.shutdown() == 1
    assert list(outside.iterdir()) == []
    (refused,) = engine.snapshot().failed
    assert "is a symbolic link, not a folder of ours" in refused.reason


@pytest.mark.parametrize(
    ("umask", "settings", "modes"),
    [
        (0o077, {}, (0o600, 0o700)),
        (0o022, {}, (0o644, 0o755)),
        (0o077, {"CDL_FILE_MODE": "640", "CDL_DIR_MODE": "750"}, (0o640, 0o750)),
    ],
)
def test_modes_follow_the_umask_unless_configured(start_farm, tmp_path, umask, settings, modes):
    file_mode, dir_mode = modes
    farm = start_farm(jobs=1, tasks=1, files=2)
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CDL_", "CONDUCTOR_"))}
    env.update(CDL_API_KEY=farm.token, XDG_STATE_HOME=str(tmp_path / "state"), **settings)
    command = [
        str(Path(sys.executable).parent / "cdl-tui"),
        "--headless",
        "--api-url",
        farm.url,
        farm.job_ids[0],
        "--exit-when-done",
        "--output",
        str(out),
    ]
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=60, umask=umask
    )
    assert result.returncode == 0, result.stderr
    made = [p for p in out.rglob("*")]
    assert {oct(p.stat().st_mode & 0o777) for p in made if p.is_file()} == {oct(file_mode)}
    assert {oct(p.stat().st_mode & 0o777) for p in made if p.is_dir()} == {oct(dir_mode)}


def test_a_final_failure_after_short_bodies_leaves_no_partial(start_farm, make_engine, tmp_path):
    # Every answer is cut short: the Download fails for good, and nothing will resume.
    farm = start_farm("--faults", "cut=1", jobs=1, tasks=1, files=1, size=300_000)
    engine = make_engine(farm, tmp_path, jobs=farm.job_ids, exit_when_done=True, max_attempts=2)
    assert run_to_end(engine) == 1
    assert engine.snapshot().failed[0].outcome is Outcome.FAILED
    assert not temp_files(tmp_path)


def headless(farm, tmp_path, *args, **env_extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CDL_", "CONDUCTOR_"))}
    env.update(CDL_API_KEY=farm.token, XDG_STATE_HOME=str(tmp_path / "state"), INVOCATION_ID="1")
    env.update(env_extra)
    command = [str(Path(sys.executable).parent / "cdl-tui"), "--headless", "--api-url", farm.url]
    return subprocess.run([*command, *args], env=env, capture_output=True, text=True, timeout=60)


def test_a_service_without_output_roots_says_so_and_output_roots_keep_the_farm_in(
    start_farm, tmp_path
):
    farm = start_farm(jobs=1, tasks=2, files=1)
    job = farm.job_ids[0]
    renders, elsewhere = tmp_path / "renders", tmp_path / "elsewhere"
    renders.mkdir()
    set_output_dir(farm, str(elsewhere / "shot"))
    fallback = tmp_path / "fallback"
    plain = headless(farm, tmp_path, job, "--exit-when-done", CDL_FALLBACK_DIR=str(fallback))
    assert plain.returncode == 0, plain.stderr
    assert plain.stderr.count("output_roots is not set") == 1
    assert files_on_disk(elsewhere / "shot") == farm_files(farm.store(), job)
    set_output_dir(farm, str(elsewhere / "shot2"))
    kept_in = headless(
        farm,
        tmp_path,
        job,
        "--exit-when-done",
        CDL_FALLBACK_DIR=str(fallback),
        CDL_OUTPUT_ROOTS=f"{renders}:/mnt/nowhere",
    )
    assert kept_in.returncode == 0, kept_in.stderr
    assert "output_roots is not set" not in kept_in.stderr
    assert f"{str(elsewhere / 'shot2')!r} is not under output_roots" in kept_in.stderr
    assert not (elsewhere / "shot2").exists()
    (landed,) = (fallback / job / str(elsewhere).lstrip("/")).glob("shot2@*")
    assert files_on_disk(landed) == farm_files(farm.store(), job)
