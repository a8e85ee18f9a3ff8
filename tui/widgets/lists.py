"""The lists of the three tabs: active Downloads and their files, pending, history."""

from __future__ import annotations

import time

from rich.text import Text

from cdl_tui.core.model.views import (
    ActiveView,
    EngineSnapshot,
    FailedView,
    HistoryEntry,
    JobView,
    PendingView,
)

from . import rows
from .virtual_list import VirtualList


class ActiveList(VirtualList):
    """One row per active Download; the selected one's files show below."""

    def __init__(self, **kwargs) -> None:
        super().__init__(empty_text="No active downloads", **kwargs)
        self.views: tuple[ActiveView, ...] = ()

    def update(self, views: tuple[ActiveView, ...]) -> None:
        selected = self.selected_id
        self.views = tuple(sorted(views, key=lambda v: (v.started_at, v.download_id)))
        self.set_row_count(len(self.views))
        ids = [v.download_id for v in self.views]
        if selected in ids:
            self.cursor = ids.index(selected)
        self.rows_changed()

    @property
    def selected(self) -> ActiveView | None:
        return self.views[self.cursor] if self.cursor < len(self.views) else None

    @property
    def selected_id(self) -> str | None:
        view = self.selected
        return view.download_id if view else None

    def row_text(self, index: int, width: int) -> Text:
        return rows.active_row(self.views[index], width)


class JobsList(VirtualList):
    """One row per job asked for: how far it is, and whether it is complete."""

    def __init__(self, **kwargs) -> None:
        super().__init__(empty_text="No jobs: the daemon takes what the farm offers", **kwargs)
        self.views: tuple[JobView, ...] = ()

    def update(self, views: tuple[JobView, ...]) -> None:
        if views == self.views:
            return
        self.views = views
        self.set_row_count(len(views))
        self.rows_changed()

    @property
    def selected(self) -> JobView | None:
        return self.views[self.cursor] if self.cursor < len(self.views) else None

    def row_text(self, index: int, width: int) -> Text:
        return rows.job_row(self.views[index], width)


class FilesList(VirtualList):
    """The files of the selected active Download, with their state and progress."""

    can_focus = False

    def __init__(self, **kwargs) -> None:
        super().__init__(empty_text="Select an active download to see its files", **kwargs)
        self.view: ActiveView | None = None
        self.paused = False

    def update(self, view: ActiveView | None) -> None:
        self.view = view
        self.paused = view is not None and view.paused
        self.set_row_count(len(view.files) if view else 0)
        self.rows_changed()

    def _line_text(self, index: int, width: int) -> Text:
        # No cursor here: the list only shows.
        if self.view is None or index >= len(self.view.files):
            return super()._line_text(index, width) if index == 0 else Text()
        text = rows.file_row(self.view.files[index], width, paused=self.paused)
        text.truncate(width, overflow="ellipsis", pad=True)
        return text


class PendingList(VirtualList):
    """What wants attention first (jobs that could not be listed; FAILED, REFUSED and
    CANCELLED Downloads), then the queue in the order it runs."""

    def __init__(self, **kwargs) -> None:
        super().__init__(empty_text="Nothing pending", **kwargs)
        self.failed_jobs: tuple[JobView, ...] = ()
        self.failed: tuple[FailedView, ...] = ()
        self.pending: tuple[PendingView, ...] = ()
        self.now = 0.0
        self.paused_all = False

    def update(self, snap: EngineSnapshot) -> None:
        selected = self.selected_key
        self.failed_jobs = tuple(job for job in snap.jobs if job.error)
        self.pending, self.failed, self.now = snap.pending, snap.failed, snap.taken_at
        self.paused_all = snap.paused
        self.set_row_count(self.attention + len(self.pending))
        if selected is not None:
            index = self.index_of(selected)
            if index is not None:
                self.cursor = index
        self.rows_changed()

    @property
    def attention(self) -> int:
        """Rows above the queue: failed jobs, then given-up Downloads."""
        return len(self.failed_jobs) + len(self.failed)

    def index_of(self, key: str) -> int | None:
        """The row of a Download (by its ID) or of a failed job ("job <id>")."""
        for index, job in enumerate(self.failed_jobs):
            if key == f"job {job.job_id}":
                return index
        for index, view in enumerate(self.failed):
            if view.download_id == key:
                return len(self.failed_jobs) + index
        for index, view in enumerate(self.pending):
            if view.download_id == key:
                return self.attention + index
        return None

    @property
    def selected_row(self) -> JobView | PendingView | FailedView | None:
        index = self.cursor
        if index < len(self.failed_jobs):
            return self.failed_jobs[index]
        index -= len(self.failed_jobs)
        if index < len(self.failed):
            return self.failed[index]
        index -= len(self.failed)
        return self.pending[index] if index < len(self.pending) else None

    @property
    def selected(self) -> PendingView | FailedView | None:
        """The selected Download (not a failed job)."""
        row = self.selected_row
        return None if isinstance(row, JobView) else row

    @property
    def selected_key(self) -> str | None:
        row = self.selected_row
        if isinstance(row, JobView):
            return f"job {row.job_id}"
        return row.download_id if row else None

    @property
    def selected_id(self) -> str | None:
        view = self.selected
        return view.download_id if view else None

    def row_text(self, index: int, width: int) -> Text:  # noqa: ARG002 - no column to fit
        if index < len(self.failed_jobs):
            job = self.failed_jobs[index]
            return rows.failed_job_row(job.job_id, job.error or "")
        index -= len(self.failed_jobs)
        if index < len(self.failed):
            return rows.failed_row(self.failed[index])
        return rows.pending_row(
            self.pending[index - len(self.failed)], self.now, paused_all=self.paused_all
        )


class HistoryList(VirtualList):
    """Finished files and tasks, newest first: this run's, and on a toggle the earlier
    runs' (from the journal), each under a separator line with its date; a text filter.

    Holds its own copy of the engine's history (new entries are fetched by serial), so a
    100,000-entry history is a list of references and a filter a list of indexes.
    """

    def __init__(self, limit: int | None = None, **kwargs) -> None:
        super().__init__(empty_text="Nothing has finished in this run yet", **kwargs)
        self.entries: list[HistoryEntry] = []  # this run, oldest first
        self.earlier: list[HistoryEntry] = []  # earlier runs, oldest first
        self.show_earlier = False
        self.run_started = 0.0
        self.now = 0.0
        self.limit = limit
        self.filter_text = ""
        self._matches: list[int] | None = None  # indexes into entries, oldest first
        self._earlier_rows: list[HistoryEntry | Text] = []  # newest first, with separators
        self._earlier_ids: set[int] = set()

    def add(self, new: list[HistoryEntry]) -> None:
        if not new:
            return
        start = len(self.entries)
        self.entries.extend(new)
        dropped = 0
        if self.limit is not None and len(self.entries) > self.limit:
            dropped = len(self.entries) - self.limit
            del self.entries[:dropped]
            start -= dropped
        if self._matches is not None:
            if dropped:
                self._matches = [i - dropped for i in self._matches if i >= dropped]
            needle = self.filter_text
            self._matches.extend(
                i for i in range(start, len(self.entries)) if needle in _haystack(self.entries[i])
            )
        self._refresh_rows(shift=len(new))

    def set_earlier(self, entries: list[HistoryEntry] | None) -> None:
        """Show these earlier runs' entries (oldest first) below this run's; None hides them."""
        self.show_earlier = entries is not None
        self.earlier = entries or []
        self._earlier_ids = {id(entry) for entry in self.earlier}
        self._rebuild_earlier()
        self.cursor = 0
        self._painted.clear()
        self._refresh_rows(shift=0)
        self.refresh()

    def set_filter(self, text: str) -> None:
        self.filter_text = text.strip().lower()
        if self.filter_text:
            needle = self.filter_text
            self._matches = [i for i, e in enumerate(self.entries) if needle in _haystack(e)]
        else:
            self._matches = None
        self._rebuild_earlier()
        self.cursor = 0
        self._painted.clear()
        self._refresh_rows(shift=0)
        self.refresh()

    def _rebuild_earlier(self) -> None:
        rows: list[HistoryEntry | Text] = []
        run: float | None = None
        needle = self.filter_text
        for entry in reversed(self.earlier):
            if needle and needle not in _haystack(entry):
                continue
            if entry.run_started != run:
                run = entry.run_started
                rows.append(run_separator(run, entry))
            rows.append(entry)
        self._earlier_rows = rows

    def of_earlier_run(self, entry: HistoryEntry) -> bool:
        """Is this one of the earlier runs' entries? (Their download IDs may be this run's
        too: the farm offers a Download again after a failure.)"""
        return id(entry) in self._earlier_ids

    @property
    def shown(self) -> int:
        """Entries of this run shown (all, or those the filter keeps)."""
        return len(self.entries) if self._matches is None else len(self._matches)

    @property
    def shown_earlier(self) -> int:
        return sum(1 for row in self._earlier_rows if isinstance(row, HistoryEntry))

    @property
    def _top(self) -> int:
        """A separator line above this run's entries while earlier runs are shown."""
        return 1 if self.show_earlier else 0

    def _refresh_rows(self, shift: int) -> None:
        # Newest first: new entries push the others down; keep the cursor on its entry.
        if self.cursor and shift:
            self.cursor += shift
        self.set_row_count(self._top + self.shown + len(self._earlier_rows))
        self.rows_changed()

    def entry(self, index: int) -> HistoryEntry | None:
        """The entry on row `index`; None on a separator line."""
        row = self._row(index)
        return row if isinstance(row, HistoryEntry) else None

    def _row(self, index: int) -> HistoryEntry | Text:
        if index < self._top:
            return this_run_separator(self.run_started, self.shown)
        index -= self._top
        if index < self.shown:
            position = self.shown - 1 - index
            return self.entries[position if self._matches is None else self._matches[position]]
        return self._earlier_rows[index - self.shown]

    def row_text(self, index: int, width: int) -> Text:
        row = self._row(index)
        if isinstance(row, Text):
            line = row.copy()
            line.append(" " + "─" * max(0, width - line.cell_len - 1), style="dim")
            return line
        return rows.history_row(row, width, self.now)


def this_run_separator(run_started: float, count: int) -> Text:
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run_started))
    return Text(f"── this run, since {since}: {count} entries", style="bold dim")


def run_separator(run_started: float, newest: HistoryEntry) -> Text:
    """The line above an earlier run's entries (its newest entry comes first)."""
    if not run_started:
        ended = time.strftime("%Y-%m-%d %H:%M", time.localtime(newest.finished_at))
        return Text(f"── an earlier run, ended {ended}", style="bold dim")
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run_started))
    return Text(f"── run of {started}", style="bold dim")


def _haystack(entry: HistoryEntry) -> str:
    return (
        f"{entry.outcome.value} {entry.job_id}:{entry.task_id} {entry.path} {entry.reason} "
        f"{entry.download_id}"
    ).lower()
