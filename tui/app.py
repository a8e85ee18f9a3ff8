"""The full-screen app: Active / Pending / History, live from the engine, steered by keys.

The engine runs in its own threads. Its lifecycle events arrive with `post_message`;
progress is read by polling `engine.snapshot()` on a timer (4 Hz, 2 Hz over SSH), and only
the rows and header lines whose text changed are repainted. The app owns no download logic.
"""

from __future__ import annotations

import asyncio
import gc
import io
import os
import signal
import sys
import termios
from collections.abc import Iterable, Iterator
from typing import ClassVar, Protocol

from rich.color import ColorSystem
from rich.console import Console
from rich.segment import Segment, Segments
from rich.style import Style
from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.css.query import NoMatches
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Input, Static, TabbedContent, TabPane

from cdl_tui.core.events import EngineDrained, Event, EventBus, JobDone
from cdl_tui.core.jobspec import JobSpec
from cdl_tui.core.snapshot import EngineSnapshot, FailedView, HistoryEntry, PendingView

from . import terminal_bytes
from .screens.modals import AddJobScreen, BandwidthScreen, ConfirmScreen, HelpScreen
from .summary import size
from .widgets import rows
from .widgets.header import HeaderBar, header_lines
from .widgets.lists import ActiveList, FilesList, HistoryList, PendingList

DEFAULT_HZ = 4.0
FREEZE_EVERY = 10_000  # history entries between gc.freeze() calls
PREVIOUS_HISTORY = 10_000  # entries of earlier runs shown in the History tab
SSH_HZ = 2.0


class EngineLike(Protocol):
    """What the app needs from the engine (core.engine.Engine provides it)."""

    bus: EventBus

    def snapshot(self) -> EngineSnapshot: ...
    def history_since(self, serial: int) -> tuple[list[HistoryEntry], int]: ...
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


def default_refresh_hz(environ: dict[str, str] | os._Environ[str] = os.environ) -> float:
    return SSH_HZ if environ.get("SSH_CONNECTION") else DEFAULT_HZ


def _steady(field: Input) -> Input:
    """No blinking cursor: every blink is a repaint, and bytes count over SSH."""
    field.cursor_blink = False
    return field


class EngineEvent(Message):
    """A lifecycle event from the engine's dispatcher thread."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


class MainScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "toggle_pause", "Pause all", id="pause-all"),
        Binding("space", "toggle_pause_selected", "Pause", id="pause-one"),
        Binding("t", "move_to_top", "To top", id="to-top", show=False),
        Binding("c", "cancel_selected", "Cancel", id="cancel"),
        Binding("r", "retry_selected", "Retry", id="retry"),
        Binding("R", "retry_all", "Retry all", id="retry-all", show=False),
        Binding("a", "add_job", "Add", id="add-job"),
        Binding("plus,+,equals_sign", "threads(1)", "+thread", id="threads-up", show=False),
        Binding("minus,-", "threads(-1)", "-thread", id="threads-down", show=False),
        Binding("b", "bandwidth", "Limit", id="bandwidth", show=False),
        Binding("1", "show_tab('active')", "Active", id="tab-active", show=False),
        Binding("2", "show_tab('pending')", "Pending", id="tab-pending", show=False),
        Binding("3", "show_tab('history')", "History", id="tab-history", show=False),
        Binding("tab", "next_tab", "Next tab", id="tab-next", show=False, priority=True),
        Binding("slash", "filter", "Filter", id="filter"),
        Binding("question_mark", "help", "Help", id="help"),
        Binding("q", "request_quit", "Quit", id="quit"),
        Binding("ctrl+c", "request_quit", "Quit", id="quit-ctrl-c", show=False, priority=True),
    ]
    TABS = ("active", "pending", "history")

    def __init__(self, engine: EngineLike, history_limit: int | None) -> None:
        super().__init__()
        self.engine = engine
        self.history_limit = history_limit
        self.snap: EngineSnapshot | None = None
        self._history_serial = 0
        self._tab_labels: dict[str, str] = {}
        self._statics: dict[str, str] = {}
        self._focus_filter = False
        self._unfrozen = 0
        self.ready = False  # composed and mounted: the timer may refresh it

    def compose(self) -> ComposeResult:
        yield HeaderBar(id="header")
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
        yield Footer()

    def on_mount(self) -> None:
        self.ready = True
        # Earlier runs first (from the local journal), then this one's as it happens.
        self.query_one(HistoryList).add(self.engine.previous_history(PREVIOUS_HISTORY))
        self.query_one(ActiveList).focus()
        self.refresh_from_engine()

    def on_resize(self) -> None:
        self.query_one("#active-columns", Static).update(rows.active_header(self.size.width - 1))

    # -- from the engine -------------------------------------------------------------------

    def refresh_from_engine(self) -> None:
        try:
            self._refresh_from_engine()
        except NoMatches:  # the app is closing: its widgets are already gone
            pass

    def _refresh_from_engine(self) -> None:
        snap = self.engine.snapshot()
        self.snap = snap
        self.query_one(HeaderBar).show_lines(header_lines(snap, self.size.width))
        active = self.query_one(ActiveList)
        active.update(snap.active)
        selected = active.selected
        self.query_one(FilesList).update(selected)
        title = (
            f" Files of {selected.job_id}:{selected.task_id} ({len(selected.files)}) "
            f"- attempt {selected.attempt}"
            if selected
            else " Files"
        )
        self._set_static("#files-title", title)
        self.query_one(PendingList).update(snap.pending, snap.failed, snap.taken_at)
        if snap.history_serial != self._history_serial:
            new, self._history_serial = self.engine.history_since(self._history_serial)
            self.query_one(HistoryList).add(new)
            self._unfrozen += len(new)
            if self._unfrozen >= FREEZE_EVERY:
                # History entries live long and hold no cycles. Moving them out of the
                # cyclic GC's sight keeps its full collections (which would scan 100,000
                # entries) from stalling a key press; reference counting still frees them.
                gc.freeze()
                self._unfrozen = 0
        history = self.query_one(HistoryList)
        self._label("active", f"Active ({len(snap.active)})")
        failed = f", {len(snap.failed)} failed" if snap.failed else ""
        self._label("pending", f"Pending ({len(snap.pending)}{failed})")
        shown = (
            f"{history.shown}/{len(history.entries)}"
            if history.filter_text
            else str(len(history.entries))
        )
        self._label("history", f"History ({shown})")

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
    def _active_moved(self) -> None:
        self.refresh_from_engine()

    # -- selection -------------------------------------------------------------------------

    @property
    def current_tab(self) -> str:
        return self.query_one(TabbedContent).active

    def _selected(self) -> tuple[str, object] | None:
        """(tab, view) of the selected Download in the current tab, if any."""
        tab = self.current_tab
        if tab == "active":
            view = self.query_one(ActiveList).selected
        elif tab == "pending":
            view = self.query_one(PendingList).selected
        else:
            return None
        return (tab, view) if view is not None else None

    # -- actions ---------------------------------------------------------------------------

    def action_toggle_pause(self) -> None:
        if self.engine.snapshot().paused:
            self.engine.resume()
            self.notify("Resumed")
        else:
            self.engine.pause()
            self.notify("Paused everything: transfers stop at their next chunk")
        self.refresh_from_engine()

    def action_toggle_pause_selected(self) -> None:
        selected = self._selected()
        if selected is None:
            self.notify("Select a download first", severity="warning")
            return
        _, view = selected
        if isinstance(view, FailedView):
            self.notify("A failed download is not running: r retries it", severity="warning")
            return
        paused = getattr(view, "paused", None)
        if paused is None:
            paused = view.held  # type: ignore[union-attr]
        self.engine.pause_download(view.download_id, not paused)  # type: ignore[union-attr]
        self.refresh_from_engine()

    def action_move_to_top(self) -> None:
        selected = self._selected()
        if selected is None or not isinstance(selected[1], PendingView):
            self.notify("Select a pending download (Pending tab) to move it up", severity="warning")
            return
        self.engine.move_to_top(selected[1].download_id)
        self.refresh_from_engine()
        pending = self.query_one(PendingList)
        pending.move_cursor(len(pending.failed), announce=False)

    def action_cancel_selected(self) -> None:
        selected = self._selected()
        if selected is None or isinstance(selected[1], FailedView):
            self.notify("Select an active or pending download to cancel", severity="warning")
            return
        view = selected[1]
        download_id = view.download_id  # type: ignore[attr-defined]
        what = f"{view.job_id}:{view.task_id}"  # type: ignore[attr-defined]

        def answered(yes: bool | None) -> None:
            if yes and self.engine.cancel(download_id):
                self.notify(f"Cancelled {what}: given back to the farm")
            self.refresh_from_engine()

        self.app.push_screen(
            ConfirmScreen(
                f"Cancel {what}? It stops now, its temp files are removed, "
                "and the farm gets it back as pending."
            ),
            answered,
        )

    def action_retry_selected(self) -> None:
        selected = self._selected()
        if selected is None or not isinstance(selected[1], FailedView):
            self.notify(
                "Select a failed download in the Pending tab (R retries all)", severity="warning"
            )
            return
        view = selected[1]
        if view.download_id and self.engine.retry(view.download_id):
            self.notify(f"Retrying {view.job_id}:{view.task_id}")
        else:
            self.notify(
                "That one cannot be retried (the farm's description was unusable)",
                severity="warning",
            )
        self.refresh_from_engine()

    def action_retry_all(self) -> None:
        count = self.engine.retry_failed()
        self.notify(f"Retrying {count} downloads" if count else "Nothing to retry")
        self.refresh_from_engine()

    def action_add_job(self) -> None:
        def added(specs: list[JobSpec] | None) -> None:
            if not specs:
                return
            new = self.engine.add_jobs(specs)
            if new:
                self.notify("Added " + ", ".join(str(s.job_id) for s in new))
            else:
                self.notify("Those jobs are already being downloaded", severity="warning")
            self.refresh_from_engine()

        self.app.push_screen(AddJobScreen(), added)

    def action_bandwidth(self) -> None:
        def chosen(rate: float | bool | None) -> None:
            if rate is False:
                return
            self.engine.set_bandwidth(rate)  # type: ignore[arg-type]
            self.notify(f"Bandwidth limit: {size(rate)}/s" if rate else "No bandwidth limit")
            self.refresh_from_engine()

        self.app.push_screen(BandwidthScreen(self.engine.snapshot().bandwidth_limit), chosen)

    def action_threads(self, delta: int) -> None:
        snap = self.engine.snapshot()
        count = self.engine.set_threads(snap.threads + delta)
        self.notify(f"{count} download threads")
        self.refresh_from_engine()

    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        self._focus_tab(tab)

    def action_next_tab(self) -> None:
        if isinstance(self.focused, Input):
            return
        index = self.TABS.index(self.current_tab)
        self.action_show_tab(self.TABS[(index + 1) % len(self.TABS)])

    def _focus_tab(self, tab: str) -> None:
        target = {"active": ActiveList, "pending": PendingList, "history": HistoryList}[tab]
        self.query_one(target).focus()

    @on(TabbedContent.TabActivated)
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if self._focus_filter:
            self._focus_filter = False
            self.query_one("#history-filter", Input).focus()
        elif event.pane.id:
            self._focus_tab(event.pane.id)

    def action_filter(self) -> None:
        field = self.query_one("#history-filter", Input)
        field.add_class("shown")
        self._focus_filter = self.current_tab != "history"  # the tab switch focuses later
        self.query_one(TabbedContent).active = "history"
        field.focus()

    @on(Input.Submitted, "#history-filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        self.query_one(HistoryList).set_filter(event.value)
        if not event.value.strip():
            event.input.remove_class("shown")
        self.query_one(HistoryList).focus()
        self.refresh_from_engine()

    def key_escape(self) -> None:
        field = self.query_one("#history-filter", Input)
        if field.has_class("shown"):
            field.value = ""
            field.remove_class("shown")
            self.query_one(HistoryList).set_filter("")
            self.query_one(HistoryList).focus()
            self.refresh_from_engine()

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen())

    def action_request_quit(self) -> None:
        app = self.app
        if not isinstance(app, CdlApp):
            return
        active = len(self.engine.snapshot().active)
        if not active:
            app.quit_gracefully()
            return
        app.push_screen(
            ConfirmScreen(
                f"{active} download{'s are' if active > 1 else ' is'} active. Quit? "
                "Transfers stop cleanly and go back to the farm as pending."
            ),
            lambda yes: app.quit_gracefully() if yes else None,
        )


def _downgraded(segments: Iterable[Segment], system: ColorSystem) -> Iterator[Segment]:
    for segment in segments:
        style = segment.style
        if style is not None and not segment.control:
            style = style + Style(
                color=style.color.downgrade(system) if style.color else None,
                bgcolor=style.bgcolor.downgrade(system) if style.bgcolor else None,
            )
        yield Segment(segment.text, style, segment.control)


class CdlApp(App[None]):
    """`engine.stop()` ends the app; the caller then shuts the engine down and exits."""

    TITLE = "cdl-tui"
    CSS_PATH = "app.tcss"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "request_quit", "Quit", id="app-quit", show=False),
    ]

    def __init__(
        self,
        engine: EngineLike,
        *,
        refresh_hz: float | None = None,
        exit_when_done: bool = False,
        history_limit: int | None = None,
        watch_terminal: bool = True,
    ) -> None:
        super().__init__()
        terminal_bytes.install()
        self.engine = engine
        self.refresh_hz = refresh_hz or default_refresh_hz()
        self.exit_when_done = exit_when_done
        self.history_limit = history_limit
        self.watch_terminal = watch_terminal
        self.drained = False
        self.signal_received: int | None = None
        self.main = MainScreen(engine, history_limit)

    def export_screenshot(self, *, title: str | None = None, simplify: bool = False) -> str:
        """An SVG of the screen in the colours the terminal really gets.

        Textual always exports in truecolor; with TEXTUAL_COLOR_SYSTEM=standard or 256 the
        terminal receives downgraded colours, so the screenshot downgrades them too.
        """
        system = {"standard": ColorSystem.STANDARD, "256": ColorSystem.EIGHT_BIT}.get(
            str(self.console.color_system)
        )
        if system is None:
            return super().export_screenshot(title=title, simplify=simplify)
        width, height = self.size
        console = Console(
            width=width,
            height=height,
            file=io.StringIO(),
            force_terminal=True,
            color_system="truecolor",
            record=True,
            legacy_windows=False,
            safe_box=False,
        )
        update = self.screen._compositor.render_update(
            full=True, screen_stack=self._background_screens, simplify=simplify
        )
        segments = console.render(update, console.options)
        console.print(Segments(_downgraded(segments, system)))
        return console.export_svg(title=title or self.title)

    def get_default_screen(self) -> Screen:
        return self.main

    def on_mount(self) -> None:
        self.engine.bus.subscribe(lambda event: self.post_message(EngineEvent(event)))
        self.set_interval(1 / self.refresh_hz, self._tick)
        if self.watch_terminal:
            self.set_interval(1.0, self._check_terminal)
        self._install_signal_handlers()

    def _tick(self) -> None:
        if self.engine.stopping:
            self.exit()
            return
        if self.main.ready:
            self.main.refresh_from_engine()

    def on_engine_event(self, message: EngineEvent) -> None:
        event = message.event
        if isinstance(event, JobDone):
            self.bell()
            failed = f", {event.failed} failed" if event.failed else ""
            self.notify(
                f"Job {event.job_id} done: {event.downloads} downloads{failed}",
                title="Job done",
                severity="error" if event.failed else "information",
            )
        elif isinstance(event, EngineDrained):
            self.drained = True

    def action_request_quit(self) -> None:
        self.main.action_request_quit()

    def quit_gracefully(self) -> None:
        code = 130 if self.exit_when_done and not self.drained else None
        self.engine.stop("quit from the TUI", code)
        self.exit()

    # -- the terminal going away -----------------------------------------------------------

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            try:
                loop.add_signal_handler(sig, self._on_signal, sig)
            except (ValueError, RuntimeError, NotImplementedError):  # not the main thread
                return

    def _on_signal(self, signum: int) -> None:
        if self.signal_received is not None and signum != signal.SIGHUP:
            os._exit(128 + signum)  # the second one: leave now (final paths are never partial)
        self.signal_received = signum
        name = signal.Signals(signum).name
        self.engine.stop(f"interrupted by {name}", 128 + signum)
        self.exit()

    def _check_terminal(self) -> None:
        """A closed pty that sent no SIGHUP: reads give EOF for ever and Textual's input
        thread would spin. Check once a second and leave as if hung up."""
        try:
            termios.tcgetattr(sys.__stderr__.fileno())  # Textual draws on stderr
        except (termios.error, OSError, ValueError, AttributeError):
            if self.signal_received is None:
                self.signal_received = signal.SIGHUP
                self.engine.stop("the terminal went away", 128 + signal.SIGHUP)
            self.exit()
