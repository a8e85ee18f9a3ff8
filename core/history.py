"""What finished, newest last: the last N files and tasks, or everything of the run."""

from __future__ import annotations

from collections import deque
from itertools import islice

from .snapshot import HistoryEntry


class History:
    """Bounded (daemon mode) or unbounded (an --exit-when-done run) history.

    Not thread-safe on its own: the engine guards it with its lock.
    """

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.files: deque[HistoryEntry] = deque(maxlen=limit)
        self.tasks: deque[HistoryEntry] = deque(maxlen=limit)

    def add(self, entry: HistoryEntry) -> None:
        (self.files if entry.kind == "file" else self.tasks).append(entry)

    def recent_files(self, count: int) -> tuple[HistoryEntry, ...]:
        return tuple(islice(reversed(self.files), count))

    def recent_tasks(self, count: int) -> tuple[HistoryEntry, ...]:
        return tuple(islice(reversed(self.tasks), count))
