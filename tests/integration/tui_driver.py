"""Driving the full-screen app with Textual's pilot against a real engine."""

import asyncio
import time

from cdl_tui.tui.app import CdlApp


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
