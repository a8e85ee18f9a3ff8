"""File storage we did not write: how S3, Google Cloud Storage and others refuse a signed
URL, each against the real transfer code over real HTTP (a small hostile server)."""

import base64
import hashlib
import itertools
import threading
import time

import pytest

from cdl_tui.core.files.folders import open_folder
from cdl_tui.core.files.throttle import TokenBucket
from cdl_tui.core.files.transfer import (
    Progress,
    Target,
    TransferError,
    partial_size,
    temp_path_for,
)
from cdl_tui.core.model.models import RemoteFile
from cdl_tui.core.model.settings import Permissions

CONTENT = bytes(range(256)) * 400  # 100 KiB

GCS_EXPIRED = (
    b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>ExpiredToken</Code>"
    b"<Message>The provided token has expired.</Message>"
    b"<Details>Request signature expired at: 2026-11-28T10:00:00+00:00</Details></Error>"
)
S3_EXPIRED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    b"<Message>Request has expired</Message><X-Amz-Expires>60</X-Amz-Expires>"
    b"<RequestId>4442587FB7D0A2F9</RequestId></Error>"
)
GCS_BAD_ARGUMENT = (
    b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>InvalidArgument</Code>"
    b"<Message>Invalid argument.</Message></Error>"
)


def remote_for(url: str) -> RemoteFile:
    md5 = base64.b64encode(hashlib.md5(CONTENT).digest()).decode()
    return RemoteFile(url=url, md5=md5, relative_path="beauty.1001.exr", size=len(CONTENT))


@pytest.fixture
def fetch(make_transfer):
    """fetch(source, dest, progress=None, throttle=None): one file through the engine under
    test, from a URL serving CONTENT or a RemoteFile, into `dest`."""

    def run(source: str | RemoteFile, dest, progress: Progress | None = None, throttle=None):
        remote = remote_for(source) if isinstance(source, str) else source
        folder = open_folder(dest.parent.resolve())
        try:
            transfer = make_transfer(throttle)
            target = Target(folder, dest.name)
            return transfer.fetch(
                remote, target, permissions=Permissions(), progress=progress or Progress()
            )
        finally:
            folder.close()

    return run


@pytest.mark.parametrize(
    ("status", "body", "words"),
    [
        (400, GCS_EXPIRED, "HTTP 400: ExpiredToken: The provided token has expired."),
        (403, S3_EXPIRED, "HTTP 403: AccessDenied: Request has expired"),
        (410, b"Gone", "HTTP 410: Gone"),
        (403, b"", "HTTP 403)"),
    ],
    ids=["gcs-400", "s3-403", "410", "403-no-body"],
)
def test_an_expired_url_asks_for_a_fresh_one_and_keeps_the_bytes(  # noqa: PLR0917
    hostile_server, fetch, tmp_path, status, body, words
):
    calls = itertools.count()

    def answer(request):
        if next(calls) == 0:  # the first request gets half the file, then the line drops
            head = {"Content-Length": str(len(CONTENT)), "ETag": '"v1"'}
            return 200, head, [CONTENT[: len(CONTENT) // 2]]
        return status, {"Content-Type": "application/xml"}, body

    storage = hostile_server(answer)
    dest = tmp_path / "beauty.1001.exr"
    with pytest.raises(TransferError) as cut:
        fetch(f"{storage.url}/o/beauty.1001.exr?X-Goog-Signature=abc", dest)
    assert not cut.value.expired
    with pytest.raises(TransferError) as refused:
        fetch(f"{storage.url}/o/beauty.1001.exr?X-Goog-Signature=abc", dest)
    assert refused.value.expired and refused.value.retryable
    assert words in str(refused.value)
    assert partial_size(dest, remote_for(storage.url)) == len(CONTENT) // 2  # kept to resume
    assert not dest.exists()


def test_a_400_that_is_not_about_expiry_is_a_plain_error(hostile_server, fetch, tmp_path):
    storage = hostile_server(lambda r: (400, {"Content-Type": "application/xml"}, GCS_BAD_ARGUMENT))
    with pytest.raises(TransferError) as info:
        fetch(f"{storage.url}/o/x", tmp_path / "x.exr")
    assert not info.value.expired and not info.value.retryable
    assert "HTTP 400: InvalidArgument: Invalid argument." in str(info.value)


def test_an_endless_error_body_is_read_only_a_little(hostile_server, fetch, tmp_path):
    sent = {"bytes": 0}

    def endless():
        while True:
            chunk = b"<Error><Code>ExpiredToken</Code>" + b"x" * 65536
            sent["bytes"] += len(chunk)
            yield chunk

    storage = hostile_server(lambda r: (400, {}, endless()))
    with pytest.raises(TransferError) as info:
        fetch(f"{storage.url}/o/x", tmp_path / "x.exr")
    assert info.value.expired
    assert len(str(info.value)) < 300
    time.sleep(0.2)
    assert sent["bytes"] < 10 << 20  # the connection was dropped, not read to its end


def test_a_stalled_error_body_holds_the_worker_two_seconds_at_most(hostile_server, fetch, tmp_path):
    release = threading.Event()

    def stalled():
        yield b"<Error><Code>ExpiredToken</Code><Message>The provided"
        release.wait(60)  # never sends the rest (until the test ends)

    storage = hostile_server(lambda r: (400, {"Content-Length": "4000"}, stalled()))
    started = time.monotonic()
    try:
        with pytest.raises(TransferError) as info:
            fetch(f"{storage.url}/o/x", tmp_path / "x.exr")
    finally:
        release.set()
    assert info.value.expired  # the code came before the stall
    assert time.monotonic() - started < 30  # not the 60 s read timeout


def test_an_error_body_with_control_characters_gives_one_clean_line(
    hostile_server, fetch, tmp_path
):
    body = b"<Error><Code>AccessDenied</Code><Message>no\r\n\x1b[31mred\x07</Message></Error>"
    storage = hostile_server(lambda r: (403, {}, body))
    with pytest.raises(TransferError) as info:
        fetch(f"{storage.url}/o/x", tmp_path / "x.exr")
    text = str(info.value)
    assert "\n" not in text and "\x1b" not in text and "\x07" not in text
    assert "AccessDenied: no" in text


def test_the_temp_file_name_does_not_depend_on_the_url(tmp_path):
    # A fresh URL resumes into the same temp file as the refused one.
    dest = tmp_path / "beauty.1001.exr"
    assert temp_path_for(dest, remote_for("http://a/x?sig=1")) == temp_path_for(
        dest, remote_for("http://b/y?sig=2")
    )


def test_a_body_that_trickles_is_cut_as_stalled_and_keeps_its_bytes(
    hostile_server, fetch, tmp_path
):
    big = CONTENT * 10  # 1 MB: read in steps, as a big file is
    md5 = base64.b64encode(hashlib.md5(big).digest()).decode()
    remote = RemoteFile(url="", md5=md5, relative_path="deep.1001.exr", size=len(big))

    def body():
        for start in range(0, len(big), 1000):  # about 100 KB/s: alive, but too slow
            yield big[start : start + 1000]
            time.sleep(0.01)

    storage = hostile_server(lambda r: (200, {"Content-Length": str(len(big))}, body()))
    remote = RemoteFile(storage.url, remote.md5, remote.relative_path, remote.size)
    dest = tmp_path / "deep.1001.exr"
    started = time.monotonic()
    with pytest.raises(TransferError) as info:
        fetch(remote, dest, Progress(stall=(1.0, 512 << 10)))
    assert info.value.retryable and "stall" in str(info.value)
    assert time.monotonic() - started < 6  # all of it would take about 10 s
    assert partial_size(dest, remote) > 0  # resumed from, next try


def test_a_body_that_sends_nothing_is_cut_after_the_stall_time(hostile_server, fetch, tmp_path):
    release = threading.Event()

    def silent():
        yield CONTENT[:1000]
        release.wait(60)

    storage = hostile_server(lambda r: (200, {"Content-Length": str(len(CONTENT))}, silent()))
    started = time.monotonic()
    try:
        with pytest.raises(TransferError) as info:
            fetch(storage.url, tmp_path / "x.exr", Progress(stall=(1.0, 1024)))
    finally:
        release.set()
    text = str(info.value)  # the stream engine's read timeout, or curl's stall window
    assert info.value.retryable and ("timed out" in text or "stalled" in text)
    assert time.monotonic() - started < 20  # not the 60 s read timeout


def test_a_host_that_drips_a_byte_now_and_then_is_cut_as_stalled(hostile_server, fetch, tmp_path):
    """Each read waits for one receive at most: a byte every 0.5 s is seen as the stall it
    is, not waited on until a whole buffer has come (hours)."""
    release = threading.Event()

    def drip():
        for index in range(len(CONTENT)):
            yield CONTENT[index : index + 1]
            if release.wait(0.5):
                return

    storage = hostile_server(lambda r: (200, {"Content-Length": str(len(CONTENT))}, drip()))
    started = time.monotonic()
    try:
        with pytest.raises(TransferError) as info:
            fetch(storage.url, tmp_path / "x.exr", Progress(stall=(1.0, 1024)))
    finally:
        release.set()
    assert "stalled" in str(info.value)
    assert time.monotonic() - started < 15


def test_the_bandwidth_limit_holds_for_files_that_fit_in_one_read(hostile_server, fetch, tmp_path):
    """Every read is charged to the limit, the one that completes a file too: 40 files of
    20 KB at 200 KB/s take at least 4 s (a lower bound: a slow machine only adds)."""
    small = CONTENT[:20_000]
    md5 = base64.b64encode(hashlib.md5(small).digest()).decode()
    storage = hostile_server(lambda r: (200, {}, small))
    bucket = TokenBucket(200_000)
    started = time.monotonic()
    for index in range(40):
        remote = RemoteFile(f"{storage.url}/f{index}", md5, f"f{index}.exr", len(small))
        fetch(remote, tmp_path / f"f{index}.exr", throttle=bucket)
    assert time.monotonic() - started >= 0.8 * 40 * 20_000 / 200_000
