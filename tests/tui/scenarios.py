"""Deterministic screens of the app, for snapshot tests and for screenshots/.

The app renders whatever `engine.snapshot()` says; `ScenarioEngine` says the same thing
every time (a render farm mid-afternoon: 8 downloads active, a queue, two failures, a
history), so the pictures are stable. The pilot tests drive the real engine instead.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace

from cdl_tui.core.model.frames import FrameCatalog, FramesView
from cdl_tui.core.model.jobspec import JobSpec
from cdl_tui.core.model.states import FileState, Outcome
from cdl_tui.core.model.views import (
    ActiveView,
    AttemptRecord,
    DownloadDetail,
    EngineSnapshot,
    FailedView,
    FileDetail,
    FileView,
    HistoryEntry,
    JobView,
    PendingView,
    Totals,
)
from cdl_tui.core.state.problems import Problem, Severity

T0 = 1_795_000_000.0  # a fixed "now" (2026-11-18 in UTC)
MIB = 1 << 20
TASK_BYTES = 484 * MIB  # the three files of one task, about


def use_utc() -> None:
    """History shows local times: make them the same on every machine."""
    os.environ["TZ"] = "UTC"
    time.tzset()


def _files(layer: str, frame: int, states) -> tuple[FileView, ...]:
    """A task's three files; their sizes vary from frame to frame, as renders' do."""
    scale = 0.7 + 0.12 * ((frame * 7) % 6)
    names = [
        ("beauty", "beauty", int(48 * MIB * scale)),
        ("data", "deep", int(420 * MIB * scale)),
        ("crypto", "cryptomatte", int(16 * MIB * scale)),
    ]
    return tuple(
        FileView(
            path=f"{layer}/{folder}/{layer}.{aov}.{frame}.exr",
            size=size,
            state=state,
            done=int(size * pct / 100),
            detail=detail,
        )
        for (folder, aov, size), (state, pct, detail) in zip(names, states, strict=True)
    )


def active_views() -> tuple[ActiveView, ...]:
    layer = "MJ_0080_light_v001"
    plans = [
        ((FileState.COMPLETE, 100, ""), (FileState.DOWNLOADING, 20, ""), (FileState.QUEUED, 0, "")),
        ((FileState.HASHING, 80, ""), (FileState.QUEUED, 0, ""), (FileState.QUEUED, 0, "")),
        ((FileState.CACHED, 100, ""), (FileState.DOWNLOADING, 55, ""), (FileState.QUEUED, 0, "")),
        ((FileState.DOWNLOADING, 90, ""), (FileState.QUEUED, 0, ""), (FileState.QUEUED, 0, "")),
        ((FileState.COMPLETE, 100, ""), (FileState.DOWNLOADING, 85, ""), (FileState.QUEUED, 0, "")),
        ((FileState.PREPARING, 0, ""), (FileState.QUEUED, 0, ""), (FileState.QUEUED, 0, "")),
        ((FileState.COMPLETE, 100, ""), (FileState.DOWNLOADING, 64, ""), (FileState.QUEUED, 0, "")),
        ((FileState.DOWNLOADING, 33, ""), (FileState.QUEUED, 0, ""), (FileState.QUEUED, 0, "")),
    ]
    views = []
    for n, plan in enumerate(plans):
        files = _files(layer, 1005 + n, plan)
        size = sum(f.size for f in files)
        done = sum(f.done for f in files)
        paused = n == 6
        views.append(
            ActiveView(
                download_id=f"62277095585218{n:02d}",
                job_id="08285",
                task_id=f"{4 + n:03d}",
                worker=f"worker-{n + 1}",
                size=size,
                done=done,
                files=files,
                started_at=T0 - 100 + n,
                attempt=2 if n == 3 else 1,
                paused=paused,
                rate=0.0 if paused else (11.5 + n) * MIB,
            )
        )
    return tuple(views)


def pending_views(count: int = 40) -> tuple[PendingView, ...]:
    views = []
    for n in range(count):
        views.append(
            PendingView(
                download_id=f"71000000000{n:05d}",
                job_id="08285" if n < 30 else "08286",
                task_id=f"{12 + n:03d}" if n < 30 else f"{n - 29:03d}",
                files=3,
                size=int(484 * MIB * (0.7 + 0.12 * ((n * 5) % 6))),
                attempts=2 if n == 3 else 0,
                last_error="the file server answered HTTP 503" if n == 3 else None,
                held=n == 5,
                not_before=T0 + 42 if n == 3 else 0.0,
                waiting="WAITING FOR DISK" if n == 7 else None,
            )
        )
    return tuple(views)


def failed_views() -> tuple[FailedView, ...]:
    return (
        FailedView(
            download_id="6227709558529901",
            job_id="08284",
            task_id="017",
            files=3,
            size=TASK_BYTES,
            attempts=5,
            reason="MJ_0070_light_v003/data/MJ_0070_light_v003.deep.1017.exr: md5 mismatch",
            outcome=Outcome.FAILED,
            at=T0 - 300,
        ),
        FailedView(
            download_id="6227709558529902",
            job_id="08284",
            task_id="018",
            files=0,
            size=0,
            attempts=0,
            reason="file 2: refused: the path '../../etc/cron.d/x' climbs out of its folder",
            outcome=Outcome.REFUSED,
            at=T0 - 290,
        ),
    )


def earlier_runs() -> list[HistoryEntry]:
    """Two earlier runs from the journal, oldest first: yesterday's and last week's."""
    entries = []
    for run, (start, job) in enumerate(((T0 - 7 * 86400, "08270"), (T0 - 86400, "08279"))):
        for n in range(6):
            entries.append(
                HistoryEntry(
                    kind="task",
                    outcome=Outcome.DL if n != 4 or run else Outcome.FAILED,
                    download_id=f"4100{run}{n:04d}",
                    job_id=job,
                    task_id=f"{n:03d}",
                    path=f"/mnt/renders/{job}",
                    size=(40 + n) * MIB,
                    seconds=6.0 + n,
                    finished_at=start + 60 + n * 30,
                    reason="the farm did not answer for 600 s" if n == 4 and not run else "",
                    run_started=start,
                )
            )
    return entries


def history_entries(count: int = 240) -> list[HistoryEntry]:
    entries = []
    outcomes = [Outcome.DL, Outcome.DL, Outcome.CACHED, Outcome.DL, Outcome.DL, Outcome.DL]
    for n in range(count):
        task = n // 3
        layer = "KT_0090_light_v002"
        aov = ("beauty", "deep", "cryptomatte")[n % 3]
        folder = ("beauty", "data", "crypto")[n % 3]
        outcome = outcomes[task % len(outcomes)]
        entries.append(
            HistoryEntry(
                kind="file",
                outcome=outcome,
                download_id=f"5343402947{task:06d}",
                job_id="08283",
                task_id=f"{task:03d}",
                path=f"/mnt/renders/08283/{layer}/{folder}/{layer}.{aov}.{1001 + task}.exr",
                size=(24, 61, 8)[n % 3] * MIB,
                seconds=0.0 if outcome is Outcome.CACHED else (1.9, 4.8, 0.7)[n % 3],
                finished_at=T0 - 3600 + n * 14,
            )
        )
        if n % 3 == 2:
            entries.append(
                HistoryEntry(
                    kind="task",
                    outcome=outcome,
                    download_id=f"5343402947{task:06d}",
                    job_id="08283",
                    task_id=f"{task:03d}",
                    path="/mnt/renders/08283",
                    size=TASK_BYTES,
                    seconds=7.4,
                    finished_at=T0 - 3600 + n * 14,
                )
            )
    return entries


def job_views(active: tuple[ActiveView, ...]) -> tuple[JobView, ...]:
    """The jobs, their bytes agreeing with the tasks: 08283 done, 08284 with 2 failed and
    one running, 08285 running on 7 workers; rates are those of the active rows."""
    running = {job: [a for a in active if a.job_id == job] for job in ("08284", "08285")}
    return (
        JobView("08283", 80, 80, 0, True, bytes_total=80 * TASK_BYTES, bytes_done=80 * TASK_BYTES),
        JobView(
            "08284",
            20,
            19,
            2,
            True,
            bytes_total=20 * TASK_BYTES,
            bytes_done=17 * TASK_BYTES + sum(a.done for a in running["08284"]),
            rate=sum(a.rate for a in running["08284"]),
        ),
        JobView(
            "08285",
            44,
            4,
            0,
            True,
            bytes_total=44 * TASK_BYTES,
            bytes_done=4 * TASK_BYTES + sum(a.done for a in running["08285"]),
            rate=sum(a.rate for a in running["08285"]),
        ),
    )


def job_frames(job_id: str) -> FramesView | None:
    """Job 08284's files as sequences: frames 1001-1020 of three AOVs; 1012 and 1017 are
    the two failed tasks, 1020 is still running, 1009's deep file is nearly empty."""
    if job_id != "08284":
        return None
    catalog = FrameCatalog(job_id)
    layer = "MJ_0070_light_v003"
    for folder, aov, size in (
        ("beauty", "beauty", 24),
        ("data", "deep", 61),
        ("crypto", "cryptomatte", 8),
    ):
        for frame in range(1001, 1021):
            path = f"{layer}/{folder}/{layer}.{aov}.{frame}.exr"
            catalog.listed(path, size * MIB)
            if frame not in (1012, 1017, 1020):
                small = aov == "deep" and frame == 1009
                catalog.placed(path, 180_000 if small else size * MIB + frame * 1000)
    catalog.listed(f"{layer}/{layer}.nk", 40_000)
    catalog.placed(f"{layer}/{layer}.nk", 40_000)
    return catalog.view()


def busy_snapshot(history: list[HistoryEntry]) -> EngineSnapshot:
    rates = tuple(float((60 + (n * 37) % 40) * MIB) for n in range(60))
    return EngineSnapshot(
        taken_at=T0,
        uptime=3723.0,
        mode="daemon+jobs",
        farm="farm.studio.example",
        location="studio-a",
        paused=False,
        stopping=False,
        threads=8,
        busy=8,
        active=(active := active_views()),
        pending=pending_views(),
        failed=failed_views(),
        recent_files=tuple(e for e in reversed(history) if e.kind == "file")[:20],
        recent_tasks=tuple(e for e in reversed(history) if e.kind == "task")[:20],
        history_files=sum(1 for e in history if e.kind == "file"),
        history_tasks=sum(1 for e in history if e.kind == "task"),
        history_serial=len(history),
        totals=Totals(
            files_downloaded=200,
            bytes_downloaded=6_312 * MIB,
            files_cached=40,
            bytes_cached=1_240 * MIB,
            downloads_done=80,
            downloads_failed=1,
            downloads_refused=1,
        ),
        rate=97.4 * MIB,
        rate_history=rates,
        jobs=job_views(active),
        feeder="listing done; lists again at 11:07:10 for new tasks",
        problems=problems(),
    )


def problems() -> tuple[Problem, ...]:
    """Newest first, as the engine keeps them."""
    return (
        Problem(
            Severity.WARNING,
            "Job 08285 Task 015 attempt 2/5 failed: the file server answered HTTP 503",
            T0 - 20,
            T0 - 20,
            key="download 7100000000000003",
            retry_at=T0 + 42,
        ),
        Problem(
            Severity.ERROR,
            "refused download 6227709558529902: file 2: refused: the path "
            "'../../etc/cron.d/x' climbs out of its folder",
            T0 - 290,
            T0 - 290,
            key="download 6227709558529902",
        ),
        Problem(
            Severity.ERROR,
            "Job 08284 Task 017 FAILED: MJ_0070_light_v003/data/MJ_0070_light_v003.deep.1017.exr:"
            " md5 mismatch (the farm says 3f2a9c0e…, the bytes hash to 9b1c44d2…)",
            T0 - 300,
            T0 - 300,
            key="download 6227709558529901",
        ),
        Problem(
            Severity.WARNING,
            "listing job 08286: cannot connect to farm.studio.example:443 (connection refused);"
            " retry 3/5 in 2.1s",
            T0 - 1300,
            T0 - 1240,
            count=3,
            key="farm",
            cleared_at=T0 - 1238,
        ),
    )


FARM_DOWN = Problem(
    Severity.WARNING,
    "the farm does not answer: listing job 08286: cannot connect to farm.studio.example:443 "
    "(connection refused); retry 2/5 in 1.3s",
    T0 - 65,
    T0 - 1,
    count=4,
    key="farm",
    retry_at=T0 + 4,
)


def failed_detail() -> DownloadDetail:
    """What Enter shows on the failed 08284:017: every attempt, paths, IDs, the host."""
    root = "/mnt/renders/08284/MJ_0070_light_v003"
    errors = [
        "the file server answered HTTP 503 (Service Unavailable)",
        "MJ_0070_light_v003/data/MJ_0070_light_v003.deep.1017.exr: md5 mismatch "
        "(the farm says 3f2a9c0e5d1b7a4c8e6f0a2b9d3c5e71, the bytes hash to "
        "9b1c44d2e8f07a3b5c6d1e2f4a9b0c87); the temp file was removed",
    ]
    attempts = tuple(
        AttemptRecord(
            number=n + 1,
            worker=f"worker-{(n % 3) + 2}",
            started_at=T0 - 900 + n * 150,
            ended_at=T0 - 900 + n * 150 + 41,
            outcome="failed",
            error=errors[0] if n < 2 else errors[1],
        )
        for n in range(5)
    )
    files = (
        FileDetail(
            "MJ_0070_light_v003/beauty/MJ_0070_light_v003.beauty.1017.exr",
            f"{root}/beauty/MJ_0070_light_v003.beauty.1017.exr",
            "",
            24 * MIB,
            "0c1f9e0d2b7a4c8e6f0a2b9d3c5e7122",
            "DL",
            "",
        ),
        FileDetail(
            "MJ_0070_light_v003/data/MJ_0070_light_v003.deep.1017.exr",
            f"{root}/data/MJ_0070_light_v003.deep.1017.exr",
            f"{root}/data/.MJ_0070_light_v003.deep.1017.exr.cdl-3f2a9c0e5d1b.part",
            61 * MIB,
            "3f2a9c0e5d1b7a4c8e6f0a2b9d3c5e71",
            "FAILED",
            errors[1],
        ),
        FileDetail(
            "MJ_0070_light_v003/crypto/MJ_0070_light_v003.cryptomatte.1017.exr",
            f"{root}/crypto/MJ_0070_light_v003.cryptomatte.1017.exr",
            f"{root}/crypto/.MJ_0070_light_v003.cryptomatte.1017.exr.cdl-77aa01c2d3e4.part",
            8 * MIB,
            "77aa01c2d3e4f5061728394a5b6c7d8e",
            "queued",
            "",
        ),
    )
    return DownloadDetail(
        download_id="6227709558529901",
        wire_id="6227709558529901",
        job_id="08284",
        task_id="017",
        where="failed",
        outcome="FAILED",
        reason=errors[1],
        attempts=attempts,
        files=files,
        url_hosts=("storage.googleapis.com",),
        size=TASK_BYTES,
        origin="08284",
    )


class _Bus:
    def subscribe(self, subscriber) -> None:
        pass


@dataclass
class ScenarioEngine:
    """A still engine: the same snapshot and history every time; commands are recorded."""

    snap: EngineSnapshot
    history: list[HistoryEntry] = field(default_factory=list)
    calls: list[tuple] = field(default_factory=list)
    bus: _Bus = field(default_factory=_Bus)
    stopping: bool = False

    def snapshot(self) -> EngineSnapshot:
        return self.snap

    def history_since(self, serial: int) -> tuple[list[HistoryEntry], int]:
        return self.history[serial:], len(self.history)

    def details(self, download_id: str) -> DownloadDetail | None:
        return failed_detail() if download_id == "6227709558529901" else None

    def frames(self, job_id: str) -> FramesView | None:
        return job_frames(job_id)

    def pause(self) -> None:
        self.calls.append(("pause",))

    def resume(self) -> None:
        self.calls.append(("resume",))

    def pause_download(self, download_id: str, paused: bool = True) -> bool:
        self.calls.append(("pause_download", download_id, paused))
        return True

    def cancel(self, download_id: str) -> bool:
        self.calls.append(("cancel", download_id))
        return True

    def retry(self, download_id: str) -> bool:
        self.calls.append(("retry", download_id))
        return True

    def retry_failed(self) -> int:
        self.calls.append(("retry_failed",))
        return 1

    def move_to_top(self, download_id: str) -> bool:
        self.calls.append(("move_to_top", download_id))
        return True

    def add_jobs(self, specs: list[JobSpec]) -> list[JobSpec]:
        self.calls.append(("add_jobs", list(specs)))
        return list(specs)

    def set_threads(self, count: int) -> int:
        self.calls.append(("set_threads", count))
        return count

    def set_bandwidth(self, bytes_per_second: float | None) -> None:
        self.calls.append(("set_bandwidth", bytes_per_second))

    def previous_history(self, limit: int) -> list[HistoryEntry]:
        return earlier_runs()[-limit:]

    def stop(self, reason: str = "stopped", exit_code: int | None = None) -> None:
        self.calls.append(("stop", reason, exit_code))
        self.stopping = True


def scenario_engine(**changes) -> ScenarioEngine:
    history = history_entries()
    return ScenarioEngine(replace(busy_snapshot(history), **changes), history)


@dataclass(frozen=True)
class Scenario:
    name: str
    size: tuple[int, int] = (100, 30)
    press: tuple[str, ...] = ()
    colors: str = "truecolor"  # or "standard" (16 colours)
    changes: dict = field(default_factory=dict)
    note: str = ""


SCENARIOS = [
    Scenario("active", note="The Active tab: 8 downloads, the selected one's files"),
    Scenario("active-80x24", size=(80, 24)),
    Scenario("active-16-colors", colors="standard", note="The Active tab in a 16-colour terminal"),
    Scenario("active-paused", changes={"paused": True}, press=("down", "down")),
    Scenario("pending", press=("2",), note="Pending: failures first, then the queue in order"),
    Scenario("pending-80x24", size=(80, 24), press=("2",)),
    Scenario("history", press=("3",), note="History: files and tasks, newest first"),
    Scenario("history-80x24", size=(80, 24), press=("3",)),
    Scenario(
        "history-filtered",
        press=("slash", *"deep", "enter"),
        note="History filtered with / (here: deep)",
    ),
    Scenario(
        "add-job",
        press=("a", *"08286 08287:1-x"),
        note="Adding jobs: specs are validated as you type",
    ),
    Scenario("add-job-80x24", size=(80, 24), press=("a", *"08286 08287:1-5x2")),
    Scenario(
        "bandwidth",
        press=("b", *"40MB/s"),
        changes={"bandwidth_limit": 25e6},
        note="b sets a bandwidth limit for all downloads",
    ),
    Scenario("help", press=("question_mark",), note="Every key (?)"),
    Scenario("help-80x24", size=(80, 24), press=("question_mark",)),
    Scenario("quit-confirm", press=("q",), note="q asks first while downloads are active"),
    Scenario(
        "farm-down",
        changes={"problems": (FARM_DOWN, *problems())},
        note="The status line: the farm does not answer, and when the next try is",
    ),
    Scenario(
        "detail",
        press=("2", "enter"),
        note="Enter: the full reason, every attempt, the paths, the farm's IDs",
    ),
    Scenario("detail-80x24", size=(80, 24), press=("2", "enter")),
    Scenario("log", press=("l",), note="l: the recent warnings and errors"),
    Scenario(
        "history-earlier",
        press=("3", "e", "end"),
        note="History: e adds earlier runs, each under its own dated line",
    ),
    Scenario("active-60x15", size=(60, 15), note="60 columns keep ? and q"),
    Scenario("jobs", press=("4",), note="Jobs: is each job complete, how far, how fast"),
    Scenario("jobs-80x24", size=(80, 24), press=("4",)),
    Scenario(
        "job-frames",
        press=("4", "down", "enter"),
        note="Enter on a job: its frame sequences, missing and empty frames as ranges",
    ),
    Scenario("job-frames-80x24", size=(80, 24), press=("4", "down", "enter")),
]


def make_app(scenario: Scenario):
    """The app in the scenario's state (colours as TEXTUAL_COLOR_SYSTEM would set them)."""
    from textual import constants

    from cdl_tui.tui.app import CdlApp

    saved = constants.COLOR_SYSTEM
    constants.COLOR_SYSTEM = scenario.colors  # read by App.__init__
    try:
        return CdlApp(scenario_engine(**scenario.changes), refresh_hz=4, watch_terminal=False)
    finally:
        constants.COLOR_SYSTEM = saved
