"""The private Textual API this app leans on, checked so that an upgrade fails here, with
a message saying what moved, instead of quietly costing bytes or breaking screenshots.

- tui/terminal_bytes.py replaces `_compositor.ChopsUpdate.render_segments` and reads its
  `spans`, `chops` and `chop_ends`, and `_compositor.Control.move_to`.
- CdlApp.export_screenshot calls `screen._compositor.render_update(full=, screen_stack=,
  simplify=)` to export the colours a 16/256-colour terminal really gets.
"""

from __future__ import annotations

import inspect

from textual import _compositor

from cdl_tui.tui import terminal_bytes


def test_chops_update_still_has_what_terminal_bytes_replaces_and_reads() -> None:
    chops = getattr(_compositor, "ChopsUpdate", None)
    assert chops is not None, "textual._compositor.ChopsUpdate is gone: see terminal_bytes.py"
    assert hasattr(chops, "render_segments"), (
        "ChopsUpdate.render_segments is gone: terminal_bytes.install() no longer crops the "
        "start of changed lines (more bytes over SSH); port it to the new method"
    )
    source = inspect.getsource(chops)
    for name in ("self.spans", "self.chops", "self.chop_ends"):
        assert name in source, f"ChopsUpdate no longer has {name}: port terminal_bytes.py"
    params = list(inspect.signature(chops.render_segments).parameters)
    assert params[:2] == ["self", "console"], f"render_segments now takes {params}"
    assert callable(getattr(_compositor.Control, "move_to", None)), "Control.move_to moved"


def test_render_update_keeps_the_arguments_export_screenshot_passes() -> None:
    params = inspect.signature(_compositor.Compositor.render_update).parameters
    for name in ("full", "screen_stack", "simplify"):
        assert name in params, (
            f"Compositor.render_update lost '{name}': CdlApp.export_screenshot needs porting"
        )


def test_install_replaces_the_method_and_is_idempotent() -> None:
    terminal_bytes.install()
    terminal_bytes.install()
    assert _compositor.ChopsUpdate.render_segments is terminal_bytes._render_segments
