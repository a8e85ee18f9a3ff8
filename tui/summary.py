"""The plain-text summary: what the legacy client printed, readable at a glance.

Pure functions of an EngineSnapshot (and, at exit, the run's history), so they are easy to
test and the same text serves the headless mode and the end of a full-screen run.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import humanize

from cdl_tui.core.model.frames import FramesView
from cdl_tui.core.model.states import FileState, Outcome
from cdl_tui.core.model.views import (
    ActiveView,
    EngineSnapshot,
    HistoryEntry,
    JobView,
    Problem,
    Totals,
    current_problems,
)

PENDING_SHOWN = 20


def size(count: float) -> str:
    return humanize.naturalsize(count, binary=True, format="%.1f")


def rate(bytes_per_second: float) -> str:
    return f"{size(bytes_per_second)}/s"


def time_of_day(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at))


def problem_words(problem: Problem, *, retry: bool = True) -> str:
    """A problem in one line: the time, the text, how often, and (`retry`) when the next
    try is."""
    words = f"{time_of_day(problem.last_at)} {problem.text}"
    if problem.count > 1:
        words += f" (x{problem.count})"
    if retry and problem.retry_at is not None:
        words += f"; next try at {time_of_day(problem.retry_at)}"
    return words


def duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    return humanize.precisedelta(seconds, minimum_unit="seconds", format="%0.0f")


def clock(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))


def _file_state(state: FileState, percent: float) -> str:
    if state in (FileState.HASHING, FileState.DOWNLOADING):
        return f"{state.value} {percent:.0f}%"
    return state.value


def active_block(view: ActiveView) -> list[str]:
    head = (
        f"Job {view.job_id} Task {view.task_id} - {view.percent:.0f}% "
        f"({size(view.done)}/{size(view.size)}) - {view.worker}"
    )
    if view.paused:
        head += "  PAUSED"
    elif view.rate:
        head += f"  {rate(view.rate)}"
    width = max((len(f.path) for f in view.files), default=0)
    lines = [head]
    for f in view.files:
        line = f"    {f.path:<{width}}  {size(f.size):>10}  {_file_state(f.state, f.percent)}"
        if f.detail:
            line += f"  ({f.detail})"
        lines.append(line)
    return lines


def _history_line(entry: HistoryEntry) -> str:
    where = entry.path if entry.kind == "file" else f"Job {entry.job_id} Task {entry.task_id}"
    line = (
        f"    {clock(entry.finished_at)}  {entry.outcome.value:<9} {size(entry.size):>10}  "
        f"{duration(entry.seconds):>7}  {where}"
    )
    if entry.reason:
        line += f"  ({entry.reason})"
    return line


def format_summary(snap: EngineSnapshot) -> str:
    lines = [f"##### ACTIVE DOWNLOADS ({len(snap.active)}) #####"]
    for view in snap.active:
        lines += active_block(view)
    if not snap.active:
        lines.append("    none" + ("  (PAUSED)" if snap.paused else ""))
    lines.append(f"##### PENDING DOWNLOADS ({len(snap.pending)}) #####")
    for pending in snap.pending[:PENDING_SHOWN]:
        line = (
            f"    Job {pending.job_id} Task {pending.task_id}  {pending.files} files  "
            f"{size(pending.size)}"
        )
        if pending.attempts:
            line += f"  attempt {pending.attempts + 1}, last error: {pending.last_error}"
        if pending.held:
            line += "  PAUSED"
        lines.append(line)
    if len(snap.pending) > PENDING_SHOWN:
        lines.append(f"    ... and {len(snap.pending) - PENDING_SHOWN} more")
    if snap.failed:
        lines.append(f"##### FAILED ({len(snap.failed)}) #####")
        lines += [
            f"    Job {f.job_id} Task {f.task_id}  {f.outcome.value} after {f.attempts} "
            f"attempts: {f.reason}"
            for f in snap.failed
        ]
    lines.append("##### HISTORY #####")
    lines.append(f"Last {len(snap.recent_files)} files:")
    lines += [_history_line(e) for e in snap.recent_files]
    lines.append(f"Last {len(snap.recent_tasks)} tasks:")
    lines += [_history_line(e) for e in snap.recent_tasks]
    current = current_problems(snap.problems, snap.taken_at)
    if current:
        lines.append(f"##### PROBLEMS ({len(current)} current, newest first) #####")
        lines += [f"    {p.severity.value.upper()} {problem_words(p)}" for p in current[:5]]
        if len(current) > 5:
            lines.append(f"    ... and {len(current) - 5} more (the log file has them all)")
    lines.append(status_line(snap))
    return "\n".join(lines)


def status_line(snap: EngineSnapshot) -> str:
    jobs = " ".join(f"{j.job_id} {j.finished}/{j.listed}" for j in snap.jobs)
    parts = [
        f"threads {snap.busy}/{snap.threads} busy",
        f"uptime {duration(snap.uptime)}",
        rate(snap.rate),
        f"{snap.mode} mode",
    ]
    if jobs:
        parts.append(f"jobs {jobs}")
    parts.append(snap.feeder)
    if snap.paused:
        parts.append("PAUSED")
    return "##### " + " | ".join(parts) + " #####"


def _count(number: int, what: str) -> str:
    return f"{number} {what}{'' if number == 1 else 's'}"


def failed_words(totals: Totals) -> str:
    """`failed: 2 (1 task, 1 job; 3 files)`: the one count of failures that the header,
    the Pending tab, the report and the exit code use too."""
    words = f"failed: {totals.failed}"
    parts = []
    tasks = totals.downloads_failed + totals.downloads_refused
    if tasks:
        parts.append(_count(tasks, "task"))
    if totals.jobs_failed:
        parts.append(_count(totals.jobs_failed, "job"))
    if parts:
        files = f"; {_count(totals.files_failed, 'file')}" if totals.files_failed else ""
        words += f" ({', '.join(parts)}{files})"
    return words


def total_line(totals: Totals, uptime: float) -> str:
    mean = totals.bytes_downloaded / uptime if uptime > 0 else 0.0
    return (
        f"cdl-tui: {totals.downloads_done} tasks done: {totals.files_downloaded} files "
        f"downloaded ({size(totals.bytes_downloaded)}), {totals.files_cached} cached "
        f"({size(totals.bytes_cached)}); {failed_words(totals)}; "
        f"{totals.downloads_cancelled} cancelled; mean {rate(mean)} over {duration(uptime)}"
    )


def final_tasks(tasks: Iterable[HistoryEntry]) -> list[HistoryEntry]:
    """Each task's last entry, in the order they finished: a Download that failed and was
    retried to success reads DL, as the counts say."""
    last: dict[tuple[str, str, str], HistoryEntry] = {}
    for entry in tasks:
        key = (entry.download_id, entry.job_id, entry.task_id)
        last.pop(key, None)
        last[key] = entry
    return list(last.values())


def sequence_lines(view: FramesView, indent: str = "      ") -> list[str]:
    """A job's files as frame sequences, one line each (`missing 1050-1052,1077  empty
    1090`), then its single files: the same words in the summary and in --verify."""
    lines = []
    for s in view.sequences:
        parts = [s.pattern, f"{s.files}/{s.listed} files {size(s.bytes)}"]
        parts.append(f"frames {s.frames}" if s.frames else "no frame on disk")
        if s.missing:
            parts.append(f"missing {s.missing}")
        if s.empty:
            parts.append(f"empty {s.empty}")
        lines.append(indent + "  ".join(parts))
    for single in view.singles:
        where = "on disk" if single.on_disk else "missing"
        lines.append(f"{indent}{single.path}  {size(single.size)}  {where}")
    return lines


def job_line(job: JobView) -> str:
    """`Job 08285  INCOMPLETE  96/100 tasks (4 failed)  9.4 GiB of 9.8 GiB`"""
    failed = f" ({job.failed} failed)" if job.failed else ""
    state = f"FAILED: {job.error}" if job.error else job.state
    return (
        f"    Job {job.job_id}  {state}  {job.finished}/{job.listed} tasks{failed}  "
        f"{size(job.bytes_done)} of {size(job.bytes_total)}"
    )


def format_final(
    snap: EngineSnapshot, tasks: Iterable[HistoryEntry], frames: Iterable[FramesView] = ()
) -> str:
    """The end of a run: each task's outcome, each job's frames, what failed, the totals."""
    lines = ["##### RUN HISTORY (tasks) #####"]
    lines += [_history_line(entry) for entry in final_tasks(tasks)] or ["    none"]
    by_job = {view.job_id: view for view in frames}
    handed = [job_id for job_id in by_job if job_id not in {j.job_id for j in snap.jobs}]
    if snap.jobs or handed:
        lines.append(f"##### JOBS ({len(snap.jobs) + len(handed)}) #####")
        for job in snap.jobs:
            lines.append(job_line(job))
            if job.job_id in by_job:
                lines += sequence_lines(by_job[job.job_id])
        for job_id in handed:  # a daemon's: only what its history says
            lines.append(f"    Job {job_id}")
            lines += sequence_lines(by_job[job_id])
    for heading, outcomes in (
        ("FAILED", {Outcome.FAILED, Outcome.REFUSED}),
        ("CANCELLED", {Outcome.CANCELLED}),
    ):
        given_up = [f for f in snap.failed if f.outcome in outcomes]
        if given_up:
            lines.append(f"##### {heading} ({len(given_up)}) #####")
            lines += [
                f"    Job {f.job_id} Task {f.task_id}  {f.outcome.value}: {f.reason}"
                for f in given_up
            ]
    lines.append(f"uptime {duration(snap.uptime)}")
    lines.append(total_line(snap.totals, snap.uptime))
    return "\n".join(lines)
