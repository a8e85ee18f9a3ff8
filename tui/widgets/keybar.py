"""The key bar at the bottom: the keys that do something now, `?` and `q` always.

Textual's footer lists every shown binding and cuts at the right edge, so at 60 columns it
lost `?` and `q`. This bar is told which keys matter in the current state (Resume while
paused, Retry only with a failure selected...) and fits them by priority: the least useful
go first, and `?` and `q` stay at the right end at every width.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text

from .lines import TextLines

KEY_STYLE = "bold reverse"


@dataclass(frozen=True)
class KeyHint:
    key: str  # as shown: "p", "+/-", "⏎"
    label: str
    priority: int = 5  # 1 most important; dropped from the highest number up


ALWAYS = (KeyHint("?", "Help", 0), KeyHint("q", "Quit", 0))


def _cell(hint: KeyHint) -> Text:
    return Text.assemble((f" {hint.key} ", KEY_STYLE), f" {hint.label} ")


def fit_hints(hints: list[KeyHint], width: int, always: tuple[KeyHint, ...] = ALWAYS) -> Text:
    """The hints that fit in `width` columns, in their given order, `always` at the end."""
    room = width - sum(_cell(h).cell_len for h in always)
    chosen: set[int] = set()
    for index in sorted(range(len(hints)), key=lambda i: (hints[i].priority, i)):
        need = _cell(hints[index]).cell_len
        if need <= room:
            chosen.add(index)
            room -= need
    text = Text()
    for index, hint in enumerate(hints):
        if index in chosen:
            text.append_text(_cell(hint))
    left = Text()
    for hint in always:
        left.append_text(_cell(hint))
    if room > 0:
        text.append(" " * room)
    text.append_text(left)
    return text


class KeyBar(TextLines):
    DEFAULT_CSS = """
    KeyBar {
        dock: bottom;
        height: 1;
        background: $panel;
    }
    """

    _shown: tuple[list[KeyHint], tuple[KeyHint, ...]] = ([], ALWAYS)

    def show_hints(self, hints: list[KeyHint], always: tuple[KeyHint, ...] = ALWAYS) -> None:
        self._shown = (hints, always)
        self.show_lines([fit_hints(hints, self.size.width or 100, always)])

    def on_resize(self) -> None:
        """Fit the hints again: the first ones may have come before the bar had a width
        (a slow start), or the terminal changed size."""
        hints, always = self._shown
        if hints or always is not ALWAYS:
            self.show_lines([fit_hints(hints, self.size.width or 100, always)])
