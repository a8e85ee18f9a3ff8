"""What the farm hears about each Download: status reports, heartbeats, held leases.

Reports go through the Reporter (in the background, in order). A Download's reports are
queued under its `report_lock`, so a heartbeat can never land after its final
`downloaded`. The heartbeat thread reports `downloading`, with the bytes so far, every
`heartbeat_interval` seconds for each Download the farm counts as ours: those `ours()`
gives (running, and queued ones the daemon leased) and the failed daemon Downloads held
here for `failed_hold` seconds (handed straight back, the farm would offer them to us
first again and starve the daemon). Without heartbeats a lease could expire under a live
client and the farm would give the Download to another one.

Owned data: the held list, under this object's lock (a leaf: nothing is called while it
is held). An item's `leased` and `claimed` flags are written under its `report_lock`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from cdl_tui.core.farm.api import FarmClient
from cdl_tui.core.farm.reporter import Report, Reporter
from cdl_tui.core.model.errors import AuthError, CdlError
from cdl_tui.core.model.models import Download, WireId
from cdl_tui.core.model.settings import EngineConfig
from cdl_tui.core.model.states import FarmStatus

log = logging.getLogger("cdl.leases")


class Leased(Protocol):
    """A Download as the lease keeper sees it (state.scheduler.QueuedDownload is one)."""

    download: Download
    report_lock: threading.Lock
    leased: bool  # the farm counts it as ours: heartbeats go to it
    claimed: bool  # this run reported it `downloading` at least once
    hold_until: float

    @property
    def download_id(self) -> str: ...


class Leases:
    @classmethod
    def of(
        cls, client: FarmClient, config: EngineConfig, *, refused_key: Callable[[AuthError], None]
    ) -> Leases:
        return cls(
            client,
            reporting=config.reporting,
            heartbeat_interval=config.heartbeat_interval,
            failed_hold=config.failed_hold,
            refused_key=refused_key,
        )

    def __init__(
        self,
        client: FarmClient,
        *,
        reporting: bool,
        heartbeat_interval: float,
        failed_hold: float,
        refused_key: Callable[[AuthError], None],
    ) -> None:
        self.client = client
        self.reporting = reporting  # False: nothing is reported (--no-report)
        self.reporter = Reporter(self._deliver)
        self._interval = heartbeat_interval
        self._failed_hold = failed_hold
        self._refused_key = refused_key
        self._lock = threading.Lock()
        self._held: list[Leased] = []
        self._ours: Callable[[], Sequence[tuple[Leased, int]]] = list
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)

    # -- reports ---------------------------------------------------------------------------

    def report(
        self,
        item: Leased,
        status: FarmStatus,
        done: int,
        *,
        closing: bool = False,
        force: bool = False,
        quick: bool = False,
        delay: float = 0.0,
    ) -> None:
        """Tell the farm a Download's status; `closing` ends our claim (no more heartbeats).

        A `pending` is sent only for a Download the farm thinks is ours, unless `force`.
        A `delay` lets a newer report about it take this one's place."""
        if not self.reporting:
            return
        with item.report_lock:
            if status == FarmStatus.PENDING and not item.leased and not force:
                return
            if status == FarmStatus.DOWNLOADING:
                item.leased = item.claimed = True
            elif closing:
                item.leased = False
            self.report_raw(
                item.download_id,
                item.download.wire_id,
                status,
                done,
                item.download.size,
                quick=quick,
                delay=delay,
            )

    def report_raw(
        self,
        download_id: str,
        wire_id: WireId,
        status: FarmStatus,
        done: int,
        total: int,
        *,
        quick: bool = False,
        delay: float = 0.0,
    ) -> None:
        """Queue a status report for a Download we may hold no item for."""
        self.reporter.submit(
            Report(
                download_id=download_id,
                wire_id=wire_id,
                kind="status",
                status=status,
                done=done,
                total=total,
                quick=quick,
                not_before=time.monotonic() + delay if delay else 0.0,
            )
        )

    def report_fail(self, download_id: str, reason: str) -> None:
        self.reporter.submit(
            Report(download_id=download_id, wire_id=download_id, kind="fail", message=reason)
        )

    def close(self, timeout: float) -> None:
        """Send what is queued (for at most `timeout` seconds) and stop the reporter."""
        self.reporter.close(timeout)

    def _deliver(self, report: Report) -> None:
        """Send one report (on a reporter thread); errors are logged, a refused key ends
        the run."""
        try:
            if report.kind == "fail":
                self.client.report_fail(report.download_id, report.message)
            else:
                self.client.report_status(
                    report.wire_id,
                    report.status,
                    bytes_downloaded=report.done,
                    bytes_to_download=report.total,
                    quick=report.quick,
                )
        except AuthError as exc:
            self._refused_key(exc)
        except CdlError as exc:
            what = "the failure" if report.kind == "fail" else report.status
            log.warning("could not report %s of %s: %s", what, report.download_id, exc)

    # -- held leases -----------------------------------------------------------------------

    def hold(self, item: Leased) -> None:
        """Keep a failed daemon Download's lease for `failed_hold` seconds (heartbeats)."""
        item.hold_until = time.monotonic() + self._failed_hold
        with self._lock:
            if item not in self._held:
                self._held.append(item)

    def release_all(self, items: Iterable[Leased]) -> None:
        """At shutdown: give the farm back these Downloads and those held, at once."""
        for item in [*items, *self.take_held()]:
            self.report(item, FarmStatus.PENDING, 0, closing=True, quick=True)

    def take_held(self) -> list[Leased]:
        """Every held item, no longer held (at shutdown, to hand them back)."""
        with self._lock:
            held, self._held = self._held, []
        return held

    def _unhold(self, item: Leased) -> None:
        with self._lock:
            if item not in self._held:
                return
            self._held.remove(item)
        self.report(item, FarmStatus.PENDING, 0, closing=True, quick=True)

    # -- heartbeats ------------------------------------------------------------------------

    def start_heartbeats(self, ours: Callable[[], Sequence[tuple[Leased, int]]]) -> None:
        """Beat for `ours()` (the Downloads running and queued that the farm counts as
        ours, with their bytes so far) and the held ones."""
        self._ours = ours
        if self.reporting:
            self.thread.start()

    def stop_heartbeats(self, timeout: float = 15.0) -> None:
        self._stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout)

    def leased(self) -> list[tuple[Leased, int]]:
        """Every Download whose lease is ours to keep now; held ones past their time are
        handed back."""
        now = time.monotonic()
        items = list(self._ours())
        with self._lock:
            held = list(self._held)
        for item in held:
            if now >= item.hold_until:
                self._unhold(item)
            else:
                items.append((item, 0))
        return items

    def heartbeat(self, item: Leased, done: int) -> None:
        with item.report_lock:
            if item.leased:
                self.report_raw(
                    item.download_id,
                    item.download.wire_id,
                    FarmStatus.DOWNLOADING,
                    done,
                    item.download.size,
                    quick=True,
                )

    def _beat(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                for item, done in self.leased():
                    if self._stop.is_set():
                        return
                    self.heartbeat(item, done)
            except Exception:  # one bad round must not end the heartbeats (and the leases)
                log.exception("a heartbeat round failed")
