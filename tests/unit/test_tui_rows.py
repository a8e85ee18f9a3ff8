"""The pure pieces of the screen: rows, the key bar, the status line, the failure count."""

from __future__ import annotations

import os
import time
from dataclasses import replace

import pytest
from rich.text import Text

from cdl_tui.core.model.states import FileState, Outcome
from cdl_tui.core.model.views import (
    ActiveView,
    EngineSnapshot,
    FailedView,
    FileView,
    HistoryEntry,
    PendingView,
    Totals,
)
from cdl_tui.core.state.problems import Problem, Severity
from cdl_tui.tui.summary import failed_words, format_summary, total_line
from cdl_tui.tui.widgets import rows
from cdl_tui.tui.widgets.header import header_lines
from cdl_tui.tui.widgets.keybar import KeyHint, fit_hints
from cdl_tui.tui.widgets.status import Notice, status_text

NOW = 1_795_000_000.0


@pytest.fixture(autouse=True)
def utc():
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if saved is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = saved
    time.tzset()


def snapshot(**changes) -> EngineSnapshot:
    base = EngineSnapshot(
        taken_at=NOW,
        uptime=60.0,
        mode="jobs",
        farm="farm.example:443",
        location=None,
        paused=False,
        stopping=False,
        threads=2,
        busy=1,
        active=(),
        pending=(),
        failed=(),
        recent_files=(),
        recent_tasks=(),
        history_files=0,
        history_tasks=0,
        history_serial=0,
        totals=Totals(),
        rate=0.0,
        rate_history=(),
        jobs=(),
        feeder="listing job 08285",
    )
    return replace(base, **changes)


def pending(n: int = 0, **changes) -> PendingView:
    view = PendingView(f"id{n}", "08285", f"{n:03d}", 3, 3 << 20, 0, None, False, 0.0)
    return replace(view, **changes)


def test_failed_and_pending_rows_share_their_columns() -> None:
    """A CANCELLED or FAILED row no longer starts 10 columns to the right of the queue."""
    queued = rows.pending_row(pending(1), NOW).plain
    for outcome in (Outcome.CANCELLED, Outcome.FAILED):
        failed = rows.failed_row(
            FailedView("id2", "08285", "002", 3, 3 << 20, 2, "why", outcome, NOW)
        ).plain
        assert failed.index("08285:002") == queued.index("08285:001") == 0
        assert failed.index("files") == queued.index("files")
        assert failed.index(outcome.value) == len(queued) - 0  # the state column
    refused = rows.failed_row(FailedView(None, "08285", "3", 0, 0, 0, "bad", Outcome.REFUSED, NOW))
    assert refused.plain.index("REFUSED") == len(queued)
    assert rows.failed_job_row("99999", "not on the farm").plain.index("FAILED") == len(queued)


def test_paused_rows_say_paused() -> None:
    view = FileView("a.exr", 100, FileState.DOWNLOADING, 40)
    assert rows.file_row(view, 80).plain.startswith("DOWNLOADING 40%")
    assert rows.file_row(view, 80, paused=True).plain.startswith("PAUSED 40%")
    assert "PAUSED" in rows.pending_row(pending(), NOW, paused_all=True).plain
    assert "PAUSED" not in rows.pending_row(pending(), NOW).plain


def test_history_times_carry_the_date_when_not_today() -> None:
    assert rows.stamp(NOW - 60, NOW).strip() == time.strftime("%H:%M:%S", time.gmtime(NOW - 60))
    yesterday = rows.stamp(NOW - 86400, NOW)
    assert yesterday == time.strftime("%m-%d %H:%M", time.gmtime(NOW - 86400))
    assert len(yesterday) == len(rows.stamp(NOW, NOW)) == 11


def test_a_failed_file_keeps_room_for_its_reason() -> None:
    entry = HistoryEntry(
        "file",
        Outcome.FAILED,
        "1",
        "08285",
        "001",
        "/mnt/renders/08285/" + "very_long_folder_name/" * 6 + "beauty.1001.exr",
        10,
        1.0,
        NOW,
        "refused: another program's file is in the way",
    )
    line = rows.history_row(entry, 100, NOW)
    line.truncate(100)
    assert "refused: another program's" in line.plain  # Enter shows the rest
    assert "1001.exr" in line.plain


def test_the_key_bar_keeps_help_and_quit_at_any_width() -> None:
    hints = [KeyHint("p", "Pause all", 1), KeyHint("a", "Add", 6), KeyHint("b", "Limit", 8)]
    for width in (30, 60, 100):
        text = fit_hints(hints, width).plain
        assert text.rstrip().endswith("?  Help  q  Quit")
        assert len(text) <= max(width, 22)
    assert "Limit" in fit_hints(hints, 100).plain
    narrow = fit_hints(hints, 45).plain
    assert "Pause all" in narrow and "Limit" not in narrow  # the least useful go first


def test_the_status_line_shows_the_newest_current_problem_and_when_the_next_try_is() -> None:
    farm = Problem(
        Severity.WARNING,
        "the farm does not answer",
        NOW - 5,
        NOW - 1,
        count=3,
        key="farm",
        retry_at=NOW + 4,
    )
    old = Problem(Severity.ERROR, "job 1 is not on the farm", NOW - 50, NOW - 50, key="job 1")
    gone = Problem(Severity.WARNING, "slow disk", NOW - 500, NOW - 500)
    line = status_text(snapshot(problems=(farm, old, gone)), None, 100).plain
    assert line.startswith(" ▲ next try in 0:04")
    assert "the farm does not answer (x3)" in line
    assert line.rstrip().endswith("+1 more · l log")
    assert len(line) == 100
    cleared = replace(farm, cleared_at=NOW)
    line = status_text(snapshot(problems=(cleared, old)), None, 100).plain
    assert "✖" in line and "job 1 is not on the farm" in line
    quiet = status_text(snapshot(problems=(cleared,)), None, 100).plain
    assert quiet.startswith(" listing job 08285") and "1 in the log" in quiet
    notice = Notice("12 download threads", until=1.0, at=NOW)
    assert status_text(snapshot(problems=(farm,)), notice, 100).plain == " ● 12 download threads"


def test_the_header_shows_what_is_left_and_when_it_ends() -> None:
    active = ActiveView("a", "08285", "001", "worker-1", 300, 100, (), NOW, 1, False, 50.0)
    snap = snapshot(active=(active,), pending=(pending(size=800),), rate=100.0)
    second = header_lines(snap)[1].plain
    assert "left 1000 Bytes" in second and "ETA 0:10" in second
    paused = header_lines(replace(snap, paused=True))
    assert "ETA -" in paused[1].plain
    assert "PAUSED" in paused[0].plain and "farm farm.example:443" in paused[0].plain


def test_one_count_of_failures() -> None:
    totals = Totals(downloads_failed=2, downloads_refused=1, jobs_failed=1, files_failed=3)
    assert totals.failed == 4
    assert failed_words(totals) == "failed: 4 (3 tasks, 1 job; 3 files)"
    assert failed_words(Totals()) == "failed: 0"
    assert "; failed: 4 (" in total_line(totals, 10.0)
    header = header_lines(snapshot(totals=totals))[1].plain
    assert "FAILED 4" in header


def test_the_plain_summary_lists_current_problems() -> None:
    farm = Problem(
        Severity.WARNING, "the farm does not answer", NOW - 5, NOW - 1, key="farm", retry_at=NOW + 4
    )
    text = format_summary(snapshot(problems=(farm,)))
    assert "PROBLEMS (1 current" in text and "WARNING" in text and "next try at" in text


def test_rows_are_text() -> None:
    assert isinstance(rows.failed_job_row("1", "x"), Text)


def test_threads_retiring_after_minus_are_shown_as_finishing() -> None:
    first = header_lines(snapshot(busy=9, threads=6))[0].plain
    assert "6/6 threads +3 finishing" in first and "9/6" not in first
    assert "1/2 threads" in header_lines(snapshot())[0].plain
