"""The reference farm, from the outside: leases, sweeps, file serving, faults."""

import base64
import hashlib
import subprocess
import sys
import threading
import time

import httpx
import pytest

from cdl_tui.core.farm.api import FarmClient
from cdl_tui.core.farm.credentials import credentials_from_text
from cdl_tui.farm.content import ContentPool
from cdl_tui.farm.db import FarmStore


def client_for(farm, name):
    """A client that calls itself `name` (the farm tells clients apart by User-Agent)."""
    client = FarmClient(farm.url, credentials_from_text(farm.token, "test"))
    client.http.headers["User-Agent"] = f"test-client {name}"
    return client


def test_two_concurrent_pollers_never_get_the_same_download(start_farm):
    farm = start_farm(jobs=4, tasks=50, files=1, size=256)
    got: dict[str, list[str]] = {"a": [], "b": []}
    barrier = threading.Barrier(2)

    def poll(name):
        with client_for(farm, name) as client:
            barrier.wait()
            while True:
                batch = client.next_downloads(location=None, count=3)
                if not batch.downloads:
                    return
                got[name].extend(d.download_id for d in batch.downloads)

    threads = [threading.Thread(target=poll, args=(n,)) for n in got]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not set(got["a"]) & set(got["b"])
    assert len(got["a"]) + len(got["b"]) == 200
    assert got["a"] and got["b"]  # both really polled
    leases = farm.store().audit_rows("lease")
    assert len(leases) == 200
    assert len({row["download_id"] for row in leases}) == 200


POLLER = """
import sys, json
from cdl_tui.core.farm.api import FarmClient
from cdl_tui.core.farm.credentials import credentials_from_text
client = FarmClient(sys.argv[1], credentials_from_text(sys.argv[2], "t"))
ids = []
while True:
    batch = client.next_downloads(location=None, count=2)
    if not batch.downloads:
        break
    ids.extend(d.download_id for d in batch.downloads)
print(json.dumps(ids))
"""


def test_two_polling_processes_never_get_the_same_download(start_farm):
    farm = start_farm(jobs=2, tasks=60, files=1, size=256)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", POLLER, farm.url, farm.token], stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    results = [__import__("json").loads(p.communicate(timeout=60)[0]) for p in procs]
    assert not set(results[0]) & set(results[1])
    assert len(results[0]) + len(results[1]) == 120


def test_the_sweep_returns_silent_leases_to_pending(start_farm):
    farm = start_farm("--lease-timeout", "1", jobs=1, tasks=3)
    with client_for(farm, "a") as a, client_for(farm, "b") as b:
        leased = a.next_downloads(location=None, count=3).downloads
        assert len(leased) == 3
        assert b.next_downloads(location=None, count=3).downloads == ()
        # a keeps one lease alive with heartbeats; the others go silent
        keep = leased[0]
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            a.report_status(
                keep.wire_id, "downloading", bytes_downloaded=1, bytes_to_download=keep.size
            )
            time.sleep(0.3)
        again = b.next_downloads(location=None, count=3).downloads
    assert {d.download_id for d in again} == {d.download_id for d in leased[1:]}
    expired = {row["download_id"] for row in farm.store().audit_rows("expired")}
    assert expired == {d.download_id for d in leased[1:]}


def test_a_downloading_report_is_a_lease_too(start_farm):
    farm = start_farm(jobs=1, tasks=2)
    with client_for(farm, "job-mode") as job_mode, client_for(farm, "daemon") as daemon:
        listed = next(job_mode.iter_job_downloads(farm.job_ids[0])).downloads
        job_mode.report_status(
            listed[0].wire_id,
            "downloading",
            bytes_downloaded=0,
            bytes_to_download=listed[0].size,
        )
        leased = daemon.next_downloads(location=None, count=5).downloads
        assert [d.download_id for d in leased] == [listed[1].download_id]
        # a late "pending" from someone who does not hold the lease is ignored
        daemon.report_status(listed[0].wire_id, "pending", bytes_downloaded=0, bytes_to_download=1)
    assert farm.store().download(listed[0].download_id).status == "downloading"
    assert farm.store().audit_rows("ignored")


@pytest.fixture
def one_file(start_farm):
    farm = start_farm(jobs=1, tasks=1, files=1, size=300_000)
    with client_for(farm, "t") as client:
        remote = client.list_job_downloads_legacy(farm.job_ids[0]).downloads[0].files[0]
    store = FarmStore(farm.data_dir)
    row = store.conn.execute("SELECT content_start FROM files").fetchone()
    content = ContentPool(int(store.get_meta("content_seed"))).read(row[0], remote.size)
    return farm, remote, content


def test_file_bytes_ranges_etag_and_head(one_file):
    _, remote, content = one_file
    assert base64.b64encode(hashlib.md5(content).digest()).decode() == remote.md5
    with httpx.Client() as http:
        whole = http.get(remote.url)
        assert whole.status_code == 200
        assert whole.content == content
        assert int(whole.headers["content-length"]) == remote.size
        etag = whole.headers["etag"]
        assert etag == f'"{hashlib.md5(content).hexdigest()}"'
        part = http.get(remote.url, headers={"Range": "bytes=1000-1999"})
        assert part.status_code == 206
        assert part.content == content[1000:2000]
        assert part.headers["content-range"] == f"bytes 1000-1999/{remote.size}"
        tail = http.get(remote.url, headers={"Range": "bytes=299000-"})
        assert tail.content == content[299000:]
        beyond = http.get(remote.url, headers={"Range": f"bytes={remote.size}-"})
        assert beyond.status_code == 416
        assert beyond.headers["content-range"] == f"bytes */{remote.size}"
        same = http.get(remote.url, headers={"Range": "bytes=10-19", "If-Range": etag})
        assert same.status_code == 206
        changed = http.get(remote.url, headers={"Range": "bytes=10-19", "If-Range": '"old"'})
        assert changed.status_code == 200
        assert changed.content == content
        head = http.head(remote.url)
        assert head.status_code == 200
        assert head.headers["content-length"] == str(remote.size)
        assert head.content == b""


@pytest.mark.parametrize(
    ("style", "status", "words"),
    [
        ("gcs", 400, "<Code>ExpiredToken</Code>"),
        ("s3", 403, "<Code>AccessDenied</Code><Message>Request has expired</Message>"),
        ("gone", 410, "expired"),
    ],
)
def test_forged_and_expired_signatures_are_refused_as_storage_does(
    start_farm, style, status, words
):
    farm = start_farm("--url-ttl", "1", "--expired-style", style, jobs=1, tasks=1, files=1)
    with client_for(farm, "t") as client:
        remote = client.list_job_downloads_legacy(farm.job_ids[0]).downloads[0].files[0]
    with httpx.Client() as http:
        forged = http.get(remote.url.replace("sig=", "sig=0"))
        assert forged.status_code == 403
        assert "<Code>SignatureDoesNotMatch</Code>" in forged.text
        time.sleep(2.1)
        expired = http.get(remote.url)
        assert expired.status_code == status
        assert words in expired.text


def test_fault_injection_cuts_corrupts_and_fails(start_farm):
    farm = start_farm(
        "--faults", "503=0.2,cut=0.2,corrupt=0.2,seed=1", jobs=1, tasks=10, files=2, size=100_000
    )
    with client_for(farm, "t") as client:
        files = [
            f
            for d in client.list_job_downloads_legacy(farm.job_ids[0]).downloads
            for f in d.files
            if f.size
        ]
    outcomes = {"ok": 0, "503": 0, "cut": 0, "corrupt": 0}
    with httpx.Client() as http:
        for remote in files * 3:
            try:
                response = http.get(remote.url)
            except httpx.RemoteProtocolError:
                outcomes["cut"] += 1
                continue
            if response.status_code == 503:
                outcomes["503"] += 1
            elif hashlib.md5(response.content).digest() != remote.md5_digest:
                outcomes["corrupt"] += 1
            else:
                outcomes["ok"] += 1
    assert all(outcomes.values()), outcomes
    counters = farm.stats()["counters"]
    assert counters["fault_status503"] == outcomes["503"]
    assert counters["fault_cut"] == outcomes["cut"]
    assert counters["fault_corrupt"] == outcomes["corrupt"]


def test_bandwidth_cap_slows_responses(start_farm):
    farm = start_farm("--faults", "bandwidth=1MiB", jobs=1, tasks=1, files=1, size=600_000)
    with client_for(farm, "t") as client:
        remote = client.list_job_downloads_legacy(farm.job_ids[0]).downloads[0].files[0]
    started = time.monotonic()
    body = httpx.get(remote.url).content
    elapsed = time.monotonic() - started
    assert len(body) == remote.size
    assert elapsed >= remote.size / (1 << 20) * 0.9


def test_every_file_request_is_audited_with_its_lease(start_farm):
    farm = start_farm(jobs=1, tasks=2, files=2)
    with client_for(farm, "holder") as client:
        download = client.next_downloads(location=None, count=1).downloads[0]
        for remote in download.files:
            if remote.size:
                client.http.get(remote.url)
    farm.stats()  # flushes the audit writer
    rows = farm.store().audit_rows("file")
    assert {r["download_id"] for r in rows} == {download.download_id}
    assert {r["client"] for r in rows} == {"test-client holder"}
    assert {r["lease_epoch"] for r in rows} == {1}
    assert farm.store().downloads_fetched_under_two_leases() == []


def test_serve_exits_cleanly_on_sigterm(start_farm):
    farm = start_farm(jobs=1, tasks=1)
    assert farm.stop() == 143


def raw_listing(farm, *params: str) -> httpx.Response:
    with httpx.Client() as http:
        return http.post(
            f"{farm.url}/jobs/{farm.job_ids[0]}/downloads?{'&'.join(params)}",
            json={"tids": None},
            headers={"Authorization": f"Bearer {farm.token}"},
        )


def test_download_ids_go_out_in_the_style_asked_and_must_come_back_in_it(start_farm, farm_ids):
    farm = start_farm(jobs=1, tasks=2, files=1)
    listed = raw_listing(farm).json()["downloads"]
    wire = listed[0]["download_id"]
    if farm_ids == "number":
        assert type(wire) is int and wire > 2**53  # a float would have changed it
        wrong = str(wire)
    else:
        assert isinstance(wire, str) and wire.isdigit()
        wrong = int(wire)
    assert (listed[0]["job_id"], listed[0]["task_id"]) == (farm.job_ids[0], "000")
    with httpx.Client() as http:
        report = {"status": "downloading", "bytes_downloaded": 0, "bytes_to_download": 1}
        auth = {"Authorization": f"Bearer {farm.token}"}
        refused = http.post(
            f"{farm.url}/downloads/status", json={**report, "download_id": wrong}, headers=auth
        )
        assert refused.status_code == 400
        assert "'download_id' must be the" in refused.json()["error"]
        taken = http.post(
            f"{farm.url}/downloads/status", json={**report, "download_id": wire}, headers=auth
        )
        assert taken.status_code == 201
        assert taken.json()["download_id"] == wire


def test_the_farm_varies_what_the_contract_allows(start_farm):
    farm = start_farm(
        "--numeric-job-ids", "--ok-status", "200", "--max-page", "3", jobs=1, tasks=7, files=1
    )
    first = raw_listing(farm, "limit=100")
    assert first.status_code == 200
    page = first.json()
    assert len(page["downloads"]) == 3 and page["next_cursor"]  # capped, whatever was asked
    assert page["downloads"][1]["job_id"] == int(farm.job_ids[0])
    assert page["downloads"][1]["task_id"] == 1
    with FarmClient(farm.url, credentials_from_text(farm.token, "t")) as client:
        pages = list(client.iter_job_downloads(farm.job_ids[0], page_size=100))
    assert [len(p.downloads) for p in pages] == [3, 3, 1]
    assert pages[0].downloads[1].label == f"{farm.job_ids[0]}:001"  # padded again
