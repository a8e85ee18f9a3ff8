"""Helpers for engine tests: an engine against a running farm, and what to check after."""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cdl_tui.core.engine import Engine, EngineConfig
from cdl_tui.core.farm.api import FarmClient
from cdl_tui.core.farm.credentials import credentials_from_text
from cdl_tui.core.model.jobspec import parse_job_specs
from cdl_tui.farm.db import FarmStore


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
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): md5_b64(p) for p in root.rglob("*") if p.is_file()}


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*.part")] if root.exists() else []


def wait_for(condition: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or condition}")


class EngineRun:
    """An engine in this process, against a farm process; shut down after the test."""

    def __init__(self) -> None:
        self.engines: list[Engine] = []
        self.transfer = "auto"  # the file transfer engine (see `both_engines`)

    def __call__(self, farm, output: Path, jobs=(), **config) -> Engine:
        client = FarmClient(farm.url, credentials_from_text(farm.token, "test"))
        specs = tuple(parse_job_specs(list(jobs)))
        defaults = {
            "jobs": specs,
            "daemon": not specs,
            "output": output,
            "threads": 4,
            "retry_delay": 0.05,
            "file_retry_delay": 0.02,
            "poll_interval": 0.5,
            "heartbeat_interval": 0.5,
            "history_size": None,
            "transfer": self.transfer,
        }
        engine = Engine(client, EngineConfig(**{**defaults, **config}))
        self.engines.append(engine)
        return engine

    def close(self) -> None:
        for engine in self.engines:
            engine.shutdown(10)
            engine.client.close()


@pytest.fixture
def make_engine():
    run = EngineRun()
    yield run
    run.close()


@pytest.fixture
def both_engines(make_engine, transfer_kind):
    """Use in a test to run it once per file transfer engine (curl, python)."""
    make_engine.transfer = transfer_kind
    return transfer_kind
