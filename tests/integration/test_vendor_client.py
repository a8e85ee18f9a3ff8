"""The vendor's own client (`pip install ciocore`: `conductor download`) works unchanged
against the reference farm: it exchanges its API key for a JWT, checks the JWT's audience,
pages through the job and reports each task downloaded."""

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from cdl_tui.core.farm.api import FarmClient
from cdl_tui.core.farm.credentials import credentials_from_text


def conductor_command() -> str:
    found = shutil.which("conductor", path=str(Path(sys.executable).parent)) or shutil.which(
        "conductor"
    )
    assert found, "the vendor client is a test dependency: pip install '.[test]' (ciocore)"
    return found


def test_conductor_download_fetches_a_generated_job(start_farm, tmp_path):
    farm = start_farm(jobs=2, tasks=14, files=3, size=48 << 10)
    job = farm.job_ids[1]
    out = tmp_path / "out"
    out.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    key = {"client_id": "studio-a", "private_key": farm.token}
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CONDUCTOR_")},
        "HOME": str(home),
        "CONDUCTOR_URL": farm.url,
        "CONDUCTOR_API_KEY": base64.b64encode(json.dumps(key).encode()).decode(),
    }
    for attempt in range(2):  # the second run reuses the cached JWT (its aud is checked)
        result = subprocess.run(
            [conductor_command(), "download", job, "-o", str(out)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert "Error" not in result.stderr, result.stderr[-3000:]
        creds = json.loads((home / ".config/conductor/api_key_credentials").read_text())
        assert creds["access_token"].count(".") == 2, f"run {attempt}: not a JWT"

    with FarmClient(farm.url, credentials_from_text(farm.token, "t")) as client:
        downloads = [d for page in client.iter_job_downloads(job) for d in page.downloads]
    expected = {(f.relative_path, f.md5) for d in downloads for f in d.files}
    assert len(expected) > 30
    on_disk = set()
    for path in (out / job).rglob("*"):
        if path.is_file():
            digest = base64.b64encode(hashlib.md5(path.read_bytes()).digest()).decode()
            on_disk.add((str(path.relative_to(out / job)), digest))
    assert on_disk == expected

    store = farm.store()
    with_files = {d.download_id for d in downloads if d.files}
    reported = {r["download_id"] for r in store.audit_rows("downloaded")}
    assert reported == with_files
    # One exchange for both runs: the second found the cached JWT's audience and expiry
    # good (a mismatched `aud` makes the vendor's client exchange again).
    assert farm.stats()["counters"]["oauth_grants"] == 1
