"""What every part of state/ shares: the one lock, the door for events, the common parts.

The state lock guards the active set, the pause and stop flags (RunControl), the ledger
and the ActiveDownloads' fields, so that a snapshot sees them as one. The pending queue
has its own lock, taken after the state lock, never before; the farm's leases and the
problem log have leaf locks (nothing is called while they are held). Events are
published after the state lock is released.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from cdl_tui.core.farm.leases import Leases
from cdl_tui.core.model.events import Event
from cdl_tui.core.state.active import ActiveSet
from cdl_tui.core.state.control import RunControl
from cdl_tui.core.state.frames import JobFrames
from cdl_tui.core.state.problems import ProblemLog
from cdl_tui.core.state.scheduler import PendingQueue, QueuedDownload


@dataclass(frozen=True)
class Shared:
    lock: threading.RLock
    publish: Callable[[Event], None]
    control: RunControl
    active: ActiveSet
    queue: PendingQueue
    leases: Leases
    problems: ProblemLog
    frames: JobFrames

    def idle(self) -> bool:
        """Nothing queued or running, and no stop asked for."""
        return not (self.control.stopping or len(self.active) or len(self.queue))

    def ours(self) -> list[tuple[QueuedDownload, int]]:
        """The Downloads running or queued that the farm counts as ours (for heartbeats),
        with their bytes so far."""
        with self.lock:
            items = [(a.item, a.done) for a in self.active.all()]
        return items + [(item, 0) for item in self.queue.items() if item.leased]
