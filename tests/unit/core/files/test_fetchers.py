"""Opening file bodies: kept-alive connections, short reads, a closed idle connection, and
the hashing pipeline. Against a small stdlib HTTP server on 127.0.0.1 (no farm)."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator

import httpx
import pytest

from cdl_tui.core.files.fetchers import BUFFER, RING, Fetcher, HashPipeline

BODY = bytes(range(256)) * 1000  # 256,000 bytes


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    connections: list[int] = []

    def do_GET(self) -> None:
        Handler.connections.append(self.client_address[1])  # the client port: one per connection
        body = BODY[: int(self.path.rsplit("/", 1)[-1])] if self.path != "/" else BODY
        self.send_response(206 if "Range" in self.headers else 200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", '"v1"')
        self.end_headers()
        self.wfile.write(body)
        if getattr(Handler, "closes_after_answer", False):
            self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[http.server.ThreadingHTTPServer]:
    Handler.connections = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def url(httpd: http.server.ThreadingHTTPServer, path: str = "/") -> str:
    return f"http://127.0.0.1:{httpd.server_address[1]}{path}"


def read_all(body) -> bytes:
    chunks, buffer = [], memoryview(bytearray(64 << 10))
    while count := body.readinto(buffer):
        chunks.append(bytes(buffer[:count]))
    return b"".join(chunks)


def test_a_body_is_read_whole_and_its_connection_kept_for_the_next(server) -> None:
    with httpx.Client() as client:
        fetcher = Fetcher(client)
        first = fetcher.open(url(server), {"Range": "bytes=0-"})
        assert first.status == 206 and first.header("ETag") == '"v1"'
        assert first.header("X-Nothing") is None
        assert read_all(first) == BODY
        first.finish(complete=True)
        second = fetcher.open(url(server, "/1000"), {})
        assert read_all(second) == BODY[:1000]
        second.finish(complete=True)
    assert len(Handler.connections) == 2 and len(set(Handler.connections)) == 1  # reused


def test_a_body_not_read_to_its_end_closes_its_connection(server) -> None:
    with httpx.Client() as client:
        fetcher = Fetcher(client)
        cut = fetcher.open(url(server), {})
        cut.readinto(memoryview(bytearray(10)))
        cut.finish(complete=False)  # a cut transfer: its connection is not reused
        again = fetcher.open(url(server, "/10"), {})
        assert read_all(again) == BODY[:10]
        again.finish(complete=True)
    assert len(set(Handler.connections)) == 2


def test_an_idle_connection_the_server_closed_is_replaced_once(server, monkeypatch) -> None:
    # The server answers as if the connection stays open, then closes it: the next
    # request on it finds it closed, and goes again on a new one.
    monkeypatch.setattr(Handler, "closes_after_answer", True, raising=False)
    with httpx.Client() as client:
        fetcher = Fetcher(client)
        body = fetcher.open(url(server, "/5"), {})
        read_all(body)
        body.finish(complete=True)
        fresh = fetcher.open(url(server, "/7"), {})
        assert read_all(fresh) == BODY[:7]
        fresh.finish(complete=True)
    assert len(set(Handler.connections)) == 2


def test_a_url_without_a_host_is_refused_before_connecting() -> None:
    with httpx.Client() as client, pytest.raises(Exception, match="without a host"):
        Fetcher(client).open("http:///a.exr", {})


def test_the_pipeline_hashes_what_it_is_handed_in_order_across_many_rounds() -> None:
    pipeline = HashPipeline()
    data = bytes(range(251)) * (3 * BUFFER // 251)
    for _ in range(2):  # a pipeline is used again for the next file
        digest = hashlib.md5(usedforsecurity=False)
        pipeline.start(digest)
        for offset in range(0, len(data), BUFFER // 3):
            chunk = data[offset : offset + BUFFER // 3]
            index = pipeline.take()
            pipeline.buffers[index][: len(chunk)] = chunk
            pipeline.hash(index, len(chunk))
        pipeline.finish()
        assert digest.hexdigest() == hashlib.md5(data, usedforsecurity=False).hexdigest()
    assert RING >= 2 and HashPipeline.for_this_thread() is HashPipeline.for_this_thread()
