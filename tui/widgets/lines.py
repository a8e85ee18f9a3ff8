"""A few lines of text that repaint only the columns that change (header, status, keys)."""

from __future__ import annotations

from rich.text import Text
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget

from .diff import changed_span


class TextLines(Widget):
    """`show_lines()` replaces the text; only the changed columns of each line repaint."""

    LINES = 1

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._lines: list[Text] = [Text() for _ in range(self.LINES)]

    @property
    def lines(self) -> list[Text]:
        return list(self._lines)

    @property
    def plain(self) -> str:
        """The text shown, one line per line (for tests and for the command palette)."""
        return "\n".join(line.plain for line in self._lines)

    def show_lines(self, lines: list[Text]) -> None:
        for y in range(self.LINES):
            text = lines[y] if y < len(lines) else Text()
            span = changed_span(self._lines[y], text)
            if span is not None:
                self._lines[y] = text
                start, end = span
                self.refresh(Region(start, y, end - start, 1))

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        text = self._lines[y].copy() if y < len(self._lines) else Text()
        text.truncate(width, overflow="ellipsis")
        base = self.rich_style
        strip = Strip(list(text.render(self.app.console, end="")), text.cell_len)
        return strip.apply_style(base).crop_extend(0, width, base)
