"""--report: each job's sequences, gathered once per job, for a daemon's jobs too."""

from __future__ import annotations

from dataclasses import dataclass, field

from cdl_tui.core.model.frames import FrameCatalog, FramesView
from cdl_tui.core.model.states import Outcome
from cdl_tui.core.model.views import EngineSnapshot, HistoryEntry, JobView, Totals
from cdl_tui.core.run_report import build_report


def _task(job: str, n: int) -> HistoryEntry:
    return HistoryEntry("task", Outcome.DL, f"d{n}", job, f"{n:03d}", "/out", 10, 1.0, 0.0)


@dataclass
class FakeEngine:
    tasks: list[HistoryEntry]
    asked: list[str] = field(default_factory=list)
    exit_code: int = 0
    stop_reason: str = "everything asked for is done"

    def snapshot(self) -> EngineSnapshot:
        return EngineSnapshot(
            taken_at=100.0, uptime=10.0, mode="daemon+jobs", farm="farm", location=None,
            paused=False, stopping=True, threads=2, busy=0, active=(), pending=(),
            failed=(), recent_files=(), recent_tasks=(), history_files=0,
            history_tasks=len(self.tasks), history_serial=0, totals=Totals(), rate=0.0,
            rate_history=(), jobs=(JobView("08285", 1000, 1000, 0, True),), feeder="",
        )  # fmt: skip

    def history(self) -> tuple[tuple[HistoryEntry, ...], tuple[HistoryEntry, ...]]:
        return (), tuple(self.tasks)

    def trackers(self) -> list:
        return []

    def frames(self, job_id: str) -> FramesView | None:
        self.asked.append(job_id)
        catalog = FrameCatalog(job_id)
        for frame in (1001, 1002, 1004):
            catalog.listed(f"beauty/b.{frame}.exr", 10)
            catalog.placed(f"beauty/b.{frame}.exr", 10)
        return catalog.view()


def test_sequences_are_gathered_once_per_job_asked_for_or_handed_to_a_daemon() -> None:
    tasks = [_task("08285", n) for n in range(1000)] + [_task("08290", n) for n in range(50)]
    engine = FakeEngine(tasks)
    report = build_report(engine)  # type: ignore[arg-type]
    assert sorted(engine.asked) == ["08285", "08290"]
    for job in report["jobs"]:
        (seq,) = job["sequences"]
        assert seq == {
            "pattern": "beauty/b.####.exr",
            "frames": "1001-1002,1004",
            "missing": "1003",
            "empty": "",
            "files": 3,
            "bytes": 30,
        }
        assert job["single_files"] == []
    assert [len(j["tasks"]) for j in report["jobs"]] == [1000, 50]
