"""The full-screen app: Active / Pending / History, live from the engine, steered by keys.

The engine runs in its own threads. Its lifecycle events arrive with `post_message`;
progress is read by polling `engine.snapshot()` on a timer (4 Hz, 2 Hz over SSH), and only
the rows and header lines whose text changed are repainted. The app owns no download logic.
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
import sys
import termios
from collections.abc import Iterable, Iterator
from functools import partial
from typing import ClassVar

from rich.color import ColorSystem
from rich.console import Console
from rich.segment import Segment, Segments
from rich.style import Style
from textual import events
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen

from cdl_tui.core.model.events import EngineDrained, Event, JobDone

from . import terminal_bytes
from .screens.main import COMMANDS, EngineLike, MainScreen

__all__ = ["CdlApp", "EngineLike", "default_refresh_hz"]

DEFAULT_HZ = 4.0
SSH_HZ = 2.0
REDIRECT_TRIES = 25  # x REDIRECT_WAIT: how long a key waits for a pushed screen's focus
REDIRECT_WAIT = 0.02


def default_refresh_hz(environ: dict[str, str] | os._Environ[str] = os.environ) -> float:
    return SSH_HZ if environ.get("SSH_CONNECTION") else DEFAULT_HZ


class EngineEvent(Message):
    """A lifecycle event from the engine's dispatcher thread."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


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
    ENABLE_COMMAND_PALETTE = True  # ctrl+p: every action by name (see COMMANDS)
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
        self._held_keys: list[tuple[str, str | None]] = []  # keys on their way to new focus

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
        if str(self.console.color_system) == "standard":
            # 16 colours: panels and the cursor get plain ANSI colours (a grey panel
            # behind dim labels, or a grey cursor behind yellow text, cannot be read).
            self.add_class("-ansi-16")
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

    # -- keys in a burst --------------------------------------------------------------------

    async def _on_key(self, event: events.Key) -> None:
        """Keys typed in a burst (normal over SSH) reach the widget the first one opened.

        Textual hands every queued key to the widget focused when the key arrives, and
        checks bindings when it bubbles back up. In `/bq` the `/` opens the History
        filter and focuses it only after `b` and `q` were handed to the list; their
        bindings were then checked from the filter, which consumes letters, so they
        vanished (before, they ran: `b` opened the bandwidth dialog, `q` quit). A key
        that one of our lists received while the focus has moved since is typed again,
        in order, to where the focus is now (once a screen being pushed has focused).
        """
        delivered_to = getattr(event, "delivered_to", None)
        if delivered_to is not None and delivered_to is not self.focused:
            event.stop()
            event.prevent_default()  # App._on_key, next in line, checks no binding for it
            self._held_keys.append((event.key, event.character))
            if len(self._held_keys) == 1:
                self._type_held_keys(REDIRECT_TRIES)

    def _type_held_keys(self, tries: int) -> None:
        screen = self.screen
        focus_pending = self.focused is None and (not screen.is_mounted or screen.focus_chain)
        if focus_pending and tries > 0:
            self.set_timer(REDIRECT_WAIT, lambda: self._type_held_keys(tries - 1))
            return
        keys, self._held_keys = self._held_keys, []
        for key, character in keys:
            self.post_message(events.Key(key, character))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The command palette offers every action of the main screen (and nothing of
        Textual's own, such as themes: the colours are chosen for 16-colour terminals)."""
        if screen is not self.main:
            return
        for action, title, help_text in COMMANDS:
            yield SystemCommand(title, help_text, partial(self.main.run_action, action))

    def on_engine_event(self, message: EngineEvent) -> None:
        event = message.event
        if isinstance(event, JobDone):
            self.bell()
            if self.main.ready:
                self.main.job_done(event.job_id, event.downloads, event.failed)
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
