"""`cdl-tui` as users and scripts run it: real processes, a real farm, real files."""

import base64
import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cdl_tui.farm.db import FarmStore
from cdl_tui.farm.generate import generate_farm
from cdl_tui.tui.demo import DEMO_SPEC


def cdl_tui() -> str:
    found = shutil.which("cdl-tui", path=str(Path(sys.executable).parent))
    assert found, "install the project (pip install .) to get the cdl-tui command"
    return found


def run(*args, env_extra=None, cwd=None, timeout=120):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CDL_", "CONDUCTOR_"))}
    env["XDG_CONFIG_HOME"] = str(Path(cwd or ".").resolve() / "no-config")
    env.update(env_extra or {})
    return subprocess.run(
        [cdl_tui(), *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout
    )


def md5_b64(path: Path) -> str:
    return base64.b64encode(hashlib.md5(path.read_bytes()).digest()).decode()


def farm_files(store: FarmStore, job_id: str) -> dict[str, str]:
    rows = store.conn.execute(
        "SELECT f.relative_path, f.md5 FROM files f JOIN downloads d ON d.id = f.download_pk "
        "WHERE d.job_id = ?",
        (job_id,),
    )
    return {r[0]: r[1] for r in rows}


def files_on_disk(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): md5_b64(p) for p in root.rglob("*") if p.is_file()}


def test_demo_downloads_and_verifies_every_file_then_caches(tmp_path):
    out = tmp_path / "demo-out"
    full_speed = {"CDL_DEMO_FAULTS": ""}  # the demo's watchable pace is not needed here
    first = run(
        "--demo", "--exit-when-done", "--output", str(out), cwd=tmp_path, env_extra=full_speed
    )
    assert first.returncode == 0, first.stderr
    reference = tmp_path / "reference-farm"
    job_ids = generate_farm(reference, DEMO_SPEC)
    store = FarmStore(reference)
    for job in job_ids:
        assert files_on_disk(out / job) == farm_files(store, job)
    files = sum(len(farm_files(store, job)) for job in job_ids)
    assert f"{files} files downloaded" in first.stdout
    assert "; failed: 0;" in first.stdout
    second = run(
        "--demo", "--exit-when-done", "--output", str(out), cwd=tmp_path, env_extra=full_speed
    )
    assert second.returncode == 0, second.stderr
    assert f"0 files downloaded (0 Bytes), {files} cached" in second.stdout
    assert not [p for p in out.rglob(".*") if p.is_file()]  # no temp files left


def test_job_mode_downloads_a_job_into_output(start_farm, tmp_path):
    farm = start_farm(jobs=2, tasks=6)
    out = tmp_path / "out"
    job = farm.job_ids[0]
    result = run(
        "--api-url",
        farm.url,
        "--job",
        job.lstrip("0"),
        "--exit-when-done",
        "--output",
        str(out),
        env_extra={"CDL_API_KEY": farm.token},
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert files_on_disk(out / job) == farm_files(farm.store(), job)
    assert not (out / farm.job_ids[1]).exists()
    counts = farm.store().status_counts()
    assert counts["downloaded"] == 6
    assert counts["downloading"] == 0


def test_an_unsafe_path_from_the_farm_is_refused_reported_and_not_written(start_farm, tmp_path):
    farm = start_farm(jobs=1, tasks=2, files=1)
    store = farm.store()
    store.conn.execute(
        "UPDATE files SET relative_path = '../../escape.exr' WHERE id = (SELECT MIN(id) FROM files)"
    )
    out = tmp_path / "out"
    result = run(
        "--api-url",
        farm.url,
        farm.job_ids[0],
        "--exit-when-done",
        "--output",
        str(out),
        env_extra={"CDL_API_KEY": farm.token},
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert "climbs out of its folder" in result.stdout
    assert not (tmp_path / "escape.exr").exists()
    assert not list(tmp_path.rglob("escape.exr"))
    fails = store.audit_rows("fail")
    assert len(fails) == 1
    assert "climbs out" in fails[0]["detail"]


@pytest.mark.parametrize(
    ("args", "env", "fragment"),
    [
        (["08285"], {}, "no farm API URL"),
        (["08285:1-x", "--api-url", "http://127.0.0.1:9"], {}, "malformed task range"),
        (["--api-url", "ftp://farm", "1"], {"CDL_API_KEY": "t-123456"}, "is not an http(s) URL"),
        (["1"], {"CDL_API_URL": "http://127.0.0.1:9"}, "no API key"),
        (["--threads", "0", "1"], {}, "threads from flag --threads"),
        (
            ["--api-url", "http://127.0.0.1:9", "--exit-when-done"],
            {"CDL_API_KEY": "t-123456"},
            "--exit-when-done needs job IDs",
        ),
        (["--verify", "--api-url", "http://127.0.0.1:9"], {}, "--verify needs job IDs"),
        (["--on-conflict", "merge", "1"], {}, "invalid choice"),
        (["1"], {"CDL_FAULTS": "chunk=2", "CDL_API_URL": "http://x"}, "faults from env CDL_FAULTS"),
        (
            ["--api-url", "https://127.0.0.1:9", "1"],
            {"CDL_API_KEY": "t-123456", "SSL_CERT_FILE": "/nonexistent/ca.pem"},
            "cannot load the CA certificates (SSL_CERT_FILE=/nonexistent/ca.pem",
        ),
    ],
)
def test_bad_input_is_one_line_on_stderr_and_exit_2(tmp_path, args, env, fragment):
    result = run(*args, env_extra=env, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0]
    assert list(tmp_path.iterdir()) == []  # nothing was written


@pytest.mark.parametrize(
    ("output", "fragment"),
    [
        ("a-file", "(the output folder, flag --output): not a folder"),
        ("a-file/sub", "Not a directory"),
        ("dangling", "which does not exist"),
    ],
)
def test_an_unusable_output_folder_is_one_line_at_start(tmp_path, output, fragment):
    (tmp_path / "a-file").write_text("mine")
    (tmp_path / "dangling").symlink_to(tmp_path / "unmounted" / "share")
    result = run(
        "--headless",
        "--api-url",
        "http://127.0.0.1:9",
        "1",
        "--output",
        str(tmp_path / output),
        env_extra={"CDL_API_KEY": "t-123456"},
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert fragment in result.stderr
    assert (tmp_path / "a-file").read_text() == "mine"


def test_a_wrong_key_is_one_line_without_the_key(start_farm, tmp_path):
    farm = start_farm(jobs=1, tasks=1)
    secret = "wrong-token-ABCDEF-123"
    result = run(
        "--api-url",
        farm.url,
        farm.job_ids[0],
        "--exit-when-done",
        "--output",
        str(tmp_path),
        env_extra={"CDL_API_KEY": secret},
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "refused the token from env CDL_API_KEY" in result.stderr
    assert secret not in result.stderr + result.stdout


def test_print_config_shows_sources_and_hides_the_key(tmp_path):
    secret = "secret-token-0987654321"
    result = run(
        "--print-config",
        "--threads",
        "3",
        env_extra={"CDL_API_KEY": secret, "CONDUCTOR_URL": "https://farm.example"},
        cwd=tmp_path,
    )
    assert result.returncode == 0
    assert secret not in result.stdout
    assert "api_key" in result.stdout and "*** (set)" in result.stdout
    assert "https://farm.example  (env CONDUCTOR_URL)" in result.stdout
    assert re.search(r"^threads +3  \(flag --threads\)$", result.stdout, re.MULTILINE)


def test_version():
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("cdl-tui ")
