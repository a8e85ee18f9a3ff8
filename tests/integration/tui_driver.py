"""Driving the full-screen app with Textual's pilot against a real engine."""

import asyncio
import time

from textual import events

from cdl_tui.tui.app import CdlApp

KEY_NAMES = {"/": "slash", "\r": "enter", "+": "plus", "-": "minus", " ": "space"}


def drive(engine, scenario, *, size=(100, 30), exit_when_done=False, timeout=60):
    """Run the app on `engine` and the coroutine `scenario(app, pilot)`; return the app."""

    async def main():
        app = CdlApp(engine, refresh_hz=10, exit_when_done=exit_when_done, watch_terminal=False)
        engine.start()
        async with app.run_test(size=size) as pilot:
            # The main screen has been composed and has shown the engine at least once.
            await until(pilot, lambda: app.main.snap is not None, what="the first refresh")
            await asyncio.wait_for(scenario(app, pilot), timeout)
        return app

    return asyncio.run(main())


async def until(pilot, condition, timeout=20.0, what="condition", show=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        await pilot.pause(0.05)
    seen = f" (saw {show()!r})" if show is not None else ""
    raise AssertionError(f"timed out waiting for {what}{seen}")


def burst(app, text: str) -> None:
    """Keys as a terminal delivers a burst over SSH: all queued before the first is handled
    (the pilot's press() waits for the app to settle after each key, which hides bugs)."""
    for ch in text:
        app.post_message(events.Key(KEY_NAMES.get(ch, ch), None if ch == "\r" else ch))
