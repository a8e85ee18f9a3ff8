"""Every key of the full-screen app, driven by Textual's pilot against the real engine
and a real (bandwidth-capped) farm."""

from textual.widgets import TabbedContent

from cdl_tui.tui.screens.modals import AddJobScreen, ConfirmScreen, HelpScreen
from cdl_tui.tui.widgets.header import HeaderBar
from cdl_tui.tui.widgets.lists import ActiveList, HistoryList, PendingList

from .conftest import farm_files, files_on_disk, temp_files
from .tui_driver import drive, until


def throttled(start_farm, **shape):
    return start_farm("--faults", "bandwidth=256KiB", **{"size": 700_000, **shape})


def moving(engine):
    return sum(a.done for a in engine.snapshot().active)


async def bytes_grow(pilot, engine, seconds=0.8):
    before = moving(engine)
    await pilot.pause(seconds)
    return moving(engine) - before


def test_p_pauses_everything_and_resumes(start_farm, make_engine, tmp_path):
    farm = throttled(start_farm, jobs=1, tasks=4, files=1, size=3_000_000)
    engine = make_engine(farm, tmp_path, jobs=farm.job_ids, threads=2)

    async def scenario(app, pilot):
        await until(pilot, lambda: moving(engine) > 0, what="bytes")
        await pilot.press("p")
        assert engine.paused
        await pilot.pause(0.4)
        assert await bytes_grow(pilot, engine) == 0
        assert "PAUSED" in app.main.query_one(HeaderBar)._lines[0].plain
        await pilot.press("p")
        assert not engine.paused
        assert await bytes_grow(pilot, engine) > 0

    drive(engine, scenario)


def test_space_pauses_the_selected_download(start_farm, make_engine, tmp_path):
    farm = throttled(start_farm, jobs=1, tasks=3, files=1, size=3_000_000)
    engine = make_engine(farm, tmp_path, jobs=farm.job_ids, threads=2)

    async def scenario(app, pilot):
        active_list = app.main.query_one(ActiveList)

        def shown_and_running():
            ids = {a.download_id for a in engine.snapshot().active}
            return len(ids) == 2 and active_list.selected_id in ids

        await until(pilot, shown_and_running, what="two active, one selected")
        selected = active_list.selected_id
        await pilot.press("space")
        await pilot.pause(0.4)

        def done_of(download_id):
            return next(a.done for a in engine.snapshot().active if a.download_id == download_id)

        first = done_of(selected)
        await pilot.pause(0.8)
        assert done_of(selected) == first
        assert next(a for a in engine.snapshot().active if a.download_id == selected).paused
        assert await bytes_grow(pilot, engine) > 0  # the other one goes on
        await pilot.press("space")
        await pilot.pause(0.6)
        assert done_of(selected) > first

    drive(engine, scenario)


def test_c_asks_then_cancels_and_the_farm_gets_it_back(start_farm, make_engine, tmp_path):
    farm = throttled(start_farm, jobs=1, tasks=3, files=1, size=3_000_000)
    engine = make_engine(farm, tmp_path, jobs=farm.job_ids, threads=1)
    store = farm.store()

    async def scenario(app, pilot):
        await until(pilot, lambda: temp_files(tmp_path), what="a transfer")
        active_list = app.main.query_one(ActiveList)
        await until(pilot, lambda: active_list.selected_id is not None, what="a selection")
        target = active_list.selected_id
        await pilot.press("c")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")  # no: nothing happens
        assert target in {a.download_id for a in engine.snapshot().active}
        await pilot.press("c", "y")
        await until(pilot, lambda: store.download(target).status == "pending", what="pending")
        assert any(f.download_id == target for f in engine.snapshot().failed)
        assert not [p for p in temp_files(tmp_path) if target in str(p)]

    drive(engine, scenario)


def test_t_moves_a_pending_download_to_the_top(start_farm, make_engine, tmp_path):
    farm = throttled(start_farm, jobs=1, tasks=8, files=1, size=3_000_000)
    engine = make_engine(farm, tmp_path, jobs=farm.job_ids, threads=1)

    async def scenario(app, pilot):
        await until(pilot, lambda: len(engine.snapshot().pending) >= 5, what="a queue")
        await pilot.press("2", "end")
        last = app.main.query_one(PendingList).selected_id
        assert last == engine.snapshot().pending[-1].download_id
        await pilot.press("t")
        assert engine.snapshot().pending[0].download_id == last
        assert app.main.query_one(PendingList).selected_id == last

    drive(engine, scenario)


def test_r_and_shift_r_retry_failed_downloads(start_farm, make_engine, tmp_path):
    farm = start_farm(jobs=1, tasks=3, files=1, size=5000)
    store = farm.store()
    good = {}
    for task in (1, 2):
        download_id, md5 = store.conn.execute(
            "SELECT d.download_id, f.md5 FROM files f JOIN downloads d ON d.id = f.download_pk "
            "WHERE d.task_index = ?",
            (task,),
        ).fetchone()
        good[download_id] = md5
        store.conn.execute(
            "UPDATE files SET md5 = 'AAAAAAAAAAAAAAAAAAAAAA==' WHERE download_pk = "
            "(SELECT id FROM downloads WHERE download_id = ?)",
            (download_id,),
        )
    engine = make_engine(farm, tmp_path, jobs=farm.job_ids, max_attempts=1)

    async def scenario(app, pilot):
        await until(pilot, lambda: len(engine.snapshot().failed) == 2, what="two failures")
        for download_id, md5 in good.items():  # the farm fixes both
            store.conn.execute(
                "UPDATE files SET md5 = ? WHERE download_pk = "
                "(SELECT id FROM downloads WHERE download_id = ?)",
                (md5, download_id),
            )
        await pilot.press("2", "home")
        first = app.main.query_one(PendingList).selected_id
        await pilot.press("r")
        await until(pilot, lambda: len(engine.snapshot().failed) == 1, what="one retried")
        assert first not in {f.download_id for f in engine.snapshot().failed}
        await pilot.press("R")
        await until(pilot, lambda: engine.snapshot().totals.downloads_done == 3, what="all done")
        assert engine.snapshot().failed == ()

    drive(engine, scenario)
    assert files_on_disk(tmp_path / farm.job_ids[0]) == farm_files(store, farm.job_ids[0])


def test_a_adds_jobs_with_validation(start_farm, make_engine, tmp_path):
    farm = start_farm(jobs=2, tasks=3, files=1)
    first, second = farm.job_ids
    engine = make_engine(farm, tmp_path, jobs=[first])

    async def scenario(app, pilot):
        await until(pilot, lambda: engine.snapshot().totals.downloads_done == 3, what="job 1")
        await pilot.press("a")
        assert isinstance(app.screen, AddJobScreen)
        await pilot.press(*"2:x")
        error = str(app.screen.query_one("#add-job-error").render())
        assert "malformed task range" in error
        await pilot.press("enter")  # refused: the dialog stays
        assert isinstance(app.screen, AddJobScreen)
        await pilot.press("backspace", "backspace")
        await pilot.press("enter")
        assert not isinstance(app.screen, AddJobScreen)
        await until(pilot, lambda: engine.snapshot().totals.downloads_done == 6, what="job 2")

    drive(engine, scenario)
    assert files_on_disk(tmp_path / second) == farm_files(farm.store(), second)


def test_plus_and_minus_change_the_thread_count(start_farm, make_engine, tmp_path):
    farm = start_farm(jobs=1, tasks=1)
    engine = make_engine(farm, tmp_path, jobs=farm.job_ids, threads=4)

    async def scenario(app, pilot):
        await pilot.press("plus", "plus")
        assert engine.snapshot().threads == 6
        await pilot.press("minus")
        assert engine.snapshot().threads == 5
        await pilot.pause(0.3)
        assert "5 threads" in app.main.query_one(HeaderBar)._lines[0].plain

    drive(engine, scenario)


def test_tabs_filter_and_help(start_farm, make_engine, tmp_path):
    farm = start_farm(jobs=1, tasks=6, files=3)
    engine = make_engine(farm, tmp_path, jobs=farm.job_ids)

    async def scenario(app, pilot):
        await until(pilot, lambda: engine.snapshot().totals.downloads_done == 6, what="done")
        tabs = app.main.query_one(TabbedContent)
        for key, tab in [
            ("2", "pending"),
            ("3", "history"),
            ("4", "jobs"),
            ("1", "active"),
            ("tab", "pending"),
            ("tab", "history"),
            ("tab", "jobs"),
            ("tab", "active"),
        ]:
            await pilot.press(key)
            assert tabs.active == tab, key
        await pilot.pause(0.3)
        history = app.main.query_one(HistoryList)
        total = history.shown
        assert total == len(engine.history()[0]) + len(engine.history()[1])
        await pilot.press("slash", *".deep.", "enter")
        assert tabs.active == "history"
        assert 0 < history.shown < total
        assert all(".deep." in history.entry(i).path for i in range(history.shown))
        await pilot.press("escape")
        assert history.shown == total
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)

    drive(engine, scenario)


def test_q_asks_while_active_then_stops_cleanly(start_farm, make_engine, tmp_path):
    farm = throttled(start_farm, jobs=1, tasks=4, files=1, size=3_000_000)
    engine = make_engine(farm, tmp_path, jobs=farm.job_ids, threads=2, exit_when_done=True)

    async def scenario(app, pilot):
        await until(pilot, lambda: temp_files(tmp_path), what="transfers")
        await pilot.press("q")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await until(pilot, lambda: engine.stopping, what="the engine to stop")

    drive(engine, scenario, exit_when_done=True)
    assert engine.shutdown() == 130  # quit before everything was in
    assert not temp_files(tmp_path)
    assert farm.store().status_counts()["downloading"] == 0


def test_an_exit_when_done_run_leaves_the_screen_by_itself(start_farm, make_engine, tmp_path):
    farm = start_farm(jobs=1, tasks=3)
    engine = make_engine(farm, tmp_path, jobs=farm.job_ids, exit_when_done=True)

    async def scenario(app, pilot):
        await until(pilot, lambda: not app.is_running or engine.stopping, what="the end")

    drive(engine, scenario, exit_when_done=True)
    assert engine.shutdown() == 0
