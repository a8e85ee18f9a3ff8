"""`--demo`: a small reference farm, built in a temp dir and served on loopback."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cdl_tui.core.farm.credentials import BearerToken
from cdl_tui.core.model.errors import ConfigError
from cdl_tui.core.model.secrets import Secret
from cdl_tui.farm.app import FarmOptions
from cdl_tui.farm.generate import FarmSpec, generate_farm, read_token

DEMO_SPEC = FarmSpec(jobs=4, tasks=12, files=3, size=1 << 20, seed=8285)
DEMO_OUTPUT = Path("cdl-demo")
# The demo farm caps each file response so that a person can watch the transfers (about
# 8 MiB/s with 8 threads: half a minute for the ~190 MiB). CDL_DEMO_FAULTS replaces it with
# any `cdl-farm serve --faults` spec, e.g. "503=0.1,cut=0.05" to watch recoveries, or ""
# for full speed.
DEMO_FAULTS = "bandwidth=1MiB"


@dataclass(frozen=True)
class DemoFarm:
    url: str
    credentials: BearerToken
    job_ids: list[str]


@contextmanager
def demo_farm(spec: FarmSpec = DEMO_SPEC, faults: str | None = None) -> Iterator[DemoFarm]:
    """Build a farm in a temp dir, serve it on a free loopback port, clean up after."""
    from cdl_tui.farm.faults import parse_faults
    from cdl_tui.farm.server import FarmServer  # uvicorn only when the demo runs

    if faults is None:
        faults = os.environ.get("CDL_DEMO_FAULTS", DEMO_FAULTS)
    try:
        plan = parse_faults(faults)
    except ValueError as exc:
        raise ConfigError(f"CDL_DEMO_FAULTS: {exc}") from None

    data_dir = Path(tempfile.mkdtemp(prefix="cdl-demo-farm-"))
    try:
        job_ids = generate_farm(data_dir, spec)
        token = read_token(data_dir)
        server = FarmServer(data_dir, FarmOptions(token=token, faults=plan))
        url = server.start()
        try:
            yield DemoFarm(url, BearerToken(Secret(token), "the demo farm"), job_ids)
        finally:
            server.stop()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
