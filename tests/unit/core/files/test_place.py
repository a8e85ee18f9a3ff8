"""One Download's files on disk: links are never followed, verified files are not hashed
again, renames are synced once per folder, and a given-up Download's temp files go."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from cdl_tui.core.files import place
from cdl_tui.core.files.folders import Folder
from cdl_tui.core.files.place import DownloadFiles
from cdl_tui.core.files.transfer import (
    ETAG_SUFFIX,
    LOCK_SUFFIX,
    TEMP_SUFFIX,
    Progress,
    Target,
    our_name,
    temp_path_for,
)
from cdl_tui.core.files.verified import VerifiedFiles
from cdl_tui.core.model.errors import FileProblem
from cdl_tui.core.model.models import RemoteFile
from cdl_tui.core.model.settings import Permissions
from cdl_tui.core.model.states import FileState

DATA = b"the farm's frame, pixel for pixel"


def remote(path: str, data: bytes = DATA) -> RemoteFile:
    md5 = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode("ascii")
    return RemoteFile(f"http://s/{path}", md5, path, len(data))


class WritingTransfer:
    """A Transfer that writes the farm's bytes at the target's name."""

    def __init__(self) -> None:
        self.fetched: list[str] = []

    def fetch(
        self, remote: RemoteFile, target: Target, *, permissions: Permissions, progress: Progress
    ) -> int:
        self.fetched.append(remote.relative_path)
        fd = target.folder.create(target.name)
        try:
            os.write(fd, DATA)
        finally:
            os.close(fd)
        return 0


class Calls:
    """Callbacks for `existing` that count what they are told."""

    def __init__(self) -> None:
        self.hashing = 0
        self.bytes = 0
        self.stops = 0

    def kwargs(self) -> dict:
        return {
            "hashing": self._hashing,
            "on_bytes": self._on_bytes,
            "check_stop": self._check_stop,
        }

    def _hashing(self) -> None:
        self.hashing += 1

    def _on_bytes(self, n: int) -> None:
        self.bytes += n

    def _check_stop(self) -> None:
        self.stops += 1


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "out"


def files_at(
    root: Path,
    *,
    verified: VerifiedFiles | None = None,
    transfer: WritingTransfer | None = None,
    on_conflict: str = "overwrite",
    force: bool = False,
) -> DownloadFiles:
    return DownloadFiles(
        root,
        permissions=Permissions(),
        verified=verified or VerifiedFiles(None),
        transfer=transfer or WritingTransfer(),
        on_conflict=on_conflict,
        force=force,
    )


def fetch(files: DownloadFiles, r: RemoteFile, dest: Path) -> int:
    target = files.target(r, dest)
    return files.fetch(
        r,
        dest,
        target,
        on_bytes=lambda n: None,
        on_resumed=lambda n: None,
        check_stop=lambda: None,
        stall=None,
    )


# -- links ---------------------------------------------------------------------------------


@pytest.mark.parametrize("planted", ["link", "file"])
def test_a_link_or_file_where_a_folder_goes_is_refused_and_never_written_through(
    root: Path, tmp_path: Path, planted: str
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    root.mkdir()
    if planted == "link":
        (root / "shot").symlink_to(elsewhere)
    else:
        (root / "shot").write_bytes(b"not a folder")
    files = files_at(root)
    r = remote("shot/beauty/a.exr")
    try:
        with pytest.raises(FileProblem) as caught:
            files.target(r, root / r.relative_path)
        assert caught.value.retryable is False
        assert str(caught.value).startswith("refused:")
        assert "shot" in str(caught.value)
        files.remove_partials([r])  # nor is it walked through to remove anything
    finally:
        files.close()
    assert os.listdir(elsewhere) == []
    assert os.listdir(root) == ["shot"]


def test_a_link_at_the_files_name_is_never_followed(root: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.exr"
    secret.write_bytes(DATA)  # the very bytes of the farm's file: a follow would keep it
    (root / "shot").mkdir(parents=True)
    dest = root / "shot" / "a.exr"
    dest.symlink_to(secret)
    r = remote("shot/a.exr")
    calls = Calls()
    for on_conflict in ("overwrite", "skip", "backup"):
        files = files_at(root, on_conflict=on_conflict)
        try:
            target = files.target(r, dest)
            assert files.existing(r, dest, target, **calls.kwargs()) is None
        finally:
            files.close()
    assert calls.hashing == calls.bytes == 0
    assert secret.read_bytes() == DATA
    assert dest.is_symlink()  # left for the rename to replace
    assert sorted(os.listdir(root / "shot")) == ["a.exr"]  # no backup of a link


def test_a_link_remembered_as_verified_is_not_trusted(root: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.exr"
    secret.write_bytes(DATA)
    (root / "shot").mkdir(parents=True)
    dest = root / "shot" / "a.exr"
    dest.symlink_to(secret)
    r = remote("shot/a.exr")
    verified = VerifiedFiles(None)
    verified.remember(dest, r, os.lstat(dest))
    files = files_at(root, verified=verified)
    try:
        target = files.target(r, dest)
        assert files.existing(r, dest, target, **Calls().kwargs()) is None
        assert not files.still_in_place(r, dest, target, FileState.COMPLETE)
    finally:
        files.close()


# -- files already there -------------------------------------------------------------------


def test_a_file_this_run_verified_is_cached_without_hashing(root: Path) -> None:
    dest = root / "shot" / "a.exr"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"X" * len(DATA))  # not the farm's bytes: hashing would refetch it
    r = remote("shot/a.exr")
    verified = VerifiedFiles(None)  # no journal
    verified.remember(dest, r, os.lstat(dest))
    files = files_at(root, verified=verified)
    calls = Calls()
    try:
        target = files.target(r, dest)
        assert files.existing(r, dest, target, **calls.kwargs()) is FileState.CACHED
    finally:
        files.close()
    assert calls.hashing == calls.bytes == 0


def test_an_unverified_file_is_hashed_then_remembered(root: Path) -> None:
    dest = root / "shot" / "a.exr"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(DATA)
    r = remote("shot/a.exr")
    verified = VerifiedFiles(None)
    files = files_at(root, verified=verified)
    calls = Calls()
    try:
        target = files.target(r, dest)
        assert files.existing(r, dest, target, **calls.kwargs()) is FileState.CACHED
        assert (calls.hashing, calls.bytes) == (1, len(DATA))
        assert calls.stops >= 1
        assert verified.trusted(dest, r, os.lstat(dest))
        # Asked again: trusted now, not hashed a second time.
        assert files.existing(r, dest, target, **calls.kwargs()) is FileState.CACHED
        assert calls.hashing == 1
    finally:
        files.close()


def test_a_file_of_another_size_is_not_hashed(root: Path) -> None:
    dest = root / "shot" / "a.exr"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"short")
    r = remote("shot/a.exr")
    files = files_at(root)
    calls = Calls()
    try:
        assert files.existing(r, dest, files.target(r, dest), **calls.kwargs()) is None
    finally:
        files.close()
    assert calls.hashing == 0
    assert dest.read_bytes() == b"short"  # overwrite: left for the fetch to replace


def test_force_fetches_even_a_matching_file(root: Path) -> None:
    dest = root / "shot" / "a.exr"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(DATA)
    r = remote("shot/a.exr")
    files = files_at(root, force=True)
    calls = Calls()
    try:
        assert files.existing(r, dest, files.target(r, dest), **calls.kwargs()) is None
    finally:
        files.close()
    assert calls.hashing == 0


def test_a_folder_where_the_file_goes_is_a_problem_for_good(root: Path) -> None:
    dest = root / "shot" / "a.exr"
    dest.mkdir(parents=True)
    r = remote("shot/a.exr")
    files = files_at(root)
    try:
        with pytest.raises(FileProblem) as caught:
            files.existing(r, dest, files.target(r, dest), **Calls().kwargs())
    finally:
        files.close()
    assert caught.value.retryable is False
    assert dest.is_dir()


# -- settled files, and syncing renames ----------------------------------------------------


def test_still_in_place_holds_for_a_verified_unchanged_file_or_a_skipped_one(root: Path) -> None:
    dest = root / "shot" / "a.exr"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(DATA)
    r = remote("shot/a.exr")
    verified = VerifiedFiles(None)
    files = files_at(root, verified=verified)
    try:
        target = files.target(r, dest)
        assert not files.still_in_place(r, dest, target, FileState.COMPLETE)  # unverified
        assert files.still_in_place(r, dest, target, FileState.SKIPPED)
        verified.remember(dest, r, os.lstat(dest))
        assert files.still_in_place(r, dest, target, FileState.COMPLETE)
        assert files.still_in_place(r, dest, target, FileState.CACHED)
        os.utime(dest, ns=(1, 1))  # changed since
        assert not files.still_in_place(r, dest, target, FileState.COMPLETE)
    finally:
        files.close()


def test_sync_syncs_each_folder_renamed_into_once_then_forgets_them(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[Path] = []
    real_sync = Folder.sync

    def recording_sync(self: Folder) -> None:
        synced.append(self.path)
        real_sync(self)

    monkeypatch.setattr(Folder, "sync", recording_sync)
    transfer = WritingTransfer()
    verified = VerifiedFiles(None)
    files = files_at(root, transfer=transfer, verified=verified)
    try:
        for path in ("shot/a.exr", "shot/b.exr", "shot/sub/c.exr"):
            r = remote(path)
            assert fetch(files, r, root / path) == 0
            assert verified.trusted(root / path, r, os.lstat(root / path))
        files.target(remote("other/d.exr"), root / "other/d.exr")  # made, nothing renamed
        assert synced == []
        files.sync()
        assert sorted(synced) == [root / "shot", root / "shot" / "sub"]
        synced.clear()
        files.sync()
        assert synced == []  # nothing renamed since
    finally:
        files.close()
    assert transfer.fetched == ["shot/a.exr", "shot/b.exr", "shot/sub/c.exr"]
    assert (root / "shot/sub/c.exr").read_bytes() == DATA


def test_a_file_still_in_place_has_its_folder_synced(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[Path] = []
    monkeypatch.setattr(Folder, "sync", lambda self: synced.append(self.path))
    dest = root / "shot" / "a.exr"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(DATA)
    r = remote("shot/a.exr")
    files = files_at(root)
    try:
        assert files.still_in_place(r, dest, files.target(r, dest), FileState.SKIPPED)
        files.sync()
    finally:
        files.close()
    assert synced == [root / "shot"]  # an earlier attempt's rename may never have been synced


# -- a given-up Download's temp files ------------------------------------------------------


def test_remove_partials_removes_our_temp_files_and_creates_no_folder(root: Path) -> None:
    here = remote("shot/a.exr")
    other_md5 = remote("shot/b.exr", b"other bytes")
    missing = remote("gone/deeper/c.exr")
    dest = root / "shot" / "a.exr"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"an older complete file")  # the final file is not a temp file
    temp = temp_path_for(dest, here)
    temp.write_bytes(b"partial")
    etag = dest.with_name(our_name("a.exr", here, ETAG_SUFFIX))
    etag.write_bytes(b'"etag"')
    foreign = root / "shot" / ".b.exr.cdl-000000000000.part"  # not b's md5: not ours to touch
    foreign.write_bytes(b"someone's")
    files = files_at(root)
    try:
        files.remove_partials([here, other_md5, missing])
    finally:
        files.close()
    assert not temp.exists() and not etag.exists()
    assert dest.read_bytes() == b"an older complete file"
    assert foreign.exists()
    assert not (root / "gone").exists()
    lock = dest.with_name(our_name("a.exr", here, LOCK_SUFFIX))
    assert not lock.exists()  # the lock taken to remove them goes too
    assert sorted(os.listdir(root)) == ["shot"]
    assert sorted(os.listdir(root / "shot")) == sorted(["a.exr", foreign.name])


def test_remove_partials_creates_no_root(root: Path) -> None:
    files = files_at(root)
    try:
        files.remove_partials([remote("shot/a.exr")])
    finally:
        files.close()
    assert not root.exists()


def test_remove_partials_removes_a_link_at_the_temp_name_not_its_target(
    root: Path, tmp_path: Path
) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    r = remote("shot/a.exr")
    dest = root / "shot" / "a.exr"
    dest.parent.mkdir(parents=True)
    temp = temp_path_for(dest, r)
    temp.symlink_to(victim)
    files = files_at(root)
    try:
        assert files.partial(r, files.target(r, dest)) == 0  # a link holds no bytes of ours
        files.remove_partials([r])
    finally:
        files.close()
    assert not temp.is_symlink() and not temp.exists()
    assert victim.read_bytes() == b"precious"


def test_partial_counts_the_bytes_of_our_temp_file(root: Path) -> None:
    r = remote("shot/a.exr")
    dest = root / "shot" / "a.exr"
    dest.parent.mkdir(parents=True)
    files = files_at(root)
    try:
        target = files.target(r, dest)
        assert files.partial(r, target) == 0
        (dest.parent / target.ours(r, TEMP_SUFFIX)).write_bytes(b"12345")
        assert files.partial(r, target) == 5
    finally:
        files.close()


def test_backup_names_do_not_collide(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # One second for every backup: only place.py's clock is stopped.
    monkeypatch.setattr(place, "time", SimpleNamespace(strftime=lambda fmt: "20260101-120000"))
    dest = root / "shot" / "a.exr"
    dest.parent.mkdir(parents=True)
    r = remote("shot/a.exr")
    files = files_at(root, on_conflict="backup")
    try:
        target = files.target(r, dest)
        for n in range(3):
            dest.write_bytes(f"old {n}".encode())
            assert files.existing(r, dest, target, **Calls().kwargs()) is None
            assert not dest.exists()
    finally:
        files.close()
    shot = root / "shot"
    assert (shot / "a.exr.cdl-backup-20260101-120000").read_bytes() == b"old 0"
    assert (shot / "a.exr.cdl-backup-20260101-120000-1").read_bytes() == b"old 1"
    assert (shot / "a.exr.cdl-backup-20260101-120000-2").read_bytes() == b"old 2"
