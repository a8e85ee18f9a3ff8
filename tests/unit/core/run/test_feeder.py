"""The feeder with a fake run and a fake farm client (no farm process): what a listing
queues, refuses and fails, and how the listing's state reads."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from cdl_tui.core.model.errors import ApiError, CdlError, TransientError
from cdl_tui.core.model.events import Event, JobListed
from cdl_tui.core.model.jobspec import JobSpec
from cdl_tui.core.model.models import Download, DownloadBatch, RejectedDownload, RemoteFile
from cdl_tui.core.run.feeder import Feeder
from cdl_tui.core.state.jobs import JobTracker

MD5 = "ZZZZZZZZZZZZZZZZZZZZZZ=="


def download(job: str, task: str) -> Download:
    files = (RemoteFile(f"http://s/{task}.exr", MD5, f"{task}.exr", 1),)
    return Download(f"{job}{task}", f"{job}{task}", job, task, "/out", 1, files)


@dataclass
class Settings:
    daemon: bool = False
    exit_when_done: bool = True
    location: str | None = None
    page_size: int = 2
    poll_interval: float = 30.0
    unreachable_max: float = 300.0


class FakeClient:
    def __init__(self, pages: dict[str, list[DownloadBatch | Exception]]) -> None:
        self.pages = pages

    def iter_job_downloads(self, job_id, task_ids, *, page_size) -> Iterator[DownloadBatch]:
        for page in self.pages[job_id]:
            if isinstance(page, Exception):
                raise page
            yield page

    def unreachable_for(self) -> float:
        return 0.0


@dataclass
class FakeRun:
    client: FakeClient
    jobs: list[str]
    config: Settings = field(default_factory=Settings)
    stopping: bool = False
    queued: list[tuple[str, str]] = field(default_factory=list)
    refused: list[tuple[str, str, bool]] = field(default_factory=list)
    failed_jobs: list[str] = field(default_factory=list)
    listed: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    status: str = ""

    def __post_init__(self) -> None:
        self._trackers = [JobTracker(JobSpec(job)) for job in self.jobs]

    def trackers(self) -> list[JobTracker]:
        return list(self._trackers)

    def daemon_slots(self) -> int:
        return 0

    def enqueue(self, download: Download, origin: str, *, leased: bool) -> bool:
        self.queued.append((download.download_id, origin))
        return True

    def refuse_listed(self, rejected, origin, *, leased, foreign=False) -> None:
        self.refused.append((rejected.reason, origin, foreign))

    def release_known(self, download: Download) -> None:
        raise AssertionError("job mode never releases")

    def listing_finished(self, tracker: JobTracker) -> None:
        tracker.listing_complete = True
        self.listed.append(tracker.job_id)

    def job_failed(self, tracker: JobTracker, reason: str) -> None:
        tracker.error = reason
        self.failed_jobs.append(reason)

    def set_feeder_status(self, text: str) -> None:
        self.status = text

    def publish(self, event: Event) -> None:
        self.events.append(event)

    def fatal(self, error: CdlError) -> None:
        raise AssertionError(f"unexpected fatal error: {error}")


def run_until_idle(feeder: Feeder, rounds: int = 10) -> None:
    for _ in range(rounds):
        feeder._feed_once()


def test_a_listing_queues_page_by_page_and_refuses_what_is_not_its_job() -> None:
    pages = {
        "08285": [
            DownloadBatch((download("08285", "001"), download("08285", "002"))),
            DownloadBatch(
                (download("09999", "003"),),  # another job's Download in this listing
                (RejectedDownload("file 1: no md5", "bad", "bad", "08285", "004"),),
            ),
        ]
    }
    run = FakeRun(FakeClient(pages), ["08285"])
    run_until_idle(Feeder(run))
    assert run.queued == [("08285001", "08285"), ("08285002", "08285")]
    reasons = [(reason.split(",")[0], foreign) for reason, _, foreign in run.refused]
    assert ("file 1: no md5", False) in reasons
    assert ("listed for job 08285", True) in reasons
    assert run.listed == ["08285"] and run.failed_jobs == []
    assert [e.listed for e in run.events if isinstance(e, JobListed)] == [0, 0, 0]


def test_a_job_not_on_the_farm_fails_at_once_and_a_flaky_listing_is_tried_again() -> None:
    pages: dict[str, list[DownloadBatch | Exception]] = {
        "99999": [ApiError("listing job 99999: the farm answered HTTP 404", 404)],
        "08285": [TransientError("listing job 08285: connection refused")],
    }
    run = FakeRun(FakeClient(pages), ["99999", "08285"])
    feeder = Feeder(run)
    feeder._feed_once()
    assert run.failed_jobs == ["job 99999: listing job 99999: the farm answered HTTP 404"]
    (flaky,) = [t for t in run.trackers() if t.job_id == "08285"]
    cursor = feeder.cursor(flaky)
    assert flaky.error is None and cursor.failures == 1 and cursor.next_listing_at > 0
    assert run.status.startswith("listing job")


def test_the_idle_words_speak_of_the_listing_not_of_the_run() -> None:
    run = FakeRun(FakeClient({"08285": [DownloadBatch(())]}), ["08285"])
    feeder = Feeder(run)
    run_until_idle(feeder)
    assert feeder._idle_words(0.0) == "listing done (1 job)"
    run.config.exit_when_done = False
    assert feeder._idle_words(0.0).startswith("listing done; lists again at")
    run.config.daemon = True
    assert "the farm offers nothing new" in feeder._idle_words(0.0)
