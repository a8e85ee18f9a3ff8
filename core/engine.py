"""The downloader engine: feeder, workers, heartbeats, events, snapshot and commands.

    engine = Engine(client, EngineConfig(jobs=parse_job_specs(["08285"]), exit_when_done=True))
    engine.bus.subscribe(print)          # typed lifecycle events, from one thread
    engine.start()
    engine.snapshot()                    # cheap immutable view, poll it from a UI
    engine.details(download_id)          # everything about one Download, for a detail view
    engine.pause(); engine.resume()      # commands are thread-safe
    engine.stop_event.wait()             # set by a drain, a fatal error or stop()
    exit_code = engine.shutdown()        # releases leases, joins threads

Threads: one feeder (job listings and /downloads/next), N workers (run/workers.py, one
Download each at a time), one heartbeat (farm/leases.py), a few report senders, one event
dispatcher. The state of the run (state/: active set, pause and stop, counters, history,
job trackers, given-up Downloads) sits behind one lock, this class's `_lock`; the pending
queue has its own, taken after it, never before; the leaf locks (problems, verified
files, held leases) call nothing while held. docs/architecture.md has the whole map.
"""

from __future__ import annotations

import logging
import os
import random
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from cdl_tui.core.farm.api import FARM_PROBLEM, FarmClient
from cdl_tui.core.farm.leases import Leases
from cdl_tui.core.files.destination import DEFAULT_FALLBACK, DestinationPolicy
from cdl_tui.core.files.diskguard import DiskGuard, FreeSpace, free_space
from cdl_tui.core.files.fetchers import Fetcher
from cdl_tui.core.files.journal import Journal
from cdl_tui.core.files.sweep import sweep_stale_temps
from cdl_tui.core.files.throttle import TokenBucket
from cdl_tui.core.files.transfer import Permissions
from cdl_tui.core.files.verified import VerifiedFiles
from cdl_tui.core.model.errors import AuthError, CdlError
from cdl_tui.core.model.events import (
    DownloadCancelled,
    DownloadDone,
    DownloadFailed,
    DownloadQueued,
    DownloadWaiting,
    EngineDrained,
    EngineStopped,
    Event,
    EventBus,
    FileDone,
    FileFailed,
    FileStateChanged,
    JobDone,
)
from cdl_tui.core.model.jobspec import JobSpec
from cdl_tui.core.model.models import Download, RejectedDownload
from cdl_tui.core.model.secrets import scrub
from cdl_tui.core.model.states import FarmStatus, FileState, Outcome, file_outcome
from cdl_tui.core.model.views import (
    EngineSnapshot,
    FailedView,
    HistoryEntry,
    RateMeter,
)
from cdl_tui.core.run.download_run import DownloadRun
from cdl_tui.core.run.feeder import Feeder
from cdl_tui.core.run.hooks import JobDoneHook
from cdl_tui.core.run.workers import WorkerPool
from cdl_tui.core.state.active import ActiveDownload, ActiveFile, ActiveSet
from cdl_tui.core.state.control import RunControl
from cdl_tui.core.state.details import (
    DEFAULT_KEEP_FINISHED,
    DetailBook,
    DownloadDetail,
    refused_detail,
)
from cdl_tui.core.state.history import History
from cdl_tui.core.state.jobs import JobTracker
from cdl_tui.core.state.ledger import Counters, GivenUp
from cdl_tui.core.state.problems import ProblemHandler, ProblemLog, Severity
from cdl_tui.core.state.scheduler import PendingQueue, QueuedDownload

log = logging.getLogger("cdl.engine")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
RECENT = 20  # history entries a snapshot carries (the headless summary prints these)
CONFLICT_POLICIES = ("overwrite", "skip", "backup")


def _privileged() -> bool:
    """Running as root, or as a service (systemd sets INVOCATION_ID for its units)."""
    return os.geteuid() == 0 or bool(os.environ.get("INVOCATION_ID"))


@dataclass(frozen=True)
class EngineConfig:
    jobs: tuple[JobSpec, ...] = ()
    daemon: bool = False  # poll /downloads/next (the default when no jobs are given)
    location: str | None = None
    exit_when_done: bool = False
    threads: int = 8
    output: Path | None = None
    fallback_dir: Path = DEFAULT_FALLBACK
    page_size: int = 100
    poll_interval: float = 15.0  # the nap when nothing comes back, and between re-listings
    heartbeat_interval: float = 5.0
    max_attempts: int = 5  # attempts per Download before it is FAILED
    file_attempts: int = 3  # tries per file within one attempt
    retry_delay: float = 2.0  # base of the backoff between attempts of a Download
    file_retry_delay: float = 0.5  # base of the backoff between tries of a file
    on_conflict: str = "overwrite"
    force: bool = False
    regex: str | None = None
    reporting: bool = True
    history_size: int | None = 100  # None keeps everything (an --exit-when-done run)
    permissions: Permissions = field(default_factory=Permissions)
    journal: Path | None = None  # the local journal (md5 cache and history), if any
    md5_cache: bool = True  # trust the journal's md5 for unchanged files
    disk_margin: int = 256 << 20  # free space to leave on a filesystem
    disk_retry: float = 5.0  # seconds between checks for a Download waiting for space
    disk_release_after: float = 120.0  # then a leased Download waiting for space goes back
    disk_wait_max: float = 1800.0  # then a Download waiting for space is FAILED
    unreachable_max: float = 300.0  # --exit-when-done: a farm unreachable this long ends it
    free_space: FreeSpace = free_space  # how free space is measured (tests swap it)
    max_bandwidth: float | None = None  # bytes/s for all workers together
    stall_timeout: float = 60.0  # a file body averaging under stall_min_rate this long
    stall_min_rate: float = 1024.0  # is cut as stalled and resumed (bytes/s; 0: off)
    on_job_done: str | None = None  # shell command run when a job is complete
    temp_max_age: float = 2 * 86400.0  # unclaimed temp files older than this are removed
    path_map: tuple[tuple[str, str], ...] = ()  # output_dir prefixes, submitter -> here
    output_roots: tuple[Path, ...] = ()  # if set, a farm's output_dir must be under one
    failed_hold: float = 900.0  # seconds a daemon keeps the lease of a Download it gave up

    @property
    def mode(self) -> str:
        if self.daemon and self.jobs:
            return "daemon+jobs"
        return "daemon" if self.daemon else "jobs"


def download_problem(download_id: str) -> str:
    """The key of a Download's standing problem (a failed attempt, a wait, giving up)."""
    return f"download {download_id}"


class Engine:
    def __init__(self, client: FarmClient, config: EngineConfig) -> None:
        if config.on_conflict not in CONFLICT_POLICIES:
            raise ValueError(f"on_conflict must be one of {', '.join(CONFLICT_POLICIES)}")
        self.client = client
        self.config = config
        self.bus = EventBus()
        self.leases = Leases(
            client,
            reporting=config.reporting,
            heartbeat_interval=config.heartbeat_interval,
            failed_hold=config.failed_hold,
            refused_key=self.fatal,
        )
        self.queue = PendingQueue()
        self.policy = DestinationPolicy(
            output=config.output,
            fallback=config.fallback_dir,
            path_map=config.path_map,
            output_roots=config.output_roots,
        )
        self.disk = DiskGuard(config.disk_margin, config.free_space)
        self.throttle = TokenBucket(config.max_bandwidth)
        self.fetcher = Fetcher(client.http, lambda: client.tls)
        self.journal = Journal(config.journal) if config.journal else None
        self.verified = VerifiedFiles(self.journal, md5_cache=config.md5_cache)
        self.hook = JobDoneHook(config.on_job_done) if config.on_job_done else None
        self.stop_event = threading.Event()
        self._regex = re.compile(config.regex) if config.regex else None
        self._lock = threading.RLock()
        self.control = RunControl(self._lock)
        self._active = ActiveSet(self._lock)
        self._given_up: dict[str, GivenUp] = {}
        self._known: dict[str, Outcome | None] = {}  # every download_id this run has seen
        self._trackers: list[JobTracker] = [JobTracker(spec) for spec in config.jobs]
        self._history = History(config.history_size)
        keep = DEFAULT_KEEP_FINISHED if config.history_size is None else config.history_size
        self._book = DetailBook(keep)  # what details() shows, of the last `keep` finished
        self._counters = Counters()
        self._meter = RateMeter()
        self._warned: set[str] = set()
        self._exit_code: int | None = None
        self._stop_reason = ""
        self._drained = False
        self._started_at = time.time()
        self._started = time.monotonic()
        self._feeder_status = "listing: starting"
        self._workers = WorkerPool(
            config.threads,
            self._lock,
            take=self._take,
            run=self._run,
            stopping=lambda: self.control.stopping,
            crashed=lambda exc: self.stop(f"internal error in a worker: {exc!r}", EXIT_FAILED),
        )
        self._shutdown_done = False
        self.problems = ProblemLog()
        self._problem_handler = ProblemHandler(self.problems)
        self._feeder = Feeder(self)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        logging.getLogger("cdl").addHandler(self._problem_handler)
        if self.journal is not None and self.journal.set_aside:  # logged before we listened
            self.problems.note(Severity.WARNING, self.journal.set_aside)
        self.client.on_answer(
            lambda sent_at: self.problems.clear(FARM_PROBLEM, noted_before=sent_at)
        )
        self.client.stop_waiting_on(self.stop_event)
        self.client.stop_reports_on(self.leases.reporter.gave_up)
        self._started_at = time.time()
        self._started = time.monotonic()
        if self.config.output is None and not self.config.output_roots and _privileged():
            log.warning(
                "output_roots is not set: the farm's output_dir chooses where files are "
                "written (system, home and hidden folders are refused); set output_roots "
                "to the folders renders belong in"
            )
        roots = [p for p in (self.config.output, self.config.fallback_dir) if p is not None]
        threading.Thread(
            target=sweep_stale_temps,
            args=([r.expanduser() for r in roots], self.config.temp_max_age),
            name="sweep",
            daemon=True,
        ).start()
        self._workers.start()
        self._feeder.start()
        self.leases.start_heartbeats(self._ours)

    @property
    def stopping(self) -> bool:
        return self.control.stopping

    @property
    def paused(self) -> bool:
        return self.control.paused

    def stop(self, reason: str = "stopped", exit_code: int | None = None) -> None:
        """Ask everything to stop: feeding ends, workers stop at their next chunk."""
        reason = scrub(reason)
        with self._lock:
            if not self.control.stop():
                if exit_code is not None and self._exit_code is None:
                    self._exit_code = exit_code
                return
            self._stop_reason = reason
            self._exit_code = exit_code
        log.info("stopping: %s", reason)
        self.queue.close()
        self._feeder.wake()
        self.stop_event.set()

    def fatal(self, error: CdlError) -> None:
        """An error that ends the run (a refused key): exit code 2, one-line reason."""
        # The front end prints this one line itself; keep it off the console log.
        log.error("%s", error, extra={"console": False})
        self.stop(str(error), EXIT_USAGE)

    def shutdown(self, timeout: float = 10.0) -> int:
        """Stop, wait for the threads, release every Download still ours; the exit code.

        Workers stop at their next chunk, keeping partial temp files for a resume. One stuck
        in a stalled read past `timeout` is left behind and its Download released here, so
        a prompt exit leaves nothing `downloading` on the farm (and no final path is ever
        written unverified).
        """
        self.stop()
        deadline = time.monotonic() + timeout

        def left() -> float:
            return max(0.1, deadline - time.monotonic())

        for thread in [*self._workers.threads(), self._feeder.thread]:
            if thread.is_alive():
                thread.join(left())
        self.leases.stop_heartbeats(left())
        with self._lock:
            if self._shutdown_done:
                return self.exit_code
            self._shutdown_done = True
            stragglers = [a.item for a in self._active.all()]
        for item in stragglers:
            # Its partial temp files stay: the next run resumes them.
            log.warning("%s did not stop in time; releasing it", item.download.label)
        for item in [*stragglers, *self.queue.drain(), *self.leases.take_held()]:
            self.leases.report(item, FarmStatus.PENDING, 0, closing=True, quick=True)
        self.leases.close(left())
        code = self.exit_code
        logging.getLogger("cdl").removeHandler(self._problem_handler)
        self.publish(EngineStopped(exit_code=code, reason=self._stop_reason))
        self.bus.close()
        if self.hook is not None:
            self.hook.join()
        if self.journal is not None:
            self.journal.close()
        return code

    @property
    def exit_code(self) -> int:
        with self._lock:
            if self._exit_code is not None:
                return self._exit_code
            return EXIT_FAILED if self._counters.frozen().failed else EXIT_OK

    @property
    def stop_reason(self) -> str:
        return self._stop_reason

    # -- commands --------------------------------------------------------------------------

    def pause(self) -> None:
        self.control.pause()
        log.info("paused")

    def resume(self) -> None:
        self.control.resume()
        self.queue.wake()
        log.info("resumed")

    def pause_download(self, download_id: str, paused: bool = True) -> bool:
        """Pause or resume one Download, active (between chunks) or still queued."""
        with self._lock:
            active = self._active.get(download_id)
            if active is not None:
                active.paused = paused
                self.control.wake()
                return True
        return self.queue.set_held(download_id, paused)

    def cancel(self, download_id: str) -> bool:
        """Stop a Download, remove its temp files, give it back to the farm (`pending`)."""
        with self._lock:
            active = self._active.get(download_id)
            if active is not None:
                active.cancelled = True
                self.control.wake()
                return True
        item = self.queue.remove(download_id)
        if item is None:
            return False
        self._give_back(item, Outcome.CANCELLED, "cancelled")
        return True

    def retry(self, download_id: str) -> bool:
        """Queue a failed or cancelled Download again, with a fresh count of attempts."""
        with self._lock:
            given = self._given_up.get(download_id)
            if given is None or given.item is None:
                return False
            del self._given_up[download_id]
            self._set_outcome(download_id, None)
            self._counters.given_up(given.view.outcome, -1)
            # A retried Download is not a failure any more, nor are the files it failed on.
            self._counters.files_failed -= given.failed_files
            old = given.item
            item = QueuedDownload(old.download, old.origin, settled=dict(old.settled), refresh=True)
        self.clear_problem(download_problem(download_id))
        self._queue_item(item)
        return True

    def refresh(self, item: QueuedDownload) -> bool:
        """Describe the Download afresh from the farm (its task's listing), with fresh
        signed URLs; False if the farm could not (then what we had is kept)."""
        d = item.download
        try:
            for batch in self.client.iter_job_downloads(d.job_id, (d.task_id,), page_size=10):
                for fresh in batch.downloads:
                    if fresh.download_id == d.download_id:
                        # Reports keep the ID's type as first given, whatever this says.
                        item.download = replace(self._filtered(fresh), wire_id=d.wire_id)
                        item.refresh = False
                        item.changed()
                        return True
        except AuthError:
            raise
        except CdlError as exc:
            log.warning("could not describe %s afresh (%s); using what we had", d.label, exc)
            return False
        log.warning("%s is no longer in its task's listing; using what we had", d.label)
        return False

    def retry_failed(self) -> int:
        with self._lock:
            ids = [i for i, g in self._given_up.items() if g.item is not None]
        return sum(1 for download_id in ids if self.retry(download_id))

    def move_to_top(self, download_id: str) -> bool:
        return self.queue.move_to_top(download_id)

    def add_jobs(self, specs: Iterable[JobSpec]) -> list[JobSpec]:
        """Start listing more jobs now, beside whatever else runs; returns the new ones."""
        added = []
        with self._lock:
            existing = {t.spec for t in self._trackers}
            for spec in specs:
                if spec not in existing:
                    self._trackers.append(JobTracker(spec))
                    existing.add(spec)
                    added.append(spec)
        if added:
            log.info("added jobs %s", " ".join(str(s) for s in added))
            self._feeder.wake()
        return added

    def set_bandwidth(self, bytes_per_second: float | None) -> None:
        """Limit all workers together to this rate (None or 0: no limit)."""
        self.throttle.set_rate(bytes_per_second)
        log.info(
            "bandwidth limit: %s", f"{bytes_per_second:.0f} B/s" if bytes_per_second else "none"
        )

    def set_threads(self, count: int) -> int:
        """Change the number of workers while running (at least 1); returns the new count."""
        count = self._workers.set_threads(count)
        self.queue.wake()
        return count

    # -- snapshot --------------------------------------------------------------------------

    def snapshot(self) -> EngineSnapshot:
        with self._lock:
            return EngineSnapshot(
                taken_at=time.time(),
                uptime=time.monotonic() - self._started,
                mode=self.config.mode,
                farm=self.client.host,
                location=self.config.location,
                paused=self.control.paused,
                stopping=self.control.stopping,
                threads=self._workers.target,
                busy=len(self._active),
                active=self._active.views(self.control.paused),
                pending=self.queue.views(),
                failed=tuple(g.view for g in self._given_up.values()),
                recent_files=self._history.recent_files(RECENT),
                recent_tasks=self._history.recent_tasks(RECENT),
                history_files=len(self._history.files),
                history_tasks=len(self._history.tasks),
                history_serial=self._history.serial,
                totals=self._counters.frozen(),
                rate=self._meter.rate(),
                rate_history=self._meter.history(),
                jobs=tuple(t.view() for t in self._trackers),
                feeder=self._feeder_status,
                bandwidth_limit=self.throttle.rate,
                problems=self.problems.view(),
            )

    def history(self) -> tuple[tuple[HistoryEntry, ...], tuple[HistoryEntry, ...]]:
        """Every file and task entry kept, oldest first."""
        with self._lock:
            return tuple(self._history.files), tuple(self._history.tasks)

    def history_since(self, serial: int) -> tuple[list[HistoryEntry], int]:
        """Entries (files and tasks, in finishing order) added after `serial`, and the
        serial to ask with next time. Start with 0."""
        with self._lock:
            return self._history.since(serial), self._history.serial

    def details(self, download_id: str) -> DownloadDetail | None:
        """Everything this run knows about one Download, for a detail view: its attempts,
        its files (final and temp paths), its IDs, the hosts of its URLs; None if this run
        does not know it (or finished it longer ago than the last `history_size`). Cheap:
        no disk, no network.

        `where` says which list it is in: "active" (outcome DOWNLOADING), "pending"
        (PENDING, WAITING FOR DISK or BUSY), "failed" (FAILED, CANCELLED or REFUSED),
        "done" (DL, CACHED or SKIPPED) or "history" (RELEASED: a daemon's Download that
        waited too long and was given back to the farm).
        """
        with self._lock:
            active = self._active.get(download_id)
            if active is not None:
                live = active.file_details(running=True)
                reason = active.item.last_error or ""
                return active.record.detail("active", "DOWNLOADING", reason, live)
            given = self._given_up.get(download_id)
            if given is not None and given.item is None:
                return given.refused
            record = self._book.record(download_id)
            if record is not None and given is not None:
                return record.detail("failed", given.view.outcome.value, given.view.reason)
            if record is not None:
                item = record.item
                return record.detail("pending", item.waiting or "PENDING", item.last_error or "")
            finished = self._book.finished(download_id)
            if finished is not None:
                return finished
            # Refused in another job's listing: kept under that job's key.
            return next(
                (
                    g.refused
                    for g in self._given_up.values()
                    if g.refused is not None and g.view.download_id == download_id
                ),
                None,
            )

    # -- events ----------------------------------------------------------------------------

    def publish(self, event: Event) -> None:
        self.bus.publish(event)

    # -- used by the feeder ----------------------------------------------------------------

    def trackers(self) -> list[JobTracker]:
        with self._lock:
            return list(self._trackers)

    def set_feeder_status(self, text: str) -> None:
        self._feeder_status = text

    # -- problems --------------------------------------------------------------------------

    def clear_problem(self, key: str) -> None:
        """A standing problem is over (see core.problems)."""
        self.problems.clear(key)

    def daemon_slots(self) -> int:
        """How many more Downloads the daemon may lease (pending at most 2 x threads)."""
        return 2 * self._workers.target - self.queue.count("daemon")

    def enqueue(self, download: Download, origin: str, *, leased: bool) -> bool:
        """Queue a Download unless this run has seen it; True if it was queued."""
        if self.control.stopping:
            if leased:  # leased just as we stop: give it straight back
                self.leases.report_raw(
                    download.download_id,
                    download.wire_id,
                    FarmStatus.PENDING,
                    0,
                    download.size,
                    quick=True,
                )
            return False
        with self._lock:
            if download.download_id in self._known:  # seen this run: listed, not queued
                self._note_listed(origin, download.download_id, self._known[download.download_id])
                return False
            self._known[download.download_id] = None
            self._note_listed(origin, download.download_id, None)
        self._queue_item(QueuedDownload(self._filtered(download), origin, leased=leased))
        return True

    def _filtered(self, download: Download) -> Download:
        """The Download with only the files --regex keeps."""
        if self._regex is None:
            return download
        kept = tuple(f for f in download.files if self._regex.search(f.relative_path))
        return replace(download, files=kept, size=sum(f.size for f in kept))

    def refuse_listed(
        self, rejected: RejectedDownload, origin: str, *, leased: bool, foreign: bool = False
    ) -> None:
        """A Download the farm described badly: report it, never retry it.

        `foreign`: a Download of another job, found in `origin`'s listing. It is refused
        for that listing only: it is not ours to fail on the farm, and its own job (if we
        list it too) still downloads it."""
        rejected = replace(rejected, reason=scrub(rejected.reason))
        download_id = rejected.download_id
        with self._lock:
            if foreign:
                key = f"{origin}/{download_id}"
                if key in self._given_up:
                    return
            elif download_id is not None:
                if download_id in self._known:
                    return
                self._known[download_id] = Outcome.REFUSED
                self._note_listed(origin, download_id, Outcome.REFUSED)
            self._counters.given_up(Outcome.REFUSED)
            view = FailedView(
                download_id=download_id,
                job_id=rejected.job_id,
                task_id=rejected.task_id,
                files=0,
                size=0,
                attempts=0,
                reason=rejected.reason,
                outcome=Outcome.REFUSED,
                at=time.time(),
            )
            if not foreign:
                key = download_id or f"#{len(self._given_up)}"
            self._given_up[key] = GivenUp(view, None, refused=refused_detail(rejected, origin))
        log.error(
            "refused download %s: %s",
            download_id or "(no id)",
            rejected.reason,
            extra={"problem": download_problem(download_id) if download_id else None},
        )
        self.publish(
            DownloadFailed(
                download_id=download_id,
                job_id=rejected.job_id,
                task_id=rejected.task_id,
                reason=rejected.reason,
                attempt=0,
                will_retry=False,
                outcome=Outcome.REFUSED,
            )
        )
        if rejected.wire_id is not None and self.config.reporting and not foreign:
            self.leases.report_fail(str(rejected.wire_id), rejected.reason)
            if leased:
                self.leases.report_raw(
                    str(rejected.wire_id), rejected.wire_id, FarmStatus.PENDING, 0, 0
                )
        self._check_drained()

    def job_failed(self, tracker: JobTracker, reason: str) -> None:
        """A job that cannot be listed at all (not on the farm): it counts as failed."""
        reason = scrub(reason)
        log.error("%s", reason, extra={"problem": f"job {tracker.job_id}"})
        with self._lock:
            if tracker.error is None:
                self._counters.jobs_failed += 1
            tracker.error = reason
        self.publish(JobDone(job_id=tracker.job_id, downloads=0, failed=1))
        self._check_drained()

    def release_known(self, download: Download) -> None:
        """The daemon was leased a Download this run already knows: settle the lease.

        Queued or running here (a job listing found it first): the lease is ours now, so
        its item is marked leased and heartbeats cover it. Done here: the farm did not get
        our report; say it again. Failed here: hold it (see `_hold`) rather than handing it
        straight back, or the farm would offer it first again and starve the daemon.
        """
        download_id = download.download_id
        with self._lock:
            outcome = self._known.get(download_id)
            if outcome is None:
                active = self._active.get(download_id)
                item = active.item if active else None
        if outcome is None:
            item = item or next(
                (i for i in self.queue.items() if i.download_id == download_id), None
            )
            if item is not None:
                item.leased = True
            return
        if outcome.ok:
            self.leases.report_raw(
                download.download_id, download.wire_id, FarmStatus.DOWNLOADED, 0, download.size
            )
            return
        with self._lock:
            given = self._given_up.get(download_id)
        if given is not None and given.item is not None and outcome is Outcome.FAILED:
            given.item.leased = True
            self.leases.hold(given.item)
        else:
            self.leases.report_raw(
                download.download_id, download.wire_id, FarmStatus.PENDING, 0, download.size
            )

    def listing_finished(self, tracker: JobTracker) -> None:
        with self._lock:
            tracker.listing_complete = True
        self._check_tracker(tracker)
        self._check_drained()

    def _note_listed(self, origin: str, download_id: str, outcome: Outcome | None) -> None:
        for tracker in self._trackers:
            if tracker.job_id == origin and download_id not in tracker.outcomes:
                tracker.outcomes[download_id] = outcome

    def _queue_item(self, item: QueuedDownload) -> None:
        d = item.download
        self.publish(
            DownloadQueued(
                download_id=d.download_id,
                job_id=d.job_id,
                task_id=d.task_id,
                files=len(d.files),
                size=d.size,
                origin=item.origin,
            )
        )
        with self._lock:
            self._book.open(item)
        self.queue.put(item)

    # -- used by workers -------------------------------------------------------------------

    def begin(self, item: QueuedDownload, worker: str) -> ActiveDownload:
        """A worker starts an attempt of the Download."""
        with self._lock:
            active = ActiveDownload(item=item, worker=worker, record=self._book.open(item))
            active.record.start_attempt(worker, active.started_at)
            self._active.add(active)
        return active

    def set_files(self, active: ActiveDownload, root: Path, planned) -> None:
        with self._lock:
            active.root = root
            active.files = [ActiveFile(remote, dest) for remote, dest in planned]

    def claim_paths(self, active: ActiveDownload) -> None:
        """Make this Download the only one in this process writing its final paths (two
        Downloads of one job can name the same file). Raises DestinationBusy."""
        self._active.claim_paths(active)

    def release_paths(self, active: ActiveDownload) -> None:
        self._active.release_paths(active)

    def warn_once(self, key: str, message: str) -> None:
        """Log a warning the first time `key` comes up (e.g. a fallback output folder)."""
        with self._lock:
            if key in self._warned:
                return
            self._warned.add(key)
        log.warning("%s", message)

    def set_file_state(self, active: ActiveDownload, afile: ActiveFile, state: FileState) -> None:
        with self._lock:
            afile.state = state
            if state in (FileState.HASHING, FileState.DOWNLOADING):
                active.done -= afile.done
                afile.done = 0
        self.publish(
            FileStateChanged(
                download_id=active.download.download_id,
                path=afile.remote.relative_path,
                state=state,
            )
        )

    def progress(self, active: ActiveDownload, afile: ActiveFile, count: int, network: bool):
        with self._lock:
            afile.done += count
            active.done += count
        if network:
            self._meter.add(count)
            active.meter.add(count)

    def count_hashed(self, size: int) -> None:
        with self._lock:
            self._counters.files_hashed += 1
            self._counters.bytes_hashed += size

    def previous_history(self, limit: int) -> list[HistoryEntry]:
        """History of earlier runs from the journal (oldest first), for a UI to show."""
        if self.journal is None:
            return []
        return self.journal.recent_history(limit, before=self._started_at)

    def unpark(self, item: QueuedDownload) -> None:
        """The Download got what it waited for (disk space, its files): it is running."""
        if item.waiting is not None:
            log.info("%s no longer %s", item.download.label, item.waiting)
            self.clear_problem(download_problem(item.download_id))
            item.waiting = None
            item.changed()

    def wait_for_disk(self, active: ActiveDownload, reason: str) -> None:
        """Not enough space for this Download: park it, try again in a few seconds."""
        self._park(active, "WAITING FOR DISK", reason, self.config.disk_retry)

    def requeue_busy(self, active: ActiveDownload, reason: str) -> None:
        """Another process writes one of its files: come back to it a little later."""
        self._park(active, "BUSY", reason, max(2.0, self.config.disk_retry))

    def _park(self, active: ActiveDownload, state: str, reason: str, delay: float) -> None:
        item = active.item
        with self._lock:
            self._active.pop(item.download_id)
            files = active.file_details(running=False)
            active.record.end_attempt(state.lower(), time.time(), files)
        now = time.monotonic()
        if item.waiting != state:
            item.waiting, item.waiting_since = state, now
            log.warning(
                "%s %s: %s",
                item.download.label,
                state,
                reason,
                extra={"problem": download_problem(item.download_id)},
            )
            self.publish(
                DownloadWaiting(
                    download_id=item.download_id,
                    job_id=item.download.job_id,
                    task_id=item.download.task_id,
                    state=state,
                    reason=reason,
                )
            )
        item.last_error = reason
        item.not_before = now + delay
        item.changed()
        waited = now - item.waiting_since
        if state == "WAITING FOR DISK" and waited > self.config.disk_wait_max:
            item.waiting = None
            reason = f"waited {waited:.0f} s for disk space (disk_wait_max): {reason}"
            self._give_back(item, Outcome.FAILED, reason)
            return
        if waited > self.config.disk_release_after and item.leased:
            # Held long: give the farm its Download back. A daemon lets it go entirely
            # (another daemon may have room); job mode keeps it queued.
            self.leases.report(item, FarmStatus.PENDING, 0, closing=True)
            if item.origin == "daemon":
                with self._lock:
                    self._known.pop(item.download_id, None)
                    released = active.record.detail("history", "RELEASED", reason)
                    self._book.close(item.download_id, released)
                self.clear_problem(download_problem(item.download_id))  # no longer ours
                log.warning(
                    "%s released to the farm after waiting %.0fs",
                    item.download.label,
                    now - item.waiting_since,
                )
                return
        self.queue.put(item)

    def file_finished(
        self, active: ActiveDownload, afile: ActiveFile, state: FileState, seconds: float
    ) -> None:
        """A file is in place: COMPLETE (downloaded and verified), CACHED or SKIPPED."""
        d = active.download
        size = afile.remote.size
        outcome = file_outcome(state)
        with self._lock:
            afile.state = state
            if outcome is Outcome.DL:
                self._counters.files_downloaded += 1
                self._counters.bytes_downloaded += size
            elif outcome is Outcome.CACHED:
                self._counters.files_cached += 1
                self._counters.bytes_cached += size
            else:
                self._counters.files_skipped += 1
            active.done += size - afile.done
            afile.done = size
            active.item.settled[afile.remote.relative_path] = state
            self._record(self._file_entry(active, afile, outcome, seconds))
        self.publish(
            FileDone(
                download_id=d.download_id,
                job_id=d.job_id,
                task_id=d.task_id,
                path=afile.remote.relative_path,
                size=size,
                outcome=outcome,
                seconds=seconds,
            )
        )

    def restore_settled(
        self, active: ActiveDownload, afile: ActiveFile, st: os.stat_result | None
    ) -> bool:
        """On a retry: a file an earlier attempt put in place and that is unchanged since
        (`st`: its entry now) is taken as it is (already counted and recorded). False if
        it must be redone."""
        state = active.item.settled.get(afile.remote.relative_path)
        if state is None:
            return False
        # A skipped file was never verified (it differs from the farm's by choice).
        if state is not FileState.SKIPPED and not self.verified.trusted(
            afile.dest, afile.remote, st
        ):
            return False
        with self._lock:
            afile.state = state
            active.done += afile.remote.size - afile.done
            afile.done = afile.remote.size
        return True

    def file_failed(self, active: ActiveDownload, afile: ActiveFile, reason: str) -> None:
        """A file failed every try of this attempt (history records it if we give up)."""
        reason = scrub(reason)
        with self._lock:
            afile.state = FileState.FAILED
            afile.detail = reason
        self.publish(
            FileFailed(
                download_id=active.download.download_id,
                path=afile.remote.relative_path,
                reason=reason,
            )
        )

    def _record(self, entry: HistoryEntry) -> None:
        """Add to this run's history (and to the journal's). Call with the lock held."""
        entry = replace(entry, run_started=self._started_at)
        self._history.add(entry)
        if self.journal is not None:
            self.journal.record_history(entry)

    def _file_entry(
        self, active: ActiveDownload, afile: ActiveFile, outcome: Outcome, seconds: float
    ) -> HistoryEntry:
        d = active.download
        return HistoryEntry(
            kind="file",
            outcome=outcome,
            download_id=d.download_id,
            job_id=d.job_id,
            task_id=d.task_id,
            path=str(afile.dest),
            size=afile.remote.size,
            seconds=seconds,
            finished_at=time.time(),
            reason=afile.detail if outcome is Outcome.FAILED else "",
        )

    def finish(self, active: ActiveDownload) -> None:
        """Every file is in place: report `downloaded`, record the task."""
        d = active.download
        self.leases.report(active.item, FarmStatus.DOWNLOADED, d.size, closing=True)
        states = {f.state for f in active.files}
        if FileState.COMPLETE in states or not states:  # a task without files is done too
            outcome = Outcome.DL
        elif states == {FileState.SKIPPED}:
            outcome = Outcome.SKIPPED
        else:
            outcome = Outcome.CACHED
        seconds = time.monotonic() - active.started
        fetched = sum(f.remote.size for f in active.files if f.state is FileState.COMPLETE)
        with self._lock:
            self._active.pop(d.download_id)
            active.record.end_attempt("done", time.time(), active.file_details(running=False))
            self._book.close(d.download_id, active.record.detail("done", outcome.value, ""))
            self._counters.downloads_done += 1
            self._record(
                HistoryEntry(
                    kind="task",
                    outcome=outcome,
                    download_id=d.download_id,
                    job_id=d.job_id,
                    task_id=d.task_id,
                    path=str(active.root or ""),
                    size=d.size,
                    seconds=seconds,
                    finished_at=time.time(),
                )
            )
            self._set_outcome(d.download_id, outcome)
        self.clear_problem(download_problem(d.download_id))
        self.publish(
            DownloadDone(
                download_id=d.download_id,
                job_id=d.job_id,
                task_id=d.task_id,
                outcome=outcome,
                files=len(active.files),
                bytes_downloaded=fetched,
                seconds=seconds,
            )
        )
        self._after_outcome(d.download_id)

    def gives_up(self, item: QueuedDownload, *, retryable: bool) -> bool:
        """Whether a failure of the attempt running now is the Download's last."""
        return not retryable or item.attempts + 1 >= self.config.max_attempts

    def attempt_failed(
        self,
        active: ActiveDownload,
        reason: str,
        *,
        retryable: bool,
        afile: ActiveFile | None = None,
    ) -> None:
        """One attempt failed: back to the queue with backoff, or given up after the last."""
        # Every reason that reaches a screen, a report, the journal or the farm passes
        # here or through the other doors above: a farm may have echoed a secret into it.
        reason = scrub(reason)
        item = active.item
        give_up = self.gives_up(item, retryable=retryable)
        item.attempts += 1
        item.last_error = reason
        item.changed()
        outcome = Outcome.REFUSED if not retryable else Outcome.FAILED
        d = item.download
        log.warning(
            "%s attempt %d/%d failed: %s",
            d.label,
            item.attempts,
            self.config.max_attempts,
            reason,
            extra={"problem": download_problem(d.download_id)},
        )
        with self._lock:
            self._active.pop(d.download_id)
            files = active.file_details(running=False)
            active.record.end_attempt("failed", time.time(), files, reason)
        self.publish(
            DownloadFailed(
                download_id=d.download_id,
                job_id=d.job_id,
                task_id=d.task_id,
                reason=reason,
                attempt=item.attempts,
                will_retry=not give_up,
                outcome=outcome,
            )
        )
        if give_up:
            if afile is not None:
                with self._lock:
                    self._counters.files_failed += 1
                    self._record(
                        self._file_entry(
                            active, afile, Outcome.FAILED, time.monotonic() - active.started
                        )
                    )
            self._give_back(item, outcome, reason, failed_files=1 if afile is not None else 0)
            return
        if item.origin != "daemon":
            # Job mode: we are not working on it until the backoff ends; let it go.
            self.leases.report(item, FarmStatus.PENDING, 0, closing=True)
        delay = min(60.0, self.config.retry_delay * 2 ** (item.attempts - 1))
        item.not_before = time.monotonic() + delay * random.uniform(0.5, 1.0)
        item.changed()
        self.queue.put(item)

    def released(self, active: ActiveDownload) -> None:
        """A worker stopped mid-Download (cancel or shutdown): temp files are gone already."""
        with self._lock:
            self._active.pop(active.download.download_id)
            outcome = "cancelled" if active.cancelled else "given back"
            active.record.end_attempt(outcome, time.time(), active.file_details(running=False))
        if active.cancelled:
            self._give_back(active.item, Outcome.CANCELLED, "cancelled")
        else:
            self.leases.report(
                active.item, FarmStatus.PENDING, 0, closing=True, quick=self.control.stopping
            )

    def _give_back(
        self, item: QueuedDownload, outcome: Outcome, reason: str, failed_files: int = 0
    ) -> None:
        """FAILED, CANCELLED or REFUSED: tell the farm, keep it for the retry command."""
        reason = scrub(reason)
        d = item.download
        if outcome is not Outcome.CANCELLED and self.config.reporting:
            self.leases.report_fail(d.download_id, reason)
        if outcome is Outcome.FAILED and item.origin == "daemon" and item.leased:
            self.leases.hold(item)  # handed straight back, it would be offered to us first again
        else:
            # `pending` only if this run ever claimed it: a queued job-mode Download we
            # never touched may be `downloaded` on the farm already.
            self.leases.report(item, FarmStatus.PENDING, 0, closing=True, force=item.claimed)
        with self._lock:
            self._counters.given_up(outcome)
            self._given_up[d.download_id] = GivenUp(
                FailedView(
                    download_id=d.download_id,
                    job_id=d.job_id,
                    task_id=d.task_id,
                    files=len(d.files),
                    size=d.size,
                    attempts=item.attempts,
                    reason=reason,
                    outcome=outcome,
                    at=time.time(),
                ),
                item,
                failed_files,
            )
            self._record(
                HistoryEntry(
                    kind="task",
                    outcome=outcome,
                    download_id=d.download_id,
                    job_id=d.job_id,
                    task_id=d.task_id,
                    path="",
                    size=d.size,
                    seconds=0.0,
                    finished_at=time.time(),
                    reason=reason,
                )
            )
            self._set_outcome(d.download_id, outcome)
        if outcome is Outcome.CANCELLED:
            self.clear_problem(download_problem(d.download_id))
            self.publish(
                DownloadCancelled(download_id=d.download_id, job_id=d.job_id, task_id=d.task_id)
            )
        else:
            log.error(
                "%s %s: %s",
                d.label,
                outcome.value,
                reason,
                extra={"problem": download_problem(d.download_id)},
            )
        self._after_outcome(d.download_id)

    def _set_outcome(self, download_id: str, outcome: Outcome | None) -> None:
        self._known[download_id] = outcome
        for tracker in self._trackers:
            if download_id in tracker.outcomes:
                tracker.outcomes[download_id] = outcome
                if outcome is None:
                    tracker.announced = False

    def _after_outcome(self, download_id: str) -> None:
        with self._lock:
            trackers = [t for t in self._trackers if download_id in t.outcomes]
        for tracker in trackers:
            self._check_tracker(tracker)
        self._check_drained()

    def _check_tracker(self, tracker: JobTracker) -> None:
        with self._lock:
            if tracker.announced or not tracker.complete:
                return
            tracker.announced = True
            view = tracker.view()
        log.info("job %s done: %d downloads, %d failed", view.job_id, view.listed, view.failed)
        self.publish(JobDone(job_id=view.job_id, downloads=view.listed, failed=view.failed))
        if self.hook is not None:
            if view.failed:
                log.warning("job %s had failures; its --on-job-done hook does not run", view.job_id)
            else:
                self.hook.fire(view.job_id, self._job_variables(view.job_id, view.listed))

    def _job_variables(self, job_id: str, tasks: int) -> dict[str, str]:
        with self._lock:
            files = [e for e in self._history.files if e.job_id == job_id]
            roots = [e.path for e in self._history.tasks if e.job_id == job_id and e.path]
        output = self.config.output / job_id if self.config.output else (roots[:1] or [""])[0]
        return {
            "CDL_JOB_ID": job_id,
            "CDL_OUTPUT_DIR": str(output),
            "CDL_TASKS": str(tasks),
            "CDL_FILES": str(sum(1 for e in files if e.outcome is Outcome.DL)),
            "CDL_FILES_CACHED": str(sum(1 for e in files if e.outcome is Outcome.CACHED)),
            "CDL_BYTES": str(sum(e.size for e in files if e.outcome is Outcome.DL)),
        }

    def _check_drained(self) -> None:
        """With --exit-when-done, stop once every job is complete and nothing is running."""
        if not self.config.exit_when_done or self.config.daemon:
            return
        with self._lock:
            if self._drained or self.control.stopping or len(self._active) or len(self.queue):
                return
            if not all(t.complete or t.error for t in self._trackers):
                return
            self._drained = True
        self.publish(EngineDrained())
        self.stop("everything asked for is done")

    # -- leases ----------------------------------------------------------------------------

    def _ours(self) -> list[tuple[QueuedDownload, int]]:
        """The Downloads running or queued that the farm counts as ours (for heartbeats),
        with their bytes so far."""
        with self._lock:
            items = [(a.item, a.done) for a in self._active.all()]
        return items + [(item, 0) for item in self.queue.items() if item.leased]

    # -- workers ---------------------------------------------------------------------------

    def _take(self) -> QueuedDownload | None:
        item = self.queue.take(0.5, self.control.may_start)
        if item is None:
            return None
        if item.origin == "daemon":
            self._feeder.wake()  # room for one more lease
        if self.control.stopping:
            self.queue.put(item, front=True)
            return None
        return item

    def _run(self, item: QueuedDownload, worker: str) -> None:
        DownloadRun(self, item, worker).run()
