"""A farm that means harm, or is badly broken, against the real command line: it must not
exhaust the client, fool it into a wrong exit code, or get a secret out of it."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import socket
import subprocess
import sys
import time
import zlib
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest

from cdl_tui.core.farm.api import ApiLimits, FarmClient
from cdl_tui.core.farm.credentials import credentials_from_text
from cdl_tui.core.farm.retry import RetryPolicy
from cdl_tui.core.model.errors import TransientError

TOKEN = "hostile-test-token-5f3a9c"
CONTENT = b"frame bytes " * 1000


def cdl_tui(farm_url: str, tmp_path: Path, *args: str, key: str = TOKEN, **env_extra: str):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CDL_", "CONDUCTOR_"))}
    env.update(
        CDL_API_KEY=key,
        XDG_STATE_HOME=str(tmp_path / "state"),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
    )
    env.update(env_extra)
    command = [str(Path(sys.executable).parent / "cdl-tui"), "--headless", "--api-url", farm_url]
    return subprocess.run([*command, *args], env=env, capture_output=True, text=True, timeout=120)


def listing(url: str, *, job: str = "08285") -> bytes:
    md5 = base64.b64encode(hashlib.md5(CONTENT).digest()).decode()
    download = {
        "download_id": 7_000_000_000_000_001,
        "job_id": job,
        "task_id": "001",
        "output_dir": "/renders/show",
        "size": len(CONTENT),
        "files": [
            {"url": f"{url}/blob/a.exr", "md5": md5, "relative_path": "a.exr", "size": len(CONTENT)}
        ],
    }
    return json.dumps({"downloads": [download], "next_cursor": None}).encode()


class EchoingFarm:
    """Echoes the caller's token back in every error it can: status reports are answered
    400 naming it, and the file host refuses with it in its XML."""

    def __init__(self, serve_file: bool) -> None:
        self.serve_file = serve_file
        self.url = ""

    def __call__(self, request):
        path = urlsplit(request.path).path
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if path == "/blob/a.exr":
            if self.serve_file:
                return 200, {}, CONTENT
            body = f"<Error><Code>InvalidArgument</Code><Message>key {TOKEN}</Message></Error>"
            return 400, {"Content-Type": "application/xml"}, body.encode()
        if path.endswith("/downloads") and request.method == "POST":
            return 201, {"Content-Type": "application/json"}, listing(self.url)
        if path == "/downloads/status":
            error = json.dumps({"error": f"token {token} may not report"}).encode()
            return 400, {"Content-Type": "application/json"}, error
        return 201, {}, b"{}"


def test_a_token_the_farm_echoes_back_never_reaches_any_output(hostile_server, tmp_path):
    farm = EchoingFarm(serve_file=False)
    farm.url = hostile_server(farm).url
    events, logs = tmp_path / "events.jsonl", tmp_path / "log"
    result, _ = run_job(
        farm,
        tmp_path,
        "--events-jsonl",
        str(events),
        "--log-dir",
        str(logs),
        "--max-attempts",
        "1",
    )
    report = tmp_path / "report.json"
    assert result.returncode == 1, result.stderr
    outputs = {
        "stdout": result.stdout,
        "stderr": result.stderr,
        "report": report.read_text(),
        "events": events.read_text(),
        "log": "".join(p.read_text() for p in logs.rglob("*") if p.is_file()),
    }
    assert "key ***" in outputs["report"]  # the reason is there, the token is not
    for name, text in outputs.items():
        assert TOKEN not in text, f"the token leaked into {name}"


def test_a_job_done_hook_gets_no_credential(hostile_server, tmp_path):
    farm = EchoingFarm(serve_file=True)
    farm.url = hostile_server(farm).url
    seen = tmp_path / "hook-env.txt"
    result = cdl_tui(
        farm.url,
        tmp_path,
        "08285",
        "--exit-when-done",
        "--output",
        str(tmp_path / "out"),
        "--on-job-done",
        f"env > {seen}",
        CONDUCTOR_API_KEY_PATH=str(tmp_path / "nope"),
        MY_COPY_OF_THE_KEY=TOKEN,
    )
    assert result.returncode == 0, result.stderr
    hook_env = seen.read_text()
    assert "CDL_JOB_ID=08285" in hook_env
    assert TOKEN not in hook_env
    assert "CDL_API_KEY" not in hook_env and "CONDUCTOR_API_KEY_PATH" not in hook_env


def test_a_key_too_short_to_scrub_is_refused_at_start(hostile_server, tmp_path):
    farm = EchoingFarm(serve_file=True)
    farm.url = hostile_server(farm).url
    result = cdl_tui(farm.url, tmp_path, "08285", "--exit-when-done", key="abc1234")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "7 characters long" in line and "abc1234" not in line


class ListingFarm:
    """Answers a job listing with whatever body the test gives; files are served."""

    def __init__(self, body: bytes, status: int = 201) -> None:
        self.body, self.status = body, status
        self.url = ""
        self.reports: list[dict] = []
        self.fails: list[str] = []

    def __call__(self, request):
        path = urlsplit(request.path).path
        if path == "/blob/a.exr":
            return 200, {}, CONTENT
        if path.endswith("/downloads") and request.method == "POST":
            body = self.body.replace(b"{URL}", self.url.encode())
            return self.status, {"Content-Type": "application/json"}, body
        if path == "/downloads/status":
            self.reports.append(json.loads(request.body))
        if path.endswith("/fail"):
            self.fails.append(path)
        return 201, {}, b"{}"


def run_job(farm, tmp_path, *extra, **env):
    report = tmp_path / "report.json"
    result = cdl_tui(
        farm.url,
        tmp_path,
        "08285",
        "--exit-when-done",
        "--output",
        str(tmp_path / "out"),
        "--report",
        str(report),
        *extra,
        **env,
    )
    return result, json.loads(report.read_text()) if report.exists() else None


def test_a_listing_nested_too_deep_fails_the_job_loudly(hostile_server, tmp_path):
    farm = ListingFarm(b'{"downloads": ' + b"[" * 5000 + b"]" * 5000 + b', "next_cursor": null}')
    farm.url = hostile_server(farm).url
    result, report = run_job(farm, tmp_path)
    assert result.returncode == 1, result.stderr
    (job,) = report["jobs"]
    assert job["complete"] is False and "nested too deeply" in job["error"]
    assert report["totals"]["jobs_failed"] == 1
    assert "failed: 1 (1 job)" in result.stderr + result.stdout


def test_a_job_the_farm_does_not_know_counts_as_failed(hostile_server, tmp_path):
    farm = ListingFarm(b'{"error": "job 08285 not found"}', status=404)
    farm.url = hostile_server(farm).url
    result, report = run_job(farm, tmp_path)
    assert result.returncode == 1
    assert report["totals"]["jobs_failed"] == 1
    assert report["jobs"][0]["complete"] is False
    output = result.stderr + result.stdout
    assert "failed: 1 (1 job)" in output and "Job 08285  FAILED: " in output


def download_entry(download_id, job_id="08285", path="a.exr") -> dict:
    md5 = base64.b64encode(hashlib.md5(CONTENT).digest()).decode()
    return {
        "download_id": download_id,
        "job_id": job_id,
        "task_id": "001",
        "output_dir": "/renders/show",
        "size": len(CONTENT),
        "files": [
            {"url": "{URL}/blob/a.exr", "md5": md5, "relative_path": path, "size": len(CONTENT)}
        ],
    }


def test_a_download_of_another_job_in_a_listing_is_refused(hostile_server, tmp_path):
    listed = [download_entry(11, "08285"), download_entry(12, "99999")]
    farm = ListingFarm(json.dumps({"downloads": listed, "next_cursor": None}).encode())
    farm.url = hostile_server(farm).url
    result, report = run_job(farm, tmp_path)
    assert result.returncode == 1
    assert (tmp_path / "out" / "08285" / "a.exr").read_bytes() == CONTENT
    assert not (tmp_path / "out" / "99999").exists()
    (refused,) = report["refused"]
    assert refused["download_id"] == "12" and "Download of job 99999" in refused["reason"]
    assert farm.fails == []  # not ours to fail on the farm: it belongs to job 99999


def test_a_lone_surrogate_is_refused_and_the_journal_goes_on(hostile_server, tmp_path):
    first = download_entry("ok-1", path="a.exr")
    second = download_entry("\ud800", path="b.exr")
    first["task_id"], second["task_id"] = "001", "002"
    body = json.dumps({"downloads": [first, second], "next_cursor": None}).encode()
    farm = ListingFarm(body)
    farm.url = hostile_server(farm).url
    result, report = run_job(farm, tmp_path)
    assert result.returncode == 1
    assert "Exception in thread" not in result.stderr
    assert [r["download_id"] for r in farm.reports if r["status"] == "downloaded"] == ["ok-1"]
    assert "not valid text" in report["refused"][0]["reason"]
    journal = tmp_path / "state" / "cdl" / "journal.sqlite"
    import sqlite3

    rows = sqlite3.connect(journal).execute("SELECT download_id FROM history").fetchall()
    assert ("ok-1",) in rows


def test_a_key_with_other_than_ascii_is_one_clear_line(hostile_server, tmp_path):
    farm = ListingFarm(b"{}")
    farm.url = hostile_server(farm).url
    result = cdl_tui(farm.url, tmp_path, "08285", "--exit-when-done", key="tökén-0123456789")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "plain ASCII" in line and "tökén" not in line


def gzip_of_spaces(decoded_size: int) -> bytes:
    """A gzip stream of `decoded_size` bytes, made a chunk at a time (a 'zip bomb')."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = b" " * (1 << 20)
    parts = [compressor.compress(chunk) for _ in range(decoded_size >> 20)]
    return b"".join([*parts, compressor.flush()])


# Runs a command and prints the peak RSS of it alone (a fresh process has no other child).
PEAK_RSS = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:]); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def test_a_compressed_answer_is_bounded_as_it_streams(hostile_server, tmp_path):
    bomb = gzip_of_spaces(512 << 20)  # 0.5 MB on the wire, 512 MiB decoded
    assert len(bomb) < 1 << 20
    farm = ListingFarm(b"")
    farm.url = hostile_server(lambda r: (201, {"Content-Encoding": "gzip"}, bomb)).url
    result, report = run_job(farm, tmp_path)
    assert result.returncode == 1
    error = report["jobs"][0]["error"]
    assert "over max_response_bytes (64 MiB)" in error and "page_size is 100" in error
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CDL_", "CONDUCTOR_"))}
    env.update(CDL_API_KEY=TOKEN, XDG_STATE_HOME=str(tmp_path / "state2"))
    measured = subprocess.run(
        [
            sys.executable,
            "-c",
            PEAK_RSS,
            str(Path(sys.executable).parent / "cdl-tui"),
            "--headless",
            "--api-url",
            farm.url,
            "08285",
            "--exit-when-done",
            "--output",
            str(tmp_path / "out2"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    peak_mib = int(measured.stdout.strip().splitlines()[-1]) / 1024
    assert peak_mib < 400, peak_mib  # it took 3.2 GB before


def test_an_endless_answer_is_cut_at_the_limit(hostile_server, tmp_path):
    def endless():
        while True:
            yield b" " * (1 << 20)

    farm = ListingFarm(b"")
    farm.url = hostile_server(lambda r: (201, {}, endless())).url
    result, report = run_job(farm, tmp_path, CDL_MAX_RESPONSE_BYTES="8MiB")
    assert result.returncode == 1
    assert "over max_response_bytes (8 MiB)" in report["jobs"][0]["error"]


def test_a_cursor_that_never_ends_stops_at_max_pages(hostile_server, tmp_path):
    pages = itertools.count(1)

    def answer(request):
        body = {"downloads": [], "next_cursor": f"c{next(pages)}"}
        return 201, {"Content-Type": "application/json"}, json.dumps(body).encode()

    farm = ListingFarm(b"")
    farm.url = hostile_server(answer).url
    result, report = run_job(farm, tmp_path, CDL_MAX_PAGES="25")
    assert result.returncode == 1
    assert "more than max_pages (25)" in report["jobs"][0]["error"]
    assert next(pages) == 26  # 25 pages asked for, not one more


def test_an_answer_that_trickles_is_cut_at_the_api_deadline(hostile_server):
    def trickle():
        for _ in range(600):
            yield b" "
            time.sleep(0.1)

    server = hostile_server(lambda r: (201, {}, trickle()))
    client = FarmClient(
        server.url,
        credentials_from_text(TOKEN, "test"),
        retry=RetryPolicy(max_attempts=1),
        limits=ApiLimits(deadline=1.0),
    )
    started = time.monotonic()
    with client, pytest.raises(TransientError, match=r"within api_deadline \(1 s\)"):
        list(client.iter_job_downloads("08285"))
    assert time.monotonic() - started < 10  # the trickle would last a minute


def a_closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_farm_that_refuses_connections_ends_an_exit_when_done_run(tmp_path):
    url = f"http://127.0.0.1:{a_closed_port()}"
    started = time.monotonic()
    result = cdl_tui(
        url,
        tmp_path,
        "08285",
        "--exit-when-done",
        "--report",
        str(tmp_path / "r.json"),
        CDL_UNREACHABLE_MAX="1",
    )
    assert result.returncode == 1
    assert "could not be reached for" in result.stderr and "unreachable_max" in result.stderr
    assert time.monotonic() - started < 90  # one call's retries, not for ever
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["totals"]["jobs_failed"] == 1


def test_an_api_certificate_that_cannot_be_verified_is_one_line_at_once(
    hostile_server, self_signed, tmp_path
):
    cert, context = self_signed
    farm = ListingFarm(json.dumps({"downloads": [], "next_cursor": None}).encode())
    farm.url = hostile_server(farm, tls=context).url
    started = time.monotonic()
    result = cdl_tui(farm.url, tmp_path, "08285", "--exit-when-done")
    assert result.returncode == 2
    assert time.monotonic() - started < 20  # not retried as if it were a network blip
    (line,) = [entry for entry in result.stderr.strip().splitlines() if "certificate" in entry]
    assert "--ca-bundle" in line
    trusted = cdl_tui(farm.url, tmp_path, "08285", "--exit-when-done", "--ca-bundle", str(cert))
    assert trusted.returncode == 0, trusted.stderr
    insecure = cdl_tui(farm.url, tmp_path, "08285", "--exit-when-done", "--insecure")
    assert insecure.returncode == 0
    assert "TLS certificates are not verified" in insecure.stderr


def test_a_file_host_certificate_that_cannot_be_verified_fails_that_download(
    hostile_server, self_signed, tmp_path
):
    _, context = self_signed
    storage = hostile_server(lambda r: (200, {}, CONTENT), tls=context)
    body = json.dumps({"downloads": [download_entry(5)], "next_cursor": None}).encode()
    farm = ListingFarm(body.replace(b"{URL}", storage.url.encode()))
    farm.url = hostile_server(farm).url
    started = time.monotonic()
    result, report = run_job(farm, tmp_path)
    assert result.returncode == 1
    assert time.monotonic() - started < 20
    (task,) = report["jobs"][0]["tasks"]
    assert "TLS certificate" in task["reason"] and "--ca-bundle" in task["reason"]


def test_an_unexpected_error_while_listing_fails_the_job_and_keeps_secrets(
    hostile_server, make_engine, tmp_path, caplog
):
    """Whatever a listing chokes on in a way nobody foresaw fails its job loudly (exit 1,
    the traceback in the log) and never ends it as complete; a secret in it is scrubbed."""
    farm = ListingFarm(b"{}")
    farm.url = hostile_server(farm).url
    engine = make_engine(
        SimpleNamespace(url=farm.url, token=TOKEN), tmp_path, jobs=["08285"], exit_when_done=True
    )

    def choke(*args, **kwargs):
        raise RuntimeError(f"the parser met {TOKEN}")
        yield  # a generator, as the real listing is

    engine.client.iter_job_downloads = choke
    engine.start()
    assert engine.stop_event.wait(30)
    assert engine.shutdown() == 1
    (job,) = engine.snapshot().jobs
    assert not job.complete and "unexpected error while listing" in job.error
    assert TOKEN not in job.error
    assert "Traceback" in caplog.text
