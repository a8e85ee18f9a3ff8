"""How one row of each list reads: plain text with few style changes (bytes matter)."""

from __future__ import annotations

import time

from rich.text import Text

from cdl_tui.core.model.states import FileState, Outcome
from cdl_tui.core.model.views import (
    ActiveView,
    FailedView,
    FileView,
    HistoryEntry,
    JobView,
    PendingView,
)
from cdl_tui.tui.summary import size

OUTCOME_STYLE = {
    Outcome.DL: "green",
    Outcome.CACHED: "cyan",
    Outcome.SKIPPED: "yellow",
    Outcome.FAILED: "bold red",
    Outcome.CANCELLED: "yellow",
    Outcome.REFUSED: "bold red",
}
STATE_STYLE = {
    FileState.QUEUED: "dim",
    FileState.PREPARING: "",
    FileState.HASHING: "cyan",
    FileState.DOWNLOADING: "bold",
    FileState.COMPLETE: "green",
    FileState.CACHED: "cyan",
    FileState.SKIPPED: "yellow",
    FileState.FAILED: "bold red",
}
FIXED_ACTIVE = 70  # the active row's columns other than the progress bar


def clock_time(seconds: float | None) -> str:
    """ETA-style H:MM:SS or M:SS; '' when unknown."""
    if seconds is None:
        return ""
    seconds = int(seconds + 0.5)  # to the nearest second
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def bar(fraction: float, width: int) -> Text:
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return Text.assemble(("█" * filled, "green"), ("░" * (width - filled), "dim"))


def label(job_id: str | None, task_id: str | None) -> str:
    return f"{job_id or '?'}:{task_id or '?'}"


def left_cut(text: str, width: int) -> str:
    """Keep the end of a path (the file name matters most)."""
    return text if len(text) <= width else "…" + text[-(width - 1) :] if width > 1 else ""


def active_row(view: ActiveView, width: int) -> Text:
    bar_width = max(6, width - FIXED_ACTIVE)
    speed = "PAUSED" if view.paused else f"{size(view.rate)}/s" if view.rate else ""
    text = Text(f"{label(view.job_id, view.task_id):<11}")
    text.append_text(bar(view.done / view.size if view.size else 1.0, bar_width))
    text.append(f" {view.percent:3.0f}% {size(view.done) + '/' + size(view.size):>21} ")
    text.append(f"{speed:>11}", style="bold yellow" if view.paused else "")
    text.append(f" {clock_time(view.eta):>7} {view.worker:<10}")
    return text


def active_header(width: int) -> Text:
    bar_width = max(6, width - FIXED_ACTIVE)
    return Text(
        f"{'JOB:TASK':<11}{'PROGRESS':<{bar_width}} {'%':>4} {'DONE/TOTAL':>21} "
        f"{'RATE':>11} {'ETA':>7} {'THREAD':<10}",
        style="bold dim",
    )


def file_row(view: FileView, width: int, *, paused: bool = False) -> Text:
    """`paused`: its Download is paused, so a moving file says PAUSED, not DOWNLOADING."""
    state = view.state
    shown = state.value
    style = STATE_STYLE[state]
    if state in (FileState.HASHING, FileState.DOWNLOADING):
        if paused:
            shown, style = "PAUSED", "bold yellow"
        shown += f" {view.percent:.0f}%"
    text = Text(f"{shown:<26}", style=style)
    text.append(f"{size(view.size):>10}  ")
    detail = f"  ({view.detail})" if view.detail else ""
    text.append(left_cut(view.path, max(8, width - text.cell_len - len(detail))))
    if detail:
        text.append(detail, style="red")
    return text


def files_header() -> Text:
    return Text(f"{'STATE':<26}{'SIZE':>10}  PATH", style="bold dim")


def pending_row(view: PendingView, now: float, *, paused_all: bool = False) -> Text:
    text = Text(f"{label(view.job_id, view.task_id):<11}")
    text.append(f"{view.files:>4} files {size(view.size):>10}  ")
    if view.held or paused_all:
        text.append("PAUSED  ", style="bold yellow")
    if view.waiting:
        text.append(f"{view.waiting}  ", style="bold yellow")
    if view.attempts:
        wait = view.not_before - now if view.not_before else 0
        text.append(f"attempt {view.attempts + 1}", style="yellow")
        if wait > 0:
            text.append(f" in {clock_time(wait)}", style="yellow")
        if view.last_error:
            text.append(f"  {view.last_error}", style="dim")
    return text


def failed_row(view: FailedView) -> Text:
    """In the same columns as a pending row: JOB:TASK, FILES, SIZE, then the state."""
    text = Text(f"{label(view.job_id, view.task_id):<11}", style="bold")
    text.append(f"{view.files:>4} files {size(view.size):>10}  " if view.files else " " * 23)
    text.append(f"{view.outcome.value:<10}", style=OUTCOME_STYLE[view.outcome])
    if view.attempts:
        text.append(f"{view.attempts} attempts  ")
    text.append(view.reason, style="red")
    return text


def failed_job_row(job_id: str, reason: str) -> Text:
    """A job that could not be listed at all (not on the farm, unreadable answers)."""
    text = Text(f"{job_id + ':*':<11}", style="bold")
    text.append(" " * 23)
    text.append(f"{'FAILED':<10}", style=OUTCOME_STYLE[Outcome.FAILED])
    text.append(f"job  {reason}", style="red")
    return text


JOB_STATE_STYLE = {
    "LISTING": "cyan",
    "DOWNLOADING": "bold",
    "COMPLETE": "green",
    "INCOMPLETE": "bold red",
    "FAILED": "bold red",
}


WIDE_JOBS = 96  # columns from which the Jobs tab shows its PENDING column


def job_row(view: JobView, width: int) -> Text:
    """JOB, STATE, TASKS done/listed, FAILED, PENDING (when wide), BYTES done/total, RATE,
    ETA; the reason of a job that failed as a whole fills the rest."""
    wide = width >= WIDE_JOBS
    text = Text(f"{view.job_id:<9}" if wide else f"{view.job_id:<8}")
    text.append(f"{view.state:<12}", style=JOB_STATE_STYLE[view.state])
    listed = f"{view.listed}" + ("+" if not view.listing_complete else "")
    text.append(f"{view.finished:>7}/{listed:<7}" if wide else f"{view.finished:>6}/{listed:<6}")
    text.append(
        f"{view.failed:>6}" if wide else f"{view.failed:>7}",
        style="bold red" if view.failed else "",
    )
    if wide:
        text.append(f"{view.pending:>8}")
    done_total = size(view.bytes_done) + "/" + size(view.bytes_total)
    text.append(f"  {done_total:>21} " if wide else f" {done_total:>18} ")
    text.append(f"{size(view.rate) + '/s' if view.rate else '':>11} {clock_time(view.eta):>7}")
    if view.error:
        text.append(f"  {view.error}", style="red")
    text.truncate(width, overflow="ellipsis")
    return text


def jobs_header(width: int = WIDE_JOBS) -> Text:
    if width >= WIDE_JOBS:
        text = f"{'JOB':<9}{'STATE':<12}{'DONE':>7}/{'LISTED':<7}{'FAILED':>6}{'PENDING':>8}  "
        text += f"{'BYTES DONE/TOTAL':>21} {'RATE':>11} {'ETA':>7}"
    else:
        text = f"{'JOB':<8}{'STATE':<12}{'DONE':>6}/{'LISTED':<6}{'FAILED':>7} "
        text += f"{'BYTES DONE/TOTAL':>18} {'RATE':>11} {'ETA':>7}"
    return Text(text, style="bold dim")


def pending_header() -> Text:
    return Text(f"{'JOB:TASK':<11}{'FILES':>10} {'SIZE':>10}  STATE", style="bold dim")


def stamp(at: float, now: float) -> str:
    """A finishing time in 11 columns: the time today, the date and minute otherwise."""
    when = time.localtime(at)
    if time.strftime("%Y-%m-%d", when) == time.strftime("%Y-%m-%d", time.localtime(now)):
        return f"{time.strftime('%H:%M:%S', when):<11}"
    return time.strftime("%m-%d %H:%M", when)


def history_row(entry: HistoryEntry, width: int, now: float) -> Text:
    text = Text(f"{stamp(entry.finished_at, now)} ")
    text.append(f"{entry.outcome.value:<9}", style=OUTCOME_STYLE[entry.outcome])
    kind = "task" if entry.kind == "task" else ""
    text.append(f"{kind:<5}{label(entry.job_id, entry.task_id):<11}{size(entry.size):>10} ")
    text.append(f"{_seconds(entry.seconds):>7}  ")
    where = entry.path if entry.kind == "file" else (entry.reason or entry.path)
    room = max(8, width - text.cell_len)
    reason = f"  {entry.reason}" if entry.kind == "file" and entry.reason else ""
    if reason:  # the reason gets up to two thirds of the room: it is why the row is red
        room = max(8, room - min(len(reason), room * 2 // 3))
    text.append(left_cut(where, room), style="bold" if entry.kind == "task" else "")
    if reason:
        text.append(reason, style="red")
    return text


def history_header() -> Text:
    return Text(
        f"{'TIME':<12}{'OUTCOME':<9}{'':5}{'JOB:TASK':<11}{'SIZE':>10} {'TOOK':>7}  PATH",
        style="bold dim",
    )


def _seconds(seconds: float) -> str:
    return f"{seconds:.1f}s" if seconds < 60 else clock_time(seconds)
