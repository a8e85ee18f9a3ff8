"""The farm API client: one pooled httpx.Client, typed calls, retries, auth.

Every call returns parsed, validated data (see core.models) or raises one of the errors in
core.errors with a one-line message. Transient failures (connection errors, timeouts, 429,
5xx, a 2xx whose body is not JSON) are retried under a RetryPolicy; 401/403 are not.
"""

from __future__ import annotations

import datetime
import functools
import json
import logging
import os
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlsplit

import certifi  # httpx's own CA bundle (a dependency of httpx)
import httpx

from cdl_tui.core.model.errors import (
    ApiError,
    AuthError,
    ConfigError,
    TlsError,
    TransientError,
    certificate_problem,
)
from cdl_tui.core.model.faults import maybe_fail
from cdl_tui.core.model.models import DownloadBatch, WireId, parse_downloads
from cdl_tui.core.model.secrets import guard_third_party_loggers, scrub
from cdl_tui.core.model.settings import FileTls
from cdl_tui.core.model.states import FarmStatus
from cdl_tui.core.model.version import user_agent

from .credentials import (
    OAUTH_PATH,
    OAUTH_SCOPE,
    BearerToken,
    Credentials,
    StaticToken,
    TokenSource,
    VendorTokenExchange,
)
from .retry import Retrier, RetryPolicy

log = logging.getLogger("cdl.api")

STATUSES = (FarmStatus.DOWNLOADING, FarmStatus.DOWNLOADED, FarmStatus.PENDING)
DEFAULT_PAGE_SIZE = 100
FARM_PROBLEM = "farm"  # the key of the standing problem "the farm does not answer"
MAX_NEXT_COUNT = 20  # the most Downloads one /downloads/next call may ask for
QUICK_TIMEOUT = httpx.Timeout(5.0)  # quick reports do not wait for a stalled farm
# For reports that must not hold a thread long (heartbeats, releases at shutdown).
QUICK_RETRY = RetryPolicy(max_attempts=2, base_delay=0.5, max_delay=1.0, max_elapsed=10.0)
# Releases (`pending` with quick=True, mostly at exit): a few more tries, close together;
# the exit's time limit ends them anyway (see stop_reports_on).
QUICK_RELEASE_RETRY = RetryPolicy(max_attempts=4, base_delay=0.25, max_delay=1.0, max_elapsed=10.0)


@dataclass(frozen=True)
class ApiLimits:
    """Bounds on one API answer, so that a broken or hostile farm cannot exhaust us."""

    max_response_bytes: int = 64 << 20  # decoded size of one answer
    max_pages: int = 10_000  # pages of one job listing
    deadline: float = 120.0  # seconds for one call to be answered in full (retries aside)


@dataclass(frozen=True)
class Answer:
    """An API answer, read in full within the limits."""

    status_code: int
    headers: httpx.Headers
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)


@dataclass(frozen=True)
class Timeouts:
    connect: float = 10.0
    read: float = 60.0

    def to_httpx(self) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect, read=self.read, write=self.read, pool=30.0)


def normalize_base_url(url: str, source: str = "the API URL") -> str:
    """Check that `url` is an absolute http(s) URL and drop any trailing slash."""
    text = url.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"{source} {text!r} is not an http(s) URL (example: https://farm.example.com)"
        )
    if parts.query or parts.fragment:
        raise ConfigError(f"{source} {text!r} must not have a query or fragment")
    return text.rstrip("/")


def tls_verify_setting(ca_bundle: str | None, verify: bool) -> ssl.SSLContext | bool:
    """What to pass to httpx as `verify`.

    With no CA bundle, True lets httpx honour SSL_CERT_FILE / SSL_CERT_DIR (trust_env).
    """
    if not verify:
        return False
    if ca_bundle:
        try:
            return ssl.create_default_context(cafile=ca_bundle)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load CA bundle {ca_bundle}: {exc}") from None
    return True


def file_tls_setting(ca_bundle: str | None, verify: bool) -> FileTls:
    """The trust of `tls_verify_setting`, as paths, for libcurl's file transfers."""
    if not verify:
        return FileTls(verify=False)
    if ca_bundle:
        return FileTls(ca_file=ca_bundle)
    return FileTls(
        ca_file=os.environ.get("SSL_CERT_FILE") or certifi.where(),
        ca_dir=os.environ.get("SSL_CERT_DIR"),
    )


def tls_context(verify: ssl.SSLContext | bool) -> ssl.SSLContext:
    """An SSL context equivalent to httpx's `verify` setting, for http.client."""
    if isinstance(verify, ssl.SSLContext):
        return verify
    if not verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    trust = file_tls_setting(None, True)  # SSL_CERT_FILE / SSL_CERT_DIR, else certifi
    return ssl.create_default_context(cafile=trust.ca_file, capath=trust.ca_dir)


def make_http_client(
    *,
    timeouts: Timeouts = Timeouts(),
    verify: ssl.SSLContext | bool = True,
    max_connections: int = 64,
    transport: httpx.BaseTransport | None = None,
) -> httpx.Client:
    """The process's one pooled client. Proxies and CA variables come from the environment."""
    guard_third_party_loggers()
    try:
        return _http_client(timeouts, verify, max_connections, transport)
    except (OSError, ssl.SSLError) as exc:  # httpx loads SSL_CERT_FILE / SSL_CERT_DIR here
        named = [
            f"{n}={os.environ[n]}" for n in ("SSL_CERT_FILE", "SSL_CERT_DIR") if n in os.environ
        ]
        where = f" ({', '.join(named)})" if named else ""
        raise ConfigError(f"cannot load the CA certificates{where}: {exc}") from None


def _http_client(
    timeouts: Timeouts,
    verify: ssl.SSLContext | bool,
    max_connections: int,
    transport: httpx.BaseTransport | None,
) -> httpx.Client:
    return httpx.Client(
        timeout=timeouts.to_httpx(),
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
        verify=verify,
        trust_env=True,
        follow_redirects=False,
        # Only what _read_bounded can decompress as it streams, within its limit.
        headers={
            "User-Agent": user_agent(),
            "Accept": "application/json",
            "Accept-Encoding": "gzip, deflate",
        },
        transport=transport,
    )


class FarmClient:
    """Typed access to every endpoint of the farm downloads API."""

    def __init__(
        self,
        base_url: str,
        credentials: Credentials,
        *,
        http: httpx.Client | None = None,
        verify: ssl.SSLContext | bool = True,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] | None = None,
        limits: ApiLimits = ApiLimits(),
        file_tls: FileTls | None = None,
    ) -> None:
        self.base_url = normalize_base_url(base_url)
        # How file hosts are trusted (for libcurl, which takes paths, not a context).
        self.file_tls = file_tls or file_tls_setting(None, verify is not False)
        self.limits = limits
        self._unreachable_since: float | None = None
        self.host = urlsplit(self.base_url).netloc
        self._http = http or make_http_client(verify=verify)  # owned: close() closes it
        self._verify = verify
        retrier = Retrier(policy=retry or RetryPolicy())
        if sleep is not None:
            retrier.sleep = sleep
        self._retrier = retrier
        self._quick_retrier = Retrier(policy=QUICK_RETRY, sleep=retrier.sleep)
        # Final reports have their own: a stop ends the retries of listings, claims and
        # heartbeats, not those of `downloaded`, `pending` and fail reports.
        self._report_retrier = Retrier(policy=retrier.policy, sleep=retrier.sleep)
        self._quick_report_retrier = Retrier(policy=QUICK_RELEASE_RETRY, sleep=retrier.sleep)
        self._tokens: TokenSource
        if isinstance(credentials, BearerToken):
            self._tokens = StaticToken(credentials)
        else:
            self._tokens = VendorTokenExchange(credentials, self._exchange_vendor_key)
        self._credential_text = self._tokens.describe()
        for each in (retrier, self._quick_retrier, self._report_retrier):
            each.problem = FARM_PROBLEM
        self._on_answer: Callable[[float], None] | None = None

    def on_answer(self, callback: Callable[[float], None]) -> None:
        """Call `callback(sent_at)` after each request the farm answered for good (a
        result, or a refusal such as a 404, but not a 5xx, a 429 or an unreadable body);
        `sent_at` is the wall-clock time the request went out. It ends the standing
        problem FARM_PROBLEM, if that was noted before the request was sent: a failure
        seen later, by another thread, still stands."""
        self._on_answer = callback

    def _answered(self, sent_at: float) -> None:
        if self._on_answer is not None:
            self._on_answer(sent_at)

    def stop_waiting_on(self, event: threading.Event) -> None:
        """Make retry pauses end (and give up) as soon as `event` is set, e.g. on stop.
        Final status reports, releases and fail reports are not: see `stop_reports_on`."""
        self._retrier.sleep = self._quick_retrier.sleep = _pause_until(event)

    def stop_reports_on(self, event: threading.Event) -> None:
        """The same for status and fail reports, e.g. when the time to exit has run out."""
        self._report_retrier.sleep = self._quick_report_retrier.sleep = _pause_until(event)

    @property
    def http(self) -> httpx.Client:
        return self._http

    @property
    def tokens(self) -> TokenSource:
        return self._tokens

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> FarmClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- endpoints -------------------------------------------------------------------------

    def next_downloads(self, *, location: str | None, count: int) -> DownloadBatch:
        """Lease up to `count` (at most 20) pending Downloads, of `location` if given."""
        count = max(1, min(MAX_NEXT_COUNT, count))
        params: dict[str, Any] = {"count": count}
        if location:
            params["location"] = location
        body = self._call("GET", "/downloads/next", "asking for the next downloads", params=params)
        return parse_downloads(_field(body, "data", list, "/downloads/next"))

    def iter_job_downloads(
        self,
        job_id: str,
        task_ids: tuple[str, ...] | None = None,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> Iterator[DownloadBatch]:
        """Yield the job's Downloads a page at a time, following the cursor to the end."""
        path = f"/jobs/{job_id}/downloads"
        payload = {"tids": list(task_ids) if task_ids is not None else None}
        cursor: str | None = None
        seen_cursors: set[str] = set()
        page = 0
        while True:
            page += 1
            if page > self.limits.max_pages:
                raise ApiError(
                    f"listing job {job_id}: the farm gave more than max_pages "
                    f"({self.limits.max_pages}) pages of {page_size}; stopped"
                )
            params: dict[str, Any] = {"limit": page_size}
            if cursor:
                params["start_cursor"] = cursor
            body = self._call(
                "POST",
                path,
                f"listing job {job_id} (page {page})",
                params=params,
                json=payload,
                too_big=f"; ask for smaller pages (page_size is {page_size})",
            )
            items = _field(body, "downloads", list, path)
            next_cursor = body.get("next_cursor")
            if next_cursor is not None and (
                not isinstance(next_cursor, str) or not next_cursor.isascii()
            ):
                raise ApiError(f"the farm's answer to {path} has a 'next_cursor' that is not text")
            yield parse_downloads(items, next_cursor=next_cursor or None)
            if not next_cursor:
                return
            if next_cursor in seen_cursors:
                raise ApiError(f"the farm repeated a page cursor while listing job {job_id}")
            seen_cursors.add(next_cursor)
            cursor = next_cursor

    def list_job_downloads_legacy(self, job_id: str, task_id: str | None = None) -> DownloadBatch:
        """The older, unpaged listing: every Download of a job, or of one task."""
        params = {"tid": task_id} if task_id else None
        path = f"/downloads/{job_id}"
        body = self._call("GET", path, f"listing job {job_id} (legacy)", params=params)
        return parse_downloads(_field(body, "downloads", list, path))

    def report_status(
        self,
        download_id: WireId,
        status: str,
        *,
        bytes_downloaded: int,
        bytes_to_download: int,
        quick: bool = False,
    ) -> None:
        """Report a Download's status; `quick` gives up after a short retry (heartbeats).

        `download_id` goes back as the farm sent it (`Download.wire_id`): a number stays a
        number, a string a string."""
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        payload = {
            "download_id": download_id,
            "status": status,
            "bytes_downloaded": bytes_downloaded,
            "bytes_to_download": bytes_to_download,
        }
        self._call(
            "POST",
            "/downloads/status",
            f"reporting {download_id} {status}",
            json=payload,
            want_json=False,
            quick=quick,
            # A claim or heartbeat is worth nothing once we stop; a final report or a
            # release is (a `downloading` still retrying would hold the release back).
            report=status != FarmStatus.DOWNLOADING,
        )

    def report_fail(self, download_id: str, message: str) -> None:
        """`download_id` is the ID's text (`Download.download_id`), escaped into the path."""
        self._call(
            "POST",
            f"/downloads/{quote(download_id, safe='')}/fail",
            f"reporting {download_id} failed",
            content=message.encode("utf-8", "replace"),
            headers={"Content-Type": "text/plain; charset=utf-8"},
            want_json=False,
            report=True,
        )

    @functools.cached_property
    def tls(self) -> ssl.SSLContext:
        """For file transfers outside httpx (core.fetchers); made on first use, since
        loading the CA certificates takes a noticeable time at start-up."""
        return tls_context(self._verify)

    # -- plumbing --------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        what: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        want_json: bool = True,
        quick: bool = False,
        report: bool = False,
        too_big: str = "",
    ) -> Any:
        url = self.base_url + path
        renewed = False

        def attempt() -> Any:
            nonlocal renewed
            sent_at = time.time()
            while True:
                request_headers = {"Authorization": f"Bearer {self._tokens.bearer()}"}
                if headers:
                    request_headers.update(headers)
                extra = {"timeout": QUICK_TIMEOUT} if quick else {}
                response = self._send(
                    what,
                    method,
                    url,
                    too_big=too_big,
                    params=params,
                    json=json,
                    content=content,
                    headers=request_headers,
                    **extra,
                )
                if response.status_code == 401 and not renewed and self._tokens.renew_after_401():
                    renewed = True
                    log.info("%s: 401, renewing the access token once", what)
                    continue
                try:
                    result = _interpret(response, what, self._credential_text, want_json)
                except TransientError:
                    raise
                except ApiError:
                    self._answered(sent_at)  # a clear refusal: the farm is there
                    raise
                self._answered(sent_at)
                return result

        if report:
            retrier = self._quick_report_retrier if quick else self._report_retrier
        else:
            retrier = self._quick_retrier if quick else self._retrier
        return retrier.call(attempt)

    def _send(
        self, what: str, method: str, url: str, *, too_big: str = "", **kwargs: Any
    ) -> Answer:
        maybe_fail("api", lambda text: TransientError(f"{what}: {text}"))
        deadline = time.monotonic() + self.limits.deadline
        try:
            with self._http.stream(method, url, **kwargs) as response:
                self._unreachable_since = None
                body = _read_bounded(response, what, self.limits, deadline, too_big)
                return Answer(response.status_code, response.headers, body)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            if (problem := certificate_problem(exc)) is not None:
                raise TlsError(
                    f"{what}: cannot verify the TLS certificate of {self.host} ({problem}); "
                    "give its CA with --ca-bundle (or --insecure, not advised)"
                ) from None
            if self._unreachable_since is None:
                self._unreachable_since = time.monotonic()
            raise TransientError(f"{what}: {_describe_transport_error(exc)}") from None
        except httpx.TimeoutException as exc:
            raise TransientError(f"{what}: timed out ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise TransientError(f"{what}: {_describe_transport_error(exc)}") from None

    def unreachable_for(self) -> float:
        """Seconds since the farm last answered, when it has not since (refused or failed
        connections); 0 while it answers."""
        since = self._unreachable_since
        return 0.0 if since is None else time.monotonic() - since

    def _exchange_vendor_key(self, client_id: str, private_key: str) -> Any:
        url = self.base_url + OAUTH_PATH
        what = "exchanging the vendor API key"
        params = {
            "grant_type": "client_credentials",
            "scope": OAUTH_SCOPE,
            "client_id": client_id,
            "client_secret": private_key,
        }

        def attempt() -> Any:
            sent_at = time.time()
            response = self._send(what, "GET", url, params=params)
            result = _interpret(response, what, self._credential_text, want_json=True)
            self._answered(sent_at)
            return result

        return self._retrier.call(attempt)


def _pause_until(event: threading.Event) -> Callable[[float], None]:
    """A retry pause that ends, giving up, as soon as `event` is set."""

    def pause(seconds: float) -> None:
        if event.wait(seconds):
            raise TransientError("stopping: no more retries")

    return pause


def _read_bounded(
    response: httpx.Response, what: str, limits: ApiLimits, deadline: float, too_big: str
) -> bytes:
    """The answer's body, decompressed as it streams: never more than max_response_bytes
    in memory (a small gzip bomb cannot expand past it), never longer than the deadline
    (a farm that answers one byte at a time is cut off)."""
    cap = limits.max_response_bytes
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("gzip", "x-gzip"):
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif encoding == "deflate":
        decoder = zlib.decompressobj()
    elif encoding in ("identity", ""):
        decoder = None
    else:
        raise ApiError(f"{what}: the farm answered in an encoding we did not ask for ({encoding})")
    body = bytearray()

    def over() -> ApiError:
        size = f"{cap / (1 << 20):.0f} MiB" if cap >= 1 << 20 else f"{cap} bytes"
        return ApiError(f"{what}: the farm's answer is over max_response_bytes ({size}){too_big}")

    # A response built in memory (a test's transport) has been read already.
    chunks = [response.content] if response.is_stream_consumed else response.iter_raw()
    try:
        for raw in chunks:
            if time.monotonic() > deadline:
                raise TransientError(
                    f"{what}: the farm did not answer in full within api_deadline "
                    f"({limits.deadline:.0f} s)"
                )
            if decoder is None:
                body += raw
            else:
                data = decoder.decompress(raw, cap - len(body) + 1)
                body += data
                while decoder.unconsumed_tail and len(body) <= cap:
                    body += decoder.decompress(decoder.unconsumed_tail, cap - len(body) + 1)
            if len(body) > cap:
                raise over()
    except zlib.error as exc:
        raise TransientError(f"{what}: the farm's compressed answer is broken ({exc})") from None
    return bytes(body)


def _interpret(response: Answer, what: str, credential_text: str, want_json: bool) -> Any:
    status = response.status_code
    if status in (401, 403):
        verb = "refused" if status == 401 else "does not allow"
        raise AuthError(f"{what}: the farm {verb} {credential_text} (HTTP {status}); check the key")
    if status == 429 or status >= 500:
        raise TransientError(
            f"{what}: the farm answered HTTP {status}{_server_reason(response)}",
            status,
            _retry_after(response),
        )
    if not 200 <= status < 300:
        raise ApiError(f"{what}: the farm answered HTTP {status}{_server_reason(response)}", status)
    if not want_json:
        return None
    try:
        return response.json()
    except RecursionError:
        raise ApiError(f"{what}: the farm's answer is nested too deeply to read", status) from None
    except (ValueError, UnicodeDecodeError):
        raise TransientError(
            f"{what}: the farm answered HTTP {status} with a body that is not JSON", status
        ) from None


def _field(body: Any, key: str, kind: type, path: str) -> Any:
    if not isinstance(body, dict):
        raise ApiError(f"the farm's answer to {path} is not a JSON object")
    value = body.get(key)
    if not isinstance(value, kind):
        missing = "has no" if value is None else "has a malformed"
        raise ApiError(f"the farm's answer to {path} {missing} '{key}' {kind.__name__}")
    return value


def _server_reason(response: Answer) -> str:
    """A short, single-line reason from the server's body, if it gave one."""
    text = ""
    try:
        body = response.json()
        if isinstance(body, dict):
            for key in ("error", "message", "detail"):
                if isinstance(body.get(key), str):
                    text = body[key]
                    break
    except (ValueError, UnicodeDecodeError):
        text = response.text if len(response.content) < 300 else ""
    text = " ".join(scrub(text).split())[:160]  # a farm may echo our token back
    return f": {text}" if text else ""


def _retry_after(response: Answer) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.datetime.now(when.tzinfo)).total_seconds())


def _describe_transport_error(exc: httpx.TransportError) -> str:
    text = scrub(str(exc)) or type(exc).__name__
    return " ".join(text.split())[:200]
