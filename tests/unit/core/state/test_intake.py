"""Where listed Downloads come in: queued once, refused, settled, described afresh."""

from __future__ import annotations

from dataclasses import replace

import pytest

from cdl_tui.core.model.errors import AuthError, TransientError
from cdl_tui.core.model.events import DownloadFailed, DownloadQueued
from cdl_tui.core.model.models import Download, DownloadBatch, RejectedDownload, RemoteFile
from cdl_tui.core.model.settings import EngineConfig
from cdl_tui.core.model.states import DAEMON_ORIGIN, Outcome
from cdl_tui.core.model.views import HistoryEntry
from cdl_tui.core.state.intake import Intake
from cdl_tui.core.state.ledger import given_up
from cdl_tui.core.state.scheduler import QueuedDownload

MD5 = "ZZZZZZZZZZZZZZZZZZZZZZ=="


def download(download_id: str = "7", url: str = "http://s/a.exr") -> Download:
    files = (RemoteFile(url, MD5, "a.exr", 10), RemoteFile(url + ".txt", MD5, "a.txt", 5))
    return Download(download_id, int(download_id), "08285", "001", "/out", 15, files)


class Listing:
    """The farm's job listing, for `refresh`: the answers it gives, in turn."""

    def __init__(self, *answers: list[Download] | Exception) -> None:
        self.answers = list(answers)
        self.asked: list[tuple[str, tuple[str, ...]]] = []

    def iter_job_downloads(self, job_id, task_ids, page_size=100):
        self.asked.append((job_id, tuple(task_ids)))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        yield DownloadBatch(tuple(answer), (), None)


@pytest.fixture
def intake(parts):
    def build(listing: Listing | None = None, **config):
        p = parts(**config)
        taken = Intake(
            p.shared,
            listing or Listing(),
            EngineConfig(**config),
            p.ledger,
            threads=lambda: 3,
            fatal=p.fatal.append,
        )
        return p, taken

    return build


def test_a_download_is_queued_once_and_a_regex_keeps_only_its_files(intake) -> None:
    p, taken = intake(regex=r"\.exr$")
    assert taken.enqueue(download(), "08285", leased=False)
    assert not taken.enqueue(download(), "08285", leased=False)
    (item,) = p.shared.queue.items()
    assert [f.relative_path for f in item.download.files] == ["a.exr"]
    assert item.download.size == 10
    (queued,) = p.of(DownloadQueued)
    assert (queued.origin, queued.size) == ("08285", 10)
    assert p.ledger.detail("7").where == "pending"


def test_a_lease_that_arrives_as_the_run_stops_goes_straight_back(intake) -> None:
    p, taken = intake()
    p.shared.control.stop()
    assert not taken.enqueue(download(), DAEMON_ORIGIN, leased=True)
    assert p.shared.queue.items() == [] and p.statuses() == ["pending"]


def test_the_daemon_leases_at_most_twice_the_workers(intake) -> None:
    _, taken = intake()
    assert taken.daemon_slots() == 6
    taken.enqueue(download("7"), DAEMON_ORIGIN, leased=True)
    taken.enqueue(download("8"), "08285", leased=False)  # a job's: not the daemon's share
    assert taken.daemon_slots() == 5


def test_a_refused_download_is_reported_once_and_a_foreign_one_not_at_all(intake) -> None:
    p, taken = intake()
    bad = RejectedDownload("no files", "7", 7, "08285", "001")
    taken.refuse_listed(bad, DAEMON_ORIGIN, leased=True)
    taken.refuse_listed(bad, DAEMON_ORIGIN, leased=True)
    (failed,) = p.of(DownloadFailed)
    assert failed.outcome is Outcome.REFUSED and not failed.will_retry
    p.shared.leases.close(5)
    assert p.farm.fails == [("7", "no files")] and p.farm.statuses() == ["pending"]
    p, taken = intake()
    taken.refuse_listed(replace(bad, job_id="08286"), "08285", leased=False, foreign=True)
    p.shared.leases.close(5)
    assert p.farm.fails == [] and p.farm.seen == []  # not ours to fail on the farm
    assert [v.reason for v in p.ledger.failed_views()] == ["no files"]


def test_a_lease_of_a_known_download_is_settled_by_what_this_run_knows(intake, make_active) -> None:
    p, taken = intake()
    taken.enqueue(download("7"), "08285", leased=False)
    taken.release_known(download("7"))  # queued here: the lease is ours now
    assert p.shared.queue.items()[0].leased
    p.ledger.first_sight("8", "08285")
    p.ledger.set_outcome("8", Outcome.DL)
    taken.release_known(download("8"))  # done here: the farm missed our report
    failed = QueuedDownload(download("9"), DAEMON_ORIGIN)
    p.ledger.first_sight("9", DAEMON_ORIGIN)
    p.ledger.gave_up(failed, given_up(failed, Outcome.FAILED, "broken", 0), _entry("9"))
    taken.release_known(download("9"))  # failed here: held, not handed straight back
    assert [i for i, _ in p.shared.leases.leased()] == [failed]
    assert p.statuses() == ["downloaded"]


def _entry(download_id: str) -> HistoryEntry:
    return HistoryEntry("task", Outcome.FAILED, download_id, "08285", "001", "", 0, 0.0, 0.0)


def test_refresh_takes_the_farms_fresh_description_and_keeps_the_id_as_first_sent(
    intake,
) -> None:
    fresh = replace(download("7", url="http://s/fresh.exr"), wire_id="7")
    listing = Listing([download("6"), fresh], [], TransientError("busy", 503))
    p, taken = intake(listing, regex=r"\.exr$")
    item = QueuedDownload(download("7"), "08285", refresh=True)
    assert taken.refresh(item)
    assert item.download.files[0].url == "http://s/fresh.exr" and not item.refresh
    assert item.download.wire_id == 7 and len(item.download.files) == 1  # --regex again
    assert listing.asked == [("08285", ("001",))]
    assert not taken.refresh(item)  # no longer listed: what we had is kept
    assert not taken.refresh(item)  # the farm could not say
    assert item.download.files[0].url == "http://s/fresh.exr"
    refused = Listing(AuthError("refused"))
    strict = Intake(p.shared, refused, EngineConfig(), p.ledger, threads=int, fatal=print)
    with pytest.raises(AuthError):
        strict.refresh(item)
