"""The farm's HTTP API (Starlette): leases, job listings, status and failure reports.

Endpoints follow docs/farm-api.md. Extensions of ours are listed in
docs/reference-farm.md: `downloading` reports lease a Download, a late `pending` report
from a client that lost its lease is ignored, `/api/oauth_jwt` answers 200 (the vendor's
client accepts nothing else there), and `/_farm/health` and `/_farm/stats` exist.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cdl_tui.core.model.jobspec import pad_job_id

from .audit import AuditWriter
from .content import ContentPool
from .db import DownloadRow, FarmStore, FileRow
from .dialect import BadId, Dialect
from .faults import FaultPlan
from .files import FileEndpoint
from .signing import decode_jwt, encode_jwt, sign_file

log = logging.getLogger("cdl.farm")

MAX_PAGE = 1000
DEFAULT_PAGE = 100
MAX_NEXT = 100

Handler = Callable[[Request], Awaitable[Response]]


@dataclass
class FarmOptions:
    token: str
    lease_timeout: float = 120.0
    url_ttl: float = 3600.0
    token_ttl: float = 3600.0
    chunk_size: int = 1 << 20
    faults: FaultPlan = field(default_factory=FaultPlan)
    files_url: str | None = None  # file bytes from another server (see cdl-farm serve)
    dialect: Dialect = field(default_factory=Dialect)  # how it speaks (see farm.dialect)


class Farm:
    """Everything a request handler needs: the store, content, secrets and options."""

    def __init__(self, data_dir: Path, options: FarmOptions) -> None:
        self.store = FarmStore(data_dir)
        self.store.create_schema()
        seed = self.store.get_meta("content_seed")
        secret = self.store.get_meta("secret")
        if seed is None or secret is None:
            raise ValueError(f"{data_dir} holds no farm; run `cdl-farm generate {data_dir}` first")
        self.pool = ContentPool(int(seed))
        self.secret = bytes.fromhex(secret)
        self.options = options
        self.audit = AuditWriter(self.store)
        self._counters: Counter[str] = Counter()
        self._counter_lock = threading.Lock()

    def count(self, name: str, n: int = 1) -> None:
        with self._counter_lock:
            self._counters[name] += n

    def counters(self) -> dict[str, int]:
        with self._counter_lock:
            return dict(self._counters)

    def close(self) -> None:
        self.audit.stop()
        self.store.close()

    def authorized(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return False
        if hmac.compare_digest(token, self.options.token):
            return True
        return decode_jwt(token, self.secret) is not None

    def issue_jwt(self, client_id: str, audience: str) -> str:
        now = int(time.time())
        claims = {
            "iss": "cdl-farm",
            "sub": client_id,
            "aud": audience,
            "iat": now,
            "exp": now + int(self.options.token_ttl),
            "scope": "owner admin user",
        }
        return encode_jwt(claims, self.secret)

    def download_json(self, row: DownloadRow, base_url: str) -> dict[str, Any]:
        expires = int(time.time() + self.options.url_ttl)
        dialect = self.options.dialect
        job_id, task_id = dialect.job_field(row.job_id), dialect.job_field(row.task_id)
        files = [
            {
                "url": self._file_url(row, f, base_url, expires),
                "md5": f.md5,
                "relative_path": f.relative_path,
                "size": f.size,
                # The vendor's client reads these from each file entry.
                "job_id": job_id,
                "task_id": task_id,
                "output_dir": row.output_dir,
            }
            for f in row.files
        ]
        return {
            "download_id": dialect.wire_id(row.download_id),
            "job_id": job_id,
            "task_id": task_id,
            "output_dir": row.output_dir,
            "size": row.size,
            "location": row.location,
            "files": files,
        }

    def _file_url(self, row: DownloadRow, file: FileRow, base_url: str, expires: int) -> str:
        if self.options.files_url:
            return f"{self.options.files_url}/{row.job_id}/{row.task_id}/" + quote(
                file.relative_path
            )
        signature = sign_file(self.secret, file.id, expires)
        return f"{base_url}/files/{file.id}?expires={expires}&sig={signature}"


class BadRequest(Exception):
    """A request we refuse with 400 and this message."""


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def client_of(request: Request) -> str:
    """Who is asking, for leases and the audit: the User-Agent (ours names host and pid)."""
    return request.headers.get("user-agent", "unknown")[:300]


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def encode_cursor(task_index: int) -> str:
    return base64.urlsafe_b64encode(f"after:{task_index}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        text = ""
    prefix, _, number = text.partition(":")
    if prefix != "after" or not number.lstrip("-").isdigit():
        raise BadRequest("'start_cursor' is not a cursor this farm gave out")
    return int(number)


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise BadRequest(f"'{name}' must be a whole number from {low} to {high}")
    return int(raw)


def _job_id(raw: str) -> str:
    if not raw.isdigit() or len(raw) > 9:
        raise BadRequest(f"job ID {raw[:20]!r} is not digits")
    return pad_job_id(raw)


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except ValueError:
        raise BadRequest("the body must be JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def _task_indexes(body: bytes) -> list[int] | None:
    """The `tids` of a job listing request as task numbers; None for every task."""
    if not body.strip():
        return None
    tids = _json_object(body).get("tids")
    if tids is None:
        return None
    if not isinstance(tids, list):
        raise BadRequest("'tids' must be a list of task IDs or null")
    indexes = []
    for tid in tids:
        text = str(tid) if isinstance(tid, int) and not isinstance(tid, bool) else tid
        if not isinstance(text, str) or not text.isdigit():
            raise BadRequest(f"task ID {str(tid)[:20]!r} is not digits")
        indexes.append(int(text))
    return indexes


def _status_body(raw: bytes, dialect: Dialect) -> tuple[str, str, int, int]:
    body = _json_object(raw)
    try:
        download_id = dialect.stored_id(body.get("download_id"))
    except BadId as exc:
        raise BadRequest(str(exc)) from None
    status = body.get("status")
    if status not in ("downloading", "downloaded", "pending"):
        raise BadRequest("'status' must be downloading, downloaded or pending")
    numbers = []
    for key in ("bytes_downloaded", "bytes_to_download"):
        value = body.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise BadRequest(f"'{key}' must be a non-negative integer")
        numbers.append(value)
    return download_id, status, numbers[0], numbers[1]


class FarmApi:
    """The request handlers; each API call is authenticated and may get an injected 500."""

    def __init__(self, farm: Farm) -> None:
        self.farm = farm

    def ok(self, body: dict[str, Any]) -> JSONResponse:
        """A successful answer, with this farm's success status (201 like the vendor's)."""
        return JSONResponse(body, self.farm.options.dialect.ok_status)

    def guarded(self, handler: Handler, *, faults: bool = True) -> Handler:
        """Authenticate, answer 400 for BadRequest, and inject API faults if asked to."""

        async def endpoint(request: Request) -> Response:
            if faults and self.farm.options.faults.api_fault():
                self.farm.count("fault_api500")
                return _error(500, "injected fault")
            if not self.farm.authorized(request):
                return _error(401, "missing or invalid bearer token")
            try:
                return await handler(request)
            except BadRequest as exc:
                return _error(400, str(exc))

        return endpoint

    async def oauth_jwt(self, request: Request) -> Response:
        params = request.query_params
        if params.get("grant_type") != "client_credentials":
            return _error(400, "grant_type must be client_credentials")
        client_id = params.get("client_id") or ""
        secret = params.get("client_secret") or ""
        if not client_id or not hmac.compare_digest(secret, self.farm.options.token):
            return _error(401, "invalid client credentials")
        token = self.farm.issue_jwt(client_id, _base_url(request))
        self.farm.count("oauth_grants")
        body = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": int(self.farm.options.token_ttl),
            "scope": "owner admin user",
        }
        return JSONResponse(body, status_code=200)  # the vendor's client wants 200 here

    async def downloads_next(self, request: Request) -> Response:
        rows = await run_in_threadpool(
            self.farm.store.lease_next,
            location=request.query_params.get("location") or None,
            count=_int_param(request, "count", 1, 1, MAX_NEXT),
            client=client_of(request),
            lease_timeout=self.farm.options.lease_timeout,
        )
        base = _base_url(request)
        return self.ok({"data": [self.farm.download_json(r, base) for r in rows]})

    async def job_downloads(self, request: Request) -> Response:
        job_id = _job_id(request.path_params["job_id"])
        limit = _int_param(request, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
        limit = min(limit, self.farm.options.dialect.max_page)
        cursor = request.query_params.get("start_cursor")
        after = decode_cursor(cursor) if cursor else -1
        task_indexes = _task_indexes(await request.body())
        store = self.farm.store
        if not await run_in_threadpool(store.job_exists, job_id):
            return _error(404, f"job {job_id} not found")
        rows, next_after = await run_in_threadpool(
            store.list_job, job_id, task_indexes, after_index=after, limit=limit
        )
        base = _base_url(request)
        body = {
            "downloads": [self.farm.download_json(r, base) for r in rows],
            "next_cursor": encode_cursor(next_after) if next_after is not None else None,
        }
        return self.ok(body)

    async def legacy_job_downloads(self, request: Request) -> Response:
        job_id = _job_id(request.path_params["job_id"])
        tid = request.query_params.get("tid")
        if tid and not tid.isdigit():
            raise BadRequest("'tid' must be a task ID like 004")
        store = self.farm.store
        if not await run_in_threadpool(store.job_exists, job_id):
            return _error(404, f"job {job_id} not found")
        rows, _ = await run_in_threadpool(
            store.list_job, job_id, [int(tid)] if tid else None, after_index=-1, limit=10**9
        )
        base = _base_url(request)
        return self.ok({"downloads": [self.farm.download_json(r, base) for r in rows]})

    async def status_report(self, request: Request) -> Response:
        download_id, status, done, total = _status_body(
            await request.body(), self.farm.options.dialect
        )
        kind = await run_in_threadpool(
            self.farm.store.report_status,
            download_id,
            status,
            bytes_downloaded=done,
            bytes_to_download=total,
            client=client_of(request),
            lease_timeout=self.farm.options.lease_timeout,
        )
        if kind is None:
            return _error(404, f"download {download_id} not found")
        body = {"download_id": self.farm.options.dialect.wire_id(download_id), "status": status}
        return self.ok(body)

    async def fail_report(self, request: Request) -> Response:
        download_id = request.path_params["download_id"]
        message = (await request.body()).decode("utf-8", "replace")
        found = await run_in_threadpool(
            self.farm.store.record_failure, download_id, message, client_of(request)
        )
        if not found:
            return _error(404, f"download {download_id} not found")
        return self.ok({"download_id": self.farm.options.dialect.wire_id(download_id)})

    async def health(self, _request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def stats(self, _request: Request) -> Response:
        await run_in_threadpool(self.farm.audit.flush)
        counts = await run_in_threadpool(self.farm.store.status_counts)
        return JSONResponse({"downloads": counts, "counters": self.farm.counters()})


def build_app(farm: Farm) -> Starlette:
    """The Starlette application for one farm."""
    api = FarmApi(farm)
    guarded = api.guarded
    routes = [
        Route("/api/oauth_jwt", api.oauth_jwt, methods=["GET"]),
        Route("/downloads/next", guarded(api.downloads_next), methods=["GET"]),
        Route("/downloads/status", guarded(api.status_report), methods=["POST"]),
        Route("/downloads/{download_id}/fail", guarded(api.fail_report), methods=["POST"]),
        Route("/downloads/{job_id}", guarded(api.legacy_job_downloads), methods=["GET"]),
        Route("/jobs/{job_id}/downloads", guarded(api.job_downloads), methods=["POST"]),
        Route("/files/{file_id:int}", FileEndpoint(farm), methods=["GET", "HEAD"]),
        Route("/_farm/health", api.health, methods=["GET"]),
        Route("/_farm/stats", guarded(api.stats, faults=False), methods=["GET"]),
    ]
    return Starlette(routes=routes)
