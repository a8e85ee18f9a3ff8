"""The status line under the header: what the user should know right now.

In order: a notice that answers the last command (for a few seconds, unless a newer
problem comes; a repeat updates it in place instead of stacking toasts), else the newest
problem that still matters (the
farm does not answer and when the next try is, a job not on the farm, a disk wait, a
refused Download...), else what the listing is doing.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text

from cdl_tui.core.model.views import EngineSnapshot, Severity, current_problems
from cdl_tui.tui.summary import problem_words

from .lines import TextLines
from .rows import clock_time

NOTICE_SECONDS = 6.0
NOTICE_STYLE = {"information": "green", "warning": "bold yellow", "error": "bold red"}
PROBLEM_STYLE = {Severity.WARNING: "bold yellow", Severity.ERROR: "bold red"}
PROBLEM_MARK = {Severity.WARNING: "▲", Severity.ERROR: "✖"}


@dataclass(frozen=True)
class Notice:
    """The answer to a command, shown on the status line until `until` (monotonic)."""

    text: str
    severity: str = "information"  # or "warning", "error"
    until: float = 0.0
    key: str = ""  # notices with the same key replace each other (ten `+`: one notice)
    at: float = 0.0  # wall clock: a problem newer than the notice takes the line back


def status_text(
    snap: EngineSnapshot, notice: Notice | None, width: int, now: float | None = None
) -> Text:
    """The status line for `snap` at wall-clock `now` (the snapshot's time by default)."""
    now = snap.taken_at if now is None else now
    current = current_problems(snap.problems, now)
    if notice is not None and not (current and current[0].last_at > notice.at):
        text = Text(" ● ", style=NOTICE_STYLE.get(notice.severity, ""))
        text.append(notice.text)
        return text
    if not current:
        text = Text(f" {snap.feeder}", style="dim")
        if snap.problems:
            return _right(text, Text(f"{len(snap.problems)} in the log: l ", style="dim"), width)
        return text
    problem = current[0]
    style = PROBLEM_STYLE[problem.severity]
    text = Text(f" {PROBLEM_MARK[problem.severity]} ", style=style)
    if problem.retry_at is not None and problem.retry_at > now:
        text.append(f"next try in {clock_time(problem.retry_at - now)} ", style="bold")
    text.append(problem_words(problem, retry=False), style=style)  # the retry leads the line
    more = len(current) - 1
    tail = Text(f" +{more} more · l log " if more else " l log ", style="dim")
    return _right(text, tail, width)


def _right(text: Text, tail: Text, width: int) -> Text:
    """`text` cut to leave room for `tail` at the right end of `width` columns."""
    room = width - tail.cell_len
    if room < 10:
        return text
    text.truncate(room, overflow="ellipsis", pad=True)
    text.append_text(tail)
    return text


class StatusLine(TextLines):
    DEFAULT_CSS = """
    StatusLine {
        height: 1;
        background: $surface;
    }
    """
