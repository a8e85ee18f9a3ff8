"""The downloader engine: the facade the front ends use, and the wiring of its parts.

    engine = Engine(client, EngineConfig(jobs=parse_job_specs(["08285"]), exit_when_done=True))
    engine.bus.subscribe(print)          # typed lifecycle events, from one thread
    engine.start()
    engine.snapshot()                    # cheap immutable view, poll it from a UI
    engine.details(download_id)          # everything about one Download, for a detail view
    engine.pause(); engine.resume()      # commands are thread-safe
    engine.stop_event.wait()             # set by a drain, a fatal error or stop()
    exit_code = engine.shutdown()        # releases leases, joins threads

The parts (docs/architecture.md has the map, state/shared.py the lock order): the feeder
(run/feeder.py) lists Downloads into state/intake.py; workers (run/workers.py) take them
from the queue; each attempt (run/download_run.py) reports into state/attempts.py and
returns how it ended, which state/outcomes.py settles into state/ledger.py.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable

from cdl_tui.core.farm.api import FARM_PROBLEM, FarmClient
from cdl_tui.core.farm.leases import Leases
from cdl_tui.core.files.destination import DestinationPolicy, warn_if_unbounded
from cdl_tui.core.files.diskguard import DiskGuard, free_space
from cdl_tui.core.files.journal import Journal
from cdl_tui.core.files.sweep import start_sweep
from cdl_tui.core.files.throttle import TokenBucket
from cdl_tui.core.files.verified import VerifiedFiles
from cdl_tui.core.model.errors import CdlError
from cdl_tui.core.model.events import EngineDrained, EngineStopped, Event, EventBus
from cdl_tui.core.model.frames import FramesView
from cdl_tui.core.model.jobspec import JobSpec
from cdl_tui.core.model.secrets import scrub
from cdl_tui.core.model.settings import EngineConfig
from cdl_tui.core.model.states import DAEMON_ORIGIN, Outcome
from cdl_tui.core.model.views import DownloadDetail, EngineSnapshot, HistoryEntry, JobView
from cdl_tui.core.run.download_run import DownloadRun, RunSettings
from cdl_tui.core.run.feeder import Feeder
from cdl_tui.core.run.hooks import JobDoneHook
from cdl_tui.core.run.transfers import choose_transfer
from cdl_tui.core.run.workers import WorkerPool
from cdl_tui.core.state.active import ActiveSet
from cdl_tui.core.state.attempts import Attempts, FilesSettings
from cdl_tui.core.state.control import RunControl
from cdl_tui.core.state.frames import JobFrames
from cdl_tui.core.state.intake import Intake
from cdl_tui.core.state.jobs import JobTracker
from cdl_tui.core.state.ledger import Ledger
from cdl_tui.core.state.outcomes import OutcomeRules, Outcomes
from cdl_tui.core.state.problems import ProblemHandler, ProblemLog, Severity, download_problem
from cdl_tui.core.state.scheduler import PendingQueue, QueuedDownload
from cdl_tui.core.state.shared import Shared

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "Engine", "EngineConfig"]

log = logging.getLogger("cdl.engine")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
RECENT = 20  # history entries a snapshot carries (the headless summary prints these)


class Engine:
    def __init__(self, client: FarmClient, config: EngineConfig) -> None:
        self.client = client
        self.config = config
        self.bus = EventBus()
        self.stop_event = threading.Event()
        self.problems = ProblemLog()
        self._problem_handler = ProblemHandler(self.problems)
        self._lock = threading.RLock()
        self._exit_code: int | None = None
        self._stop_reason = ""
        self._shutdown_done = False
        self._started = time.monotonic()
        self.control = RunControl(self._lock)
        self.queue = PendingQueue()
        self._active = ActiveSet(self._lock)
        self.leases = Leases.of(client, config, refused_key=self.fatal)
        self._shared = shared = Shared(
            self._lock,
            self.publish,
            self.control,
            self._active,
            self.queue,
            self.leases,
            self.problems,
            JobFrames(),
        )
        self.journal = Journal(config.journal) if config.journal else None
        self.throttle = TokenBucket(config.max_bandwidth)
        self.hook = JobDoneHook(config.on_job_done) if config.on_job_done else None
        self.ledger = Ledger(
            self._lock,
            self.publish,
            config,
            self.journal,
            idle=shared.idle,
            on_drained=self._drained,
            on_job_complete=self._job_complete,
        )
        self.outcomes = Outcomes(shared, OutcomeRules.of(config), self.ledger, self.fatal)
        self._workers = WorkerPool(
            config.threads,
            self._lock,
            take=self._take,
            run=self._run,
            stopping=lambda: self.control.stopping,
            crashed=lambda exc: self.stop(f"internal error in a worker: {exc!r}", EXIT_FAILED),
        )
        self.intake = Intake(
            shared,
            client,
            config,
            self.ledger,
            threads=lambda: self._workers.target,
            fatal=self.fatal,
        )
        self._transfer = choose_transfer(config.transfer, client, self.throttle)
        self.attempts = Attempts(
            shared,
            FilesSettings.of(config),
            self.ledger,
            self.outcomes,
            policy=DestinationPolicy.of(config),
            disk=DiskGuard(config.disk_margin, config.free_space or free_space),
            verified=VerifiedFiles(self.journal, md5_cache=config.md5_cache),
            transfer=self._transfer,
            refresh=self.intake.refresh,
        )
        self._run_settings = RunSettings.of(config)
        self._feeder = Feeder(self.intake)

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
        self.ledger.run_started = time.time()
        self._started = time.monotonic()
        warn_if_unbounded(self.config)
        start_sweep((self.config.output, self.config.fallback_dir), self.config.temp_max_age)
        self._workers.start()
        self._feeder.start()
        self.leases.start_heartbeats(self._shared.ours)

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
        self._transfer.close()  # after the workers: a straggler's try fails, cleanly
        self.attempts.roots.close()  # a straggler holds its own descriptors
        with self._lock:
            if self._shutdown_done:
                return self.exit_code
            self._shutdown_done = True
            stragglers = [a.item for a in self._active.all()]
        for item in stragglers:  # its partial temp files stay: the next run resumes them
            log.warning("%s did not stop in time; releasing it", item.download.label)
        self.leases.release_all([*stragglers, *self.queue.drain()])
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
            return EXIT_FAILED if self.ledger.totals().failed else EXIT_OK

    @property
    def stop_reason(self) -> str:
        return self._stop_reason

    def publish(self, event: Event) -> None:
        self.bus.publish(event)

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
        if self._active.flag(download_id, paused=paused):
            self.control.wake()
            return True
        return self.queue.set_held(download_id, paused)

    def cancel(self, download_id: str) -> bool:
        """Stop a Download, remove its temp files, give it back to the farm (`pending`)."""
        if self._active.flag(download_id, cancelled=True):
            self.control.wake()
            return True
        item = self.queue.remove(download_id)
        if item is None:
            return False
        self.outcomes.give_back(item, Outcome.CANCELLED, "cancelled")
        return True

    def retry(self, download_id: str) -> bool:
        """Queue a failed or cancelled Download again, with a fresh count of attempts."""
        old = self.ledger.take_back(download_id)
        if old is None:
            return False
        self.problems.clear(download_problem(download_id))
        # Described afresh before it runs: the farm may have fixed it, its URLs expired.
        self.intake.queue(
            QueuedDownload(old.download, old.origin, settled=dict(old.settled), refresh=True)
        )
        return True

    def retry_failed(self) -> int:
        return sum(1 for download_id in self.ledger.retryable() if self.retry(download_id))

    def move_to_top(self, download_id: str) -> bool:
        return self.queue.move_to_top(download_id)

    def add_jobs(self, specs: Iterable[JobSpec]) -> list[JobSpec]:
        """Start listing more jobs now, beside whatever else runs; returns the new ones."""
        added = self.ledger.add_jobs(specs)
        if added:
            log.info("added jobs %s", " ".join(str(s) for s in added))
            self._feeder.wake()
        return added

    def set_bandwidth(self, bytes_per_second: float | None) -> None:
        """Limit all workers together to this rate (None or 0: no limit)."""
        self.throttle.set_rate(bytes_per_second)
        limit = f"{bytes_per_second:.0f} B/s" if bytes_per_second else "none"
        log.info("bandwidth limit: %s", limit)

    def set_threads(self, count: int) -> int:
        """Change the number of workers while running (at least 1); returns the new count."""
        count = self._workers.set_threads(count)
        self.queue.wake()
        return count

    # -- views -----------------------------------------------------------------------------

    def snapshot(self) -> EngineSnapshot:
        ledger, history = self.ledger, self.ledger.history
        with self._lock:
            active = self._active.views(self.control.paused)
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
                active=active,
                pending=self.queue.views(),
                failed=ledger.failed_views(),
                recent_files=history.recent_files(RECENT),
                recent_tasks=history.recent_tasks(RECENT),
                history_files=len(history.files),
                history_tasks=len(history.tasks),
                history_serial=history.serial,
                totals=ledger.totals(),
                rate=self.attempts.meter.rate(),
                rate_history=self.attempts.meter.history(),
                jobs=ledger.job_views(active),
                feeder=self.intake.status,
                bandwidth_limit=self.throttle.rate,
                problems=self.problems.view(),
            )

    def history(self) -> tuple[tuple[HistoryEntry, ...], tuple[HistoryEntry, ...]]:
        """Every file and task entry kept, oldest first."""
        with self._lock:
            return tuple(self.ledger.history.files), tuple(self.ledger.history.tasks)

    def history_since(self, serial: int) -> tuple[list[HistoryEntry], int]:
        """Entries (files and tasks, in finishing order) added after `serial`, and the
        serial to ask with next time. Start with 0."""
        with self._lock:
            return self.ledger.history.since(serial), self.ledger.history.serial

    def previous_history(self, limit: int) -> list[HistoryEntry]:
        """History of earlier runs from the journal (oldest first), for a UI to show."""
        if self.journal is None:
            return []
        return self.journal.recent_history(limit, before=self.ledger.run_started)

    def details(self, download_id: str) -> DownloadDetail | None:
        """Everything this run knows about one Download (state/details.py), or None if
        it does not know it or finished it longer ago than the last `history_size`. Cheap:
        no disk, no network."""
        with self._lock:
            return self._active.detail(download_id) or self.ledger.detail(download_id)

    def frames(self, job_id: str) -> FramesView | None:
        """The job's files as frame sequences: on disk, missing, empty (model/frames.py)."""
        return self._shared.frames.view(job_id)

    def trackers(self) -> list[JobTracker]:
        return self.ledger.trackers()

    # -- the parts' callbacks --------------------------------------------------------------

    def _drained(self) -> None:
        """--exit-when-done: every job is complete and nothing runs."""
        self.publish(EngineDrained())
        self.stop("everything asked for is done")

    def _job_complete(self, view: JobView) -> None:
        if self.hook is not None:
            files, tasks = self.ledger.job_history(view.job_id)
            self.hook.job_complete(view, files, tasks, self.config.output)

    def _take(self) -> QueuedDownload | None:
        item = self.queue.take(0.5, self.control.may_start)
        if item is None:
            return None
        if item.origin == DAEMON_ORIGIN:
            self._feeder.wake()  # room for one more lease
        if self.control.stopping:
            self.queue.put(item, front=True)
            return None
        return item

    def _run(self, item: QueuedDownload, worker: str) -> None:
        active = self.attempts.begin(item, worker)
        result = DownloadRun(active, self.attempts, self._run_settings).run()
        self.outcomes.settle(active, result)
