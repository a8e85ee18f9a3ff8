"""Both file transfer engines (libcurl's loop and the http.client stream) against file
hosts we did not write: TLS trust as the API client has it, proxies and NO_PROXY from the
environment, bodies that lie about their length or content, pause and stop mid-file."""

import base64
import hashlib
import threading
import time

import pytest

from cdl_tui.core.files.folders import open_folder
from cdl_tui.core.files.transfer import Progress, Target, partial_size
from cdl_tui.core.model.errors import StopRequested, TransferError
from cdl_tui.core.model.models import RemoteFile
from cdl_tui.core.model.settings import FileTls, Permissions

CONTENT = bytes(range(256)) * 4096  # 1 MiB
MD5 = base64.b64encode(hashlib.md5(CONTENT).digest()).decode()


def remote_at(url: str, content: bytes = CONTENT) -> RemoteFile:
    md5 = base64.b64encode(hashlib.md5(content).digest()).decode()
    return RemoteFile(url=url, md5=md5, relative_path="beauty.1001.exr", size=len(content))


def fetch_into(transfer, remote: RemoteFile, dest, progress: Progress | None = None) -> int:
    folder = open_folder(dest.parent.resolve())
    try:
        return transfer.fetch(
            remote,
            Target(folder, dest.name),
            permissions=Permissions(),
            progress=progress or Progress(),
        )
    finally:
        folder.close()


@pytest.fixture
def clean_proxy_env(monkeypatch):
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


def test_a_file_host_is_trusted_as_the_api_is(hostile_server, self_signed, make_transfer, tmp_path):
    """Unknown CA: refused, unsafe, naming --ca-bundle; with that CA as ca_bundle, or with
    verification off (--insecure), the file comes, verified by its md5."""
    cert, context = self_signed
    storage = hostile_server(lambda r: (200, {}, CONTENT), tls=context)
    remote = remote_at(f"{storage.url}/o/beauty.1001.exr")
    with pytest.raises(TransferError) as info:
        fetch_into(make_transfer(), remote, tmp_path / "a.exr")
    assert info.value.unsafe and "--ca-bundle" in str(info.value)
    assert not (tmp_path / "a.exr").exists()
    fetch_into(make_transfer(tls=FileTls(ca_file=str(cert))), remote, tmp_path / "b.exr")
    assert (tmp_path / "b.exr").read_bytes() == CONTENT
    fetch_into(make_transfer(tls=FileTls(verify=False)), remote, tmp_path / "c.exr")
    assert (tmp_path / "c.exr").read_bytes() == CONTENT


def test_a_proxy_from_the_environment_carries_file_transfers(
    hostile_server, clean_proxy_env, make_transfer, tmp_path
):
    storage = hostile_server(lambda r: (200, {}, b"never asked directly"))
    proxy = hostile_server(lambda r: (200, {}, CONTENT))  # answers for any URL
    clean_proxy_env.setenv("http_proxy", proxy.url)
    fetch_into(make_transfer(), remote_at(f"{storage.url}/o/x.exr"), tmp_path / "x.exr")
    assert (tmp_path / "x.exr").read_bytes() == CONTENT
    assert [r.path for r in proxy.requests] == [f"{storage.url}/o/x.exr"]  # absolute form
    assert not storage.requests


def test_no_proxy_sends_its_hosts_direct(hostile_server, clean_proxy_env, make_transfer, tmp_path):
    storage = hostile_server(lambda r: (200, {}, CONTENT))
    proxy = hostile_server(lambda r: (502, {}, b"the proxy must not be asked"))
    clean_proxy_env.setenv("http_proxy", proxy.url)
    clean_proxy_env.setenv("NO_PROXY", "localhost,127.0.0.1")
    fetch_into(make_transfer(), remote_at(f"{storage.url}/o/x.exr"), tmp_path / "x.exr")
    assert (tmp_path / "x.exr").read_bytes() == CONTENT
    assert not proxy.requests and len(storage.requests) == 1


@pytest.mark.parametrize(
    ("body", "words", "bad_data"),
    [
        (CONTENT + b"more", "more than the expected", True),
        (CONTENT[:-1] + b"!", "md5 mismatch", True),
    ],
    ids=["longer", "other-bytes"],
)
def test_a_body_that_is_not_the_farms_file_never_lands(  # noqa: PLR0917
    hostile_server, make_transfer, tmp_path, body, words, bad_data
):
    storage = hostile_server(lambda r: (200, {"Content-Length": str(len(body))}, body))
    with pytest.raises(TransferError) as info:
        fetch_into(make_transfer(), remote_at(storage.url), tmp_path / "x.exr")
    assert words in str(info.value) and info.value.bad_data == bad_data
    assert not (tmp_path / "x.exr").exists()
    assert partial_size(tmp_path / "x.exr", remote_at(storage.url)) == 0  # bad bytes go


def test_a_body_cut_short_keeps_its_bytes_for_a_resume_with_if_range(
    hostile_server, make_transfer, tmp_path
):
    calls = []

    def answer(request):
        calls.append(request.headers)
        if len(calls) == 1:
            head = {"Content-Length": str(len(CONTENT)), "ETag": '"v7"'}
            return 200, head, [CONTENT[:400_000]]  # then the connection drops
        start = int(request.headers["Range"].split("=")[1].rstrip("-"))
        rest = CONTENT[start:]
        head = {"Content-Range": f"bytes {start}-{len(CONTENT) - 1}/{len(CONTENT)}"}
        return 206, {**head, "Content-Length": str(len(rest))}, rest

    storage = hostile_server(answer)
    dest = tmp_path / "x.exr"
    transfer = make_transfer()
    with pytest.raises(TransferError) as info:
        fetch_into(transfer, remote_at(storage.url), dest)
    assert info.value.retryable
    assert partial_size(dest, remote_at(storage.url)) == 400_000
    resumed = fetch_into(transfer, remote_at(storage.url), dest)
    assert resumed == 400_000 and dest.read_bytes() == CONTENT
    assert calls[1]["Range"] == "bytes=400000-" and calls[1]["If-Range"] == '"v7"'
    assert not partial_size(dest, remote_at(storage.url))


@pytest.mark.parametrize("status", [404, 416, 500, 302])
def test_an_unexpected_status_is_an_error_and_nothing_lands(
    hostile_server, make_transfer, tmp_path, status
):
    storage = hostile_server(lambda r: (status, {"Location": "file:///etc/passwd"}, b"no"))
    with pytest.raises(TransferError) as info:
        fetch_into(make_transfer(), remote_at(storage.url), tmp_path / "x.exr")
    assert f"HTTP {status}" in str(info.value)
    assert info.value.retryable == (status != 302)
    assert not (tmp_path / "x.exr").exists() and len(storage.requests) == 1  # no redirect


def slow_storage(hostile_server, release: threading.Event):
    """Storage sending CONTENT in 16 KiB pieces, 50 ms apart, until `release` is set."""

    def body():
        for start in range(0, len(CONTENT), 16384):
            yield CONTENT[start : start + 16384]
            if release.wait(0.05):
                return

    return hostile_server(lambda r: (200, {"Content-Length": str(len(CONTENT))}, body()))


def test_a_pause_holds_the_transfer_and_a_stop_ends_it(hostile_server, make_transfer, tmp_path):
    """check_stop waits while paused: no byte arrives meanwhile; raising StopRequested ends
    the try at once, its file closed, nothing at the final path."""
    release = threading.Event()
    storage = slow_storage(hostile_server, release)
    received: list[int] = []
    paused, stop = threading.Event(), threading.Event()

    def check_stop():
        while paused.is_set() and not stop.is_set():
            time.sleep(0.01)
        if stop.is_set():
            raise StopRequested("cancelled")

    progress = Progress(on_bytes=received.append, check_stop=check_stop)
    outcome: list[BaseException] = []

    def run():
        try:
            fetch_into(make_transfer(), remote_at(storage.url), tmp_path / "x.exr", progress)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while sum(received) < 100_000 and time.monotonic() < deadline:
            time.sleep(0.02)
        paused.set()
        time.sleep(0.5)  # the engine sees the pause within its poll
        held = sum(received)
        time.sleep(0.8)
        assert sum(received) == held, "bytes kept coming while paused"
        paused.clear()
        deadline = time.monotonic() + 5
        while sum(received) == held and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sum(received) > held, "the transfer did not go on after the pause"
        stop.set()
        worker.join(5)
        assert not worker.is_alive()
    finally:
        release.set()
        stop.set()
        worker.join(5)
    assert outcome and isinstance(outcome[0], StopRequested)
    assert not (tmp_path / "x.exr").exists()


def test_a_bug_in_the_curl_loop_fails_the_transfer_and_never_hangs_a_worker(
    hostile_server, monkeypatch, tmp_path
):
    """Whatever breaks the loop thread ends the tries waiting on it, with the reason, and
    every later try at once: a worker never waits for a loop that is gone."""
    curl = pytest.importorskip("cdl_tui.core.files.curl")
    if curl.available() is not None:
        pytest.skip(curl.available())
    from cdl_tui.core.files.throttle import TokenBucket

    storage = hostile_server(lambda r: (200, {}, CONTENT))

    def broken_add(self, multi, job, headers):
        raise RuntimeError("a bug")

    monkeypatch.setattr(curl.CurlLoop, "_add", broken_add)
    transfer = curl.CurlTransfer(curl.CurlSettings(), TokenBucket())
    try:
        started = time.monotonic()
        for name in ("a.exr", "b.exr"):
            with pytest.raises(TransferError, match="the transfer loop failed"):
                fetch_into(transfer, remote_at(storage.url), tmp_path / name)
        assert time.monotonic() - started < 5
        assert not list(tmp_path.iterdir())  # no temp file, no final file
    finally:
        transfer.close()


def test_a_worker_slower_than_the_network_holds_the_transfer_not_the_memory(
    hostile_server, make_transfer, tmp_path
):
    """The worker writes and hashes at its own pace (here 20 ms between pieces); a fast
    host is held back (curl pauses the transfer 8 MiB ahead) and the file lands whole."""
    big = bytes(range(256)) * (48 * 4096)  # 48 MiB
    storage = hostile_server(lambda r: (200, {}, big))

    def slow_worker():
        time.sleep(0.02)

    remote = remote_at(storage.url, big)
    resumed = fetch_into(
        make_transfer(), remote, tmp_path / "deep.exr", Progress(check_stop=slow_worker)
    )
    assert resumed == 0
    assert (tmp_path / "deep.exr").read_bytes() == big
