"""The farm's file server: bytes at signed URLs, as a raw ASGI endpoint.

GET and HEAD, single `Range` requests (206, 416), `Content-Length`, `ETag`, `If-Range`.
Raw ASGI rather than a Starlette response so that the body loop stays small (it is the
hot path the benchmarks measure) and so that faults can cut or corrupt it precisely.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .db import FileLookup
from .faults import FileFault
from .signing import check_file_signature

if TYPE_CHECKING:
    from .app import Farm

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class ByteRange:
    status: int  # 200, 206 or 416
    start: int
    end: int  # exclusive


def parse_range(header: str | None, size: int) -> ByteRange:
    """Interpret a Range header for a file of `size` bytes (single ranges only).

    Malformed and multi-range headers are ignored (a full 200), as RFC 9110 allows.
    """
    full = ByteRange(200, 0, size)
    if not header:
        return full
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return full
    first, dash, last = spec.strip().partition("-")
    first, last = first.strip(), last.strip()
    if not dash:
        return full
    if not first:  # a suffix range: the last N bytes
        if not last.isdigit():
            return full
        if int(last) == 0:
            return ByteRange(416, 0, 0)
        return ByteRange(206, max(0, size - int(last)), size)
    if not first.isdigit() or (last and not last.isdigit()):
        return full
    start = int(first)
    if last and int(last) < start:
        return full
    if start >= size:
        return ByteRange(416, 0, 0)
    end = min(size, int(last) + 1) if last else size
    return ByteRange(206, start, end)


async def _send_error(send: Send, status: int, message: str, scope: Scope, receive: Receive):
    await JSONResponse({"error": message}, status_code=status)(scope, receive, send)


class FileEndpoint:
    def __init__(self, farm: Farm) -> None:
        self.farm = farm

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        farm = self.farm
        request = Request(scope, receive)
        file_id = request.path_params["file_id"]
        method = scope["method"]
        lookup = farm.store.file_lookup(file_id)
        if lookup is None:
            await _send_error(send, 404, "no such file", scope, receive)
            return
        refusal = check_file_signature(
            farm.secret,
            file_id,
            request.query_params.get("expires", ""),
            request.query_params.get("sig", ""),
        )
        info = lookup.file
        etag = f'"{base64.b64decode(info.md5).hex()}"'
        wanted = request.headers.get("range")
        byte_range = self._range(wanted, request.headers.get("if-range"), etag, info.size)
        fault = farm.options.faults.file_fault() if refusal is None and method == "GET" else None
        if refusal:
            # Refused the way this farm's storage refuses (see farm.dialect).
            expires = request.query_params.get("expires", "0")
            status, kind, body = farm.options.dialect.refusal(refusal, expires)
            self._audit(request, lookup, wanted=wanted, status=status, fault=None)
            await Response(body, status, media_type=kind)(scope, receive, send)
            return
        status = fault.status if fault and fault.kind == "status" else 0
        status = status or byte_range.status
        self._audit(request, lookup, wanted=wanted, status=status, fault=fault)
        delay = farm.options.faults.delay()
        if delay:
            farm.count("fault_slow")
            await asyncio.sleep(delay)
        if fault and fault.kind == "status":
            await _send_error(send, fault.status, "injected fault", scope, receive)
            return
        headers = [
            (b"accept-ranges", b"bytes"),
            (b"etag", etag.encode()),
            (b"content-type", b"application/octet-stream"),
            (b"cache-control", b"no-store"),
        ]
        if status == 416:
            headers += [(b"content-range", f"bytes */{info.size}".encode())]
            byte_range = ByteRange(416, 0, 0)
        elif status == 206:
            span = f"bytes {byte_range.start}-{byte_range.end - 1}/{info.size}"
            headers.append((b"content-range", span.encode()))
        length = byte_range.end - byte_range.start
        headers.append((b"content-length", str(length).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        if method == "HEAD" or length == 0:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        await self._send_body(receive, send, info.content_start, byte_range, fault)

    def _range(self, wanted: str | None, if_range: str | None, etag: str, size: int) -> ByteRange:
        if self.farm.options.faults.ignore_range:
            return ByteRange(200, 0, size)
        if wanted and if_range is not None and if_range != etag:
            return ByteRange(200, 0, size)  # the validator changed: send it all
        return parse_range(wanted, size)

    def _audit(
        self,
        request: Request,
        lookup: FileLookup,
        *,
        wanted: str | None,
        status: int,
        fault: FileFault | None,
    ) -> None:
        farm = self.farm
        detail = f"{request.method} {wanted or '-'} -> {status}"
        if fault:
            detail += f" fault:{fault.kind}"
            farm.count(f"fault_{fault.kind}{fault.status or ''}")
        client = request.headers.get("user-agent", "unknown")[:300]
        farm.audit.add(
            (time.time(), "file", lookup.download_id, client, lookup.lease_epoch, detail)
        )
        farm.count("file_requests")

    async def _send_body(
        self,
        receive: Receive,
        send: Send,
        content_start: int,
        byte_range: ByteRange,
        fault: FileFault | None,
    ) -> None:
        farm = self.farm
        rate = farm.options.faults.bandwidth
        chunk_size = farm.options.chunk_size
        if rate:
            chunk_size = max(4096, min(chunk_size, rate // 20))
        length = byte_range.end - byte_range.start
        stop_at = byte_range.end
        corrupt_at = -1
        if fault and fault.kind == "cut":
            stop_at = byte_range.start + int(length * fault.fraction)
        elif fault and fault.kind == "corrupt":
            corrupt_at = byte_range.start + int(length * fault.fraction)
        disconnected = asyncio.Event()

        async def watch_for_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            disconnected.set()

        watcher = asyncio.ensure_future(watch_for_disconnect())
        started = time.monotonic()
        position = byte_range.start
        try:
            for chunk in farm.pool.chunks(content_start, byte_range.start, stop_at, chunk_size):
                if disconnected.is_set():
                    return
                data = bytes(chunk)
                if position <= corrupt_at < position + len(data):
                    flipped = bytearray(data)
                    flipped[corrupt_at - position] ^= 0xFF
                    data = bytes(flipped)
                await send({"type": "http.response.body", "body": data, "more_body": True})
                position += len(data)
                if rate:
                    ahead = (position - byte_range.start) / rate - (time.monotonic() - started)
                    if ahead > 0:
                        await asyncio.sleep(ahead)
            if stop_at < byte_range.end:
                return  # an injected cut: the server closes the unfinished response
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            farm.count("bytes_served", position - byte_range.start)
        finally:
            watcher.cancel()


class _DropInjectedCutLogs(logging.Filter):
    """uvicorn logs an error when a response ends early; for injected cuts that is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "without completing response" not in record.getMessage()


def quiet_injected_cuts() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DropInjectedCutLogs) for f in logger.filters):
        logger.addFilter(_DropInjectedCutLogs())
