"""One attempt at one Download, against a recording AttemptHost, a scripted Transfer and
real DownloadFiles on a temporary folder: how the attempt ends and what the host is told."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cdl_tui.core.files.folders import Folder
from cdl_tui.core.files.place import DownloadFiles
from cdl_tui.core.files.transfer import TEMP_SUFFIX, Progress, Target, temp_path_for
from cdl_tui.core.files.verified import VerifiedFiles
from cdl_tui.core.model.attempts import AttemptEnd, AttemptResult
from cdl_tui.core.model.errors import (
    AuthError,
    DestinationBusy,
    StopRequested,
    TransferError,
    WaitForDisk,
)
from cdl_tui.core.model.models import Download, RemoteFile
from cdl_tui.core.model.paths import UnsafePath
from cdl_tui.core.model.settings import Permissions
from cdl_tui.core.model.states import FileState
from cdl_tui.core.run.download_run import DownloadRun, RunSettings
from cdl_tui.core.state.active import ActiveDownload, ActiveFile
from cdl_tui.core.state.details import DownloadRecord
from cdl_tui.core.state.scheduler import QueuedDownload

QUICK = RunSettings(max_attempts=3, file_attempts=3, file_retry_delay=0.01, stall=None)


def md5_of(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode("ascii")


def remote(path: str, data: bytes, url: str | None = None) -> RemoteFile:
    return RemoteFile(url or f"http://s/{path}", md5_of(data), path, len(data))


def make_active(*remotes: RemoteFile, attempts: int = 0, refresh: bool = False) -> ActiveDownload:
    size = sum(r.size for r in remotes)
    download = Download("d1", "d1", "08285", "001", "/out", size, tuple(remotes))
    item = QueuedDownload(download, "08285", attempts=attempts, refresh=refresh)
    return ActiveDownload(item=item, worker="worker-1", record=DownloadRecord(item))


# -- the scripted Transfer ---------------------------------------------------------------


@dataclass
class Fail:
    """One try that fails with `error`, leaving `partial` bytes in the temp file if > 0."""

    error: BaseException
    partial: int = 0


class FakeTransfer:
    """Writes the farm's bytes (by relative path) through a temp file renamed in place, or
    fails as scripted by URL: a list of Fail is used up one per try, a lone Fail every try."""

    def __init__(self, contents: dict[str, bytes]) -> None:
        self.contents = contents
        self.plan: dict[str, list[Fail] | Fail] = {}
        self.calls: list[tuple[str, str]] = []  # (relative path, url)

    def urls(self, path: str) -> list[str]:
        return [url for p, url in self.calls if p == path]

    def fetch(
        self, remote: RemoteFile, target: Target, *, permissions: Permissions, progress: Progress
    ) -> int:
        self.calls.append((remote.relative_path, remote.url))
        assert progress.check_stop is not None and progress.on_bytes is not None
        progress.check_stop()
        data = self.contents[remote.relative_path]
        step = self.plan.get(remote.url)
        fail = step.pop(0) if isinstance(step, list) and step else step
        if isinstance(fail, Fail):
            if fail.partial:
                self._write(target, target.ours(remote, TEMP_SUFFIX), data[: fail.partial])
            raise fail.error
        temp = target.ours(remote, TEMP_SUFFIX)
        self._write(target, temp, data)
        target.folder.rename(temp, target.name)
        half = len(data) // 2
        progress.on_bytes(half)
        progress.on_bytes(len(data) - half)
        return 0

    @staticmethod
    def _write(target: Target, name: str, data: bytes) -> None:
        fd = target.folder.create(name)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)


# -- the recording AttemptHost -----------------------------------------------------------


@dataclass
class FakeHost:
    """An AttemptHost that records every call; `prepare` plans the files under `root` and
    yields real DownloadFiles over the FakeTransfer."""

    root: Path
    transfer: FakeTransfer
    on_conflict: str = "overwrite"
    verified: VerifiedFiles = field(default_factory=lambda: VerifiedFiles(None))
    prepare_error: BaseException | None = None
    stop_at: int | None = None  # the checkpoint call (1-based) that raises StopRequested
    on_refresh: Callable[[ActiveDownload], bool] = lambda active: False
    calls: list[tuple] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)
    prepared: int = 0
    released: int = 0
    refreshed: int = 0

    @contextlib.contextmanager
    def prepare(self, active: ActiveDownload) -> Iterator[DownloadFiles]:
        self.prepared += 1
        if self.prepare_error is not None:
            raise self.prepare_error
        active.root = self.root
        active.files = [ActiveFile(r, self.root / r.relative_path) for r in active.download.files]
        files = DownloadFiles(
            self.root,
            permissions=Permissions(),
            verified=self.verified,
            transfer=self.transfer,
            on_conflict=self.on_conflict,
            force=False,
        )
        try:
            yield files
        finally:
            files.close()
            self.released += 1

    def refresh(self, active: ActiveDownload) -> bool:
        self.refreshed += 1
        self.calls.append(("refresh",))
        return self.on_refresh(active)

    def checkpoint(self, active: ActiveDownload, wait: float = 0.0) -> None:
        self.waits.append(wait)
        if self.stop_at is not None and len(self.waits) >= self.stop_at:
            raise StopRequested("cancelled")

    def file_state(
        self, active: ActiveDownload, afile: ActiveFile, state: FileState, reason: str = ""
    ) -> None:
        afile.state = state  # as the engine's host does: the run reads it on a refresh
        self.calls.append(("state", afile.remote.relative_path, state, reason))

    def file_done(
        self, active: ActiveDownload, afile: ActiveFile, state: FileState, seconds: float
    ) -> None:
        afile.state = state
        self.calls.append(("done", afile.remote.relative_path, state, seconds))

    def progress(
        self, active: ActiveDownload, afile: ActiveFile, count: int, *, network: bool
    ) -> None:
        self.calls.append(("progress", afile.remote.relative_path, count, network))

    # what the tests ask of the record

    def states(self, path: str) -> list[FileState]:
        return [c[2] for c in self.calls if c[0] == "state" and c[1] == path]

    def reasons(self, path: str) -> list[str]:
        return [c[3] for c in self.calls if c[0] == "state" and c[1] == path and c[3]]

    def done(self, path: str) -> list[tuple[FileState, float]]:
        return [(c[2], c[3]) for c in self.calls if c[0] == "done" and c[1] == path]

    def received(self, path: str, *, network: bool) -> int:
        return sum(
            c[2] for c in self.calls if c[0] == "progress" and c[1] == path and c[3] is network
        )

    def kinds(self, path: str) -> list[str]:
        """The calls for one file in order, state changes by their state's name."""
        return [
            c[2].name if c[0] == "state" else c[0]
            for c in self.calls
            if len(c) > 1 and c[1] == path
        ]


A = b"frame a: some pixels"
B = b"frame b: other pixels, longer"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "out"


def host_for(root: Path, contents: dict[str, bytes], **kwargs) -> FakeHost:
    return FakeHost(root, FakeTransfer(contents), **kwargs)


def run(active: ActiveDownload, host: FakeHost, settings: RunSettings = QUICK) -> AttemptResult:
    result = DownloadRun(active, host, settings).run()
    assert host.prepared == host.released or host.prepare_error is not None
    return result


def plant(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


# -- every file in place ------------------------------------------------------------------


def test_every_file_is_fetched_verified_and_reported_complete(root: Path) -> None:
    a, b = remote("shot/a.exr", A), remote("shot/sub/b.exr", B)
    host = host_for(root, {"shot/a.exr": A, "shot/sub/b.exr": B})
    active = make_active(a, b)

    assert run(active, host) == AttemptResult(AttemptEnd.DONE)

    for r, data in ((a, A), (b, B)):
        path = r.relative_path
        assert host.kinds(path) == ["PREPARING", "DOWNLOADING", "progress", "progress", "done"]
        [(state, seconds)] = host.done(path)
        assert state is FileState.COMPLETE and seconds >= 0
        assert host.received(path, network=True) == len(data)
        assert host.received(path, network=False) == 0
        assert (root / path).read_bytes() == data
        assert not temp_path_for(root / path, r).exists()
        assert host.verified.trusted(root / path, r, os.lstat(root / path))
    assert host.transfer.calls == [("shot/a.exr", a.url), ("shot/sub/b.exr", b.url)]
    assert [f.state for f in active.files] == [FileState.COMPLETE, FileState.COMPLETE]
    assert not host.refreshed


def test_the_renames_are_synced_once_per_folder_when_every_file_is_in_place(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[tuple[Path, int]] = []
    host = host_for(root, {"shot/a.exr": A, "shot/b.exr": B, "shot/sub/c.exr": A})
    monkeypatch.setattr(Folder, "sync", lambda self: synced.append((self.path, len(host.calls))))
    active = make_active(
        remote("shot/a.exr", A), remote("shot/b.exr", B), remote("shot/sub/c.exr", A)
    )

    assert run(active, host).end is AttemptEnd.DONE

    assert sorted(path for path, _ in synced) == [root / "shot", root / "shot/sub"]
    assert all(seen == len(host.calls) for _, seen in synced)  # after the last file


def test_a_file_already_there_with_the_farms_md5_is_cached_after_hashing(root: Path) -> None:
    a, b = remote("shot/a.exr", A), remote("shot/b.exr", B)
    plant(root / "shot/a.exr", A)
    host = host_for(root, {"shot/a.exr": A, "shot/b.exr": B})

    assert run(make_active(a, b), host).end is AttemptEnd.DONE

    assert host.states("shot/a.exr") == [FileState.PREPARING, FileState.HASHING]
    [(state, seconds)] = host.done("shot/a.exr")
    assert state is FileState.CACHED and seconds >= 0
    assert host.received("shot/a.exr", network=False) == len(A)  # hashed bytes, from disk
    assert host.received("shot/a.exr", network=True) == 0
    assert host.transfer.urls("shot/a.exr") == []  # never fetched
    assert host.transfer.urls("shot/b.exr") == [b.url]


def test_a_differing_file_is_kept_with_on_conflict_skip(root: Path) -> None:
    a = remote("shot/a.exr", A)
    theirs = b"someone else's frame, not the farm's"
    plant(root / "shot/a.exr", theirs)
    host = host_for(root, {"shot/a.exr": A}, on_conflict="skip")

    assert run(make_active(a), host) == AttemptResult(AttemptEnd.DONE)

    [(state, seconds)] = host.done("shot/a.exr")
    assert state is FileState.SKIPPED and seconds >= 0
    assert FileState.DOWNLOADING not in host.states("shot/a.exr")
    assert host.transfer.calls == []
    assert (root / "shot/a.exr").read_bytes() == theirs
    assert sorted(os.listdir(root / "shot")) == ["a.exr"]


def test_a_differing_file_is_moved_aside_with_on_conflict_backup(root: Path) -> None:
    a = remote("shot/a.exr", A)
    theirs = b"someone else's frame, not the farm's"
    plant(root / "shot/a.exr", theirs)
    host = host_for(root, {"shot/a.exr": A}, on_conflict="backup")

    assert run(make_active(a), host) == AttemptResult(AttemptEnd.DONE)

    assert host.states("shot/a.exr") == [FileState.PREPARING, FileState.DOWNLOADING]
    assert [s for s, _ in host.done("shot/a.exr")] == [FileState.COMPLETE]
    assert host.transfer.urls("shot/a.exr") == [a.url]
    assert (root / "shot/a.exr").read_bytes() == A
    backups = [n for n in os.listdir(root / "shot") if n != "a.exr"]
    assert len(backups) == 1
    assert re.fullmatch(r"a\.exr\.cdl-backup-\d{8}-\d{6}", backups[0])
    assert (root / "shot" / backups[0]).read_bytes() == theirs


def test_a_backup_that_cannot_be_made_fails_the_attempt_not_the_file(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = remote("shot/a.exr", A)
    plant(root / "shot/a.exr", b"someone else's frame, not the farm's")
    host = host_for(root, {"shot/a.exr": A}, on_conflict="backup")

    def refused(self: Folder, old: str, new: str) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Folder, "rename", refused)
    result = run(make_active(a), host)
    assert result.end is AttemptEnd.FAILED and result.retryable
    assert result.failed_path is None  # no one file failed: nothing counts as a failed file
    assert result.reason.startswith("cannot back up ") and "Permission denied" in result.reason
    assert FileState.FAILED not in host.states("shot/a.exr")
    assert host.transfer.calls == []


def test_a_same_sized_differing_file_is_hashed_then_overwritten(root: Path) -> None:
    a = remote("shot/a.exr", A)
    plant(root / "shot/a.exr", b"X" * len(A))  # same size: only the hash tells them apart
    host = host_for(root, {"shot/a.exr": A})

    assert run(make_active(a), host).end is AttemptEnd.DONE

    assert host.states("shot/a.exr") == [
        FileState.PREPARING,
        FileState.HASHING,
        FileState.DOWNLOADING,
    ]
    assert [s for s, _ in host.done("shot/a.exr")] == [FileState.COMPLETE]
    assert (root / "shot/a.exr").read_bytes() == A
    assert sorted(os.listdir(root / "shot")) == ["a.exr"]  # overwritten, no backup


# -- failures of one file -----------------------------------------------------------------


def test_a_folder_where_the_file_goes_fails_it_for_good(root: Path) -> None:
    a, b = remote("shot/a.exr", A), remote("shot/b.exr", B)
    (root / "shot/a.exr").mkdir(parents=True)
    host = host_for(root, {"shot/a.exr": A, "shot/b.exr": B})

    result = run(make_active(a, b), host)

    assert result.end is AttemptEnd.FAILED
    assert result.retryable is False
    assert result.failed_path == "shot/a.exr"
    assert "a folder stands where the file goes" in result.reason
    assert host.states("shot/a.exr") == [FileState.PREPARING, FileState.FAILED]
    assert host.reasons("shot/a.exr") == ["a folder stands where the file goes"]
    assert host.done("shot/a.exr") == []
    assert host.transfer.calls == []  # and the next file is not started
    assert host.states("shot/b.exr") == []
    assert (root / "shot/a.exr").is_dir()


def test_a_retryable_error_on_every_try_fails_the_file_after_file_attempts(root: Path) -> None:
    a = remote("shot/a.exr", A)
    host = host_for(root, {"shot/a.exr": A})
    host.transfer.plan[a.url] = Fail(TransferError("connection failed after 0 bytes"))

    result = run(make_active(a), host)

    assert result.end is AttemptEnd.FAILED
    assert result.retryable is True
    assert result.failed_path == "shot/a.exr"
    assert "connection failed" in result.reason
    assert len(host.transfer.calls) == QUICK.file_attempts
    assert host.states("shot/a.exr") == [
        FileState.PREPARING,
        FileState.DOWNLOADING,
        FileState.DOWNLOADING,  # each new try starts its progress again
        FileState.DOWNLOADING,
        FileState.FAILED,
    ]
    assert host.reasons("shot/a.exr") == ["connection failed after 0 bytes"]
    # One checkpoint per file, then a backoff before each new try, doubling, with jitter.
    backoffs = [w for w in host.waits if w > 0]
    assert len(backoffs) == QUICK.file_attempts - 1
    for number, wait in enumerate(backoffs):
        base = QUICK.file_retry_delay * 2**number
        assert base * 0.5 <= wait <= base
    assert not (root / "shot/a.exr").exists()


@pytest.mark.parametrize("attempts_before, removed", [(2, True), (1, False), (0, False)])
def test_only_the_last_attempt_removes_the_temp_files(
    root: Path, attempts_before: int, removed: bool
) -> None:
    a, b = remote("shot/a.exr", A), remote("shot/b.exr", B)
    temps = [temp_path_for(root / r.relative_path, r) for r in (a, b)]
    for temp in temps:
        plant(temp, b"partial")
    host = host_for(root, {"shot/a.exr": A, "shot/b.exr": B})
    host.transfer.plan[a.url] = Fail(TransferError("timed out after 0 bytes"))
    active = make_active(a, b, attempts=attempts_before)  # QUICK.max_attempts == 3

    result = run(active, host)

    assert result.end is AttemptEnd.FAILED and result.retryable is True
    assert result.failed_path == "shot/a.exr"
    # Every file's temp file goes on the last attempt, the one never started (b) too.
    assert [t.exists() for t in temps] == [not removed, not removed]
    if not removed:
        assert [t.read_bytes() for t in temps] == [b"partial", b"partial"]
    assert sorted(os.listdir(root / "shot")) == sorted(t.name for t in temps if not removed)


def test_a_file_failed_for_good_removes_the_temp_files_on_any_attempt(root: Path) -> None:
    a = remote("shot/a.exr", A)
    temp = temp_path_for(root / "shot/a.exr", a)
    plant(temp, b"partial")
    host = host_for(root, {"shot/a.exr": A})
    host.transfer.plan[a.url] = Fail(TransferError("a symbolic link stands there", unsafe=True))

    result = run(make_active(a, attempts=0), host)

    assert result.end is AttemptEnd.FAILED
    assert result.retryable is False
    assert result.failed_path == "shot/a.exr"
    assert len(host.transfer.calls) == 1  # unsafe: never tried again
    assert not temp.exists()


def test_an_unforeseen_error_fails_the_attempt_and_keeps_the_run_going(root: Path) -> None:
    a = remote("shot/a.exr", A)
    host = host_for(root, {"shot/a.exr": A})
    host.transfer.plan[a.url] = Fail(RuntimeError("a bug"))

    result = run(make_active(a), host)

    assert result == AttemptResult(AttemptEnd.FAILED, "unexpected error: a bug")
    assert len(host.transfer.calls) == 1


# -- expired URLs -------------------------------------------------------------------------


def fresh_urls(active: ActiveDownload, urls: dict[str, str]) -> bool:
    """What a farm's refresh does: the Download again, with new signed URLs."""
    download = active.item.download
    files = tuple(
        dataclasses.replace(r, url=urls.get(r.relative_path, r.url)) for r in download.files
    )
    active.item.download = dataclasses.replace(download, files=files)
    return True


def expired() -> Fail:
    return Fail(TransferError("the file URL was refused (HTTP 403)", expired=True))


def test_an_expired_url_is_refreshed_at_once_and_costs_no_try(root: Path) -> None:
    a = remote("shot/a.exr", A, url="http://s/stale/a.exr")
    host = host_for(root, {"shot/a.exr": A})
    host.transfer.plan[a.url] = expired()
    host.on_refresh = lambda active: fresh_urls(active, {"shot/a.exr": "http://s/fresh/a.exr"})
    active = make_active(a)
    settings = dataclasses.replace(QUICK, file_attempts=1)

    assert run(active, host, settings) == AttemptResult(AttemptEnd.DONE)

    assert host.refreshed == 1
    assert host.transfer.urls("shot/a.exr") == ["http://s/stale/a.exr", "http://s/fresh/a.exr"]
    assert [w for w in host.waits if w > 0] == []  # no backoff before the fresh URL
    assert [s for s, _ in host.done("shot/a.exr")] == [FileState.COMPLETE]
    assert active.files[0].remote.url == "http://s/fresh/a.exr"
    assert (root / "shot/a.exr").read_bytes() == A


def test_the_try_a_stale_url_cost_is_given_back(root: Path) -> None:
    a = remote("shot/a.exr", A, url="http://s/stale/a.exr")
    host = host_for(root, {"shot/a.exr": A})
    host.transfer.plan[a.url] = expired()
    host.transfer.plan["http://s/fresh/a.exr"] = [Fail(TransferError("cut"))]
    host.on_refresh = lambda active: fresh_urls(active, {"shot/a.exr": "http://s/fresh/a.exr"})
    settings = dataclasses.replace(QUICK, file_attempts=2)

    # stale URL refused (no try), fresh URL cut (try 1), fresh URL again (try 2): done.
    assert run(make_active(a), host, settings) == AttemptResult(AttemptEnd.DONE)
    assert host.transfer.urls("shot/a.exr") == [
        "http://s/stale/a.exr",
        "http://s/fresh/a.exr",
        "http://s/fresh/a.exr",
    ]


def test_the_refresh_gives_fresh_urls_to_the_files_not_yet_in_place(root: Path) -> None:
    a = remote("shot/a.exr", A, url="http://s/stale/a.exr")
    b = remote("shot/b.exr", B, url="http://s/stale/b.exr")
    host = host_for(root, {"shot/a.exr": A, "shot/b.exr": B})
    host.transfer.plan[a.url] = expired()
    host.transfer.plan[b.url] = expired()  # would cost a refresh of its own
    fresh = {"shot/a.exr": "http://s/fresh/a.exr", "shot/b.exr": "http://s/fresh/b.exr"}
    host.on_refresh = lambda active: fresh_urls(active, fresh)

    assert run(make_active(a, b), host).end is AttemptEnd.DONE

    assert host.refreshed == 1
    assert host.transfer.urls("shot/b.exr") == ["http://s/fresh/b.exr"]


def test_a_fresh_url_refused_at_once_costs_a_try(root: Path) -> None:
    a = remote("shot/a.exr", A, url="http://s/stale/a.exr")
    host = host_for(root, {"shot/a.exr": A})
    host.transfer.plan[a.url] = expired()
    host.transfer.plan["http://s/fresh/a.exr"] = expired()
    host.on_refresh = lambda active: fresh_urls(active, {"shot/a.exr": "http://s/fresh/a.exr"})
    settings = dataclasses.replace(QUICK, file_attempts=1)

    result = run(make_active(a), host, settings)

    assert result.end is AttemptEnd.FAILED and result.failed_path == "shot/a.exr"
    assert host.transfer.urls("shot/a.exr") == ["http://s/stale/a.exr", "http://s/fresh/a.exr"]
    assert host.refreshed == 1


def test_an_expired_url_the_farm_cannot_renew_fails_after_file_attempts(root: Path) -> None:
    a = remote("shot/a.exr", A)
    host = host_for(root, {"shot/a.exr": A})
    host.transfer.plan[a.url] = expired()  # every try
    host.on_refresh = lambda active: False

    result = run(make_active(a), host)

    assert result.end is AttemptEnd.FAILED and result.retryable is True
    assert len(host.transfer.calls) == QUICK.file_attempts
    assert host.refreshed == QUICK.file_attempts


def test_a_fresh_url_that_takes_the_file_further_starts_its_tries_again(root: Path) -> None:
    a = remote("shot/a.exr", A, url="http://s/stale/a.exr")
    host = host_for(root, {"shot/a.exr": A})
    host.transfer.plan[a.url] = [Fail(TransferError("cut"), partial=4), expired()]
    host.transfer.plan["http://s/fresh/a.exr"] = [Fail(TransferError("cut"), partial=10)]
    host.on_refresh = lambda active: fresh_urls(active, {"shot/a.exr": "http://s/fresh/a.exr"})
    settings = dataclasses.replace(QUICK, file_attempts=2)

    # try 1: cut at byte 4; the stale URL refused (free); try 2: the fresh URL cut at byte
    # 10, further than ever (its tries start again); try 2 again: done.
    assert run(make_active(a), host, settings) == AttemptResult(AttemptEnd.DONE)
    assert host.transfer.urls("shot/a.exr") == [
        "http://s/stale/a.exr",
        "http://s/stale/a.exr",
        "http://s/fresh/a.exr",
        "http://s/fresh/a.exr",
    ]
    assert (root / "shot/a.exr").read_bytes() == A


def test_a_fresh_url_that_brings_nothing_new_does_not_start_the_tries_again(
    root: Path,
) -> None:
    a = remote("shot/a.exr", A, url="http://s/stale/a.exr")
    host = host_for(root, {"shot/a.exr": A})
    host.transfer.plan[a.url] = [Fail(TransferError("cut"), partial=4), expired()]
    host.transfer.plan["http://s/fresh/a.exr"] = [Fail(TransferError("cut"))]  # still 4 bytes
    host.on_refresh = lambda active: fresh_urls(active, {"shot/a.exr": "http://s/fresh/a.exr"})
    settings = dataclasses.replace(QUICK, file_attempts=2)

    result = run(make_active(a), host, settings)

    assert result.end is AttemptEnd.FAILED and result.reason == "shot/a.exr: cut"
    assert len(host.transfer.calls) == 3


# -- how else an attempt ends -------------------------------------------------------------


def test_a_full_disk_parks_the_download_at_once(root: Path) -> None:
    a = remote("shot/a.exr", A)
    host = host_for(root, {"shot/a.exr": A})
    host.transfer.plan[a.url] = Fail(TransferError("no space left", no_space=True))

    result = run(make_active(a, attempts=QUICK.max_attempts - 1), host)

    assert result == AttemptResult(AttemptEnd.NO_SPACE, "no space left")
    assert len(host.transfer.calls) == 1  # not retried, not counted as a failure
    assert FileState.FAILED not in host.states("shot/a.exr")


def test_a_stop_at_a_checkpoint_ends_the_attempt_stopped(root: Path) -> None:
    a, b = remote("shot/a.exr", A), remote("shot/b.exr", B)
    temp = temp_path_for(root / "shot/b.exr", b)
    plant(temp, b"partial")
    host = host_for(root, {"shot/a.exr": A, "shot/b.exr": B}, stop_at=3)
    # checkpoints: before a, inside a's transfer, before b (stops)

    result = run(make_active(a, b, attempts=QUICK.max_attempts - 1), host)

    assert result == AttemptResult(AttemptEnd.STOPPED, "cancelled")
    assert [s for s, _ in host.done("shot/a.exr")] == [FileState.COMPLETE]
    assert host.states("shot/b.exr") == []
    assert host.transfer.urls("shot/b.exr") == []
    assert temp.exists()  # a stop is no failure: even on the last attempt it stays


def test_a_stop_inside_a_transfer_ends_the_attempt_stopped(root: Path) -> None:
    a = remote("shot/a.exr", A)
    host = host_for(root, {"shot/a.exr": A}, stop_at=2)  # the transfer's check_stop

    result = run(make_active(a), host)

    assert result.end is AttemptEnd.STOPPED
    assert len(host.transfer.calls) == 1
    assert host.done("shot/a.exr") == []
    assert not (root / "shot/a.exr").exists()


def test_a_refused_key_on_the_refresh_before_the_attempt_is_fatal(root: Path) -> None:
    a = remote("shot/a.exr", A)
    error = AuthError("the farm refused the API key")
    host = host_for(root, {"shot/a.exr": A})

    def refuse(active: ActiveDownload) -> bool:
        raise error

    host.on_refresh = refuse

    result = run(make_active(a, refresh=True), host)

    assert result.end is AttemptEnd.FATAL
    assert result.error is error
    assert result.reason == "the farm refused the API key"
    assert host.refreshed == 1
    assert host.prepared == 0
    assert host.transfer.calls == []


def test_the_refresh_is_asked_before_the_attempt_only_when_the_item_says_so(root: Path) -> None:
    a = remote("shot/a.exr", A)
    host = host_for(root, {"shot/a.exr": A})
    assert run(make_active(a, refresh=False), host).end is AttemptEnd.DONE
    assert host.refreshed == 0
    host = host_for(root / "again", {"shot/a.exr": A})
    assert run(make_active(a, refresh=True), host).end is AttemptEnd.DONE
    assert host.refreshed == 1 and host.calls[0] == ("refresh",)


def test_an_unsafe_path_refused_by_prepare_fails_for_good(root: Path) -> None:
    a = remote("shot/a.exr", A)
    host = host_for(root, {"shot/a.exr": A}, prepare_error=UnsafePath("the path is absolute"))

    result = run(make_active(a), host)

    assert result.end is AttemptEnd.FAILED
    assert result.retryable is False
    assert result.reason.startswith("refused:")
    assert "the path is absolute" in result.reason
    assert host.transfer.calls == [] and host.calls == []


@pytest.mark.parametrize(
    "error, end",
    [
        (DestinationBusy("another process is writing it"), AttemptEnd.BUSY),
        (WaitForDisk("needs 2 GB more"), AttemptEnd.NO_SPACE),
        (StopRequested("stopping"), AttemptEnd.STOPPED),
    ],
)
def test_what_prepare_raises_says_how_the_attempt_ends(
    root: Path, error: Exception, end: AttemptEnd
) -> None:
    a = remote("shot/a.exr", A)
    host = host_for(root, {"shot/a.exr": A}, prepare_error=error)

    assert run(make_active(a), host) == AttemptResult(end, str(error))
    assert host.transfer.calls == [] and host.calls == []


# -- files an earlier attempt settled -----------------------------------------------------


def test_a_file_settled_earlier_and_unchanged_is_done_again_without_a_fetch(root: Path) -> None:
    a, b = remote("shot/a.exr", A), remote("shot/b.exr", B)
    dest = root / "shot/a.exr"
    plant(dest, A)
    host = host_for(root, {"shot/a.exr": A, "shot/b.exr": B})
    host.verified.remember(dest, a, os.lstat(dest))
    active = make_active(a, b, attempts=1)
    active.item.settled["shot/a.exr"] = FileState.COMPLETE

    assert run(active, host) == AttemptResult(AttemptEnd.DONE)

    assert host.kinds("shot/a.exr") == ["done"]  # no PREPARING, no HASHING, no progress
    [(state, seconds)] = host.done("shot/a.exr")
    assert state is FileState.COMPLETE and seconds < 0
    assert host.transfer.urls("shot/a.exr") == []
    assert [s for s, sec in host.done("shot/b.exr") if sec >= 0] == [FileState.COMPLETE]


def test_a_file_settled_earlier_but_changed_since_is_placed_again(root: Path) -> None:
    a = remote("shot/a.exr", A)
    dest = root / "shot/a.exr"
    plant(dest, A)
    host = host_for(root, {"shot/a.exr": A})
    host.verified.remember(dest, a, os.lstat(dest))
    dest.unlink()
    plant(dest, b"replaced by someone")  # another inode: no longer the verified entry
    active = make_active(a, attempts=1)
    active.item.settled["shot/a.exr"] = FileState.COMPLETE

    assert run(active, host).end is AttemptEnd.DONE

    assert host.states("shot/a.exr") == [FileState.PREPARING, FileState.DOWNLOADING]
    [(state, seconds)] = host.done("shot/a.exr")
    assert state is FileState.COMPLETE and seconds >= 0
    assert dest.read_bytes() == A


def test_a_file_skipped_earlier_stays_skipped_without_being_hashed(root: Path) -> None:
    a = remote("shot/a.exr", A)
    dest = root / "shot/a.exr"
    plant(dest, b"theirs, not the farm's")
    host = host_for(root, {"shot/a.exr": A})  # overwrite now, but it was skipped before
    active = make_active(a, attempts=1)
    active.item.settled["shot/a.exr"] = FileState.SKIPPED

    assert run(active, host).end is AttemptEnd.DONE

    assert host.kinds("shot/a.exr") == ["done"]
    assert host.done("shot/a.exr")[0][0] is FileState.SKIPPED
    assert dest.read_bytes() == b"theirs, not the farm's"


def test_a_file_skipped_earlier_and_deleted_since_is_fetched(root: Path) -> None:
    a = remote("shot/a.exr", A)
    (root / "shot").mkdir(parents=True)  # the user removed their differing file meanwhile
    host = host_for(root, {"shot/a.exr": A})
    active = make_active(a, attempts=1)
    active.item.settled["shot/a.exr"] = FileState.SKIPPED

    result = run(active, host)

    assert result.end is AttemptEnd.DONE
    # Reported in place (SKIPPED, again) while nothing is there, and never fetched:
    assert (root / "shot/a.exr").exists(), f"calls: {host.calls}"
    assert host.transfer.urls("shot/a.exr") == [a.url]
