"""The screen tells the whole truth: problems on the status line, one count of failures
everywhere, state that follows the keys, details on Enter. Pilot tests against the real
engine and a real farm (or none at all, for an unreachable one)."""

from __future__ import annotations

import io
import time

from rich.console import Console
from textual.widgets import Input, TabbedContent

from cdl_tui.core.model.states import Outcome
from cdl_tui.core.run_report import build_report
from cdl_tui.tui.screens.modals import BandwidthScreen, ConfirmScreen, HelpScreen, TextScreen
from cdl_tui.tui.summary import format_final
from cdl_tui.tui.widgets.header import HeaderBar
from cdl_tui.tui.widgets.keybar import KeyBar
from cdl_tui.tui.widgets.lists import ActiveList, FilesList, HistoryList, PendingList
from cdl_tui.tui.widgets.status import StatusLine

from .tui_driver import burst, drive, until


def status(app) -> str:
    return app.main.query_one(StatusLine).plain


def keys(app) -> str:
    return app.main.query_one(KeyBar).plain


def header(app) -> str:
    return app.main.query_one(HeaderBar).plain


def tab_label(app, pane: str) -> str:
    return str(app.main.query_one(TabbedContent).get_tab(pane).label)


def modal_text(screen) -> str:
    """The text of a TextScreen (detail, log, help) as a 100-column terminal shows it."""
    console = Console(width=100, file=io.StringIO(), record=True, color_system=None)
    console.print(screen.body)
    return console.export_text()


def slow_farm(start_farm, **shape):
    return start_farm("--faults", "bandwidth=256KiB", **{"size": 700_000, **shape})


def test_an_unreachable_farm_shows_on_the_status_line_within_two_seconds(
    start_farm, make_engine, tmp_path
):
    farm = start_farm(jobs=1, tasks=1, files=1)
    farm.stop()  # nothing listens at its address any more
    engine = make_engine(farm, tmp_path, jobs=farm.job_ids)

    async def scenario(app, pilot):
        started = time.monotonic()
        await until(
            pilot,
            lambda: "does not answer" in status(app) or "next try" in status(app),
            timeout=2.0,
            what="the farm's problem on the status line",
        )
        assert time.monotonic() - started < 2.0
        line = status(app)
        assert "next try in" in line and "listing job" in line
        assert "l log" in line
        await pilot.press("l")
        assert isinstance(app.screen, TextScreen)
        assert "WARNING" in modal_text(app.screen)
        await pilot.press("escape")

    drive(engine, scenario)


def test_a_job_not_on_the_farm_counts_as_failed_everywhere(start_farm, make_engine, tmp_path):
    farm = start_farm(jobs=1, tasks=2, files=1)
    engine = make_engine(farm, tmp_path, jobs=[*farm.job_ids, "99999"])

    async def scenario(app, pilot):
        await until(pilot, lambda: engine.snapshot().totals.jobs_failed == 1, what="the 404")
        await until(pilot, lambda: "FAILED 1" in header(app), what="the header")
        await until(
            pilot,
            lambda: "✖" in status(app) and "99999" in status(app),
            timeout=10,  # after the notice that job 00001 is done, if it came last
            what="the status line",
            show=lambda: status(app),
        )
        await pilot.press("2")
        await until(pilot, lambda: "1 failed" in tab_label(app, "pending"), what="the tab")
        pending = app.main.query_one(PendingList)
        await pilot.press("home")
        assert pending.selected_key == "job 99999"
        assert "FAILED" in pending.row_text(0, 100).plain
        await pilot.press("enter")
        assert isinstance(app.screen, TextScreen)
        assert "not found" in modal_text(app.screen)
        await pilot.press("escape", "q")  # nothing active: it quits at once

    drive(engine, scenario)
    code = engine.shutdown()
    snap = engine.snapshot()
    assert code == 1
    assert snap.totals.failed == 1
    _, tasks = engine.history()
    assert "failed: 1 (1 job)" in format_final(snap, tasks)
    report = build_report(engine)
    assert report["totals"]["failed"] == 1 and report["exit_code"] == 1


def test_a_download_retried_to_success_is_no_failure_anywhere(start_farm, make_engine, tmp_path):
    farm = start_farm(jobs=1, tasks=2, files=1, size=5000)
    store = farm.store()
    download_id, md5 = store.conn.execute(
        "SELECT d.download_id, f.md5 FROM files f JOIN downloads d ON d.id = f.download_pk "
        "WHERE d.task_index = 1"
    ).fetchone()
    store.conn.execute(
        "UPDATE files SET md5 = 'AAAAAAAAAAAAAAAAAAAAAA==' WHERE download_pk = "
        "(SELECT id FROM downloads WHERE download_id = ?)",
        (download_id,),
    )
    engine = make_engine(farm, tmp_path, jobs=farm.job_ids, max_attempts=1)

    async def scenario(app, pilot):
        await until(pilot, lambda: engine.snapshot().totals.failed == 1, what="a failure")
        await until(pilot, lambda: "FAILED 1" in header(app), what="the header")
        await pilot.press("2")
        await until(pilot, lambda: "r" in keys(app) and "Retry all" in keys(app), what="R")
        store.conn.execute(
            "UPDATE files SET md5 = ? WHERE download_pk = "
            "(SELECT id FROM downloads WHERE download_id = ?)",
            (md5, download_id),
        )
        await pilot.press("R")
        await until(pilot, lambda: engine.snapshot().totals.downloads_done == 2, what="done")
        await until(pilot, lambda: "FAILED 0" in header(app), what="the header again")
        assert "failed" not in tab_label(app, "pending")
        assert "Retry all" not in keys(app)
        await pilot.press("q")  # nothing active: it quits at once
        assert engine.stopping

    drive(engine, scenario)
    code = engine.shutdown()
    snap = engine.snapshot()
    assert code == 0
    assert (snap.totals.failed, snap.totals.files_failed) == (0, 0)
    _, tasks = engine.history()
    final = format_final(snap, tasks)
    assert "failed: 0;" in final
    assert "FAILED" not in final  # neither in the tasks' outcomes nor as a section
    assert build_report(engine)["totals"]["failed"] == 0


def test_after_p_rows_say_paused_and_the_key_bar_offers_resume(start_farm, make_engine, tmp_path):
    farm = slow_farm(start_farm, jobs=1, tasks=4, files=1, size=3_000_000)
    engine = make_engine(farm, tmp_path, jobs=farm.job_ids, threads=2)

    async def scenario(app, pilot):
        await until(pilot, lambda: any(a.done for a in engine.snapshot().active), what="bytes")
        assert "Pause all" in keys(app) and "Resume" not in keys(app)
        await pilot.press("p")
        await until(pilot, lambda: "Resume" in keys(app), what="p Resume")
        assert "Pause all" not in keys(app)
        active = app.main.query_one("#active-list")
        assert all("PAUSED" in active.row_text(i, 100).plain for i in range(active.row_count))
        files = app.main.query_one(FilesList)
        moving = [files._line_text(i, 100).plain for i in range(files.row_count)]
        assert not any("DOWNLOADING" in line for line in moving)
        assert "PAUSED" in header(app)
        assert "farm 127.0.0.1" in header(app).splitlines()[0]  # PAUSED pushes nothing off
        await pilot.press("2")
        pending = app.main.query_one(PendingList)
        assert all("PAUSED" in pending.row_text(i, 100).plain for i in range(pending.row_count))
        await pilot.press("p")
        await until(pilot, lambda: "Pause all" in keys(app), what="p Pause all")

    drive(engine, scenario)


def test_the_key_bar_hides_retry_with_nothing_to_retry(start_farm, make_engine, tmp_path):
    farm = slow_farm(start_farm, jobs=1, tasks=3, files=1)
    engine = make_engine(farm, tmp_path, jobs=farm.job_ids, threads=1)

    async def scenario(app, pilot):
        await until(pilot, lambda: engine.snapshot().active, what="a download")
        await pilot.press("2")
        await until(pilot, lambda: app.main.query_one(PendingList).row_count, what="pending")
        bar = keys(app)
        assert " r " not in bar and "Retry" not in bar
        assert "To top" in bar  # a pending download is selected

    drive(engine, scenario)


def test_ten_plus_presses_leave_one_notice_that_updates(start_farm, make_engine, tmp_path):
    farm = start_farm(jobs=1, tasks=2, files=1)
    engine = make_engine(farm, tmp_path, jobs=farm.job_ids, threads=2)

    async def scenario(app, pilot):
        await pilot.press(*["plus"] * 10)
        await pilot.pause(0.1)
        assert engine.snapshot().threads == 12
        assert "12 download threads" in status(app)
        assert len(app._notifications) == 0  # no toast at all, let alone ten
        await pilot.press("minus")
        assert "11 download threads" in status(app)
        assert "12" not in status(app)
        assert "11/11 threads" in header(app) or "/11 threads" in header(app)

    drive(engine, scenario)


def test_a_burst_of_3_slash_b_types_b_into_the_filter(start_farm, make_engine, tmp_path):
    farm = start_farm(jobs=1, tasks=2, files=1)
    engine = make_engine(farm, tmp_path, jobs=farm.job_ids)

    async def scenario(app, pilot):
        burst(app, "3/bq")  # in one burst, as over SSH
        field = app.main.query_one("#history-filter", Input)
        await until(pilot, lambda: field.value == "bq", what="bq typed", show=lambda: field.value)
        assert not isinstance(app.screen, BandwidthScreen | ConfirmScreen)
        assert not engine.stopping
        assert app.main.focused is field
        await pilot.pause(0.3)
        assert "Apply filter" in keys(app)
        await pilot.press("escape")
        assert app.main.focused is app.main.query_one(HistoryList)

    drive(engine, scenario)


def test_a_burst_into_a_dialog_reaches_its_field_and_an_early_enter_changes_nothing(
    start_farm, make_engine, tmp_path
):
    farm = start_farm(jobs=1, tasks=2, files=1)
    engine = make_engine(farm, tmp_path, jobs=farm.job_ids)

    async def scenario(app, pilot):
        engine.set_bandwidth(10e6)
        burst(app, "b40MB/s\r")
        await until(pilot, lambda: engine.snapshot().bandwidth_limit == 40e6, what="40 MB/s")
        burst(app, "b\r")  # Enter before any digit: the limit stays
        await pilot.pause(0.5)
        assert engine.snapshot().bandwidth_limit == 40e6
        assert not isinstance(app.screen, BandwidthScreen)
        burst(app, "2c")  # the tab, then the key for its selection
        await until(pilot, lambda: app.main.current_tab == "pending", what="Pending")

    drive(engine, scenario)


def test_60_columns_keep_help_and_quit_and_help_scrolls(start_farm, make_engine, tmp_path):
    farm = start_farm(jobs=1, tasks=2, files=1)
    engine = make_engine(farm, tmp_path, jobs=farm.job_ids)

    async def scenario(app, pilot):
        for tab in ("1", "2", "3"):
            await pilot.press(tab)
            await pilot.pause(0.05)
            bar = keys(app)
            assert len(bar) <= 60
            assert bar.rstrip().endswith("?  Help  q  Quit")
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        body = app.screen.query_one("#text-body")
        assert body.max_scroll_y > 0  # more lines than fit: it scrolls
        await pilot.press("end")
        await pilot.pause(0.1)
        assert body.scroll_y == body.max_scroll_y
        await pilot.press("escape")

    drive(engine, scenario, size=(60, 15))


def test_enter_opens_the_details_of_active_pending_and_history_rows(
    start_farm, make_engine, tmp_path
):
    farm = slow_farm(start_farm, jobs=1, tasks=3, files=1)
    engine = make_engine(farm, tmp_path, jobs=farm.job_ids, threads=1)

    async def scenario(app, pilot):
        active = app.main.query_one(ActiveList)
        await until(  # a row whose files are planned (their final paths known)
            pilot, lambda: active.selected is not None and active.selected.files, what="a row"
        )
        await pilot.press("enter")
        assert isinstance(app.screen, TextScreen)
        text = modal_text(app.screen)
        assert "Attempts (1)" in text and "running" in text
        assert "127.0.0.1" in text and "?" not in text.split("file host")[1].split("\n")[0]
        assert str(tmp_path) in text  # the final path
        assert ".part" in text  # the temp file it is written through
        await pilot.press("escape")
        assert not isinstance(app.screen, TextScreen)
        await pilot.press("2")
        await until(pilot, lambda: app.main.query_one(PendingList).row_count, what="pending")
        await pilot.press("enter")
        assert isinstance(app.screen, TextScreen), status(app)
        assert "job:task" in modal_text(app.screen)
        await pilot.press("escape", "3")
        history = app.main.query_one(HistoryList)
        await until(pilot, lambda: history.row_count, what="a finished file")
        await pilot.press("end", "enter")  # the oldest row: the first file that finished
        assert isinstance(app.screen, TextScreen)
        text = modal_text(app.screen)
        assert "DL" in text and "Attempts (1)" in text and ".part" not in text
        await pilot.press("escape")

    drive(engine, scenario)


def test_the_quit_dialog_names_its_default(start_farm, make_engine, tmp_path):
    farm = slow_farm(start_farm, jobs=1, tasks=2, files=1)
    engine = make_engine(farm, tmp_path, jobs=farm.job_ids)

    async def scenario(app, pilot):
        await until(pilot, lambda: engine.snapshot().active, what="a download")
        await pilot.press("q")
        assert isinstance(app.screen, ConfirmScreen)
        hint = " ".join(str(label.render()) for label in app.screen.query("Label"))
        assert "Enter" in hint and "default" in hint and "quit" in hint
        await pilot.press("n")
        assert not engine.stopping

    drive(engine, scenario)


def test_the_command_palette_offers_every_action(start_farm, make_engine, tmp_path):
    from cdl_tui.tui.screens.main import COMMANDS, MainScreen

    bound = {b.action for b in MainScreen.BINDINGS}  # type: ignore[union-attr]
    assert bound - {"next_tab"} <= {action for action, _, _ in COMMANDS}
    farm = start_farm(jobs=1, tasks=2, files=1)
    engine = make_engine(farm, tmp_path, jobs=farm.job_ids, threads=2)

    async def scenario(app, pilot):
        titles = [c.title for c in app.get_system_commands(app.main)]
        assert len(titles) == len(COMMANDS)
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        await pilot.press(*"one more download thread")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await until(pilot, lambda: engine.snapshot().threads == 3, what="the palette's command")

    drive(engine, scenario)


def test_history_shows_this_run_and_earlier_runs_on_e(start_farm, make_engine, tmp_path):
    farm = start_farm(jobs=1, tasks=2, files=1)
    journal = tmp_path / "journal.sqlite"
    first = make_engine(
        farm, tmp_path / "out", jobs=farm.job_ids, exit_when_done=True, journal=journal
    )
    first.start()
    first.stop_event.wait(30)
    first.shutdown()
    second = make_engine(farm, tmp_path / "out2", jobs=farm.job_ids, journal=journal)

    async def scenario(app, pilot):
        await until(pilot, lambda: second.snapshot().totals.downloads_done == 2, what="done")
        await pilot.press("3")
        history = app.main.query_one(HistoryList)
        await until(pilot, lambda: history.shown == len(second.history()[0]) + 2, what="rows")
        assert not history.show_earlier
        assert all(
            history.entry(i).run_started == history.entry(0).run_started
            for i in range(history.row_count)
        )
        await pilot.press("e")
        assert history.show_earlier and history.shown_earlier > 0
        separators = [i for i in range(history.row_count) if history.entry(i) is None]
        assert len(separators) == 2  # this run's line and the earlier run's
        assert "run of" in history.row_text(separators[1], 100).plain
        assert "earlier" in tab_label(app, "history")
        await pilot.press("e")
        assert not history.show_earlier

    drive(second, scenario)


def test_enter_on_an_earlier_runs_row_shows_that_run(start_farm, make_engine, tmp_path):
    """Download IDs repeat across runs (the farm offers a failed one again): the details of
    yesterday's FAILED row are yesterday's, not today's DL."""
    farm = start_farm(jobs=1, tasks=1, files=1, size=5000)
    store = farm.store()
    (md5,) = store.conn.execute("SELECT md5 FROM files").fetchone()
    store.conn.execute("UPDATE files SET md5 = 'AAAAAAAAAAAAAAAAAAAAAA=='")
    journal = tmp_path / "journal.sqlite"
    first = make_engine(
        farm,
        tmp_path / "out",
        jobs=farm.job_ids,
        exit_when_done=True,
        journal=journal,
        max_attempts=1,
    )
    first.start()
    first.stop_event.wait(30)
    first.shutdown()
    store.conn.execute("UPDATE files SET md5 = ?", (md5,))
    second = make_engine(farm, tmp_path / "out", jobs=farm.job_ids, journal=journal)

    async def scenario(app, pilot):
        await until(pilot, lambda: second.snapshot().totals.downloads_done == 1, what="done")
        await pilot.press("3", "e")
        history = app.main.query_one(HistoryList)
        rows = [
            i
            for i in range(history.row_count)
            if (e := history.entry(i)) is not None
            and e.outcome is Outcome.FAILED
            and e.kind == "task"
        ]
        history.move_cursor(rows[0])
        await pilot.press("enter")
        assert isinstance(app.screen, TextScreen)
        text = modal_text(app.screen)
        assert "md5 mismatch" in text and "FAILED" in text

    drive(second, scenario)
