"""Small real objects for the unit tests of state/ (no farm, no engine)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from cdl_tui.core.model.models import Download, RemoteFile
from cdl_tui.core.state.active import ActiveDownload, ActiveFile
from cdl_tui.core.state.details import DownloadRecord
from cdl_tui.core.state.scheduler import QueuedDownload

MD5 = "ZZZZZZZZZZZZZZZZZZZZZZ=="


def active(download_id: str, *paths: str, root: Path = Path("/out")) -> ActiveDownload:
    files = tuple(RemoteFile(f"http://s/{p}", MD5, p, 10) for p in paths)
    download = Download(download_id, download_id, "08285", "001", "/out", 10 * len(files), files)
    item = QueuedDownload(download, "08285")
    result = ActiveDownload(item=item, worker="worker-1", record=DownloadRecord(item))
    result.files = [ActiveFile(f, root / f.relative_path) for f in files]
    return result


@pytest.fixture
def make_active() -> Callable[..., ActiveDownload]:
    """`make_active(download_id, *relative_paths)`: an ActiveDownload with planned files."""
    return active
