"""How file bodies are read: the standard library's http.client where it can be, httpx
where it must (a proxy), behind one small interface.

File transfers are the hot path. Measured here on 2 cores (see bench/): httpx costs about
1 ms of Python per request and re-chunks bodies into new bytes objects; http.client with
kept-alive connections and `readinto` a reused buffer costs far less, and the buffer can
be hashed by another thread while the next one is read (see HashPipeline). The API calls
keep using httpx (FarmClient); only file GETs come here.
"""

from __future__ import annotations

import hashlib
import http.client
import queue
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Protocol
from urllib.parse import SplitResult, urlsplit

import httpx

from cdl_tui.core.files.proxies import ProxyRules
from cdl_tui.core.model.version import user_agent

BUFFER = 1 << 20  # bytes per read (and per hashing hand-off)
RING = 4  # buffers per worker thread: reading, writing, hashing overlap
PIPELINE_MIN = 2 * BUFFER  # smaller bodies are hashed inline (no thread hand-off)


class BodySource(Protocol):
    status: int

    def header(self, name: str) -> str | None: ...
    def readinto(self, view: memoryview) -> int: ...
    def finish(self, complete: bool) -> None: ...
    def limit_wait(self, seconds: float) -> None:
        """Make each further read wait at most `seconds` for data (where it can)."""


ConnectionKey = tuple[str, str | None, int | None]  # scheme, host, port


class _StdlibBody:
    def __init__(
        self,
        pool: _Connections,
        key: ConnectionKey,
        conn: http.client.HTTPConnection,
        response: http.client.HTTPResponse,
    ) -> None:
        self._pool, self._key, self._conn, self._response = pool, key, conn, response
        self.status = response.status

    def header(self, name: str) -> str | None:
        return self._response.getheader(name)

    def readinto(self, view: memoryview) -> int:
        """Read what has arrived, up to len(view), waiting for one receive at most.

        HTTPResponse.readinto waits until `view` is full: a host that drips a byte now
        and then would hold it for ever, unseen by the stall check and by a stop. For a
        body of known length (not chunked) this reads with readinto1 and keeps the
        response's own count, as HTTPResponse.readinto does."""
        response = self._response
        length = response.length
        if response.chunked or length is None or response.fp is None:
            return response.readinto(view)
        if len(view) > length:
            view = view[:length]
        count = response.fp.readinto1(view)
        if not count and view:
            response.close()  # the server closed early: the caller sees a short body
        else:
            response.length = length - count
            if not response.length:
                response.close()
        return count

    def limit_wait(self, seconds: float) -> None:
        if self._conn.sock is not None:
            self._conn.sock.settimeout(max(0.01, seconds))

    def finish(self, complete: bool) -> None:
        if complete and not self._response.isclosed():
            # Drain what is left (a few bytes at most after a complete body).
            self._response.read()
        if complete and not self._response.will_close:
            self._pool.give_back(self._key, self._conn)
        else:
            self._conn.close()


class _Connections:
    """Kept-alive http.client connections, one set per thread (they are not thread-safe)."""

    def __init__(self, tls: Callable[[], ssl.SSLContext], timeout: float) -> None:
        self._local = threading.local()
        self._make_tls = tls  # called on the first https URL (loading CAs takes time)
        self._tls: ssl.SSLContext | None = None
        self._tls_lock = threading.Lock()
        self._timeout = timeout

    def _idle(self) -> dict[ConnectionKey, http.client.HTTPConnection]:
        idle: dict[ConnectionKey, http.client.HTTPConnection] | None = getattr(
            self._local, "idle", None
        )
        if idle is None:
            idle = self._local.idle = {}
        return idle

    def give_back(self, key: ConnectionKey, conn: http.client.HTTPConnection) -> None:
        old = self._idle().pop(key, None)
        if old is not None and old is not conn:
            old.close()
        self._idle()[key] = conn

    def open(self, url: str, headers: dict[str, str]) -> _StdlibBody:
        parts = urlsplit(url)
        key = (parts.scheme, parts.hostname, parts.port)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        headers = {"User-Agent": user_agent(), **headers}
        for fresh in (False, True):
            conn = None if fresh else self._idle().pop(key, None)
            reused = conn is not None
            if conn is None:
                conn = self._connect(parts)
            try:
                conn.request("GET", target or "/", headers=headers)
                response = conn.getresponse()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                conn.close()
                if reused:
                    continue  # the server had closed the idle connection: once more, new
                raise
            except BaseException:
                conn.close()
                raise
            return _StdlibBody(self, key, conn, response)
        raise http.client.RemoteDisconnected("the connection was closed")  # pragma: no cover

    def _connect(self, parts: SplitResult) -> http.client.HTTPConnection:
        host = parts.hostname
        if not host:  # the farm's URLs are checked when parsed; this one slipped through
            raise http.client.InvalidURL("a file URL without a host")
        if parts.scheme == "https":
            with self._tls_lock:
                if self._tls is None:
                    self._tls = self._make_tls()
            return http.client.HTTPSConnection(
                host, parts.port, timeout=self._timeout, context=self._tls
            )
        return http.client.HTTPConnection(host, parts.port, timeout=self._timeout)


class _HttpxBody:
    """httpx's stream as a readinto source (used when a proxy is configured)."""

    def __init__(
        self, stream: AbstractContextManager[httpx.Response], response: httpx.Response
    ) -> None:
        self._stream = stream
        self._response = response
        self._chunks: Iterator[bytes] = response.iter_raw()
        self._left = memoryview(b"")
        self.status = response.status_code

    def header(self, name: str) -> str | None:
        value: str | None = self._response.headers.get(name)
        return value

    def readinto(self, view: memoryview) -> int:
        while not self._left:
            try:
                self._left = memoryview(next(self._chunks))
            except StopIteration:
                return 0
        count = min(len(view), len(self._left))
        view[:count] = self._left[:count]
        self._left = self._left[count:]
        return count

    def limit_wait(self, seconds: float) -> None:
        """httpx's read timeout stays as configured (proxied transfers only)."""

    def finish(self, complete: bool) -> None:  # noqa: ARG002 - httpx pools by itself
        self._stream.__exit__(None, None, None)


class Fetcher:
    """Opens file bodies. Errors are those of http.client/ssl/OSError or httpx."""

    def __init__(
        self,
        http: httpx.Client,
        tls: Callable[[], ssl.SSLContext] = ssl.create_default_context,
        timeout: float = 60.0,
        proxies: ProxyRules | None = None,
    ) -> None:
        self.http = http
        self._connections = _Connections(tls, timeout)
        self._proxies = proxies or ProxyRules()

    def open(self, url: str, headers: dict[str, str]) -> BodySource:
        if self._proxies.proxy_for(url) is not None:
            stream = self.http.stream("GET", url, headers=headers)
            return _HttpxBody(stream, stream.__enter__())
        return self._connections.open(url, headers)


class HashPipeline:
    """Hash buffers in a helper thread while the worker reads the next ones.

    One per worker thread (`for_this_thread`), with its own ring of buffers. hashlib and
    socket reads both release the GIL, so on two cores the md5 of one file overlaps its
    transfer instead of following it.
    """

    _local = threading.local()

    def __init__(self) -> None:
        self.buffers = [memoryview(bytearray(BUFFER)) for _ in range(RING)]
        self._free: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._full: queue.SimpleQueue[tuple[int, int] | None] = queue.SimpleQueue()
        for index in range(RING):
            self._free.put(index)
        self._digest: hashlib._Hash | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="hasher", daemon=True)
        self._thread.start()

    @classmethod
    def for_this_thread(cls) -> HashPipeline:
        pipeline = getattr(cls._local, "pipeline", None)
        if pipeline is None:
            pipeline = cls._local.pipeline = cls()
        return pipeline

    def start(self, digest: hashlib._Hash) -> None:
        self._digest = digest
        self._error = None

    def take(self) -> int:
        """A free buffer's index (waits while all are being hashed)."""
        return self._free.get()

    def hash(self, index: int, count: int) -> None:
        self._full.put((index, count))

    def give_back(self, index: int) -> None:
        self._free.put(index)

    def finish(self) -> None:
        """Wait until every buffer handed over is hashed."""
        for _ in range(RING):
            self._free.get()
        for index in range(RING):
            self._free.put(index)
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while True:
            item = self._full.get()
            if item is None:
                return
            index, count = item
            digest = self._digest
            try:
                if digest is None:
                    raise RuntimeError("a buffer was handed in before start()")
                digest.update(self.buffers[index][:count])
            except BaseException as exc:
                self._error = exc
            self._free.put(index)
