"""Engine.details() against a real farm: attempts, files, IDs and URL hosts of a Download."""

from dataclasses import astuple
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from cdl_tui.core.files.transfer import is_temp_name

from .conftest import wait_for
from .test_engine import run_to_end


def only_download(farm) -> str:
    (download_id,) = farm.store().conn.execute("SELECT download_id FROM downloads").fetchone()
    return download_id


def texts(value) -> list[str]:
    """Every string in a detail, however deep."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, tuple):
        return [text for part in value for text in texts(part)]
    if hasattr(value, "__dataclass_fields__"):
        return texts(astuple(value))
    return []


def test_a_download_that_failed_once_shows_both_attempts_and_where_its_files_are(
    start_farm, make_engine, tmp_path
):
    # The farm's first file GET answers 500 and the next one is served (seeded faults); with
    # one try per file, the first attempt fails and the second is done.
    farm = start_farm("--faults", "500=0.5,seed=1", jobs=1, tasks=1, files=2)
    engine = make_engine(
        farm, tmp_path, jobs=farm.job_ids, exit_when_done=True, threads=1, file_attempts=1
    )
    assert run_to_end(engine) == 0
    assert farm.stats()["counters"]["fault_status500"] == 1
    detail = engine.details(only_download(farm))
    assert detail is not None
    assert (detail.where, detail.outcome, detail.reason) == ("done", "DL", "")
    assert detail.origin == farm.job_ids[0]
    first, second = detail.attempts
    assert (first.number, first.outcome, second.number, second.outcome) == (1, "failed", 2, "done")
    assert "HTTP 500" in first.error and second.error == ""
    assert first.worker == second.worker == "worker-1"
    assert first.started_at <= first.ended_at <= second.started_at <= second.ended_at
    assert len(detail.files) == 2
    for file in detail.files:
        final = Path(file.final_path)
        assert final.is_relative_to(tmp_path / farm.job_ids[0]) and final.is_file()
        assert final.stat().st_size == file.size
        assert (file.state, file.temp_path, file.reason) == ("DL", "", "")


def test_a_download_given_up_shows_every_failed_attempt_and_its_temp_file(
    start_farm, make_engine, tmp_path
):
    farm = start_farm(jobs=1, tasks=1, files=1, size=2000)
    victim = only_download(farm)
    farm.store().conn.execute("UPDATE files SET md5 = 'AAAAAAAAAAAAAAAAAAAAAA=='")  # never verifies
    engine = make_engine(
        farm, tmp_path, jobs=farm.job_ids, exit_when_done=True, max_attempts=2, file_attempts=1
    )
    assert run_to_end(engine) == 1
    (failed,) = engine.snapshot().failed
    detail = engine.details(victim)
    assert (detail.where, detail.outcome) == ("failed", "FAILED")
    assert detail.reason == failed.reason and "md5 mismatch" in detail.reason
    assert [(a.number, a.outcome) for a in detail.attempts] == [(1, "failed"), (2, "failed")]
    assert all("md5 mismatch" in a.error and a.ended_at for a in detail.attempts)
    (file,) = detail.files
    assert (file.state, file.md5) == ("FAILED", "AAAAAAAAAAAAAAAAAAAAAA==")
    assert "md5 mismatch" in file.reason
    final, temp = Path(file.final_path), Path(file.temp_path)
    assert final.is_relative_to(tmp_path / farm.job_ids[0]) and not final.exists()
    assert temp.parent == final.parent and is_temp_name(temp.name) and final.name in temp.name


def test_details_name_the_url_host_and_never_a_query_or_signature(
    start_farm, make_engine, tmp_path
):
    farm = start_farm(jobs=1, tasks=1, files=3)
    download_id = only_download(farm)
    engine = make_engine(farm, tmp_path, jobs=farm.job_ids, exit_when_done=True)
    assert run_to_end(engine) == 0
    (batch,) = engine.client.iter_job_downloads(farm.job_ids[0])
    signatures = [
        parse_qs(urlsplit(remote.url).query)["sig"][0] for remote in batch.downloads[0].files
    ]
    detail = engine.details(download_id)
    assert detail.url_hosts == (urlsplit(farm.url).netloc,)
    assert detail.url_hosts[0].startswith("127.0.0.1:")
    assert detail.wire_id == download_id  # the farm sends it as a number
    everything = texts(detail)
    assert len(everything) > 10
    for text in everything:
        assert "?" not in text and "sig=" not in text
        assert not any(signature in text for signature in signatures)


def test_details_follow_downloads_queued_running_cancelled_and_given_back(
    start_farm, make_engine, tmp_path
):
    farm = start_farm("--faults", "bandwidth=256KiB", jobs=1, tasks=2, files=1, size=3_000_000)
    engine = make_engine(farm, tmp_path, jobs=farm.job_ids, threads=1)
    engine.start()
    wait_for(lambda: any(a.done for a in engine.snapshot().active), what="bytes")
    snap = engine.snapshot()
    (first,), (second,) = snap.active, snap.pending
    running = engine.details(first.download_id)
    assert (running.where, running.outcome) == ("active", "DOWNLOADING")
    assert [(a.number, a.outcome, a.ended_at) for a in running.attempts] == [(1, "running", None)]
    (file,) = running.files
    assert file.state == "DOWNLOADING" and Path(file.temp_path).is_file()
    queued = engine.details(second.download_id)
    assert (queued.where, queued.outcome, queued.attempts) == ("pending", "PENDING", ())
    assert [(f.state, f.final_path, f.temp_path) for f in queued.files] == [("queued", "", "")]
    assert engine.cancel(first.download_id)
    wait_for(lambda: engine.details(first.download_id).where == "failed", what="the cancel")
    cancelled = engine.details(first.download_id)
    assert (cancelled.outcome, cancelled.reason) == ("CANCELLED", "cancelled")
    assert [a.outcome for a in cancelled.attempts] == ["cancelled"]
    wait_for(lambda: engine.details(second.download_id).where == "active", what="the second")
    engine.stop()
    engine.shutdown()
    stopped = engine.details(second.download_id)  # stopped mid-file: back to the farm
    assert [a.outcome for a in stopped.attempts] == ["given back"]
    assert stopped.files[0].state == "queued" and stopped.files[0].temp_path


def test_details_of_an_unknown_download_are_none(start_farm, make_engine, tmp_path):
    farm = start_farm(jobs=1, tasks=2, files=1)
    engine = make_engine(farm, tmp_path, jobs=farm.job_ids, exit_when_done=True)
    assert engine.details("1") is None  # before the run too
    assert run_to_end(engine) == 0
    assert engine.details("no-such-download") is None
    assert engine.details("") is None
