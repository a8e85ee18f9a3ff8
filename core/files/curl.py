"""The default file transfer engine: libcurl's multi interface, driven by one thread.

Workers keep their Downloads: for each file a worker takes the file's lock, opens its
temp file and hashes what a cut try left there (transfer.py), then hands the rest to the
loop and waits. The loop thread moves every file in flight at once: libcurl receives
(outside the GIL), and the write callback appends each piece to its temp file and hashes
it (inline for small bodies; a helper thread hashes big ones, so that hashing overlaps
receiving). Back on the worker: fsync, size and md5 checks, rename. Measured on 2 cores
(bench/README.md): the per-file Python work of a blocking stream per worker, and its
threads' fight for the GIL, was what kept small files slow.

What the loop does for every transfer, at the points where the stream engine does it:
the bandwidth limit (the loop waits: every transfer is held, which is what a shared limit
means), the stall window (seconds spent held for the limit or paused do not count), pause
(a worker held in its checkpoint pauses its transfer within POLL seconds) and stop (the
worker asks the loop to drop the transfer, and waits until it has, before closing the
file). No redirect is followed and no protocol but HTTP(S) is spoken.

Owned data: the loop's inbox (its lock); the multi handle, the easy handles and the
running transfers belong to the loop thread alone. A _CurlTry's fields written by the
loop are read by its worker only once `ended` is set.
"""

from __future__ import annotations

import contextlib
import os
import queue
import select
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from cdl_tui.core.files.fetchers import PIPELINE_MIN
from cdl_tui.core.files.folders import apply_mode
from cdl_tui.core.files.proxies import ProxyRules
from cdl_tui.core.files.throttle import TokenBucket
from cdl_tui.core.files.transfer import (
    ERROR_BODY_LIMIT,
    REFUSALS,
    RESUME_MIN,
    FileTry,
    Progress,
    Target,
    place_file,
    refusal_error,
    refusal_reason,
    write_error,
)
from cdl_tui.core.model.errors import TransferError
from cdl_tui.core.model.faults import maybe_fail
from cdl_tui.core.model.models import RemoteFile
from cdl_tui.core.model.secrets import scrub
from cdl_tui.core.model.settings import FileTls, Permissions
from cdl_tui.core.model.version import user_agent

try:
    import pycurl

    IMPORT_PROBLEM: str | None = None
except ImportError as exc:  # no wheel for this platform (pycurl's need glibc 2.28)
    pycurl = None
    IMPORT_PROBLEM = str(exc) or "pycurl is not installed"

CURL_BUFFER = 1 << 20  # the most one write callback is given
HASH_AHEAD = 32 << 20  # bytes handed to the hasher and not hashed yet, at most
POLL = 0.1  # seconds: how often the loop looks at stalls and paused workers
HOLD_AFTER = 0.05  # a worker this long in its checkpoint (paused) pauses its transfer
HEADERS_MAX = 100  # header lines of one answer kept (the rest are not ours to need)
SKIP_MAX = 64 << 10  # bytes of an unneeded body read before the transfer is cut
REFUSAL_SECONDS = 2.0  # a refusal's body is read this long at most

# How a try stands with its answer.
UNDECIDED, WRITE, ALL_HERE, REFUSED = range(4)


@dataclass(frozen=True)
class CurlSettings:
    tls: FileTls = field(default_factory=FileTls)
    connect_timeout: float = 10.0
    read_timeout: float = 60.0  # no byte for this long ends a transfer without a stall rule


def available() -> str | None:
    """None if this engine can run here, else why not (one line)."""
    return IMPORT_PROBLEM


class CurlTransfer:
    """The Transfer of curl.py: every file in flight moved by one loop thread."""

    def __init__(
        self, settings: CurlSettings, throttle: TokenBucket, proxies: ProxyRules | None = None
    ) -> None:
        if pycurl is None:
            raise RuntimeError(f"pycurl cannot be imported: {IMPORT_PROBLEM}")
        self._loop = CurlLoop(settings, throttle, proxies or ProxyRules())

    def fetch(
        self, remote: RemoteFile, target: Target, *, permissions: Permissions, progress: Progress
    ) -> int:
        return place_file(
            target, remote, lambda: _CurlTry(self._loop, remote, target, progress, permissions)
        )

    def close(self) -> None:
        self._loop.close()


class _CurlTry(FileTry):
    """One try at one file through the loop. The worker runs `run`; the loop calls
    on_header, on_data and finish."""

    def __init__(
        self,
        loop: CurlLoop,
        remote: RemoteFile,
        target: Target,
        progress: Progress,
        permissions: Permissions,
    ) -> None:
        super().__init__(remote, target, progress, permissions)
        self.loop = loop
        self.ended = threading.Event()  # set once the loop (and the hasher) let go
        self.checking_since: float | None = None  # the worker is in its checkpoint
        # Written by the loop thread:
        self.handle: Any = None
        self.state = UNDECIDED
        self.status = 0
        self.answer_headers: dict[str, str] = {}
        self.error: TransferError | None = None
        self.curl_code = 0
        self.curl_message = ""
        self.refusal = bytearray()  # the start of a refusal's body
        self.skipped = 0  # bytes of an unneeded body
        self.hashed_apart = False  # big: the hasher thread hashes the bytes
        self.paused_at = 0.0
        self.refused_at = 0.0
        self.window_start = 0.0  # the stall window: when it began, the loop's held
        self.window_held = 0.0  # seconds then, the bytes since
        self.window_bytes = 0

    # -- the worker's side -------------------------------------------------------------------

    def run(self) -> None:
        self.resume_point()
        headers = self.headers()
        try:
            if self.fd < 0:
                self.fd = self.target.folder.create(self.temp, self.permissions.create_mode)
            if 0 < self.offset < self.remote.size:  # resumed: append after what is there
                os.lseek(self.fd, self.offset, os.SEEK_SET)
                os.ftruncate(self.fd, self.offset)
        except OSError as exc:
            raise write_error(exc, self.target.path) from None
        self.loop.start(self, [f"{name}: {value}" for name, value in headers.items()])
        self._wait()
        if self.error is not None:
            raise self.error
        if self.state == REFUSED:
            raise refusal_error(self.status, *refusal_reason(bytes(self.refusal)))
        if self.curl_code:
            raise curl_error(self.curl_code, self.curl_message, self.received)
        try:
            apply_mode(self.fd, self.permissions.file_mode, self.permissions.group)
            if self.state == WRITE:
                os.fsync(self.fd)  # what is kept must be on disk, for a resume or the rename
        except OSError as exc:
            raise write_error(exc, self.target.path) from None
        self.verify()

    def _wait(self) -> None:
        """Wait for the loop; look at pause and stop every POLL seconds meanwhile."""
        check_stop = self.progress.check_stop
        while not self.ended.wait(POLL):
            if check_stop is None:
                continue
            self.checking_since = time.monotonic()  # held here, the loop pauses us
            try:
                check_stop()
            except BaseException:
                self.loop.cancel(self)
                self.ended.wait()  # the loop writes to our file until it lets go
                raise
            finally:
                self.checking_since = None

    # -- the loop's side ---------------------------------------------------------------------

    def on_header(self, line: bytes) -> None:
        if line.startswith(b"HTTP/"):  # a new answer (after a 100 Continue, say)
            self.answer_headers = {}
            parts = line.split(None, 2)
            self.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
            return
        name, colon, value = line.partition(b":")
        if colon and len(self.answer_headers) < HEADERS_MAX:
            key = name.strip().lower().decode("latin-1")
            self.answer_headers[key] = value.strip().decode("latin-1")

    def on_data(self, data: bytes) -> int | None:
        """libcurl's write callback: None takes the bytes, 0 cuts the transfer."""
        try:
            if self.state == UNDECIDED:
                self._decide()
            if self.state == WRITE:
                self._write(data)
                return None
            if self.state == REFUSED:
                self.refusal += data[: ERROR_BODY_LIMIT - len(self.refusal)]
                return 0 if len(self.refusal) >= ERROR_BODY_LIMIT else None
            self.skipped += len(data)  # every byte is on disk already
            return 0 if self.skipped > SKIP_MAX else None
        except TransferError as exc:
            self.error = exc
        except Exception as exc:  # a bug must end this try, not the loop
            self.error = TransferError(f"internal error in the transfer loop: {exc!r}")
        return 0

    def _decide(self) -> None:
        status = self.status or int(self.handle.getinfo(pycurl.RESPONSE_CODE))
        self.status = status
        if status in REFUSALS:
            self.state = REFUSED
            self.refused_at = time.monotonic()
            return
        offset = self.offset
        if not self.judge(status, self.answer_headers.get("content-range")):
            self.state = ALL_HERE
            return
        try:
            if self.offset != offset:  # restarted from byte 0
                os.lseek(self.fd, 0, os.SEEK_SET)
                os.ftruncate(self.fd, 0)
        except OSError as exc:
            raise write_error(exc, self.target.path) from None
        # Kept for a resume: worth it for files a cut would cost much to fetch again.
        if self.remote.size >= RESUME_MIN and (etag := self.answer_headers.get("etag")):
            self.write_etag(etag)
        self.hashed_apart = self.remote.size - self.offset >= PIPELINE_MIN
        self.state = WRITE

    def _write(self, data: bytes) -> None:
        maybe_fail("chunk", TransferError)
        count = len(data)
        limit = self.remote.size
        if self.offset + self.received + count > limit:
            raise TransferError(
                f"the server sent more than the expected {limit} bytes", bad_data=True
            )
        try:
            written = os.write(self.fd, data)
            while written < count:
                written += os.write(self.fd, data[written:])
        except OSError as exc:
            raise write_error(exc, self.target.path) from None
        if self.hashed_apart:
            self.loop.hasher.add(self.digest, data)
        else:
            self.digest.update(data)
        self.received += count
        self.window_bytes += count
        if self.progress.on_bytes is not None:
            self.progress.on_bytes(count)
        self.loop.charge(count)

    def finish(self, code: int, message: str) -> None:
        """The transfer is over (done, failed, cut by us or dropped); the loop let go."""
        self.curl_code, self.curl_message = code, message
        if self.state == UNDECIDED and not code and self.error is None:
            try:  # an answer without a body (a 416, an empty refusal)
                self._decide()
            except TransferError as exc:
                self.error = exc
        if self.error is not None or self.state in (REFUSED, ALL_HERE):
            self.curl_code = 0  # a cut of ours, not the network's
        if self.hashed_apart:
            self.loop.hasher.end(self.ended)  # set once every byte handed over is hashed
        else:
            self.ended.set()


def curl_error(code: int, message: str, received: int) -> TransferError:
    """A libcurl error as the stream engine words the same trouble."""
    text = " ".join(scrub(message).split())[:160] or f"libcurl error {code}"
    if code in CERTIFICATE_ERRORS:
        return TransferError(
            f"cannot verify the file host's TLS certificate ({text}); "
            "give its CA with --ca-bundle (or --insecure, not advised)",
            unsafe=True,
        )
    if code == TIMED_OUT:
        return TransferError(f"timed out after {received} bytes ({text})")
    return TransferError(f"connection failed after {received} bytes: {text}")


TIMED_OUT = 28  # CURLE_OPERATION_TIMEDOUT
# CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CACERT_BADFILE, CURLE_SSL_ISSUER_ERROR
CERTIFICATE_ERRORS = frozenset({60, 77, 83})


class _Hasher:
    """md5 of big bodies on a thread of its own, in the order the bytes were received."""

    def __init__(self) -> None:
        self._items: queue.SimpleQueue[tuple[Any, Any]] = queue.SimpleQueue()
        self._room = threading.Condition()
        self._ahead = 0
        self._thread: threading.Thread | None = None

    def add(self, digest: Any, data: bytes) -> None:
        with self._room:
            while self._ahead > HASH_AHEAD:  # hashing is the bottleneck: receive less
                self._room.wait()
            self._ahead += len(data)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="curl-hasher", daemon=True)
            self._thread.start()
        self._items.put((digest, data))

    def end(self, ended: threading.Event) -> None:
        """Set `ended` once everything added before is hashed."""
        if self._thread is None:
            ended.set()
            return
        self._items.put((None, ended))

    def close(self) -> None:
        if self._thread is not None:
            self._items.put((None, None))
            self._thread.join(5)

    def _run(self) -> None:
        while True:
            digest, data = self._items.get()
            if digest is None:
                if data is None:
                    return
                data.set()
                continue
            digest.update(data)
            with self._room:
                self._ahead -= len(data)
                self._room.notify()


class CurlLoop:
    """One thread, one libcurl multi handle, every transfer in flight."""

    def __init__(self, settings: CurlSettings, throttle: TokenBucket, proxies: ProxyRules) -> None:
        self._settings = settings
        self._throttle = throttle
        self._proxies = proxies
        self.hasher = _Hasher()
        self._lock = threading.Lock()
        self._inbox: list[tuple[_CurlTry, list[str] | None]] = []  # None: drop it
        self._wake_read, self._wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._thread: threading.Thread | None = None
        self._closing = False
        self._broken: str | None = None  # why the loop died (a bug): every try fails so
        # The loop thread's own:
        self._running: dict[int, _CurlTry] = {}  # by id() of the easy handle
        self._spare: list[Any] = []
        self.held = 0.0  # seconds the loop waited for the bandwidth limit, in all

    # -- from the workers --------------------------------------------------------------------

    def start(self, job: _CurlTry, headers: list[str]) -> None:
        self._post(job, headers)

    def cancel(self, job: _CurlTry) -> None:
        self._post(job, None)

    def close(self) -> None:
        with self._lock:
            if self._closing:
                return
            self._closing = True
            thread = self._thread
        self._wake()
        if thread is not None:
            thread.join(10)
        self.hasher.close()
        for fd in (self._wake_read, self._wake_write):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _post(self, job: _CurlTry, headers: list[str] | None) -> None:
        with self._lock:
            if self._broken is not None or self._closing:
                job.error = TransferError(self._broken or "the transfer engine is closed")
                job.ended.set()
                return
            self._inbox.append((job, headers))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="curl-loop", daemon=True)
                self._thread.start()
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # full (a wake is pending) or closed
            os.write(self._wake_write, b"x")

    # -- the loop thread ---------------------------------------------------------------------

    def charge(self, count: int) -> None:
        """Take `count` bytes from the bandwidth limit, waiting here if it is spent."""
        if self._throttle.rate is None:
            return
        started = time.monotonic()
        self._throttle.consume(count)
        self.held += time.monotonic() - started

    def _run(self) -> None:
        multi = pycurl.CurlMulti()
        try:
            while self._take_inbox(multi):
                multi.perform()
                self._reap(multi)
                self._watch(multi, time.monotonic())
                self._sleep(multi)
        except BaseException as exc:  # a bug: no worker may wait for ever
            with self._lock:
                self._broken = f"the transfer loop failed: {exc!r}"
            for job in list(self._running.values()):
                job.error = TransferError(self._broken or "")
                self._drop(multi, job, 0, "")
        finally:
            for handle in self._spare:
                handle.close()
            multi.close()

    def _take_inbox(self, multi: Any) -> bool:
        with contextlib.suppress(OSError):
            os.read(self._wake_read, 4096)
        with self._lock:
            inbox, self._inbox = self._inbox, []
            closing = self._closing
        for job, headers in inbox:
            if headers is None:
                if job.handle is not None and self._running.get(id(job.handle)) is job:
                    self._drop(multi, job, 0, "")
            elif closing:
                job.error = TransferError("the transfer engine is closed")
                job.ended.set()
            else:
                self._add(multi, job, headers)
        if closing:
            for job in list(self._running.values()):
                job.error = TransferError("the transfer engine is closed")
                self._drop(multi, job, 0, "")
        return not closing

    def _add(self, multi: Any, job: _CurlTry, headers: list[str]) -> None:
        handle = self._spare.pop() if self._spare else self._new_handle()
        url = job.remote.url
        handle.setopt(pycurl.URL, url)
        handle.setopt(pycurl.HTTPHEADER, headers)
        handle.setopt(pycurl.PROXY, self._proxies.proxy_for(url) or "")
        handle.setopt(pycurl.WRITEFUNCTION, job.on_data)
        handle.setopt(pycurl.HEADERFUNCTION, job.on_header)
        largest = self._throttle.largest_read()  # small pieces keep a limit's bursts small
        handle.setopt(pycurl.BUFFERSIZE, CURL_BUFFER if largest is None else max(16384, largest))
        job.handle = handle
        job.window_start, job.window_held = time.monotonic(), self.held
        self._running[id(handle)] = job
        multi.add_handle(handle)

    def _new_handle(self) -> Any:
        settings = self._settings
        handle = pycurl.Curl()
        handle.setopt(pycurl.NOSIGNAL, 1)
        handle.setopt(pycurl.NOPROGRESS, 1)
        handle.setopt(pycurl.FOLLOWLOCATION, 0)
        handle.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
        handle.setopt(pycurl.NOPROXY, "")  # ProxyRules decided, as for the stream engine
        handle.setopt(pycurl.USERAGENT, user_agent())
        handle.setopt(pycurl.CONNECTTIMEOUT_MS, max(1, int(settings.connect_timeout * 1000)))
        handle.setopt(pycurl.TCP_KEEPALIVE, 1)
        tls = settings.tls
        if tls.verify:
            handle.setopt(pycurl.SSL_VERIFYPEER, 1)
            handle.setopt(pycurl.SSL_VERIFYHOST, 2)
            if tls.ca_file:
                handle.setopt(pycurl.CAINFO, tls.ca_file)
            if tls.ca_dir:
                handle.setopt(pycurl.CAPATH, tls.ca_dir)
        else:
            handle.setopt(pycurl.SSL_VERIFYPEER, 0)
            handle.setopt(pycurl.SSL_VERIFYHOST, 0)
        return handle

    def _reap(self, multi: Any) -> None:
        while True:
            queued, done, failed = multi.info_read()
            for handle in done:
                self._drop(multi, self._running[id(handle)], 0, "")
            for handle, code, message in failed:
                self._drop(multi, self._running[id(handle)], code, message)
            if not queued:
                return

    def _drop(self, multi: Any, job: _CurlTry, code: int, message: str) -> None:
        handle = job.handle
        self._running.pop(id(handle), None)
        multi.remove_handle(handle)
        handle.setopt(pycurl.WRITEFUNCTION, _discard)  # no reference to the try stays
        handle.setopt(pycurl.HEADERFUNCTION, _discard)
        self._spare.append(handle)
        job.finish(code, message)

    def _watch(self, multi: Any, now: float) -> None:
        """Pause the transfers of held workers, resume the others; cut stalled ones."""
        for job in list(self._running.values()):
            since = job.checking_since
            if since is not None and now - since >= HOLD_AFTER:
                if not job.paused_at:
                    job.paused_at = now
                    job.handle.pause(pycurl.PAUSE_RECV)
                continue
            if job.paused_at:
                job.window_start += now - job.paused_at  # a pause is not a stall
                job.paused_at = 0.0
                job.handle.pause(pycurl.PAUSE_CONT)  # may deliver bytes (on_data) here
                if id(job.handle) not in self._running:
                    continue
            if job.state == REFUSED and now - job.refused_at >= REFUSAL_SECONDS:
                self._drop(multi, job, 0, "")  # its reason is what came so far
            elif job.error is None and (stalled := self._stalled(job, now)) is not None:
                job.error = stalled
                self._drop(multi, job, 0, "")

    def _stalled(self, job: _CurlTry, now: float) -> TransferError | None:
        """The stall rule of Progress.stall, over windows of its seconds; with none, a
        transfer that receives nothing for read_timeout seconds ends."""
        seconds, rate = job.progress.stall or (self._settings.read_timeout, 0.0)
        elapsed = now - job.window_start - (self.held - job.window_held)
        if elapsed < seconds:
            return None
        got = job.window_bytes
        job.window_start, job.window_held, job.window_bytes = now, self.held, 0
        if got == 0:
            return TransferError(
                f"timed out: nothing received for {elapsed:.0f} s after {job.received} bytes; "
                "the bytes on disk are kept"
            )
        if got < rate * elapsed:
            return TransferError(
                f"stalled: {got} bytes in {elapsed:.0f} s, under stall_min_rate "
                f"({rate:.0f} B/s); the bytes on disk are kept"
            )
        return None

    def _sleep(self, multi: Any) -> None:
        """Wait for a socket, a timer of libcurl's, a worker's wake-up, or POLL."""
        timeout = POLL if self._running else 5.0
        wanted = multi.timeout()
        if wanted >= 0:
            timeout = min(timeout, wanted / 1000)
        if timeout <= 0:
            return
        poller = select.poll()
        poller.register(self._wake_read, select.POLLIN)
        readers, writers, errors = multi.fdset()
        for fd in set(readers) | set(writers) | set(errors):
            mask = select.POLLIN if fd in readers else 0
            if fd in writers:
                mask |= select.POLLOUT
            poller.register(fd, mask | select.POLLPRI)
        poller.poll(timeout * 1000)


def _discard(_: bytes) -> None:
    """A callback left on a spare handle."""
