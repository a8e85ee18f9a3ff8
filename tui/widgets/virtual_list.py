"""A scrollable list of rows that renders only what is visible and repaints only changes."""

from __future__ import annotations

from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from .diff import changed_span


class VirtualList(ScrollView, can_focus=True):
    """Rows come from `row_text(index, width)`; subclasses hold the data.

    After changing its data a subclass calls `rows_changed()`: every visible row is
    rendered to text and compared with what is on screen, and only differing rows are
    refreshed. A list of 100,000 rows costs no more than the rows on screen.
    """

    DEFAULT_CSS = """
    VirtualList {
        height: 1fr;
        scrollbar-size-vertical: 1;
        overflow-x: hidden;
    }
    /* A background only, so each column keeps its colour; a dark blue reads well in
       truecolor and is nearest to plain blue among the 16 colours (#1f4f7a became grey). */
    VirtualList > .virtual-list--cursor {
        background: #3a3a3a;
    }
    VirtualList:focus > .virtual-list--cursor {
        background: #1d3f9e;
        text-style: bold;
    }
    VirtualList > .virtual-list--empty {
        color: $text-muted;
        text-style: italic;
    }
    """
    COMPONENT_CLASSES: ClassVar[set[str]] = {"virtual-list--cursor", "virtual-list--empty"}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "move(-1)", "Up", show=False),
        Binding("down,j", "move(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "jump(0)", "First", show=False),
        Binding("end", "jump(-1)", "Last", show=False),
    ]

    class Highlighted(Message):
        """The cursor moved to `index`."""

        def __init__(self, list_widget: VirtualList, index: int) -> None:
            super().__init__()
            self.list_widget = list_widget
            self.index = index

        @property
        def control(self) -> VirtualList:
            return self.list_widget

    def __init__(self, empty_text: str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        self.cursor = 0
        self.row_count = 0
        self.empty_text = empty_text
        self._painted: dict[int, Text] = {}

    # -- for subclasses --------------------------------------------------------------------

    def row_text(self, index: int, width: int) -> Text:
        raise NotImplementedError  # pragma: no cover - every list defines its rows

    def set_row_count(self, count: int) -> None:
        if count == self.row_count:
            return
        self.row_count = count
        self.virtual_size = Size(0, count)
        if self.cursor >= count:
            self.cursor = max(0, count - 1)

    @property
    def row_width(self) -> int:
        """Columns for a row: the widget less its scrollbar."""
        return self.scrollable_content_region.width

    def rows_changed(self) -> None:
        """Repaint, in the visible rows, only the columns that differ from the screen."""
        width = self.row_width
        top = self.scroll_offset.y
        for index in range(top, top + self.size.height):
            span = changed_span(self._painted.get(index), self._line_text(index, width))
            if span is not None:
                start, end = span
                self.refresh(Region(start, index - top, end - start, 1))

    def move_cursor(self, index: int, *, announce: bool = True) -> None:
        if self.row_count == 0:
            return
        index = max(0, min(self.row_count - 1, index))
        old, self.cursor = self.cursor, index
        if old != index:
            self.refresh_line(old)
            self.refresh_line(index)
        self.scroll_to_region(Region(0, index, 1, 1), animate=False, force=True)
        if announce:
            self.post_message(self.Highlighted(self, index))

    # -- rendering -------------------------------------------------------------------------

    def _line_text(self, index: int, width: int) -> Text:
        if index >= self.row_count:
            if index == 0 and self.empty_text:
                return Text(
                    self.empty_text, style=self.get_component_rich_style("virtual-list--empty")
                )
            return Text()
        text = self.row_text(index, width)
        text.truncate(width, overflow="ellipsis", pad=True)
        if index == self.cursor:
            cursor = self.get_component_rich_style("virtual-list--cursor")
            text.stylize(Style(bgcolor=cursor.bgcolor, bold=cursor.bold))
        return text

    def render_line(self, y: int) -> Strip:
        width = self.row_width
        index = self.scroll_offset.y + y
        text = self._line_text(index, width)
        self._painted[index] = text
        base: Style = self.rich_style
        strip = Strip(list(text.render(self.app.console, end="")), text.cell_len)
        return strip.apply_style(base).crop_extend(0, width, base)

    def on_resize(self) -> None:
        self._painted.clear()

    # -- keys and mouse --------------------------------------------------------------------

    def action_move(self, delta: int) -> None:
        self.move_cursor(self.cursor + delta)

    def action_page(self, direction: int) -> None:
        self.move_cursor(self.cursor + direction * max(1, self.size.height - 1))

    def action_jump(self, index: int) -> None:
        self.move_cursor(index if index >= 0 else self.row_count - 1)

    def _on_key(self, event: events.Key) -> None:
        # (Widget._on_key still runs after this one: Textual calls each class's handler.)
        # Mark where the key was delivered: the app sends it on if the focus has moved
        # by the time its bindings are checked (see CdlApp._on_key).
        event.delivered_to = self  # type: ignore[attr-defined] - our own mark

    def on_click(self, event: events.Click) -> None:
        self.move_cursor(self.scroll_offset.y + event.y)
