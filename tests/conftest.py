"""Shared fixtures: a real reference farm, served by a real `cdl-farm serve` process."""

from __future__ import annotations

import http.server
import json
import os
import ssl
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cdl_tui.farm.db import FarmStore
from cdl_tui.farm.generate import FarmSpec, generate_farm

FARM_TOKEN = "test-farm-token-0123456789"


@dataclass
class RunningFarm:
    url: str
    token: str
    data_dir: Path
    job_ids: list[str]
    proc: subprocess.Popen

    def store(self) -> FarmStore:
        return FarmStore(self.data_dir)

    def stats(self) -> dict:
        request = urllib.request.Request(
            f"{self.url}/_farm/stats", headers={"Authorization": f"Bearer {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


def serve_farm(
    data_dir: Path, *extra: str, token: str = FARM_TOKEN
) -> tuple[str, subprocess.Popen]:
    """Start `cdl-farm serve` and wait for the URL it prints once it accepts connections."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "cdl_tui.farm", "serve", str(data_dir), "--token", token, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(20)
    if not line or not line[0].startswith("http"):
        proc.kill()
        _, err = proc.communicate(timeout=5)
        raise RuntimeError(f"cdl-farm serve did not start: {err[-2000:]}")
    return line[0].strip(), proc


# The contract lets a farm send download_id as a JSON number (the vendor's service) or as
# a string (others). These modules run every test against a farm of each kind; the rest
# run against the default, numbers, as the vendor's.
BOTH_ID_STYLES = {"test_engine.py", "test_api_client.py", "test_headless.py", "test_farm_server.py"}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "farm_ids" in metafunc.fixturenames and metafunc.definition.path.name in BOTH_ID_STYLES:
        metafunc.parametrize("farm_ids", ["number", "string"], ids=["ids=number", "ids=string"])


@pytest.fixture
def farm_ids(request: pytest.FixtureRequest) -> str:
    """How the farms of this test send download_id (`cdl-farm serve --id-style`)."""
    return getattr(request, "param", "number")


@pytest.fixture
def start_farm(tmp_path: Path, farm_ids: str) -> Iterator:
    """Factory: build a farm with the given shape and serve it; stopped after the test.
    The farm sends download IDs as `farm_ids` says, unless the test names --id-style."""
    running: list[RunningFarm] = []

    def start(*serve_args: str, data_dir: Path | None = None, **shape) -> RunningFarm:
        directory = data_dir or tmp_path / f"farm{len(running)}"
        job_ids = generate_farm(directory, FarmSpec(**{"size": 64 << 10, **shape}))
        if "--id-style" not in serve_args:
            serve_args = (*serve_args, "--id-style", farm_ids)
        url, proc = serve_farm(directory, *serve_args)
        farm = RunningFarm(url, FARM_TOKEN, directory, job_ids, proc)
        running.append(farm)
        return farm

    yield start
    for farm in running:
        farm.stop()


@pytest.fixture
def serve():
    """`serve(data_dir, *args)`: serve an existing farm (e.g. again, with other faults);
    returns (url, process). Processes are stopped after the test."""
    procs: list[subprocess.Popen] = []

    def start(data_dir: Path, *args: str) -> tuple[str, subprocess.Popen]:
        url, proc = serve_farm(data_dir, *args)
        procs.append(proc)
        return url, proc

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


# -- a small hostile server: every answer is the test's to write ---------------------------


@dataclass
class SeenRequest:
    method: str
    path: str  # as sent, still percent-escaped, with the query
    headers: dict[str, str]
    body: bytes


# An answer: (status, headers, body); the body may be an iterable of chunks (streamed, and
# it may stall or never end), or None to hang up without answering.
Answer = tuple[int, dict[str, str], bytes | Iterable[bytes]] | None


class HostileServer:
    """An HTTP/1.1 server on 127.0.0.1 that answers each request with `answer(request)`
    and records every request. For the trust boundaries: storage that refuses in its own
    words, endless or stalled bodies, farms that send what our own farm never would."""

    def __init__(
        self, answer: Callable[[SeenRequest], Answer], tls: ssl.SSLContext | None = None
    ) -> None:
        self.requests: list[SeenRequest] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _any(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                seen = SeenRequest(
                    self.command, self.path, dict(self.headers), self.rfile.read(length)
                )
                server.requests.append(seen)
                reply = answer(seen)
                if reply is None:
                    self.close_connection = True
                    return
                status, headers, body = reply
                self.send_response(status)
                chunks = [body] if isinstance(body, bytes) else body
                if isinstance(body, bytes) and "Content-Length" not in headers:
                    headers = {**headers, "Content-Length": str(len(body))}
                for name, value in headers.items():
                    self.send_header(name, value)
                if "Content-Length" not in headers:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                try:
                    for chunk in chunks:
                        self.wfile.write(chunk)
                        self.wfile.flush()
                except OSError:
                    pass
                if not isinstance(body, bytes):
                    self.close_connection = True  # a streamed body may be cut short

            do_GET = do_POST = do_HEAD = _any

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        scheme = "http"
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="session")
def self_signed(tmp_path_factory) -> tuple[Path, ssl.SSLContext]:
    """A certificate for 127.0.0.1 that no CA signed: (its PEM, a server context)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return cert, context


@pytest.fixture
def hostile_server() -> Iterator[Callable[[Callable[[SeenRequest], Answer]], HostileServer]]:
    """`hostile_server(answer)`: start a HostileServer; closed after the test."""
    servers: list[HostileServer] = []

    def start(
        answer: Callable[[SeenRequest], Answer], tls: ssl.SSLContext | None = None
    ) -> HostileServer:
        servers.append(HostileServer(answer, tls))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


TRANSFER_ENGINES = ("python", "curl")


@pytest.fixture(params=TRANSFER_ENGINES)
def transfer_kind(request: pytest.FixtureRequest) -> str:
    """Each file transfer engine in turn (curl is skipped where pycurl cannot be imported:
    that is the platform the python engine is for)."""
    from cdl_tui.core.files import curl

    if request.param == "curl" and curl.available() is not None:
        pytest.skip(f"pycurl cannot be imported: {curl.available()}")
    return request.param


@pytest.fixture
def make_transfer(transfer_kind: str) -> Iterator[Callable[..., object]]:
    """`make_transfer(throttle=None, tls=FileTls(), proxies=None)`: a Transfer of the
    engine under test, closed after the test."""
    import httpx

    from cdl_tui.core.farm.api import tls_context
    from cdl_tui.core.files.curl import CurlSettings, CurlTransfer
    from cdl_tui.core.files.fetchers import Fetcher
    from cdl_tui.core.files.proxies import ProxyRules
    from cdl_tui.core.files.stream import ThreadTransfer
    from cdl_tui.core.files.throttle import TokenBucket
    from cdl_tui.core.model.settings import FileTls

    made: list = []

    def make(throttle=None, tls: FileTls | None = None, proxies: dict | None = None, **timeouts):
        tls = tls or FileTls()
        bucket = throttle or TokenBucket()
        if transfer_kind == "curl":
            settings = CurlSettings(tls=tls, **timeouts)
            transfer = CurlTransfer(settings, bucket, ProxyRules(proxies))
        else:
            verify: ssl.SSLContext | bool = tls.verify
            if tls.verify and tls.ca_file:
                verify = ssl.create_default_context(cafile=tls.ca_file)
            http = httpx.Client(verify=verify, trust_env=proxies is None)
            fetcher = Fetcher(http, lambda: tls_context(verify), proxies=ProxyRules(proxies))
            transfer = ThreadTransfer(fetcher, bucket)
            made.append(http)
        made.append(transfer)
        return transfer

    yield make
    for thing in made:
        thing.close()
