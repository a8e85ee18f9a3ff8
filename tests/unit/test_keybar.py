"""The key bar fits its hints to its width, and again when the width changes."""

from __future__ import annotations

import asyncio

from textual.app import App, ComposeResult

from cdl_tui.tui.widgets.keybar import KeyBar, KeyHint

HINTS = [KeyHint(key, f"Action {key}", n) for n, key in enumerate("abcdefgh", 1)]


class BarApp(App[None]):
    def compose(self) -> ComposeResult:
        yield KeyBar()


def test_hints_shown_at_one_width_are_fitted_again_at_another() -> None:
    async def scenario() -> tuple[str, str]:
        app = BarApp()
        async with app.run_test(size=(140, 10)) as pilot:
            bar = app.query_one(KeyBar)
            bar.show_hints(HINTS)
            await pilot.pause()
            wide = bar.plain
            await pilot.resize_terminal(60, 10)
            await pilot.pause()
            return wide, bar.plain

    wide, narrow = asyncio.run(scenario())
    assert "Action h" in wide and len(wide) <= 140
    assert len(narrow) <= 60 and narrow.rstrip().endswith("q  Quit")
    assert "Action a" in narrow and "Action h" not in narrow  # the least useful went first
