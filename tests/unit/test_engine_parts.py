"""Unit tests for the engine's parts: the queue, the rate meter, events, faults, summary."""

import threading
import time

import pytest

from cdl_tui.core.model import faults
from cdl_tui.core.model.events import DownloadDone, EventBus, FileStateChanged
from cdl_tui.core.model.models import parse_download
from cdl_tui.core.model.states import FileState, Outcome
from cdl_tui.core.model.views import ActiveView, FileView, RateMeter
from cdl_tui.core.state.scheduler import PendingQueue, QueuedDownload
from cdl_tui.tui.summary import active_block, duration, size


def item(n, **kw):
    d = parse_download(
        {
            "download_id": str(n),
            "job_id": "1",
            "task_id": str(n),
            "output_dir": "/x",
            "size": 0,
            "files": [],
        }
    )
    return QueuedDownload(d, "00001", **kw)


def always():
    return True


def test_queue_is_fifo_with_move_to_top_hold_and_backoff():
    queue = PendingQueue()
    for n in range(4):
        queue.put(item(n))
    assert queue.move_to_top("2")
    assert queue.set_held("0", True)
    queue.items()[2].not_before = time.monotonic() + 60  # "1" waits out a backoff
    order = [queue.take(0.01, always).download_id for _ in range(2)]
    assert order == ["2", "3"]
    assert queue.take(0.01, always) is None  # "0" is held, "1" backing off
    assert [v.download_id for v in queue.views()] == ["0", "1"]
    assert queue.views()[0].held
    assert queue.remove("0").download_id == "0"
    assert len(queue) == 1


def test_take_waits_while_starting_is_not_allowed_and_wakes():
    queue = PendingQueue()
    queue.put(item(1))
    allowed = threading.Event()
    got = []
    thread = threading.Thread(target=lambda: got.append(queue.take(5, allowed.is_set)))
    thread.start()
    time.sleep(0.1)
    assert not got
    allowed.set()
    queue.wake()
    thread.join(2)
    assert got[0].download_id == "1"


def test_closing_the_queue_releases_every_idle_taker_at_once():
    """An idle worker waits in take(); a stop closes the queue and it must return then,
    not when its timeout runs out (that made a no-op rerun wait 0.5 s to exit)."""
    queue = PendingQueue()
    got = []
    takers = [threading.Thread(target=lambda: got.append(queue.take(60, always))) for _ in range(4)]
    for taker in takers:
        taker.start()
    time.sleep(0.05)
    queue.close()
    for taker in takers:
        taker.join(10)
    assert not any(t.is_alive() for t in takers)
    assert got == [None] * 4
    queue.put(item(1))  # late arrivals (a worker putting its item back) are kept...
    assert queue.take(60, always) is None  # ...but a closed queue hands nothing out
    assert [i.download_id for i in queue.drain()] == ["1"]


def test_views_are_cached_until_the_queue_changes():
    queue = PendingQueue()
    queue.put(item(1))
    first = queue.views()
    assert queue.views() is first
    queue.put(item(2))
    assert queue.views() is not first


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_rate_meter():
    clock = FakeClock()
    meter = RateMeter(clock=clock)
    for _ in range(5):
        meter.add(1000)
        clock.now += 1
    assert meter.rate(window=5) == pytest.approx(1000.0, rel=0.01)
    history = meter.history(10)
    assert len(history) == 10
    assert history[-5:] == (1000.0,) * 5 and history[:5] == (0.0,) * 5
    clock.now += 30
    assert meter.rate() == 0.0


def test_a_young_meter_divides_by_its_age_not_the_window():
    clock = FakeClock()
    clock.now = 100.2
    meter = RateMeter(clock=clock)
    clock.now = 101.2  # one second old, one second of bytes
    meter.add(1_000_000)
    assert meter.rate(window=5) == pytest.approx(1_000_000, rel=0.01)  # not 200,000
    clock.now = 110.2  # grown up: the window again
    meter.add(500_000)
    assert meter.rate(window=5) == pytest.approx(500_000 / 4.2, rel=0.01)


def test_events_are_delivered_in_order_and_serialize():
    bus = EventBus()
    got = []
    bus.subscribe(got.append)
    bus.subscribe(lambda e: 1 / 0)  # a failing subscriber does not stop the others
    events = [
        FileStateChanged(download_id="1", path=f"p{n}", state=FileState.HASHING) for n in range(50)
    ]
    for e in events:
        bus.publish(e)
    bus.close()
    assert got == events
    data = DownloadDone(
        download_id="1",
        job_id="1",
        task_id="2",
        outcome=Outcome.DL,
        files=3,
        bytes_downloaded=10,
        seconds=1.5,
    ).to_json()
    assert data["event"] == "download_done" and data["outcome"] == "DL"
    assert events[0].to_json()["state"] == "HASHING EXISTING FILE"


def test_fault_specs():
    with pytest.raises(ValueError, match="unknown operation"):
        faults.configure("explode=0.5")
    with pytest.raises(ValueError, match="between 0 and 1"):
        faults.configure("chunk=3")
    faults.configure("chunk=1,seed=1")
    try:
        with pytest.raises(OSError, match="injected fault"):
            faults.maybe_fail("chunk", OSError)
        faults.maybe_fail("hash", OSError)  # not configured: nothing happens
        assert faults.injected["chunk"] == 1
    finally:
        faults.configure(None)
    faults.maybe_fail("chunk", OSError)


def test_summary_shows_the_legacy_information():
    view = ActiveView(
        download_id="1",
        job_id="08285",
        task_id="004",
        worker="worker-3",
        size=300 << 20,
        done=150 << 20,
        started_at=0,
        attempt=1,
        paused=False,
        rate=12 << 20,
        files=(
            FileView("beauty/a.1005.exr", 100 << 20, FileState.DOWNLOADING, 20 << 20),
            FileView("data/a.deep.1005.exr", 200 << 20, FileState.HASHING, 160 << 20),
        ),
    )
    text = "\n".join(active_block(view))
    assert text.splitlines()[0].startswith(
        "Job 08285 Task 004 - 50% (150.0 MiB/300.0 MiB) - worker-3"
    )
    assert "DOWNLOADING 20%" in text and "HASHING EXISTING FILE 80%" in text
    assert size(0) == "0 Bytes"
    assert duration(0.5) == "0.50s" and duration(3725) == "1 hour, 2 minutes and 5 seconds"


def test_the_disk_guard_counts_files_in_place_only_when_room_is_tight(tmp_path):
    from cdl_tui.core.files.diskguard import DiskGuard
    from cdl_tui.core.model.errors import WaitForDisk
    from cdl_tui.core.model.models import RemoteFile

    files = []
    for n in range(4):
        dest = tmp_path / f"f{n}.exr"
        dest.write_bytes(b"x" * 1000)  # in place already: to be verified, not written
        files.append((RemoteFile(f"http://x/{n}", "", dest.name, 1000), dest))
    files.append((RemoteFile("http://x/new", "", "new.exr", 1000), tmp_path / "new.exr"))
    free = {"bytes": 100_000}
    guard = DiskGuard(margin=0, probe=lambda path: free["bytes"])
    roomy = guard.reserve_for(tmp_path, files)
    assert roomy.size == 5000  # plenty of room: no stat per file
    guard.release(roomy)
    free["bytes"] = 6000  # the whole Download would fit once, not twice
    tight = guard.reserve_for(tmp_path, files)
    assert tight.size == 1000  # only the missing file holds room
    with pytest.raises(WaitForDisk):  # ...and that room is really held
        guard.reserve(tmp_path, 5001)
    guard.release(tight)
    assert guard.reserve(tmp_path, 6000).size == 6000


def test_the_disk_margin_scales_down_on_a_small_filesystem(tmp_path):
    from cdl_tui.core.files.diskguard import DiskGuard
    from cdl_tui.core.model.errors import WaitForDisk

    small = DiskGuard(256 << 20, probe=lambda p: 50 << 20, capacity=lambda p: 100 << 20)
    small.reserve(tmp_path, 112)  # 50 MB free on a 100 MB filesystem: room for 112 bytes
    assert small.margin_for(tmp_path) == int((100 << 20) * 0.02)
    big = DiskGuard(256 << 20, probe=lambda p: 50 << 20, capacity=lambda p: 1 << 40)
    with pytest.raises(WaitForDisk, match=r"\+268435456 margin"):
        big.reserve(tmp_path, 112)  # a big filesystem keeps the whole margin


def test_the_disk_guard_measures_the_nearest_folder_that_exists(tmp_path):
    from cdl_tui.core.files.diskguard import DiskGuard

    seen = []
    guard = DiskGuard(0, probe=lambda p: seen.append(p) or 1 << 30, capacity=lambda p: 1 << 40)
    guard.reserve(tmp_path / "job" / "shot", 10)  # not made yet: its parent is measured
    (tmp_path / "loop").symlink_to(tmp_path / "loop")  # a link loop counts as not there
    guard.reserve(tmp_path / "loop" / "job", 10)
    assert seen == [tmp_path, tmp_path]


def test_a_worker_that_fails_outside_a_download_stops_the_run_loudly(monkeypatch, caplog):
    from cdl_tui.core.engine import EXIT_FAILED, Engine, EngineConfig
    from cdl_tui.core.farm.api import FarmClient
    from cdl_tui.core.farm.credentials import credentials_from_text

    client = FarmClient("http://127.0.0.1:9", credentials_from_text("token-12345", "t"))
    engine = Engine(client, EngineConfig(reporting=False))

    def broken(*args, **kwargs):
        raise RuntimeError("queue bug")

    monkeypatch.setattr(engine.queue, "take", broken)
    engine._workers.work()
    assert engine.stopping and "internal error in a worker" in engine.stop_reason
    assert engine.exit_code == EXIT_FAILED
    assert "Traceback" in caplog.text or "queue bug" in caplog.text
    client.close()
