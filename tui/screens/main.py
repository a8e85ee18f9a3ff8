"""The main screen: header, status line, the Active / Pending / History tabs, the key bar.

It renders `engine.snapshot()` (polled by the app's timer) and drives the engine only
through its commands. Every answer to a key goes to the status line as a notice that the
next one replaces, so a burst of `+` leaves one line, not a stack of toasts.
"""

from __future__ import annotations

import gc
import time
from typing import TYPE_CHECKING, ClassVar, Protocol

from rich.console import RenderableType
from textual import on
from textual.binding import Binding, BindingType
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Input, Static, TabbedContent, TabPane

from cdl_tui.core.model.events import EventBus
from cdl_tui.core.model.frames import FramesView
from cdl_tui.core.model.jobspec import JobSpec
from cdl_tui.core.model.states import Outcome
from cdl_tui.core.model.views import (
    ActiveView,
    DownloadDetail,
    EngineSnapshot,
    FailedView,
    HistoryEntry,
    JobView,
    PendingView,
    current_problems,
)
from cdl_tui.tui import detail as describe
from cdl_tui.tui.summary import size
from cdl_tui.tui.widgets import rows
from cdl_tui.tui.widgets.header import HeaderBar, header_lines
from cdl_tui.tui.widgets.keybar import KeyBar, KeyHint
from cdl_tui.tui.widgets.lists import ActiveList, FilesList, HistoryList, JobsList, PendingList
from cdl_tui.tui.widgets.status import NOTICE_SECONDS, Notice, StatusLine, status_text

from .modals import AddJobScreen, BandwidthScreen, ConfirmScreen, HelpScreen, TextScreen

if TYPE_CHECKING:
    from collections.abc import Callable

FREEZE_EVERY = 10_000  # history entries between gc.freeze() calls
PREVIOUS_HISTORY = 10_000  # entries of earlier runs shown in the History tab
FRAMES_AT_ONCE = 2_000  # Downloads of a job whose frames are gathered on the UI thread


class EngineLike(Protocol):
    """What the app needs from the engine (core.engine.Engine provides it)."""

    bus: EventBus

    def snapshot(self) -> EngineSnapshot: ...
    def history_since(self, serial: int) -> tuple[list[HistoryEntry], int]: ...
    def details(self, download_id: str) -> DownloadDetail | None: ...
    def frames(self, job_id: str) -> FramesView | None: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def pause_download(self, download_id: str, paused: bool = True) -> bool: ...
    def cancel(self, download_id: str) -> bool: ...
    def retry(self, download_id: str) -> bool: ...
    def retry_failed(self) -> int: ...
    def move_to_top(self, download_id: str) -> bool: ...
    def add_jobs(self, specs: list[JobSpec]) -> list[JobSpec]: ...
    def set_threads(self, count: int) -> int: ...
    def set_bandwidth(self, bytes_per_second: float | None) -> None: ...
    def previous_history(self, limit: int) -> list[HistoryEntry]: ...
    def stop(self, reason: str = "stopped", exit_code: int | None = None) -> None: ...
    @property
    def stopping(self) -> bool: ...


def _steady(field: Input) -> Input:
    """No blinking cursor: every blink is a repaint, and bytes count over SSH."""
    field.cursor_blink = False
    return field


# (action, title, help) for the command palette: every action of the screen, by name.
COMMANDS: list[tuple[str, str, str]] = [
    ("toggle_pause", "Pause or resume everything", "p: transfers stop at their next chunk"),
    ("toggle_pause_selected", "Pause or resume the selected download", "space"),
    ("show_details", "Details of the selected row", "Enter: reason, attempts, paths, IDs"),
    ("cancel_selected", "Cancel the selected download", "c: the farm gets it back as pending"),
    ("retry_selected", "Retry the selected failed download", "r (Pending tab)"),
    ("retry_all", "Retry every failed download", "R"),
    ("move_to_top", "Move the selected pending download to the top", "t (Pending tab)"),
    ("add_job", "Add jobs", "a: e.g. 08285 08286:1-10"),
    ("threads(1)", "One more download thread", "+"),
    ("threads(-1)", "One fewer download thread", "-"),
    ("bandwidth", "Set the bandwidth limit", "b: e.g. 40MB/s; 0 for none"),
    ("show_tab('active')", "Show the Active tab", "1"),
    ("show_tab('pending')", "Show the Pending tab", "2"),
    ("show_tab('history')", "Show the History tab", "3"),
    ("show_tab('jobs')", "Show the Jobs tab", "4: each job, and Enter: its frames"),
    ("filter", "Filter the history", "/: Enter applies, Escape clears"),
    ("toggle_earlier", "Show or hide earlier runs in History", "e: from the journal"),
    ("show_log", "Show recent warnings and errors", "l"),
    ("help", "Show every key", "?"),
    ("request_quit", "Quit", "q: downloads stop cleanly and go back to the farm"),
]


class MainScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "toggle_pause", "Pause all", id="pause-all"),
        Binding("space", "toggle_pause_selected", "Pause", id="pause-one"),
        Binding("enter", "show_details", "Details", id="details"),
        Binding("t", "move_to_top", "To top", id="to-top"),
        Binding("c", "cancel_selected", "Cancel", id="cancel"),
        Binding("r", "retry_selected", "Retry", id="retry"),
        Binding("R", "retry_all", "Retry all", id="retry-all"),
        Binding("a", "add_job", "Add", id="add-job"),
        Binding("plus,+,equals_sign", "threads(1)", "+thread", id="threads-up"),
        Binding("minus,-", "threads(-1)", "-thread", id="threads-down"),
        Binding("b", "bandwidth", "Limit", id="bandwidth"),
        Binding("1", "show_tab('active')", "Active", id="tab-active"),
        Binding("2", "show_tab('pending')", "Pending", id="tab-pending"),
        Binding("3", "show_tab('history')", "History", id="tab-history"),
        Binding("4", "show_tab('jobs')", "Jobs", id="tab-jobs"),
        Binding("tab", "next_tab", "Next tab", id="tab-next", priority=True),
        Binding("slash", "filter", "Filter", id="filter"),
        Binding("e", "toggle_earlier", "Earlier runs", id="earlier"),
        Binding("l", "show_log", "Log", id="log"),
        Binding("question_mark", "help", "Help", id="help"),
        Binding("q", "request_quit", "Quit", id="quit"),
        Binding("ctrl+c", "request_quit", "Quit", id="quit-ctrl-c", priority=True),
    ]
    TABS = ("active", "pending", "history", "jobs")

    def __init__(self, engine: EngineLike, history_limit: int | None) -> None:
        super().__init__()
        self.engine = engine
        self.history_limit = history_limit
        self.snap: EngineSnapshot | None = None
        self.notice: Notice | None = None
        self._jobs_done: list[str] = []  # merged into one notice while it shows
        self._history_serial = 0
        self._tab_labels: dict[str, str] = {}
        self._statics: dict[str, str] = {}
        self._unfrozen = 0
        self.ready = False  # composed and mounted: the timer may refresh it

    def compose(self):  # type: ignore[override] - a generator of widgets
        yield HeaderBar(id="header")
        yield StatusLine(id="status")
        with TabbedContent(initial="active", id="tabs"):
            with TabPane("Active", id="active"):
                yield Static(rows.active_header(100), classes="columns", id="active-columns")
                yield ActiveList(id="active-list")
                yield Static("", id="files-title")
                yield Static(rows.files_header(), classes="columns")
                yield FilesList(id="files-list")
            with TabPane("Pending", id="pending"):
                yield Static(rows.pending_header(), classes="columns")
                yield PendingList(id="pending-list")
            with TabPane("History", id="history"):
                yield _steady(
                    Input(
                        placeholder="filter the history: text, then Enter (Escape clears)",
                        id="history-filter",
                    )
                )
                yield Static(rows.history_header(), classes="columns")
                yield HistoryList(limit=self.history_limit, id="history-list")
            with TabPane("Jobs", id="jobs"):
                yield Static(rows.jobs_header(), classes="columns", id="jobs-columns")
                yield JobsList(id="jobs-list")
        yield KeyBar(id="keys")

    def on_mount(self) -> None:
        self.ready = True
        self.query_one(ActiveList).focus()
        self.refresh_from_engine()

    def on_screen_suspend(self) -> None:
        """A dialog opened over this screen: the key bar says so at once, not at the next
        tick (the picture would depend on the timer)."""
        self._show_keys()

    def on_screen_resume(self) -> None:
        if self.ready:
            self.refresh_from_engine()

    def on_resize(self) -> None:
        self.query_one("#active-columns", Static).update(rows.active_header(self.size.width - 1))
        self.query_one("#jobs-columns", Static).update(rows.jobs_header(self.size.width - 1))

    # -- from the engine -------------------------------------------------------------------

    def refresh_from_engine(self) -> None:
        try:
            self._refresh_from_engine()
        except NoMatches:  # the app is closing: its widgets are already gone
            pass

    def _refresh_from_engine(self) -> None:
        snap = self.engine.snapshot()
        self.snap = snap
        width = self.size.width
        self.query_one(HeaderBar).show_lines(header_lines(snap, width))
        if self.notice is not None and time.monotonic() >= self.notice.until:
            self.notice = None
            self._jobs_done.clear()
        self.query_one(StatusLine).show_lines([status_text(snap, self.notice, width)])
        active = self.query_one(ActiveList)
        active.update(snap.active)
        selected = active.selected
        self.query_one(FilesList).update(selected)
        title = (
            f" Files of {selected.job_id}:{selected.task_id} ({len(selected.files)}) "
            f"- attempt {selected.attempt}" + (" - PAUSED" if selected.paused else "")
            if selected
            else " Files"
        )
        self._set_static("#files-title", title)
        self.query_one(PendingList).update(snap)
        history = self.query_one(HistoryList)
        history.now = snap.taken_at
        if snap.history_serial != self._history_serial:
            new, self._history_serial = self.engine.history_since(self._history_serial)
            history.add(new)
            self._unfrozen += len(new)
            if self._unfrozen >= FREEZE_EVERY:
                # History entries live long and hold no cycles. Moving them out of the
                # cyclic GC's sight keeps its full collections (which would scan 100,000
                # entries) from stalling a key press; reference counting still frees them.
                gc.freeze()
                self._unfrozen = 0
        history.run_started = snap.taken_at - snap.uptime
        self.query_one(JobsList).update(snap.jobs)
        self._label("active", f"Active ({len(snap.active)})")
        self._label("pending", pending_label(snap))
        self._label("history", history_label(history))
        self._label("jobs", jobs_label(snap.jobs))
        self._show_keys()

    def _set_static(self, selector: str, text: str) -> None:
        """Update a Static only if its text changes (an update repaints it whole)."""
        if self._statics.get(selector) != text:
            self._statics[selector] = text
            self.query_one(selector, Static).update(text)

    def _label(self, pane: str, text: str) -> None:
        if self._tab_labels.get(pane) != text:
            self._tab_labels[pane] = text
            self.query_one(TabbedContent).get_tab(pane).label = text

    @on(ActiveList.Highlighted)
    @on(PendingList.Highlighted)
    def _moved(self) -> None:
        self.refresh_from_engine()

    # -- the status line and the key bar ---------------------------------------------------

    def say(self, text: str, severity: str = "information", key: str = "") -> None:
        """Answer a command on the status line; it replaces the notice before it."""
        self.notice = Notice(text, severity, time.monotonic() + NOTICE_SECONDS, key, time.time())
        self.refresh_from_engine()

    def job_done(self, job_id: str, downloads: int, failed: int) -> None:
        """Jobs finishing close together share one notice. A job that could not be listed
        at all is not "done": its error is on the status line already."""
        if not downloads and failed:
            return
        if self.notice is None or self.notice.key != "job-done":
            self._jobs_done.clear()
        self._jobs_done.append(job_id + (" (failures)" if failed else ""))
        if len(self._jobs_done) == 1:
            text = f"Job {job_id} done: {downloads} downloads"
            text += f", {failed} failed (Pending tab)" if failed else ""
        else:
            text = f"Jobs done: {', '.join(self._jobs_done)}"
        self.say(text, "error" if failed else "information", key="job-done")

    def _show_keys(self) -> None:
        bar = self.query_one(KeyBar)
        if self.app.screen is not self:  # a dialog or the palette is open: its keys rule
            bar.show_hints([], (KeyHint("esc", "Close", 0),))
            return
        if isinstance(self.focused, Input):
            bar.show_hints(
                [KeyHint("⏎", "Apply filter", 1)],
                (KeyHint("esc", "Clear", 0), KeyHint("^c", "Quit", 0)),
            )
            return
        bar.show_hints(self.key_hints())

    def key_hints(self) -> list[KeyHint]:
        """The keys that do something in the current state, most useful first by priority."""
        snap = self.snap
        if snap is None:
            return []
        tab = self.current_tab
        row = self._selected_row()
        hints = [KeyHint("p", "Resume" if snap.paused else "Pause all", 1)]
        if row is not None:
            hints.append(KeyHint("⏎", "Details", 2))
        if isinstance(row, ActiveView | PendingView):
            paused = row.paused if isinstance(row, ActiveView) else row.held
            if not snap.paused:
                hints.append(KeyHint("space", "Resume" if paused else "Pause", 4))
            hints.append(KeyHint("c", "Cancel", 4))
        if isinstance(row, PendingView):
            hints.append(KeyHint("t", "To top", 5))
        if isinstance(row, FailedView) and row.download_id:
            hints.append(KeyHint("r", "Retry", 2))
        if snap.failed:
            hints.append(KeyHint("R", "Retry all", 3))
        hints += [
            KeyHint("a", "Add", 6),
            KeyHint("+/-", "Threads", 7),
            KeyHint("b", "Limit", 8),
            KeyHint("1-4", "Tabs", 6),
            KeyHint("/", "Filter", 3 if tab == "history" else 7),
        ]
        if tab == "history":
            earlier = self.query_one(HistoryList).show_earlier
            hints.append(KeyHint("e", "This run" if earlier else "Earlier runs", 4))
        problems = current_problems(snap.problems, snap.taken_at)
        hints.append(KeyHint("l", "Log", 2 if problems else 7))
        hints.append(KeyHint("^p", "Commands", 9))
        return hints

    # -- selection -------------------------------------------------------------------------

    @property
    def current_tab(self) -> str:
        return self.query_one(TabbedContent).active

    def _selected_row(
        self,
    ) -> ActiveView | PendingView | FailedView | JobView | HistoryEntry | None:
        tab = self.current_tab
        if tab == "active":
            return self.query_one(ActiveList).selected
        if tab == "pending":
            return self.query_one(PendingList).selected_row
        if tab == "jobs":
            return self.query_one(JobsList).selected
        history = self.query_one(HistoryList)
        return history.entry(history.cursor) if history.row_count else None

    def _selected(self) -> tuple[str, ActiveView | PendingView | FailedView] | None:
        """(tab, view) of the selected Download in the Active or Pending tab, if any."""
        row = self._selected_row()
        if isinstance(row, ActiveView | PendingView | FailedView):
            return self.current_tab, row
        return None

    # -- actions ---------------------------------------------------------------------------

    def action_toggle_pause(self) -> None:
        if self.engine.snapshot().paused:
            self.engine.resume()
            self.say("Resumed", key="pause")
        else:
            self.engine.pause()
            self.say(
                "Paused everything: transfers stop at their next chunk (p resumes)", key="pause"
            )

    def action_toggle_pause_selected(self) -> None:
        selected = self._selected()
        if selected is None:
            self.say("Select a download first", "warning")
            return
        _, view = selected
        if isinstance(view, FailedView):
            self.say("A failed download is not running: r retries it", "warning")
            return
        if self.engine.snapshot().paused:
            self.say("Everything is paused: p resumes", "warning")
            return
        paused = view.paused if isinstance(view, ActiveView) else view.held
        self.engine.pause_download(view.download_id, not paused)
        what = f"{view.job_id}:{view.task_id}"
        self.say(f"{'Resumed' if paused else 'Paused'} {what}", key="pause-one")

    def action_show_details(self) -> None:
        row = self._selected_row()
        if row is None:
            self.say("Nothing selected", "warning")
            return
        if isinstance(row, JobView):
            self._show_job(row)
            return
        title, body = self._details_of(row)
        self.app.push_screen(TextScreen(title, body, "arrows scroll · Escape closes"))

    def _details_of(self, row: object) -> tuple[str, RenderableType]:
        if isinstance(row, JobView):
            return f"Job {row.job_id}", describe.job_body(row)
        if isinstance(row, HistoryEntry) and self.query_one(HistoryList).of_earlier_run(row):
            return f"{row.kind.title()} {row.job_id}:{row.task_id}", describe.history_body(row)
        download_id = getattr(row, "download_id", None)
        detail = self.engine.details(download_id) if download_id else None
        if detail is not None:
            return f"Download {detail.job_id}:{detail.task_id}", describe.detail_body(detail)
        if isinstance(row, HistoryEntry):
            return f"{row.kind.title()} {row.job_id}:{row.task_id}", describe.history_body(row)
        if isinstance(row, FailedView):
            return f"Download {row.job_id}:{row.task_id}", describe.failed_body(row)
        if isinstance(row, PendingView):
            return f"Download {row.job_id}:{row.task_id}", describe.pending_body(row)
        return "Details", "This download has finished and its details are gone."

    def _show_job(self, job: JobView) -> None:
        """A job and its frame sequences. The sequences of a big job take a moment to
        gather: they come from a thread, and the screen says so meanwhile."""
        hint = "arrows scroll · Escape closes"
        if job.listed <= FRAMES_AT_ONCE:
            body = describe.job_body(job, self.engine.frames(job.job_id))
            self.app.push_screen(TextScreen(f"Job {job.job_id}", body, hint))
            return
        screen = TextScreen(f"Job {job.job_id}", describe.job_body(job, gathering=True), hint)
        self.app.push_screen(screen)

        def gather() -> None:
            frames = self.engine.frames(job.job_id)
            if screen.is_attached:
                self.app.call_from_thread(screen.set_body, describe.job_body(job, frames))

        self.run_worker(gather, thread=True, exclusive=True, group="job-frames")

    def action_show_log(self) -> None:
        snap = self.engine.snapshot()
        self.app.push_screen(
            TextScreen(
                f"Warnings and errors ({len(snap.problems)}, newest first)",
                describe.log_body(snap.problems, snap.taken_at),
                "arrows scroll · Escape closes · the log file has every line",
            )
        )

    def action_move_to_top(self) -> None:
        selected = self._selected()
        if selected is None or not isinstance(selected[1], PendingView):
            self.say("Select a pending download (Pending tab) to move it up", "warning")
            return
        self.engine.move_to_top(selected[1].download_id)
        self.refresh_from_engine()
        pending = self.query_one(PendingList)
        pending.move_cursor(pending.attention, announce=False)
        self.say(f"{selected[1].job_id}:{selected[1].task_id} runs next", key="to-top")

    def action_cancel_selected(self) -> None:
        selected = self._selected()
        if selected is None or isinstance(selected[1], FailedView):
            self.say("Select an active or pending download to cancel", "warning")
            return
        view = selected[1]
        download_id = view.download_id
        what = f"{view.job_id}:{view.task_id}"

        def answered(yes: bool | None) -> None:
            if yes and self.engine.cancel(download_id):
                self.say(f"Cancelled {what}: given back to the farm")
            self.refresh_from_engine()

        self.app.push_screen(
            ConfirmScreen(
                f"Cancel {what}? It stops now, its temp files are removed, "
                "and the farm gets it back as pending.",
                yes="cancel it",
                no="keep it",
            ),
            answered,
        )

    def action_retry_selected(self) -> None:
        selected = self._selected()
        if selected is None or not isinstance(selected[1], FailedView):
            self.say("Select a failed download in the Pending tab (R retries all)", "warning")
            return
        view = selected[1]
        if view.download_id and self.engine.retry(view.download_id):
            self.say(f"Retrying {view.job_id}:{view.task_id}")
        else:
            self.say("That one cannot be retried (the farm's description was unusable)", "warning")

    def action_retry_all(self) -> None:
        count = self.engine.retry_failed()
        self.say(f"Retrying {count} downloads" if count else "Nothing to retry", key="retry")

    def action_add_job(self) -> None:
        def added(specs: list[JobSpec] | None) -> None:
            if not specs:
                return
            new = self.engine.add_jobs(specs)
            if new:
                self.say("Added " + ", ".join(str(s.job_id) for s in new))
            else:
                self.say("Those jobs are already being downloaded", "warning")

        self.app.push_screen(AddJobScreen(), added)

    def action_bandwidth(self) -> None:
        def chosen(rate: float | bool | None) -> None:
            if rate is False:
                return
            self.engine.set_bandwidth(rate)  # type: ignore[arg-type]
            self.say(f"Bandwidth limit: {size(rate)}/s" if rate else "No bandwidth limit")

        self.app.push_screen(BandwidthScreen(self.engine.snapshot().bandwidth_limit), chosen)

    def action_threads(self, delta: int) -> None:
        snap = self.engine.snapshot()
        count = self.engine.set_threads(snap.threads + delta)
        self.say(f"{count} download threads", key="threads")

    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        self._focus_tab(tab)
        self.refresh_from_engine()

    def action_next_tab(self) -> None:
        if isinstance(self.focused, Input):
            return
        index = self.TABS.index(self.current_tab)
        self.action_show_tab(self.TABS[(index + 1) % len(self.TABS)])

    def _focus_tab(self, tab: str) -> None:
        target = {
            "active": ActiveList,
            "pending": PendingList,
            "history": HistoryList,
            "jobs": JobsList,
        }[tab]
        self._focus_now(self.query_one(target))

    def _focus_now(self, widget: Widget) -> None:
        """Focus at once, not after the keys already queued: a burst such as `3/b` must
        type its `b` into the filter that `/` opened, not run the `b` binding."""
        self.set_focus(widget)

    @on(TabbedContent.TabActivated)
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if isinstance(self.focused, Input):  # the filter was opened meanwhile: keep it
            return
        if event.pane.id:
            self._focus_tab(event.pane.id)

    def action_filter(self) -> None:
        field = self.query_one("#history-filter", Input)
        field.add_class("shown")
        self.query_one(TabbedContent).active = "history"
        self._focus_now(field)
        self._show_keys()

    @on(Input.Submitted, "#history-filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        history = self.query_one(HistoryList)
        history.set_filter(event.value)
        if not event.value.strip():
            event.input.remove_class("shown")
        self._focus_now(history)
        self.refresh_from_engine()

    def key_escape(self) -> None:
        field = self.query_one("#history-filter", Input)
        if field.has_class("shown"):
            field.value = ""
            field.remove_class("shown")
            history = self.query_one(HistoryList)
            history.set_filter("")
            self._focus_now(history)
            self.refresh_from_engine()

    def action_toggle_earlier(self) -> None:
        history = self.query_one(HistoryList)
        if history.show_earlier:
            history.set_earlier(None)
            self.say("History: this run only (e shows earlier runs)", key="earlier")
        else:
            earlier = self.engine.previous_history(PREVIOUS_HISTORY)
            history.set_earlier(earlier)
            self.say(
                f"History: this run and {len(earlier)} entries of earlier runs (e hides them)",
                key="earlier",
            )
        self.action_show_tab("history")

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen())

    def action_request_quit(self) -> None:
        quit_now: Callable[[], None] = getattr(self.app, "quit_gracefully", self.app.exit)
        active = len(self.engine.snapshot().active)
        if not active:
            quit_now()
            return
        self.app.push_screen(
            ConfirmScreen(
                f"{active} download{'s are' if active > 1 else ' is'} active. Quit? "
                "Transfers stop cleanly and go back to the farm as pending.",
                yes="quit",
                no="keep downloading",
            ),
            lambda yes: quit_now() if yes else None,
        )


def pending_label(snap: EngineSnapshot) -> str:
    """ "Pending (42, 3 failed, 1 cancelled)": failed is the run's one count of failures."""
    label = f"Pending ({len(snap.pending)}"
    if snap.totals.failed:
        label += f", {snap.totals.failed} failed"
    cancelled = sum(1 for f in snap.failed if f.outcome is Outcome.CANCELLED)
    if cancelled:
        label += f", {cancelled} cancelled"
    return label + ")"


def history_label(history: HistoryList) -> str:
    """`History (320)`; `History (last 100)` when history_size keeps only the newest."""
    kept = len(history.entries)
    total = f"last {kept}" if history.limit is not None and kept >= history.limit else str(kept)
    shown = f"{history.shown}/{total}" if history.filter_text else total
    if history.show_earlier:
        shown += f" + {history.shown_earlier} earlier"
    return f"History ({shown})"


def jobs_label(jobs: tuple[JobView, ...]) -> str:
    """`Jobs (3, 1 incomplete)`: how many, and how many need a look."""
    label = f"Jobs ({len(jobs)}"
    needs = sum(1 for job in jobs if job.state in ("INCOMPLETE", "FAILED"))
    return label + (f", {needs} incomplete)" if needs else ")")
