"""A farm that means harm, or is badly broken, against the real command line: it must not
exhaust the client, fool it into a wrong exit code, or get a secret out of it."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

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
    report, events, logs = tmp_path / "report.json", tmp_path / "events.jsonl", tmp_path / "log"
    result = cdl_tui(
        farm.url,
        tmp_path,
        "08285",
        "--exit-when-done",
        "--output",
        str(tmp_path / "out"),
        "--report",
        str(report),
        "--events-jsonl",
        str(events),
        "--log-dir",
        str(logs),
        "--max-attempts",
        "1",
    )
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
    assert "CDL_API_KEY" not in hook_env


def test_a_key_too_short_to_scrub_is_refused_at_start(hostile_server, tmp_path):
    farm = EchoingFarm(serve_file=True)
    farm.url = hostile_server(farm).url
    result = cdl_tui(farm.url, tmp_path, "08285", "--exit-when-done", key="abc1234")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "7 characters long" in line and "abc1234" not in line
