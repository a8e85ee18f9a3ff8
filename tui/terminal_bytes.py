"""Send only the changed columns of a line to the terminal.

Textual's partial screen update (`ChopsUpdate.render_segments`) knows which columns of
each line changed, but writes every widget's line from the widget's left edge up to the
last changed column (its crop of the start is a TODO there). For a row whose ETA and rate
change at the right end, that is the whole row, twice a second, per active download: with
8 downloads over SSH it was most of the byte budget. `install()` replaces that one method
with one that also crops the start, so a changed rate costs its own few columns.
"""

from __future__ import annotations

from textual import _compositor
from textual.strip import Strip


def _render_segments(self: _compositor.ChopsUpdate, console) -> str:
    sequences: list[str] = []
    append = sequences.append
    move_to = _compositor.Control.move_to
    last_y = self.spans[-1][0]
    for y, x1, x2 in self.spans:
        line = self.chops[y]
        ends = self.chop_ends[y]
        for end, (x, strip) in zip(ends, line.items(), strict=False):
            if strip is None or x > x2 or end <= x1:
                continue
            start = max(x, x1)
            stop = min(end, x2)
            piece: Strip = strip.crop(start - x, stop - x)
            append(move_to(start, y).segment.text)
            append(piece.render(console))
        if y != last_y:
            append("\n")
    return "".join(sequences)


def install() -> None:
    """Patch Textual (idempotent); a Textual without the method keeps its behaviour."""
    if hasattr(_compositor.ChopsUpdate, "render_segments"):
        _compositor.ChopsUpdate.render_segments = _render_segments  # type: ignore[method-assign]
