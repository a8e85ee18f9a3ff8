"""The heartbeat: keeps the farm's leases on our Downloads alive.

Every `heartbeat_interval` seconds it reports `downloading`, with the bytes so far, for
each Download the farm counts as ours: the active ones (paused ones too: still ours) and
the ones the daemon leased that are still queued. Without it a lease could expire under a
live client and the farm would hand the Download to another one.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cdl_tui.core.engine import Engine

log = logging.getLogger("cdl.heartbeat")


class Heartbeat:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout)

    def _run(self) -> None:
        interval = self.engine.config.heartbeat_interval
        while not self._stop.wait(interval):
            try:
                for item, done in self.engine.leased_items():
                    if self._stop.is_set():
                        return
                    self.engine.heartbeat(item, done)
            except Exception:  # one bad round must not end the heartbeats (and the leases)
                log.exception("a heartbeat round failed")
