"""Which columns of a line changed: repaint only those (bytes to an SSH terminal count)."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text


def _cell_styles(text: Text) -> list[Style | str | None]:
    """The style in force at each character (the last span wins, as when rendering)."""
    styles: list[Style | str | None] = [None] * len(text.plain)
    for span in text.spans:
        for index in range(span.start, min(span.end, len(styles))):
            styles[index] = span.style if styles[index] is None else (styles[index], span.style)
    return styles


def changed_span(old: Text | None, new: Text) -> tuple[int, int] | None:
    """(start, end) cells that differ between two renderings of a line; None if equal.

    A cell differs if its character or its style does. Falls back to the whole line when
    a character is wider than one cell (then columns and characters do not line up).
    """
    if old is None:
        return (0, max(new.cell_len, 1))
    if old == new:
        return None
    a, b = old.plain, new.plain
    if len(a) != old.cell_len or len(b) != new.cell_len or old.style != new.style:
        return (0, max(old.cell_len, new.cell_len, 1))
    sa, sb = _cell_styles(old), _cell_styles(new)
    limit = min(len(a), len(b))
    start = 0
    while start < limit and a[start] == b[start] and sa[start] == sb[start]:
        start += 1
    if len(a) != len(b):
        # What follows the change has moved: repaint to the end of the longer line.
        return (start, max(len(a), len(b)))
    end = len(a)
    while end > start and a[end - 1] == b[end - 1] and sa[end - 1] == sb[end - 1]:
        end -= 1
    return (start, end) if start < end else None
