"""The engine against a farm we did not write: a small, independent implementation of the
API (in this file) that sends what the contract allows and our own farm does not: numeric
64-bit download IDs, numeric unpadded job and task IDs, string IDs that need escaping in
a URL path, 200 instead of 201, fields nobody knows, and storage whose URLs expire after
one use, refusing the way Google Cloud Storage does."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import dataclass, field
from types import SimpleNamespace
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from .conftest import files_on_disk

GCS_EXPIRED = (
    b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>ExpiredToken</Code>"
    b"<Message>The provided token has expired.</Message></Error>"
)
BIG_ID = 2**63 - 25  # a 64-bit datastore ID: as a float it would be 2**63


def content_of(name: str, size: int) -> bytes:
    seed = hashlib.sha256(name.encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


@dataclass
class ForeignFarm:
    """The API and the storage in one server. `storage(name, generation, range_start)`
    answers a file request: by default the whole file (or the asked-for range)."""

    downloads: list[dict]
    contents: dict[str, bytes]
    url: str = ""
    token: str = "foreign-token"
    generation: int = 0  # +1 on every listing: URLs of older listings may be refused
    reports: list[dict] = field(default_factory=list)
    fails: list[tuple[str, str]] = field(default_factory=list)  # (raw path, message)
    file_requests: list[tuple[str, int, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def storage(self, name: str, generation: int, start: int):
        data = self.contents[name][start:]
        headers = {"Content-Length": str(len(data)), "ETag": '"e1"'}
        if start:
            total = len(self.contents[name])
            headers["Content-Range"] = f"bytes {start}-{total - 1}/{total}"
            return 206, headers, data
        return 200, headers, data

    def answer(self, request):
        parts = urlsplit(request.path)
        if parts.path.startswith("/blob/"):
            name = parts.path.removeprefix("/blob/")
            generation = int(parse_qs(parts.query)["gen"][0])
            wanted = request.headers.get("Range", "bytes=0-")
            start = int(wanted.removeprefix("bytes=").split("-")[0] or 0)
            with self.lock:
                self.file_requests.append((name, generation, wanted))
            return self.storage(name, generation, start)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return 401, {}, b'{"error": "who are you"}'
        if parts.path.endswith("/downloads") and request.method == "POST":
            with self.lock:
                self.generation += 1
                generation = self.generation
            listed = [self._with_urls(d, generation) for d in self.downloads]
            body = {"downloads": listed, "next_cursor": None, "total": len(listed)}
            return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()
        if parts.path == "/downloads/status":
            with self.lock:
                self.reports.append(json.loads(request.body))
            return 200, {}, b""  # "body ignored": an empty one, then
        if parts.path.endswith("/fail"):
            with self.lock:
                self.fails.append((parts.path, request.body.decode()))
            return 200, {}, b"{}"
        return 404, {}, b'{"error": "no such endpoint"}'

    def _with_urls(self, download: dict, generation: int) -> dict:
        files = [
            {**f, "url": f"{self.url}/blob/{f['relative_path']}?gen={generation}&sig=x"}
            for f in download["files"]
        ]
        return {**download, "files": files, "priority": 5, "labels": {"show": "wash"}}

    def statuses(self, status: str) -> list:
        return [r["download_id"] for r in self.reports if r["status"] == status]


def a_download(download_id, task: int, names: list[str], size: int, contents: dict) -> dict:
    files = []
    for name in names:
        contents[name] = content_of(name, size)
        md5 = base64.b64encode(hashlib.md5(contents[name]).digest()).decode()
        files.append({"md5": md5, "relative_path": name, "size": size, "checksum": "md5"})
    return {
        "download_id": download_id,
        "job_id": 8285,  # numbers, unpadded: the client pads them
        "task_id": task,
        "output_dir": "/Volumes/af/show/renders",
        "size": size * len(names),
        "files": files,
    }


@pytest.fixture
def foreign_farm(hostile_server):
    def start(downloads: list[dict], contents: dict[str, bytes]) -> ForeignFarm:
        farm = ForeignFarm(downloads, contents)
        farm.url = hostile_server(farm.answer).url
        return farm

    return start


def run(make_engine, farm, out, **config):
    engine = make_engine(
        SimpleNamespace(url=farm.url, token=farm.token),
        out,
        jobs=["8285"],
        exit_when_done=True,
        **config,
    )
    engine.start()
    assert engine.stop_event.wait(60)
    code = engine.shutdown()
    return code, engine.snapshot().totals


def test_numeric_64_bit_ids_are_kept_exact_and_sent_back_as_numbers(
    foreign_farm, make_engine, tmp_path
):
    contents: dict[str, bytes] = {}
    downloads = [
        a_download(BIG_ID - task, task, [f"beauty/beauty.{1001 + task}.exr"], 50_000, contents)
        for task in range(3)
    ]
    farm = foreign_farm(downloads, contents)
    code, totals = run(make_engine, farm, tmp_path / "out")
    assert code == 0
    assert totals.files_downloaded == 3
    on_disk = files_on_disk(tmp_path / "out" / "08285")  # padded from the number 8285
    assert set(on_disk) == set(contents)
    done = farm.statuses("downloaded")
    assert sorted(done) == sorted(BIG_ID - task for task in range(3))
    assert all(type(i) is int for r in farm.reports for i in [r["download_id"]])


def test_string_ids_are_escaped_in_url_paths(foreign_farm, make_engine, tmp_path):
    contents: dict[str, bytes] = {}
    good = a_download("dl 7/#?%", 1, ["a/beauty.1001.exr"], 1000, contents)
    bad = a_download("dl 8/#?%", 2, ["../../etc/passwd"], 1000, contents)  # refused
    farm = foreign_farm([good, bad], contents)
    code, totals = run(make_engine, farm, tmp_path / "out")
    assert code == 1  # one Download refused
    assert (totals.files_downloaded, totals.downloads_refused) == (1, 1)
    assert farm.statuses("downloaded") == ["dl 7/#?%"]
    ((path, message),) = farm.fails
    assert path == "/downloads/dl%208%2F%23%3F%25/fail"
    assert unquote(path.split("/")[2]) == "dl 8/#?%"
    assert "climbs out" in message


def test_a_refused_download_with_a_numeric_id_is_reported_by_that_id(
    foreign_farm, make_engine, tmp_path
):
    contents: dict[str, bytes] = {}
    bad = a_download(BIG_ID, 1, ["x.exr"], 10, contents)
    bad["size"] = "ten"
    farm = foreign_farm([bad], contents)
    code, totals = run(make_engine, farm, tmp_path / "out")
    assert (code, totals.downloads_refused) == (1, 1)
    ((path, message),) = farm.fails
    assert path == f"/downloads/{BIG_ID}/fail"
    assert "'size' must be an integer" in message


def test_a_fresh_url_that_delivers_bytes_resets_the_files_tries(
    foreign_farm, make_engine, tmp_path
):
    """Each URL serves one request, cut after 100 KB, then is refused as GCS refuses an
    expired one. The file (500 KB) takes five fresh URLs; with 3 tries a file, it only
    gets there because a fresh URL that delivers bytes starts the count again."""
    contents: dict[str, bytes] = {}
    downloads = [a_download(BIG_ID, 1, ["deep/deep.1001.exr"], 500_000, contents)]
    farm = foreign_farm(downloads, contents)
    used: set[int] = set()

    def storage(name, generation, start):
        if generation in used:
            return 400, {"Content-Type": "application/xml"}, GCS_EXPIRED
        used.add(generation)
        data = contents[name][start:]
        total = len(contents[name])
        headers = {"Content-Length": str(len(data)), "ETag": '"e1"'}
        if start:
            headers["Content-Range"] = f"bytes {start}-{total - 1}/{total}"
        return (206 if start else 200), headers, iter([data[:100_000]])  # then the cut

    farm.storage = storage
    done = []  # progress of the file as the screen would show it, all along
    engine = make_engine(
        SimpleNamespace(url=farm.url, token=farm.token),
        tmp_path / "out",
        jobs=["8285"],
        exit_when_done=True,
        max_attempts=1,
        file_attempts=3,
    )
    engine.start()
    while not engine.stop_event.wait(0.002):
        done += [f.done for a in engine.snapshot().active for f in a.files]
    assert engine.shutdown() == 0
    assert done and max(done) <= 500_000  # bytes resumed from disk are not counted twice
    totals = engine.snapshot().totals
    assert totals.files_downloaded == 1
    assert files_on_disk(tmp_path / "out" / "08285") == {
        "deep/deep.1001.exr": base64.b64encode(
            hashlib.md5(contents["deep/deep.1001.exr"]).digest()
        ).decode()
    }
    resumed_from = [int(w.removeprefix("bytes=").split("-")[0]) for _, _, w in farm.file_requests]
    assert max(resumed_from) == 400_000  # every fresh URL carried on from the bytes on disk
    assert farm.generation >= 5  # the first listing and a refresh for each refusal


def test_a_fresh_url_refused_before_any_byte_uses_a_try(foreign_farm, make_engine, tmp_path):
    contents: dict[str, bytes] = {}
    downloads = [a_download(BIG_ID, 1, ["beauty/beauty.1001.exr"], 1000, contents)]
    farm = foreign_farm(downloads, contents)
    farm.storage = lambda name, generation, start: (400, {}, GCS_EXPIRED)
    code, totals = run(make_engine, farm, tmp_path / "out", max_attempts=1, file_attempts=3)
    assert (code, totals.downloads_failed) == (1, 1)
    # The listing's URL had gone stale (no try used); then three fresh ones, each refused
    # before any byte, each a try.
    assert [g for _, g, _ in farm.file_requests] == [1, 2, 3, 4]
    assert farm.generation == 4
    ((_, message),) = farm.fails
    assert "ExpiredToken" in message


def test_a_stale_url_refused_on_the_last_try_still_gets_a_fresh_one(
    foreign_farm, make_engine, tmp_path
):
    contents: dict[str, bytes] = {}
    downloads = [a_download(BIG_ID, 1, ["beauty/beauty.1001.exr"], 1000, contents)]
    farm = foreign_farm(downloads, contents)
    answers = iter([(503, {}, b"busy"), (503, {}, b"busy"), (400, {}, GCS_EXPIRED)])
    serve = farm.storage
    farm.storage = lambda name, gen, start: next(answers) if gen == 1 else serve(name, gen, start)
    code, totals = run(make_engine, farm, tmp_path / "out", max_attempts=1, file_attempts=3)
    assert (code, totals.files_downloaded) == (0, 1)
    assert [g for _, g, _ in farm.file_requests] == [1, 1, 1, 2]


def test_storage_that_ignores_range_cannot_keep_a_file_refreshing_for_ever(
    foreign_farm, make_engine, tmp_path
):
    """One-use URLs, each answering 200 from byte 0 (Range ignored) and cut after 100 KB:
    a fresh URL brings no byte further than the last, so the tries run out."""
    contents: dict[str, bytes] = {}
    downloads = [a_download(BIG_ID, 1, ["deep/deep.1001.exr"], 500_000, contents)]
    farm = foreign_farm(downloads, contents)
    used: set[int] = set()

    def storage(name, generation, start):
        if generation in used:
            return 400, {}, GCS_EXPIRED
        used.add(generation)
        return 200, {"Content-Length": str(500_000)}, iter([contents[name][:100_000]])

    farm.storage = storage
    code, totals = run(make_engine, farm, tmp_path / "out", max_attempts=1, file_attempts=3)
    assert (code, totals.downloads_failed) == (1, 1)
    assert farm.generation == 3  # the listing and two refreshes, then the tries ran out
