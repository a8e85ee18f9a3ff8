"""What finished: the last N files and tasks, or everything of the run.

Entries are kept three ways: files and tasks apart (the headless summary prints the last 20
of each) and together in finishing order, numbered by a serial that only grows, so a UI can
ask for just what is new since it last looked (`since`).
"""

from __future__ import annotations

from collections import deque
from itertools import islice

from cdl_tui.core.model.views import HistoryEntry


class History:
    """Bounded (daemon mode) or unbounded (an --exit-when-done run) history.

    Not thread-safe on its own: the engine guards it with its lock.
    """

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.files: deque[HistoryEntry] = deque(maxlen=limit)
        self.tasks: deque[HistoryEntry] = deque(maxlen=limit)
        self.entries: deque[HistoryEntry] = deque(maxlen=2 * limit if limit else None)
        self.serial = 0  # entries ever added

    def add(self, entry: HistoryEntry) -> None:
        (self.files if entry.kind == "file" else self.tasks).append(entry)
        self.entries.append(entry)
        self.serial += 1

    def since(self, serial: int) -> list[HistoryEntry]:
        """Entries added after `serial` (as many as are still kept), oldest first."""
        new = min(self.serial - serial, len(self.entries))
        if new <= 0:
            return []
        return list(islice(self.entries, len(self.entries) - new, None))

    def recent_files(self, count: int) -> tuple[HistoryEntry, ...]:
        return tuple(islice(reversed(self.files), count))

    def recent_tasks(self, count: int) -> tuple[HistoryEntry, ...]:
        return tuple(islice(reversed(self.tasks), count))
