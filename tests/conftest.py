"""Shared fixtures: a real reference farm, served by a real `cdl-farm serve` process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
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


@pytest.fixture
def start_farm(tmp_path: Path) -> Iterator:
    """Factory: build a farm with the given shape and serve it; stopped after the test."""
    running: list[RunningFarm] = []

    def start(*serve_args: str, data_dir: Path | None = None, **shape) -> RunningFarm:
        directory = data_dir or tmp_path / f"farm{len(running)}"
        job_ids = generate_farm(directory, FarmSpec(**{"size": 64 << 10, **shape}))
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
