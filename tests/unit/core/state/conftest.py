"""Small real objects for the unit tests of state/ (no farm process, no engine)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cdl_tui.core.farm.leases import Leases
from cdl_tui.core.model.errors import CdlError
from cdl_tui.core.model.events import Event
from cdl_tui.core.model.jobspec import JobSpec
from cdl_tui.core.model.models import Download, RemoteFile
from cdl_tui.core.model.settings import EngineConfig
from cdl_tui.core.state.active import ActiveDownload, ActiveFile, ActiveSet
from cdl_tui.core.state.control import RunControl
from cdl_tui.core.state.details import DownloadRecord
from cdl_tui.core.state.frames import JobFrames
from cdl_tui.core.state.ledger import Ledger
from cdl_tui.core.state.outcomes import OutcomeRules, Outcomes
from cdl_tui.core.state.problems import ProblemHandler, ProblemLog
from cdl_tui.core.state.scheduler import PendingQueue, QueuedDownload
from cdl_tui.core.state.shared import Shared

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


QUICK = OutcomeRules(retry_delay=1.0)


@dataclass
class Parts:
    farm: object
    shared: Shared
    ledger: Ledger
    outcomes: Outcomes
    events: list[Event] = field(default_factory=list)
    fatal: list[CdlError] = field(default_factory=list)
    drained: list[bool] = field(default_factory=list)

    def statuses(self) -> list[str]:
        self.shared.leases.reporter.flush(5)
        return self.farm.statuses()

    def of(self, kind: type) -> list[Event]:
        return [e for e in self.events if isinstance(e, kind)]


@pytest.fixture
def parts(make_farm):
    """`parts(rules, **engine_config)`: real state parts of one run (job 08285, with
    --exit-when-done) around a fake farm client that records what it is told."""
    handlers: list[ProblemHandler] = []

    def build(rules: OutcomeRules = QUICK, **config) -> Parts:
        farm = make_farm()
        lock = threading.RLock()
        events: list[Event] = []
        leases = Leases(
            farm, reporting=True, heartbeat_interval=60, failed_hold=60, refused_key=print
        )
        shared = Shared(
            lock,
            events.append,
            RunControl(lock),
            ActiveSet(lock),
            PendingQueue(),
            leases,
            ProblemLog(),
            JobFrames(),
        )
        handlers.append(ProblemHandler(shared.problems))  # as Engine.start attaches it
        logging.getLogger("cdl").addHandler(handlers[-1])
        drained: list[bool] = []
        ledger = Ledger(
            lock,
            events.append,
            EngineConfig(**{"jobs": (JobSpec("08285"),), "exit_when_done": True, **config}),
            None,
            idle=shared.idle,
            on_drained=lambda: drained.append(True),
            on_job_complete=lambda view: None,
        )
        fatal: list[CdlError] = []
        outcomes = Outcomes(shared, rules, ledger, fatal.append)
        return Parts(farm, shared, ledger, outcomes, events, fatal, drained)

    yield build
    for handler in handlers:
        logging.getLogger("cdl").removeHandler(handler)
