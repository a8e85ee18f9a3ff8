"""Recent warnings and errors, kept for a front end to show while they matter.

Every WARNING or ERROR that a `cdl.*` logger writes during a run is noted here (by
`ProblemHandler`), scrubbed and cut to its first line. A record logged with
`extra={"problem": key}` is a *standing* problem: it stays current until `clear(key)` (the
farm answers again, the Download is done or retried); a newer note with the same key
replaces it and counts as a repeat. Other notes stand for `FLEETING` seconds. A UI shows
the newest current one on its status line and the whole list in a log pane.

Owned data: the entries, under `ProblemLog._lock` (a leaf lock: nothing is called while
holding it). `view()` returns an immutable tuple that is rebuilt only after a change.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from cdl_tui.core.model.secrets import scrub
from cdl_tui.core.model.views import FLEETING, Problem, Severity, current_problems

__all__ = ["FLEETING", "Problem", "ProblemHandler", "ProblemLog", "Severity", "current_problems"]

LIMIT = 200  # entries kept
STANDING = 2000  # more entries kept while they still matter


class ProblemLog:
    def __init__(self, limit: int = LIMIT, clock: Callable[[], float] = time.time) -> None:
        self._limit = limit
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: list[Problem] = []  # newest first
        self._view: tuple[Problem, ...] | None = ()

    def note(
        self,
        severity: Severity,
        text: str,
        *,
        key: str | None = None,
        retry_at: float | None = None,
    ) -> None:
        text = one_line(scrub(text))
        now = self._clock()
        with self._lock:
            index = self._find(key, text)
            if index is None:
                entry = Problem(severity, text, now, now, key=key, retry_at=retry_at)
            else:
                old = self._entries.pop(index)
                entry = replace(
                    old,
                    severity=max(old.severity, severity, key=_rank),
                    text=text,
                    last_at=now,
                    count=old.count + 1,
                    retry_at=retry_at,
                )
            self._entries.insert(0, entry)
            if len(self._entries) > self._limit:
                self._trim(now)
            self._view = None

    def clear(self, key: str, *, noted_before: float | None = None) -> None:
        """The standing problem `key` is over (kept in the list, no longer current).

        `noted_before`: only if it was last noted before then (the farm answered a request
        sent at that time; a failure another thread saw after it still stands)."""
        with self._lock:
            for index, entry in enumerate(self._entries):
                if entry.key == key and entry.cleared_at is None:
                    if noted_before is not None and entry.last_at >= noted_before:
                        return
                    self._entries[index] = replace(entry, cleared_at=self._clock())
                    self._view = None
                    return

    def view(self) -> tuple[Problem, ...]:
        """Every kept problem, newest first."""
        with self._lock:
            if self._view is None:
                self._view = tuple(self._entries)
            return self._view

    def _trim(self, now: float) -> None:
        """Back to `limit` entries. Those that no longer matter go first, then fleeting
        ones (no key), oldest first, so that a flood of warnings cannot push a job's
        failure off the status line. Standing problems are kept up to STANDING more (a
        run with thousands of failed Downloads)."""

        def gone(entry: Problem) -> bool:
            return not entry.current(now)

        def fleeting(entry: Problem) -> bool:
            return entry.key is None

        for goes in (gone, fleeting):
            excess = len(self._entries) - self._limit
            if excess <= 0:
                return
            kept: list[Problem] = []
            for entry in reversed(self._entries):  # oldest first
                if excess > 0 and goes(entry):
                    excess -= 1
                    continue
                kept.append(entry)
            kept.reverse()
            self._entries = kept
        del self._entries[self._limit + STANDING :]

    def _find(self, key: str | None, text: str) -> int | None:
        """The entry a new note repeats: the standing one with its key, or (no key) the
        newest entry if it has the same text and is not cleared."""
        for index, entry in enumerate(self._entries):
            if entry.cleared_at is not None:
                continue
            if key is not None and entry.key == key:
                return index
            if key is None and entry.key is None:
                return index if entry.text == text else None
        return None


def _rank(severity: Severity) -> int:
    return 1 if severity is Severity.ERROR else 0


def one_line(text: str, limit: int = 2000) -> str:
    """The first line of `text`, at most `limit` characters (a farm may send a novel)."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


class ProblemHandler(logging.Handler):
    """Notes every WARNING and ERROR record into a ProblemLog.

    `extra={"problem": key}` makes it a standing problem; `extra={"retry_at": t}` gives the
    wall-clock time of the next try."""

    def __init__(self, problems: ProblemLog) -> None:
        super().__init__(level=logging.WARNING)
        self.problems = problems

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # a bad format string must not break the caller
            text = str(record.msg)
        severity = Severity.ERROR if record.levelno >= logging.ERROR else Severity.WARNING
        self.problems.note(
            severity,
            text,
            key=getattr(record, "problem", None),
            retry_at=getattr(record, "retry_at", None),
        )


def download_problem(download_id: str) -> str:
    """The key of a Download's standing problem (a failed attempt, a wait, giving up)."""
    return f"download {download_id}"
