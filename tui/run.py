"""Running the engine: in plain text (a summary every few seconds), or in the full screen.

Used with `--headless`, and automatically when stdout is not a terminal. SIGINT, SIGTERM
and SIGHUP stop the engine gracefully (temp files removed, active Downloads reported
`pending`) and exit 128 + the signal; a second SIGINT or SIGTERM forces the exit at once,
which is safe because a final path only ever receives a verified file by rename.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from types import FrameType
from typing import IO

from cdl_tui.core.engine import Engine

from .summary import format_final, format_summary

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class SignalStop:
    """First signal: a graceful stop. Second SIGINT/SIGTERM: leave at once."""

    def __init__(self, engine: Engine, out: IO[str]) -> None:
        self.engine = engine
        self.out = out
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in HANDLED:
            self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous.clear()

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.received is not None and signum != signal.SIGHUP:
            print(f"cdl-tui: {name} again: leaving now", file=sys.stderr, flush=True)
            os._exit(128 + signum)
        if self.received is None:
            self.received = signum
            print(f"cdl-tui: {name}: stopping (again to force)", file=sys.stderr, flush=True)
            self.engine.stop(f"interrupted by {name}", 128 + signum)


def run_headless(engine: Engine, *, summary_interval: float, out: IO[str]) -> int:
    """Run the engine to its end, printing summaries; return the exit code."""
    signals = SignalStop(engine, out)
    signals.install()
    try:
        engine.start()
        next_summary = time.monotonic() + summary_interval
        while not engine.stop_event.wait(min(1.0, summary_interval)):
            if time.monotonic() >= next_summary:
                _print(out, format_summary(engine.snapshot()))
                next_summary = time.monotonic() + summary_interval
        code = engine.shutdown()
        _print(out, _final(engine))
        return code
    finally:
        signals.restore()


def _final(engine: Engine) -> str:
    """The final summary, with each job's frame sequences."""
    snap = engine.snapshot()
    _, tasks = engine.history()
    # The jobs asked for, and those a daemon was handed (as --report lists them).
    job_ids = dict.fromkeys([*(job.job_id for job in snap.jobs), *(t.job_id for t in tasks)])
    frames = [view for job_id in job_ids if (view := engine.frames(job_id)) is not None]
    return format_final(snap, tasks, frames)


def _print(out: IO[str], text: str) -> None:
    try:
        out.write(text + "\n")
        out.flush()
    except (OSError, ValueError):  # the reader or the terminal went away: carry on quietly
        pass


def run_full_screen(
    engine: Engine,
    *,
    refresh_hz: float | None,
    exit_when_done: bool,
    mouse: bool,
    out: IO[str],
) -> int:
    """Run the Textual app until the engine stops or the user quits; then shut the engine
    down (signals handled as in headless mode) and print the final summary."""
    from .app import CdlApp

    app = CdlApp(
        engine,
        refresh_hz=refresh_hz,
        exit_when_done=exit_when_done,
        history_limit=engine.config.history_size,
    )
    engine.start()
    try:
        app.run(mouse=mouse)
    finally:
        if not engine.stopping:  # the app ended on its own (an error): stop cleanly
            engine.stop("the full-screen app ended")
        signals = SignalStop(engine, out)
        signals.install()
        try:
            code = engine.shutdown()
        finally:
            signals.restore()
    _print(out, _final(engine))
    return code
