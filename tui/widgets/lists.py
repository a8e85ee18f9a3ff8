"""The lists of the three tabs: active Downloads and their files, pending, history."""

from __future__ import annotations

from rich.text import Text

from cdl_tui.core.snapshot import ActiveView, FailedView, HistoryEntry, PendingView

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


class FilesList(VirtualList):
    """The files of the selected active Download, with their state and progress."""

    can_focus = False

    def __init__(self, **kwargs) -> None:
        super().__init__(empty_text="Select an active download to see its files", **kwargs)
        self.view: ActiveView | None = None

    def update(self, view: ActiveView | None) -> None:
        self.view = view
        self.set_row_count(len(view.files) if view else 0)
        self.rows_changed()

    def _line_text(self, index: int, width: int) -> Text:
        # No cursor here: the list only shows.
        if self.view is None or index >= len(self.view.files):
            return super()._line_text(index, width) if index == 0 else Text()
        text = rows.file_row(self.view.files[index], width)
        text.truncate(width, overflow="ellipsis", pad=True)
        return text


class PendingList(VirtualList):
    """FAILED, CANCELLED and REFUSED Downloads first (they want attention), then the queue."""

    def __init__(self, **kwargs) -> None:
        super().__init__(empty_text="Nothing pending", **kwargs)
        self.failed: tuple[FailedView, ...] = ()
        self.pending: tuple[PendingView, ...] = ()
        self.now = 0.0

    def update(
        self, pending: tuple[PendingView, ...], failed: tuple[FailedView, ...], now: float
    ) -> None:
        selected = self.selected_id
        self.pending, self.failed, self.now = pending, failed, now
        self.set_row_count(len(failed) + len(pending))
        if selected is not None:
            index = self.index_of(selected)
            if index is not None:
                self.cursor = index
        self.rows_changed()

    def index_of(self, download_id: str) -> int | None:
        for index, view in enumerate(self.failed):
            if view.download_id == download_id:
                return index
        for index, view in enumerate(self.pending):
            if view.download_id == download_id:
                return len(self.failed) + index
        return None

    @property
    def selected(self) -> PendingView | FailedView | None:
        if self.cursor < len(self.failed):
            return self.failed[self.cursor]
        index = self.cursor - len(self.failed)
        return self.pending[index] if index < len(self.pending) else None

    @property
    def selected_id(self) -> str | None:
        view = self.selected
        return view.download_id if view else None

    def row_text(self, index: int, width: int) -> Text:  # noqa: ARG002 - no column to fit
        if index < len(self.failed):
            return rows.failed_row(self.failed[index])
        return rows.pending_row(self.pending[index - len(self.failed)], self.now)


class HistoryList(VirtualList):
    """Finished files and tasks, newest first, with a text filter.

    Holds its own copy of the engine's history (new entries are fetched by serial), so a
    100,000-entry history is a list of references and a filter a list of indexes.
    """

    def __init__(self, limit: int | None = None, **kwargs) -> None:
        super().__init__(empty_text="Nothing has finished yet", **kwargs)
        self.entries: list[HistoryEntry] = []  # oldest first
        self.limit = limit
        self.filter_text = ""
        self._matches: list[int] | None = None  # indexes into entries, oldest first

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

    def set_filter(self, text: str) -> None:
        self.filter_text = text.strip().lower()
        if self.filter_text:
            needle = self.filter_text
            self._matches = [i for i, e in enumerate(self.entries) if needle in _haystack(e)]
        else:
            self._matches = None
        self.cursor = 0
        self._painted.clear()
        self._refresh_rows(shift=0)
        self.refresh()

    @property
    def shown(self) -> int:
        return len(self.entries) if self._matches is None else len(self._matches)

    def _refresh_rows(self, shift: int) -> None:
        # Newest first: new entries push the others down; keep the cursor on its entry.
        if self.cursor and shift:
            self.cursor += shift
        self.set_row_count(self.shown)
        self.rows_changed()

    def entry(self, index: int) -> HistoryEntry:
        position = self.shown - 1 - index
        return self.entries[position if self._matches is None else self._matches[position]]

    def row_text(self, index: int, width: int) -> Text:
        return rows.history_row(self.entry(index), width)


def _haystack(entry: HistoryEntry) -> str:
    return (
        f"{entry.outcome.value} {entry.job_id}:{entry.task_id} {entry.path} {entry.reason} "
        f"{entry.download_id}"
    ).lower()
