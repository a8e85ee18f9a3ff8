"""`--demo`: a small reference farm, built in a temp dir and served on loopback."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cdl_tui.core.credentials import BearerToken
from cdl_tui.core.secrets import Secret
from cdl_tui.farm.app import FarmOptions
from cdl_tui.farm.generate import FarmSpec, generate_farm, read_token

DEMO_SPEC = FarmSpec(jobs=4, tasks=12, files=3, size=512 << 10, seed=8285)
DEMO_OUTPUT = Path("cdl-demo")


@dataclass(frozen=True)
class DemoFarm:
    url: str
    credentials: BearerToken
    job_ids: list[str]


@contextmanager
def demo_farm(spec: FarmSpec = DEMO_SPEC) -> Iterator[DemoFarm]:
    """Build a farm in a temp dir, serve it on a free loopback port, clean up after."""
    from cdl_tui.farm.server import FarmServer  # uvicorn only when the demo runs

    data_dir = Path(tempfile.mkdtemp(prefix="cdl-demo-farm-"))
    try:
        job_ids = generate_farm(data_dir, spec)
        token = read_token(data_dir)
        server = FarmServer(data_dir, FarmOptions(token=token))
        url = server.start()
        try:
            yield DemoFarm(url, BearerToken(Secret(token), "the demo farm"), job_ids)
        finally:
            server.stop()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
