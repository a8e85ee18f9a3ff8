"""The default file transfer engine: libcurl's multi interface, driven by one thread.

Workers keep their Downloads and their files: for each file a worker takes the file's
lock, opens its temp file and hashes what a cut try left there (transfer.py), hands the
transfer to the loop, then writes and hashes the body's pieces as the loop queues them;
at the end it fsyncs, checks size and md5, and renames. The loop thread only receives:
libcurl reads every socket in flight outside the GIL and appends each piece to its try's
buffer (the write callback is the bytearray's own `extend`: no Python per piece); after
each call into libcurl the loop checks and counts what came and hands it on. Measured
on 2 cores (bench/README.md): hashing on the loop thread made it the bottleneck (md5 of
every file on one core); on the workers, hashlib lets go of the GIL and the md5s of
different files run side by side.

What the loop does for every transfer, at the points where the stream engine does it:
the bandwidth limit (the loop waits: every transfer is held, which is what a shared limit
means), the stall window (seconds held for the limit, paused, or waiting for our own disk
do not count), pause (a worker held in its checkpoint pauses its transfer within POLL
seconds) and stop (the worker asks the loop to drop the transfer and takes the rest of
its pieces until END, so the loop has let go before the file is closed). A worker that
falls JOB_AHEAD behind pauses its transfer until it catches up. No redirect is followed
and no protocol but HTTP(S) is spoken.

Owned data: the loop's inbox (its lock); the multi handle, the easy handles and the
running transfers belong to the loop thread alone. A _CurlTry's fields written by the
loop are read by its worker after the piece (or END) that follows them in `pieces`.
"""

from __future__ import annotations

import contextlib
import logging
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
    ERROR_BODY_SECONDS,
    REFUSALS,
    RESUME_MIN,
    FileTry,
    Progress,
    Target,
    certificate_error,
    connection_error,
    place_file,
    refusal_error,
    refusal_reason,
    too_long,
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

log = logging.getLogger("cdl.engine")

CURL_BUFFER = 256 << 10  # libcurl's receive buffer (it calls back with 16 KiB at most)
JOB_AHEAD = 8 << 20  # bytes received for a file and not yet written, at most
HANDOFF = 1 << 20  # bytes gathered before the worker is woken to write them
HANDOFF_SECONDS = 0.25  # or seconds since the last hand-off
HASH_AHEAD = 4  # pieces a worker's hasher may have waiting
POLL = 0.1  # seconds: how often the loop looks at stalls and paused workers
HOLD_AFTER = 0.05  # a worker this long in its checkpoint (paused) pauses its transfer
HEADERS_MAX = 100  # header lines of one answer kept (the rest are not ours to need)

ROOM: list[str] = []  # an inbox entry: the worker caught up
REFUSAL_READ = TransferError("the start of the refusal is read")  # the transfer can end

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
    """One try at one file through the loop. The loop receives (the header callback,
    `account`, `finish`) and queues the body's pieces; the worker (`run`) writes and
    hashes them."""

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
        # The body's pieces, then END once the loop has let go of the transfer.
        self.pieces: queue.SimpleQueue[bytearray | None] = queue.SimpleQueue()
        self.taken = 0  # bytes the worker took from `pieces` (written by the worker)
        self.checking_since: float | None = None  # the worker is in its checkpoint
        self.hasher: PieceHasher | None = None  # hashes a big body's pieces
        self.room_asked = 0  # the `fulls` the worker asked room for
        # Written by the loop thread (read by the worker after a piece or END):
        self.handle: Any = None
        self.state = UNDECIDED
        self.status = 0
        self.answer_headers: dict[str, str] = {}
        self.restarted = False  # a 200 to a Range: the temp file starts again
        self.etag = ""  # the validator to keep beside a big file's bytes
        self.error: TransferError | None = None
        self.curl_code = 0
        self.curl_message = ""
        self.refusal = bytearray()  # the start of a refusal's body
        # What libcurl received and we have not handed to the worker: its write callback
        # is this bytearray's own `extend` (C code: no Python call per 16 KiB piece).
        self.gathered = bytearray()
        self.counted = 0  # bytes of `gathered` already checked and counted
        self.handed_at = 0.0  # when the last piece was
        self.given = 0  # bytes received for the worker
        self.full = False  # paused: the worker is JOB_AHEAD behind
        self.fulls = 0  # how often it was
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
        try:
            self._take_body()
        except BaseException:
            self.loop.cancel(self)
            while self.pieces.get() is not None:  # the loop lets go of it first
                pass
            raise
        finally:
            if self.hasher is not None:
                self.hasher.wait()  # every piece handed over is hashed
        if self.error is not None:
            raise self.error
        if self.state == REFUSED:
            raise refusal_error(self.status, *refusal_reason(bytes(self.refusal)))
        if self.curl_code == TOO_BIG:
            raise too_long(self.remote.size)
        if self.curl_code:
            raise curl_error(self.curl_code, self.curl_message, self.received)
        try:
            apply_mode(self.fd, self.permissions.file_mode, self.permissions.group)
            if self.state == WRITE:
                os.fsync(self.fd)  # what is kept must be on disk, for a resume or the rename
        except OSError as exc:
            raise write_error(exc, self.target.path) from None
        self.verify()

    def _take_body(self) -> None:
        """Write and hash the pieces as they come, until END; look at pause and stop
        between pieces, and every POLL seconds while none comes."""
        check_stop = self.progress.check_stop
        first = True
        while True:
            try:
                piece: bytearray | bool | None = self.pieces.get(timeout=POLL)
            except queue.Empty:
                piece = False
                self._ask_room()  # held since our last piece: nothing left to write
            if check_stop is not None:
                self.checking_since = time.monotonic()  # held here, the loop pauses us
                try:
                    check_stop()
                finally:
                    self.checking_since = None
            if piece is False:
                continue
            if first:
                first = False
                self._start_writing()
            if not isinstance(piece, bytearray):
                return
            self._write(piece)

    def _start_writing(self) -> None:
        if self.remote.size - self.offset >= PIPELINE_MIN:
            self.hasher = PieceHasher.for_this_thread()
        try:
            if self.restarted:
                os.lseek(self.fd, 0, os.SEEK_SET)
                os.ftruncate(self.fd, 0)
        except OSError as exc:
            raise write_error(exc, self.target.path) from None
        if self.etag:
            self.write_etag(self.etag)

    def _write(self, piece: bytearray) -> None:
        count = len(piece)
        try:
            written = os.write(self.fd, piece)
            while written < count:
                written += os.write(self.fd, memoryview(piece)[written:])
        except OSError as exc:
            raise write_error(exc, self.target.path) from None
        # hashlib lets go of the GIL: workers hash side by side, and a big body is hashed
        # by the worker's helper while the worker writes its next piece.
        if self.hasher is not None:
            self.hasher.add(self.digest, piece)
        else:
            self.digest.update(piece)
        self.taken += count
        self._ask_room()

    def _ask_room(self) -> None:
        """Tell the loop we caught up, if it held the transfer for us since we last did
        (it also looks by itself, every POLL / 2)."""
        if self.fulls != self.room_asked and self.given - self.taken < JOB_AHEAD // 2:
            self.room_asked = self.fulls
            self.loop.room(self)

    # -- the loop's side ---------------------------------------------------------------------

    def on_header(self, line: bytes) -> int | None:
        """libcurl's header callback, with every header kept (a resume, a big file)."""
        if line[:5] == b"HTTP/":  # a new answer (after a 100 Continue, say)
            self.answer_headers = {}
            return self.on_status_line(line)
        name, colon, value = line.partition(b":")
        if colon and len(self.answer_headers) < HEADERS_MAX:
            key = name.strip().lower().decode("latin-1")
            self.answer_headers[key] = value.strip().decode("latin-1")
            return None
        return self.on_status_line(line)

    def on_status_line(self, line: bytes) -> int | None:
        """libcurl's header callback, for the status only (a small new file). At the end
        of a final answer's headers the try decides what its body is for; 0 cuts the
        transfer (nothing to write, or an answer that ends this try)."""
        if line[:5] == b"HTTP/":
            parts = line.split(None, 2)
            self.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        elif line in (b"\r\n", b"\n") and self.status >= 200 and self.state == UNDECIDED:
            try:
                self._decide()
            except TransferError as exc:
                self.error = exc
                return 0
            except Exception as exc:  # a bug must end this try, not the loop
                self.error = TransferError(f"internal error in the transfer loop: {exc!r}")
                return 0
            if self.state == ALL_HERE:
                return 0  # every byte is on disk already: the body is not needed
        return None

    def _decide(self) -> None:
        status = self.status
        if status in REFUSALS:
            self.state = REFUSED
            self.refused_at = time.monotonic()
            return
        offset = self.offset
        if not self.judge(status, self.answer_headers.get("content-range")):
            self.state = ALL_HERE
            return
        self.restarted = self.offset != offset
        # Kept for a resume: worth it for files a cut would cost much to fetch again.
        if self.remote.size >= RESUME_MIN:
            self.etag = self.answer_headers.get("etag", "")
        self.state = WRITE

    def account(self, now: float) -> TransferError | None:
        """What libcurl appended to `gathered` since the last look (the loop's, after each
        call into libcurl): checked against the file's size, counted, and handed to the
        worker a MiB (or HANDOFF_SECONDS) at a time. An error ends the transfer."""
        grown = len(self.gathered) - self.counted
        if grown <= 0:
            return None
        self.counted += grown
        if self.state == REFUSED:  # its reason is in the first bytes
            self.refusal = self.gathered[:ERROR_BODY_LIMIT]
            return REFUSAL_READ if len(self.refusal) >= ERROR_BODY_LIMIT else None
        if self.state != WRITE:
            return TransferError("the file server sent a body before its answer's end")
        limit = self.remote.size
        if self.offset + self.received + grown > limit:
            return too_long(limit)
        self.received += grown
        self.window_bytes += grown
        if self.progress.on_bytes is not None:  # as received, like the stream engine's
            self.progress.on_bytes(grown)
        self.loop.charge(grown)
        if len(self.gathered) >= HANDOFF or now - self.handed_at >= HANDOFF_SECONDS:
            try:
                maybe_fail("chunk", TransferError)
            except TransferError as exc:
                return exc
            self.hand_off(now)
        return None

    def hand_off(self, now: float) -> None:
        """Give what was gathered to the worker; libcurl appends to a new buffer."""
        if self._give_gathered():
            self.gathered, self.counted, self.handed_at = bytearray(), 0, now
            self.handle.setopt(pycurl.WRITEFUNCTION, self.gathered.extend)

    def _give_gathered(self) -> bool:
        if self.state != WRITE or not self.gathered:
            return False
        self.given += len(self.gathered)
        self.pieces.put(self.gathered)
        return True

    def finish(self, code: int, message: str) -> None:
        """The transfer is over (done, failed, cut by us or dropped); the loop let go."""
        self.curl_code, self.curl_message = code, message
        if self.state == UNDECIDED and not code and self.error is None:
            try:  # an answer that did not end its headers as expected
                self._decide()
            except TransferError as exc:
                self.error = exc
        if self.error is REFUSAL_READ:
            self.error = None
        if self.error is not None or self.state in (REFUSED, ALL_HERE):
            self.curl_code = 0  # a cut of ours, not the network's
        if self.error is None:
            self._give_gathered()  # the last piece
        self.pieces.put(None)


class PieceHasher:
    """One worker's helper thread: hashes a big body's pieces in order while the worker
    writes the next ones (at most HASH_AHEAD pieces waiting)."""

    _local = threading.local()

    def __init__(self) -> None:
        self._todo: queue.SimpleQueue[tuple[Any, Any]] = queue.SimpleQueue()
        self._room = threading.Semaphore(HASH_AHEAD)
        threading.Thread(target=self._run, name="curl-hasher", daemon=True).start()

    @classmethod
    def for_this_thread(cls) -> PieceHasher:
        hasher: PieceHasher | None = getattr(cls._local, "hasher", None)
        if hasher is None:
            hasher = cls._local.hasher = cls()
        return hasher

    def add(self, digest: Any, piece: bytearray) -> None:
        self._room.acquire()
        self._todo.put((digest, piece))

    def wait(self) -> None:
        done = threading.Event()
        self._todo.put((None, done))
        done.wait()

    def _run(self) -> None:
        while True:
            digest, piece = self._todo.get()
            if digest is None:
                piece.set()
                continue
            digest.update(piece)
            self._room.release()


def curl_error(code: int, message: str, received: int) -> TransferError:
    """A libcurl error as the stream engine words the same trouble."""
    text = " ".join(scrub(message).split())[:160] or f"libcurl error {code}"
    if code in CERTIFICATE_ERRORS:
        return certificate_error(text)
    return connection_error(received, text, timed_out=code == TIMED_OUT)


TIMED_OUT = 28  # CURLE_OPERATION_TIMEDOUT
TOO_BIG = 63  # CURLE_FILESIZE_EXCEEDED: more than MAXFILESIZE
# CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CACERT_BADFILE, CURLE_SSL_ISSUER_ERROR
CERTIFICATE_ERRORS = frozenset({60, 77, 83})


class CurlLoop:
    """One thread, one libcurl multi handle, every transfer in flight."""

    def __init__(self, settings: CurlSettings, throttle: TokenBucket, proxies: ProxyRules) -> None:
        self._settings = settings
        self._throttle = throttle
        self._proxies = proxies
        self._lock = threading.Lock()
        # (try, its headers to start it | None to drop it | ROOM to go on)
        self._inbox: list[tuple[_CurlTry, list[str] | None]] = []
        self._wake_read = self._wake_write = -1  # a pipe while the loop thread runs
        self._thread: threading.Thread | None = None
        self._closing = False
        self._wake_pending = False  # a wake-up is in the pipe, not yet taken
        self._broken: str | None = None  # why the loop died (a bug): every try fails so
        # The loop thread's own:
        self._running: dict[int, _CurlTry] = {}  # by id() of the easy handle
        self._spare: list[Any] = []
        self._epoll: Any = None
        self._watched: dict[int, int] = {}  # the sockets libcurl asked us to watch
        self._deadline: float | None = None  # when libcurl wants to be called back
        self._next_watch = 0.0
        self._share = 0  # bytes/s each running transfer may receive (0: none; -1: to share)
        self.held = 0.0  # seconds the loop waited for the bandwidth limit, in all

    # -- from the workers --------------------------------------------------------------------

    def start(self, job: _CurlTry, headers: list[str]) -> None:
        self._post(job, headers)

    def cancel(self, job: _CurlTry) -> None:
        self._post(job, None)

    def room(self, job: _CurlTry) -> None:
        """The worker caught up: a transfer paused for it may go on."""
        self._post(job, ROOM)

    def close(self) -> None:
        with self._lock:
            if self._closing:
                return
            self._closing = True
            thread = self._thread
            self._wake()
        if thread is not None:
            thread.join(10)

    def _post(self, job: _CurlTry, headers: list[str] | None) -> None:
        with self._lock:
            if self._broken is not None or self._closing:
                job.error = TransferError(self._broken or "the transfer engine is closed")
                job.pieces.put(None)
                return
            self._inbox.append((job, headers))
            if self._thread is None:
                # Made with the thread, closed by it (under this lock): an engine that
                # never moves a file holds no descriptor.
                self._wake_read, self._wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
                self._epoll = select.epoll()
                self._thread = threading.Thread(target=self._run, name="curl-loop", daemon=True)
                self._thread.start()
            if not self._wake_pending:  # one wake-up until the loop takes its inbox
                self._wake_pending = True
                self._wake()

    def _wake(self) -> None:
        """Call with the lock held (the pipe closes under it)."""
        if self._wake_write >= 0:
            with contextlib.suppress(OSError):  # full: a wake-up is pending anyway
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
        # libcurl's socket interface: it says which sockets to watch (and when to call it
        # back without one); an epoll set kept across calls does the waiting.
        multi.setopt(pycurl.M_SOCKETFUNCTION, self._on_socket)
        multi.setopt(pycurl.M_TIMERFUNCTION, self._on_timer)
        self._epoll.register(self._wake_read, select.EPOLLIN)
        try:
            while self._take_inbox(multi):
                self._wait(multi)
                self._reap(multi)  # the ended first: nothing is paused after its end
                self._account(multi)
                now = time.monotonic()
                if now >= self._next_watch:
                    self._next_watch = now + POLL / 2
                    self._watch(multi, now)
        except BaseException as exc:  # a bug: no worker may wait for ever
            log.error("the transfer loop failed", exc_info=True)
            broken = f"the transfer loop failed: {exc!r}"
            with self._lock:
                self._broken = broken
                waiting = [job for job, headers in self._inbox if headers and headers is not ROOM]
                self._inbox = []
            for job in {id(j): j for j in [*self._running.values(), *waiting]}.values():
                with contextlib.suppress(Exception):
                    multi.remove_handle(job.handle)
                job.error = TransferError(broken)
                job.finish(0, "")
        finally:
            for handle in self._spare:
                handle.close()
            multi.close()
            with self._lock:
                self._epoll.close()
                for fd in (self._wake_read, self._wake_write):
                    os.close(fd)
                self._wake_read = self._wake_write = -1

    def _on_socket(self, what: int, fd: int, _multi: Any, _data: Any) -> None:
        if what == pycurl.POLL_REMOVE:
            if self._watched.pop(fd, None) is not None:
                with contextlib.suppress(OSError, ValueError):
                    self._epoll.unregister(fd)
            return
        mask = (select.EPOLLIN if what & pycurl.POLL_IN else 0) | (
            select.EPOLLOUT if what & pycurl.POLL_OUT else 0
        )
        if fd in self._watched:
            self._epoll.modify(fd, mask)
        else:
            self._epoll.register(fd, mask)
        self._watched[fd] = mask

    def _on_timer(self, milliseconds: int) -> None:
        self._deadline = None if milliseconds < 0 else time.monotonic() + milliseconds / 1000

    def _wait(self, multi: Any) -> None:
        """Wait for a socket, libcurl's timer, a worker's wake-up or POLL; let libcurl
        act on what came."""
        timeout = POLL if self._running else 5.0
        if self._deadline is not None:
            timeout = max(0.0, min(timeout, self._deadline - time.monotonic()))
        events = self._epoll.poll(timeout) if timeout > 0 else []
        for fd, event in events:
            if fd == self._wake_read:
                continue  # _take_inbox reads it
            flags = (pycurl.CSELECT_IN if event & select.EPOLLIN else 0) | (
                pycurl.CSELECT_OUT if event & select.EPOLLOUT else 0
            )
            if event & (select.EPOLLERR | select.EPOLLHUP):
                flags |= pycurl.CSELECT_ERR
            multi.socket_action(fd, flags)
        if self._deadline is not None and time.monotonic() >= self._deadline:
            self._deadline = None
            multi.socket_action(pycurl.SOCKET_TIMEOUT, 0)

    def _share_limit(self) -> None:
        """Split the bandwidth limit between the transfers running: libcurl paces each
        to its share (the bucket then only catches what slips through), so the limit
        holds second by second, not only on average."""
        rate = self._throttle.rate
        share = (
            0 if rate is None or not self._running else max(1024, int(rate / len(self._running)))
        )
        if share != self._share:
            self._share = share
            for job in self._running.values():
                job.handle.setopt(pycurl.MAX_RECV_SPEED_LARGE, share)

    def _account(self, multi: Any) -> None:
        """After libcurl ran: count what each transfer received, hand it on, hold a
        transfer whose worker is JOB_AHEAD behind, end one that broke a rule."""
        self._share_limit()
        now = time.monotonic()
        for job in list(self._running.values()):
            if (error := job.account(now)) is not None:
                job.error = error
                self._drop(multi, job, 0, "")
            elif (
                job.given - job.taken > JOB_AHEAD
                and not job.full
                and _pause(job, pycurl.PAUSE_RECV)  # the worker is behind: wait for it
            ):
                job.full = True
                job.fulls += 1

    def _take_inbox(self, multi: Any) -> bool:
        with contextlib.suppress(OSError):
            os.read(self._wake_read, 4096)
        with self._lock:
            inbox, self._inbox = self._inbox, []
            closing = self._closing
            self._wake_pending = False
        for job, headers in inbox:
            running = job.handle is not None and self._running.get(id(job.handle)) is job
            if headers is ROOM:
                if running and job.full:
                    job.full = False
                    self._unpause(job)
            elif headers is None:
                if running:
                    self._drop(multi, job, 0, "")
            elif closing:
                job.error = TransferError("the transfer engine is closed")
                job.pieces.put(None)
            else:
                try:
                    self._add(multi, job, headers)
                except Exception as exc:  # a bug, or libcurl refusing an option: this try
                    log.error("the transfer loop failed to start %s", job.temp, exc_info=True)
                    self._running.pop(id(job.handle), None)
                    with contextlib.suppress(Exception):
                        multi.remove_handle(job.handle)
                    job.error = TransferError(f"the transfer loop failed: {exc!r}")
                    job.pieces.put(None)
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
        handle.setopt(pycurl.WRITEFUNCTION, job.gathered.extend)
        # libcurl itself refuses a body longer than the file (or an endless one): what it
        # reads between two looks of `account` stays bounded.
        handle.setopt(pycurl.MAXFILESIZE_LARGE, max(job.remote.size, ERROR_BODY_LIMIT))
        # Content-Range and ETag matter to a resume and to a big file; the status line is
        # all a small new file needs (getinfo cannot be asked during a transfer).
        needed = job.offset or job.remote.size >= RESUME_MIN
        handle.setopt(pycurl.HEADERFUNCTION, job.on_header if needed else job.on_status_line)
        # Under a bandwidth limit libcurl reads in small buffers: one call into it reads a
        # few buffers per transfer, and the loop pays for them (waits) afterwards, so big
        # buffers would make the limit hold on average but not second by second.
        largest = self._throttle.largest_read()
        buffer = CURL_BUFFER if largest is None else max(4096, min(CURL_BUFFER, largest // 8))
        handle.setopt(pycurl.BUFFERSIZE, buffer)
        handle.setopt(pycurl.MAX_RECV_SPEED_LARGE, max(0, self._share))
        job.handle = handle
        job.window_start, job.window_held = time.monotonic(), self.held
        job.handed_at = job.window_start
        multi.add_handle(handle)
        self._running[id(handle)] = job
        if self._throttle.rate is not None:
            self._share = -1  # shared out again, among one more

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
            ended = [(handle, 0, "") for handle in done] + failed
            for handle, code, message in ended:
                job = self._running[id(handle)]
                # What came before the end is counted (a cut transfer keeps its bytes).
                if (error := job.account(time.monotonic())) is not None:
                    job.error = error
                self._drop(multi, job, code, message)
            if not queued:
                return

    def _drop(self, multi: Any, job: _CurlTry, code: int, message: str) -> None:
        handle = job.handle
        self._running.pop(id(handle), None)
        multi.remove_handle(handle)
        handle.setopt(pycurl.WRITEFUNCTION, _discard)  # no reference to the try stays
        handle.unsetopt(pycurl.HEADERFUNCTION)
        self._spare.append(handle)
        job.finish(code, message)

    def _watch(self, multi: Any, now: float) -> None:
        """Pause the transfers of held workers, resume the others; cut stalled ones."""
        for job in list(self._running.values()):
            since = job.checking_since
            if since is not None and now - since >= HOLD_AFTER:
                if not job.paused_at and _pause(job, pycurl.PAUSE_RECV):
                    job.paused_at = now  # else it is looked at again next time
                continue
            if job.full and job.given - job.taken < JOB_AHEAD // 2:
                job.full = False  # the worker caught up (its own word may cross ours)
                self._unpause(job)
            if job.paused_at:
                job.window_start += now - job.paused_at  # a pause is not a stall
                job.paused_at = 0.0
                self._unpause(job)
            if id(job.handle) not in self._running:
                continue
            if job.state == REFUSED and now - job.refused_at >= ERROR_BODY_SECONDS:
                self._drop(multi, job, 0, "")  # its reason is what came so far
            elif job.error is None and (stalled := self._stalled(job, now)) is not None:
                job.error = stalled
                self._drop(multi, job, 0, "")

    @staticmethod
    def _unpause(job: _CurlTry) -> None:
        """Receive again, unless the worker's pause or its backlog still holds it."""
        if not (job.paused_at or job.full):
            _pause(job, pycurl.PAUSE_CONT)  # may deliver bytes (into `gathered`) here

    def _stalled(self, job: _CurlTry, now: float) -> TransferError | None:
        """The stall rule of Progress.stall, over windows of its seconds; with none, a
        transfer that receives nothing for read_timeout seconds ends."""
        if job.full:  # waiting for our own disk is not the network's stall
            job.window_start, job.window_held, job.window_bytes = now, self.held, 0
            return None
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


def _pause(job: _CurlTry, how: int) -> bool:
    """Pause or resume a transfer; False if libcurl refused (a transfer that has no
    connection yet, or ended since: `_reap` will see it)."""
    try:
        job.handle.pause(how)
    except pycurl.error:
        return False
    return True


def _discard(_: bytes) -> None:
    """A callback left on a spare handle."""
