"""The two header lines: where, how fast, PAUSED; what is done, failed and left, and when."""

from __future__ import annotations

from rich.text import Text

from cdl_tui.core.model.views import EngineSnapshot
from cdl_tui.tui.summary import rate, size

from .lines import TextLines
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


def threads_words(busy: int, threads: int) -> Text:
    """`6/8 threads`; after `-` the extra workers finish their Download first, so it says
    `6/6 threads +3 finishing` rather than `9/6`."""
    text = Text.assemble(f"{min(busy, threads)}/{threads}", (" threads", "dim"))
    if busy > threads:
        text.append(f" +{busy - threads} finishing", style="yellow")
    return text


def header_lines(snap: EngineSnapshot, width: int = 100) -> list[Text]:
    """Two lines, most important first, so that narrow terminals cut only the least useful:
    who and how fast, then how much is done, failed and left."""
    sep = (" │ ", "dim")
    first = Text(" cdl-tui", style="bold")
    if snap.paused:
        first.append(" ")
        first.append(" PAUSED ", style="bold reverse yellow")
    if snap.stopping:
        first.append(" ")
        first.append(" STOPPING ", style="bold reverse red")
    first.append_text(Text.assemble(sep, ("farm ", "dim"), snap.farm))
    if snap.location:
        first.append_text(Text.assemble(sep, ("loc ", "dim"), snap.location))
    spark = sparkline(snap.rate_history, SPARK_WIDTH if width >= 120 else SPARK_WIDTH // 2)
    first.append_text(
        Text.assemble(
            sep,
            rate(snap.rate),
            (f" (max {rate(snap.bandwidth_limit)})" if snap.bandwidth_limit else "", "yellow"),
            " ",
            (spark, "green"),
            sep,
            threads_words(snap.busy, snap.threads),
            sep,
            ("up ", "dim"),
            clock_time(snap.uptime),
            sep,
            snap.mode,
        )
    )
    t = snap.totals
    failed = t.failed
    eta = clock_time(snap.eta) if snap.eta is not None else "-"
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
        ("left ", "dim"),
        size(snap.remaining_bytes),
        ("  ETA ", "dim"),
        eta,
        sep,
        ("tasks ", "dim"),
        str(t.downloads_done),
    )
    return [first, second]


class HeaderBar(TextLines):
    DEFAULT_CSS = """
    HeaderBar {
        dock: top;
        height: 2;
        background: $panel;
    }
    """
    LINES = 2
