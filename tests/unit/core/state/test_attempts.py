"""What a running attempt reports into: its start, its files' states, bytes and counts."""

from __future__ import annotations

import pytest

from cdl_tui.core.files.destination import DestinationPolicy
from cdl_tui.core.files.diskguard import DiskGuard
from cdl_tui.core.files.verified import VerifiedFiles
from cdl_tui.core.model.errors import DestinationBusy, WaitForDisk
from cdl_tui.core.model.events import DownloadStarted, FileDone, FileFailed, FileStateChanged
from cdl_tui.core.model.settings import Permissions
from cdl_tui.core.model.states import FileState, Outcome
from cdl_tui.core.state.active import ActiveDownload
from cdl_tui.core.state.attempts import Attempts, FilesSettings
from cdl_tui.core.state.scheduler import QueuedDownload

GIB = 1 << 30


class NoTransfer:
    def fetch(self, *args, **kwargs) -> int:
        raise AssertionError("nothing is fetched here")


@pytest.fixture
def desk(parts, tmp_path):
    def build(free: list[int] | None = None):
        room = free if free is not None else [100 * GIB]
        p = parts()
        attempts = Attempts(
            p.shared,
            FilesSettings(Permissions()),
            p.ledger,
            p.outcomes,
            policy=DestinationPolicy(output=tmp_path),
            disk=DiskGuard(1 << 20, lambda path: room[0], lambda path: 200 * GIB),
            verified=VerifiedFiles(None),
            transfer=NoTransfer(),
            refresh=lambda item: True,
        )
        return p, attempts

    return build


def queued(make_active, download_id: str = "7") -> QueuedDownload:
    return make_active(download_id, "a.exr", "b.exr").item


def started(attempts: Attempts, make_active) -> ActiveDownload:
    """An attempt begun, its files planned (as prepare() plans them)."""
    planned = make_active("7", "a.exr", "b.exr")
    active = attempts.begin(planned.item, "worker-1")
    active.files = planned.files
    return active


def test_begin_opens_an_attempt_claims_the_lease_and_says_so(desk, make_active) -> None:
    p, attempts = desk()
    item = queued(make_active)
    item.attempts = 2
    active = attempts.begin(item, "worker-3")
    assert p.shared.active.get("7") is active and item.leased and item.claimed
    (started,) = p.of(DownloadStarted)
    assert (started.worker, started.attempt) == ("worker-3", 3)
    assert active.record.attempts[-1].worker == "worker-3"
    p.shared.leases.reporter.flush(5)  # the claim waits its grace, then goes
    assert p.farm.statuses() == ["downloading"]


def test_prepare_plans_claims_the_paths_and_reserves_space_for_the_block(
    desk, make_active, tmp_path
) -> None:
    _, attempts = desk()
    first = attempts.begin(queued(make_active, "7"), "worker-1")
    first.item.waiting = "BUSY"
    second = attempts.begin(queued(make_active, "8"), "worker-2")  # the same two paths
    with attempts.prepare(first) as files:
        assert first.root == tmp_path / "08285" and files.root == first.root
        assert [f.dest for f in first.files] == [first.root / "a.exr", first.root / "b.exr"]
        assert first.item.waiting is None  # it got what it waited for
        with pytest.raises(DestinationBusy, match="download 7"), attempts.prepare(second):
            pass
    with attempts.prepare(second):  # released with the block
        pass


def test_prepare_waits_for_disk_space_and_holds_no_path_meanwhile(desk, make_active) -> None:
    free = [0]
    _, attempts = desk(free)
    active = attempts.begin(queued(make_active), "worker-1")
    with pytest.raises(WaitForDisk), attempts.prepare(active):
        pass
    free[0] = 100 * GIB
    other = attempts.begin(queued(make_active, "8"), "worker-2")  # the same paths
    with attempts.prepare(other):
        pass


def test_file_states_bytes_counts_and_history(desk, make_active) -> None:
    p, attempts = desk()
    active = started(attempts, make_active)
    a, b = active.files
    attempts.file_state(active, a, FileState.DOWNLOADING)
    attempts.progress(active, a, 4, network=False)  # found on disk (a resume)
    attempts.progress(active, a, 3, network=True)
    assert (a.done, active.done) == (7, 7) and attempts.meter.rate() >= 0
    attempts.file_state(active, a, FileState.DOWNLOADING)  # a new try starts from 0
    assert (a.done, active.done) == (0, 0)
    attempts.file_done(active, a, FileState.COMPLETE, 1.5)
    attempts.file_state(active, b, FileState.HASHING)
    attempts.file_done(active, b, FileState.CACHED, 0.5)
    totals = p.ledger.totals()
    assert (totals.files_downloaded, totals.bytes_downloaded) == (1, 10)
    assert (totals.files_cached, totals.files_hashed, totals.bytes_hashed) == (1, 1, 10)
    assert [(e.kind, e.outcome) for e in p.ledger.history.entries] == [
        ("file", Outcome.DL),
        ("file", Outcome.CACHED),
    ]
    assert [e.outcome for e in p.of(FileDone)] == [Outcome.DL, Outcome.CACHED]
    assert active.item.settled == {"a.exr": FileState.COMPLETE, "b.exr": FileState.CACHED}
    assert active.done == 20
    states = [(e.path, e.state) for e in p.of(FileStateChanged)]
    assert ("b.exr", FileState.HASHING) in states


def test_a_file_an_earlier_attempt_placed_is_neither_counted_nor_recorded_again(
    desk, make_active
) -> None:
    p, attempts = desk()
    active = started(attempts, make_active)
    attempts.file_done(active, active.files[0], FileState.COMPLETE, -1.0)
    assert active.files[0].state is FileState.COMPLETE and active.done == 10
    assert p.ledger.totals().files_downloaded == 0 and p.ledger.history.serial == 0
    assert p.of(FileDone) == []


def test_a_failed_file_keeps_its_reason_without_secrets(desk, make_active) -> None:
    p, attempts = desk()
    active = started(attempts, make_active)
    url = "https://storage.example/a.exr?X-Goog-Signature=abcdef0123456789"
    attempts.file_state(active, active.files[0], FileState.FAILED, f"403 from {url}")
    (failed,) = p.of(FileFailed)
    assert "abcdef0123456789" not in failed.reason and "storage.example" in failed.reason
    assert active.files[0].detail == failed.reason


def test_the_jobs_frames_follow_what_is_on_disk(desk, make_active, tmp_path) -> None:
    p, attempts = desk()
    planned = make_active("7", "a.1001.exr", "a.1002.exr", root=tmp_path)
    p.shared.frames.listed(planned.item.download)
    active = attempts.begin(planned.item, "worker-1")
    active.files = planned.files
    a, b = active.files
    b.dest.write_bytes(b"theirs")  # a differing local file, kept (--on-conflict skip)
    attempts.file_done(active, a, FileState.COMPLETE, 1.0)
    attempts.file_done(active, b, FileState.SKIPPED, 0.1)
    (seq,) = p.shared.frames.view("08285").sequences
    assert (seq.frames, seq.bytes) == ("1001-1002", 10 + len(b"theirs"))  # its own size
    attempts.file_state(active, a, FileState.DOWNLOADING)  # fetched again: not in place
    (seq,) = p.shared.frames.view("08285").sequences
    assert (seq.frames, seq.missing) == ("1002", "1001")
