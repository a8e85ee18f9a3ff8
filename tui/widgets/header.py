"""The two header lines: where, what mode, how fast, how much, since when, PAUSED."""

from __future__ import annotations

from rich.text import Text
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget

from cdl_tui.core.snapshot import EngineSnapshot
from cdl_tui.tui.summary import rate, size

from .diff import changed_span
from .rows import clock_time

SPARK = " ▁▂▃▄▅▆▇█"
SPARK_WIDTH = 20  # characters for the last minute: 3 seconds each


def sparkline(samples: tuple[float, ...], width: int = SPARK_WIDTH) -> str:
    """The last minute of throughput in `width` block characters (max of each bucket)."""
    if not samples:
        return " " * width
    per = max(1, len(samples) // width)
    buckets = [max(samples[i : i + per]) for i in range(0, len(samples), per)][-width:]
    top = max(buckets)
    if top <= 0:
        return "▁" * len(buckets)
    return "".join(SPARK[max(1, round(b / top * (len(SPARK) - 1)))] if b else "▁" for b in buckets)


def header_lines(snap: EngineSnapshot, width: int = 100) -> list[Text]:
    """Two lines, most important first, so that 80 columns cut only the least useful."""
    sep = (" │ ", "dim")
    first = Text(" cdl-tui", style="bold")
    if snap.paused:
        first.append(" PAUSED ", style="bold reverse yellow")
    if snap.stopping:
        first.append(" STOPPING ", style="bold reverse red")
    spark = sparkline(snap.rate_history, SPARK_WIDTH if width >= 100 else SPARK_WIDTH // 2)
    first.append_text(
        Text.assemble(
            sep,
            f"{snap.busy}/{snap.threads}",
            (" threads", "dim"),
            sep,
            rate(snap.rate),
            (f" (max {rate(snap.bandwidth_limit)})" if snap.bandwidth_limit else "", "yellow"),
            " ",
            (spark, "green"),
            sep,
            ("up ", "dim"),
            clock_time(snap.uptime),
            sep,
            snap.mode,
            sep,
            ("farm ", "dim"),
            snap.farm,
        )
    )
    if snap.location:
        first.append_text(Text.assemble(sep, ("loc ", "dim"), snap.location))
    t = snap.totals
    failed = t.downloads_failed + t.downloads_refused + t.jobs_failed
    second = Text.assemble(
        (" DL ", "bold green"),
        f"{t.files_downloaded} files {size(t.bytes_downloaded)}",
        sep,
        ("CACHED ", "bold cyan"),
        f"{t.files_cached} {size(t.bytes_cached)}",
        sep,
        ("FAILED ", "bold red" if failed else "dim"),
        str(failed),
        sep,
        ("tasks ", "dim"),
        str(t.downloads_done),
        sep,
        (snap.feeder, "dim"),
    )
    return [first, second]


class HeaderBar(Widget):
    DEFAULT_CSS = """
    HeaderBar {
        dock: top;
        height: 2;
        background: $panel;
    }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._lines: list[Text] = [Text(" cdl-tui", style="bold"), Text()]

    def show_lines(self, lines: list[Text]) -> None:
        """Repaint only the columns that changed."""
        for y, text in enumerate(lines[:2]):
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
