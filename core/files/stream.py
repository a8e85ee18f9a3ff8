"""The file transfer engine of the standard library: each worker reads its file's body on
its own thread (http.client, kept-alive connections, reads into reused buffers hashed by a
helper thread; httpx where a proxy is configured). Used where pycurl cannot be imported,
or when chosen (`transfer = "python"`); see curl.py for the default engine.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import time
from collections.abc import Callable
from dataclasses import replace

import httpx

from cdl_tui.core.files.fetchers import PIPELINE_MIN, BodySource, Fetcher, HashPipeline
from cdl_tui.core.files.folders import apply_mode
from cdl_tui.core.files.throttle import TokenBucket
from cdl_tui.core.files.transfer import (
    ERROR_BODY_LIMIT,
    ERROR_BODY_SECONDS,
    NO_MODES,
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
from cdl_tui.core.model.errors import TransferError, certificate_problem
from cdl_tui.core.model.faults import maybe_fail
from cdl_tui.core.model.models import RemoteFile
from cdl_tui.core.model.secrets import scrub
from cdl_tui.core.model.settings import Permissions

MIN_STEP = 64 << 10  # the first read of a big body
SLOW_STEP = 4 << 10  # the smallest read, on a slow link
SMALL_BODY = 256 << 10  # read in one go (each read costs a syscall and a GIL hand-off)


def fetch_file(
    fetcher: Fetcher,
    remote: RemoteFile,
    target: Target,
    *,
    permissions: Permissions = NO_MODES,
    progress: Progress | None = None,
) -> int:
    """Download `remote` to `target`, verified; returns the offset it resumed from.

    The rename is durable once the caller has synced the target's folder (once per
    folder, after its files are in place). Raises TransferError, StopRequested (partial
    kept or removed as it says) or DestinationBusy.
    """
    return place_file(
        target,
        remote,
        lambda: StreamTry(fetcher, remote, target, progress or Progress(), permissions),
    )


class ThreadTransfer:
    """Today's transfer: one blocking http.client (or httpx, through a proxy) stream per
    worker, on the worker's own thread, sharing one bandwidth limit."""

    def __init__(self, fetcher: Fetcher, throttle: TokenBucket) -> None:
        self._fetcher = fetcher
        self._throttle = throttle

    def fetch(
        self, remote: RemoteFile, target: Target, *, permissions: Permissions, progress: Progress
    ) -> int:
        progress = replace(
            progress, throttle=self._throttle.consume, largest_read=self._throttle.largest_read
        )
        return fetch_file(self._fetcher, remote, target, permissions=permissions, progress=progress)

    def close(self) -> None:
        """Nothing to let go of: each worker's connections go with its thread."""


# What a broken connection can raise, from http.client, ssl, sockets or httpx.
NETWORK_ERRORS = (OSError, http.client.HTTPException, httpx.TransportError)


def network_error(exc: BaseException, received: int) -> TransferError:
    if (problem := certificate_problem(exc)) is not None:  # direct, or through a proxy
        return certificate_error(problem)
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return connection_error(received, type(exc).__name__, timed_out=True)
    text = " ".join(scrub(str(exc)).split())[:160] or type(exc).__name__
    return connection_error(received, text)


class StreamTry(FileTry):
    """A try that reads the body on the worker's thread (http.client, or httpx through a
    proxy), in steps that adapt to the link."""

    def __init__(
        self,
        fetcher: Fetcher,
        remote: RemoteFile,
        target: Target,
        progress: Progress,
        permissions: Permissions,
    ) -> None:
        super().__init__(remote, target, progress, permissions)
        self.fetcher = fetcher
        self._step = MIN_STEP  # bytes per read; adapts to the link (see _fill)
        self._stall_time = 0.0  # seconds spent reading, and bytes read, since the last
        self._stall_bytes = 0  # stall check
        self._stalled: TransferError | None = None  # raised once the buffer is written

    def run(self) -> None:
        self.resume_point()
        try:
            body = self.fetcher.open(self.remote.url, self.headers())
        except NETWORK_ERRORS as exc:
            raise network_error(exc, 0) from None
        complete = False
        try:
            if not self._accept(body):
                # Every byte was on disk already: the mode is still ours to set.
                apply_mode(self.fd, self.permissions.file_mode, self.permissions.group)
            else:
                if self.progress.stall is not None:  # a read that waits this long stalls
                    body.limit_wait(self.progress.stall[0])
                # Kept for a resume: worth it for files a cut would cost much to fetch again.
                if self.remote.size >= RESUME_MIN and (etag := body.header("etag")):
                    self.write_etag(etag)
                self._append(body)
            complete = True
        finally:
            body.finish(complete)
        self.verify()

    def _accept(self, body: BodySource) -> bool:
        """Check the answer; False if the body is not needed (every byte is on disk)."""
        status = body.status
        if status in REFUSALS:
            raise refusal_error(status, *storage_refusal(body, self.progress.check_stop))
        return self.judge(status, body.header("content-range"))

    def _append(self, body: BodySource) -> None:
        mode, group = self.permissions.file_mode, self.permissions.group
        try:
            if self.fd < 0:
                self.fd = self.target.folder.create(self.temp, self.permissions.create_mode)
            os.lseek(self.fd, self.offset, os.SEEK_SET)
            os.ftruncate(self.fd, self.offset)
            self._copy(body, self.fd)
            apply_mode(self.fd, mode, group)  # created as the umask says, unless configured
            os.fsync(self.fd)  # what is kept must be on disk, for a resume or the rename
        except OSError as exc:
            raise write_error(exc, self.target.path) from None

    def _copy(self, body: BodySource, fd: int) -> None:
        """Read the body into 1 MiB buffers, write each, hash it (in the helper thread for
        big bodies, so reading and hashing overlap)."""
        remote = self.remote
        if remote.size - self.offset <= SMALL_BODY:
            self._step = SMALL_BODY
        pipeline = HashPipeline.for_this_thread()
        pipelined = remote.size - self.offset >= PIPELINE_MIN
        if pipelined:
            pipeline.start(self.digest)
        try:
            while True:
                maybe_fail("chunk", TransferError)
                index = pipeline.take()
                view = pipeline.buffers[index]
                try:
                    count = self._fill(body, view)
                    if count:
                        written = 0
                        while written < count:
                            written += os.write(fd, view[written:count])
                except BaseException:
                    pipeline.give_back(index)
                    raise
                if not count:
                    pipeline.give_back(index)
                    return
                if pipelined:
                    pipeline.hash(index, count)
                else:
                    self.digest.update(view[:count])
                    pipeline.give_back(index)
                if self._stalled is not None:
                    raise self._stalled  # after what came was written: it is resumed
        finally:
            if pipelined:
                pipeline.finish()

    def _fill(self, body: BodySource, view: memoryview) -> int:
        """Fill `view` from the body; 0 at its end.

        Reads in steps that grow while data comes fast (few calls, little Python per
        byte) and shrink when it comes slowly, so that progress, pause and stop are seen
        within a fraction of a second even on a throttled link.
        """
        progress, limit = self.progress, self.remote.size
        filled = 0
        while filled < len(view):
            if progress.check_stop is not None:
                progress.check_stop()
            step = min(self._step, len(view) - filled)
            if progress.largest_read is not None and (cap := progress.largest_read()):
                step = min(step, cap)
            started = time.monotonic()
            try:
                count = body.readinto(view[filled : filled + step])
            except NETWORK_ERRORS as exc:
                raise network_error(exc, self.received) from None
            if not count:
                break
            took = time.monotonic() - started
            if took < 0.02:
                self._step = min(len(view), self._step * 2)
            elif took > 0.2:  # a slow link: smaller reads, seen (and checked) sooner
                self._step = max(SLOW_STEP, self._step // 2)
            stalled = progress.stall is not None and self._is_stalled(took, count, *progress.stall)
            filled += count
            self.received += count
            if self.offset + self.received > limit:
                raise too_long(limit)
            if progress.on_bytes is not None:
                progress.on_bytes(count)
            if progress.throttle is not None:
                progress.throttle(count)  # every read is charged, the last one too
            if self.offset + self.received == limit:
                self._stalled = None  # it came in full after all: nothing to cut
                break  # all there: do not wait for an end the server may not signal
            if stalled:
                break  # _copy writes what came, then gives up
        return filled

    def _is_stalled(self, took: float, count: int, seconds: float, rate: float) -> bool:
        """Count a read against the stall window; True (and `_stalled` set) if the body
        averaged under `rate` over `seconds` of reading."""
        self._stall_time += took
        self._stall_bytes += count
        if self._stall_time < seconds:
            return False
        if self._stall_bytes < rate * self._stall_time:
            self._stalled = TransferError(
                f"stalled: {self._stall_bytes} bytes in {self._stall_time:.0f} s, under "
                f"stall_min_rate ({rate:.0f} B/s); the bytes on disk are kept"
            )
            return True
        self._stall_time, self._stall_bytes = 0.0, 0
        return False


def storage_refusal(
    body: BodySource, check_stop: Callable[[], None] | None = None
) -> tuple[str, str]:
    """(code, ": reason") from a storage service's error answer: the XML `<Code>` and
    `<Message>` that S3 and Google Cloud Storage send, else the start of the text.

    At most ERROR_BODY_LIMIT bytes are read, for at most ERROR_BODY_SECONDS, and a stop
    is seen between reads: an endless or stalled error body cannot hold a worker. The
    reason is one short printable line.
    """
    buffer = bytearray(ERROR_BODY_LIMIT)
    view, filled = memoryview(buffer), 0
    deadline = time.monotonic() + ERROR_BODY_SECONDS
    with contextlib.suppress(*NETWORK_ERRORS):
        while filled < len(buffer) and (left := deadline - time.monotonic()) > 0:
            if check_stop is not None:
                check_stop()
            body.limit_wait(left)
            # Small reads: a buffered read waits to fill what it is given, and a body that
            # stalls part-way must still yield what came before the stall.
            count = body.readinto(view[filled : filled + 8])
            if not count:
                break
            filled += count
    return refusal_reason(bytes(buffer[:filled]))
