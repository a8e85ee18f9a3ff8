"""What the detail view (Enter on a row) and the log pane say, as wrapped text.

Pure functions of the engine's immutable views, so they are tested without a screen. A
reason is never cut here: the modal that shows it wraps and scrolls.
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from cdl_tui.core.model.frames import FramesView
from cdl_tui.core.model.views import (
    DownloadDetail,
    FailedView,
    HistoryEntry,
    JobView,
    PendingView,
    Problem,
    Severity,
)

from .summary import clock, duration, size, time_of_day
from .widgets.rows import clock_time


def _when(at: float | None) -> str:
    return clock(at) if at else "-"


def _facts(rows: list[tuple[str, str]]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold dim", no_wrap=True)
    table.add_column(overflow="fold")
    for name, value in rows:
        table.add_row(name, Text(value))
    return table


def _heading(text: str) -> Text:
    return Text(f"\n{text}", style="bold")


def detail_body(detail: DownloadDetail) -> RenderableType:
    """Everything the engine knows about one Download."""
    facts = [
        (
            "state",
            detail.outcome
            + ("" if detail.where in detail.outcome.lower() else f" ({detail.where})"),
        ),
        ("job:task", f"{detail.job_id or '?'}:{detail.task_id or '?'}"),
        (
            "download id",
            f"{detail.download_id or '(none)'}  (as the farm sent it: {detail.wire_id})",
        ),
        (
            "listed for",
            {"": "-", "daemon": "the daemon queue"}.get(detail.origin, f"job {detail.origin}"),
        ),
        ("size", f"{size(detail.size)} in {len(detail.files)} files"),
        ("file host", ", ".join(detail.url_hosts) or "-"),
    ]
    parts: list[RenderableType] = [_facts(facts)]
    if detail.reason:
        parts += [_heading("Reason"), Text(detail.reason, style="red")]
    parts.append(_heading(f"Attempts ({len(detail.attempts)})"))
    for attempt in detail.attempts:
        took = duration(attempt.ended_at - attempt.started_at) if attempt.ended_at else ""
        parts.append(
            Text(
                f"{attempt.number:>2}  {_when(attempt.started_at)}  {took:>7}  "
                f"{attempt.worker:<10} {attempt.outcome}"
            )
        )
        if attempt.error:
            parts.append(_indented(Text(attempt.error, style="red")))
    if not detail.attempts:
        parts.append(Text("none yet", style="dim"))
    parts.append(_heading(f"Files ({len(detail.files)})"))
    for f in detail.files:
        line = Text.assemble((f"{f.state:<12}", "bold"), f" {size(f.size):>10}  {f.relative_path}")
        parts.append(line)
        rows = [("final", f.final_path or "(not planned yet)")]
        if f.temp_path:
            rows.append(("temp", f.temp_path))
        if f.md5:
            rows.append(("md5", f.md5))
        if f.reason:
            rows.append(("reason", f.reason))
        parts.append(_indented(_facts(rows)))
    return Group(*parts)


def _indented(table: RenderableType) -> Table:
    outer = Table.grid(padding=(0, 0))
    outer.add_column(width=4)
    outer.add_column()
    outer.add_row("", table)
    return outer


def history_body(entry: HistoryEntry) -> RenderableType:
    """An entry of an earlier run (the journal keeps no more than this)."""
    facts = [
        ("outcome", entry.outcome.value),
        ("kind", entry.kind),
        ("job:task", f"{entry.job_id}:{entry.task_id}"),
        ("download id", entry.download_id),
        ("finished", _when(entry.finished_at)),
        ("took", duration(entry.seconds)),
        ("size", size(entry.size)),
        ("path", entry.path or "-"),
    ]
    if entry.run_started:
        facts.append(("run started", _when(entry.run_started)))
    parts: list[RenderableType] = [_facts(facts)]
    if entry.reason:
        parts += [_heading("Reason"), Text(entry.reason, style="red")]
    return Group(*parts)


def failed_body(view: FailedView) -> RenderableType:
    facts = [
        ("outcome", view.outcome.value),
        ("job:task", f"{view.job_id or '?'}:{view.task_id or '?'}"),
        ("download id", view.download_id or "(none: the farm's description had none)"),
        ("attempts", str(view.attempts)),
        ("at", _when(view.at)),
    ]
    return Group(_facts(facts), _heading("Reason"), Text(view.reason, style="red"))


def pending_body(view: PendingView) -> RenderableType:
    facts = [
        ("job:task", f"{view.job_id}:{view.task_id}"),
        ("download id", view.download_id),
        ("files", f"{view.files} ({size(view.size)})"),
        ("attempts", str(view.attempts)),
        ("state", view.waiting or ("PAUSED" if view.held else "queued")),
    ]
    parts: list[RenderableType] = [_facts(facts)]
    if view.last_error:
        parts += [_heading("Last error"), Text(view.last_error, style="red")]
    return Group(*parts)


def job_body(
    job: JobView, frames: FramesView | None = None, *, gathering: bool = False
) -> RenderableType:
    """A job: its state and counts, then its frame sequences (`frames`; None: no file of
    it was listed; `gathering`: a thread is gathering them)."""
    facts = [
        ("job", job.job_id),
        ("state", job.state),
        ("listed", f"{job.listed} Downloads{'' if job.listing_complete else ' so far'}"),
        ("finished", str(job.finished)),
        ("failed", str(job.failed)),
        ("pending", str(job.pending)),
        ("bytes", f"{size(job.bytes_done)} of {size(job.bytes_total)}"),
    ]
    if job.rate:
        facts.append(("rate", f"{size(job.rate)}/s, ETA {clock_time(job.eta) or '-'}"))
    parts: list[RenderableType] = [_facts(facts)]
    if job.error:
        parts += [_heading("Reason"), Text(job.error, style="red")]
    if gathering:
        parts += [_heading("Frames"), Text("gathering the frame sequences…", style="dim")]
    elif frames is None:
        parts += [_heading("Frames"), Text("No file of this job was listed.", style="dim")]
    else:
        parts += [_heading("Frames"), frames_body(frames)]
    return Group(*parts)


SINGLES_SHOWN = 500


def frames_body(frames: FramesView) -> RenderableType:
    """Each sequence: its pattern, then frames on disk, missing and empty as ranges; then
    the files that are no sequence."""
    if not frames.sequences and not frames.singles:
        return Text("No file of this job was listed yet.", style="dim")
    parts: list[RenderableType] = []
    for seq in frames.sequences:
        parts.append(Text(seq.pattern, style="bold"))
        table = Table.grid(padding=(0, 1))
        table.add_column(no_wrap=True, width=9)
        table.add_column(overflow="fold")
        counts = f"  ({seq.files}/{seq.listed} files, {size(seq.bytes)})"
        table.add_row("  on disk", Text.assemble(seq.frames or "none", (counts, "dim")))
        if seq.missing:
            table.add_row(Text("  missing", style="bold red"), Text(seq.missing, style="red"))
        if seq.empty:
            table.add_row(Text("  empty", style="bold yellow"), Text(seq.empty, style="yellow"))
        parts.append(table)
    if frames.singles:
        parts.append(Text("Files with no sequence", style="bold"))
        table = Table.grid(padding=(0, 1))
        table.add_column(overflow="fold")
        table.add_column(no_wrap=True, justify="right")
        table.add_column(no_wrap=True)
        # Missing ones first; a screen of thousands of lines helps nobody (the report
        # and --verify list them all).
        singles = sorted(frames.singles, key=lambda s: s.on_disk)
        for single in singles[:SINGLES_SHOWN]:
            where = Text("on disk") if single.on_disk else Text("missing", style="bold red")
            table.add_row(f"  {single.path}", size(single.size), where)
        parts.append(table)
        if len(singles) > SINGLES_SHOWN:
            more = f"  … and {len(singles) - SINGLES_SHOWN} more (--report lists them all)"
            parts.append(Text(more, style="dim"))
    return Group(*parts)


def log_body(problems: tuple[Problem, ...], now: float) -> RenderableType:
    """The log pane: every kept warning and error, newest first, wrapped."""
    if not problems:
        return Text("No warnings or errors in this run.", style="dim")
    table = Table.grid(padding=(0, 1))
    table.add_column(no_wrap=True)
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    for problem in problems:
        style = "bold red" if problem.severity is Severity.ERROR else "yellow"
        at = time_of_day(problem.last_at)
        text = Text(problem.text, style="" if problem.current(now) else "dim")
        notes = []
        if problem.count > 1:
            notes.append(f"{problem.count} times since {time_of_day(problem.first_at)}")
        if problem.retry_at and problem.retry_at > now and problem.cleared_at is None:
            notes.append(f"next try {time_of_day(problem.retry_at)}")
        if problem.cleared_at:
            notes.append(f"over at {time_of_day(problem.cleared_at)}")
        if notes:
            text.append(f"  ({'; '.join(notes)})", style="dim")
        table.add_row(at, Text(problem.severity.value.upper(), style=style), text)
    return table
