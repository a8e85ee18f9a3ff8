"""A plain job-mode download loop: every Download of the given jobs, verified.

This is the foundation's runner: a thread pool over Downloads, existing files checked by
md5, per-file retries with backoff, status reports to the farm. The engine (core/engine)
supersedes it with feeding, events, snapshots and commands.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .api import FarmClient
from .destination import DestinationPolicy, plan_files
from .errors import AuthError, CdlError
from .jobspec import JobSpec
from .models import Download, RemoteFile
from .retry import RetryPolicy
from .transfer import StopRequested, TransferError, fetch_file, hash_file

log = logging.getLogger("cdl.run")

FILE_RETRY = RetryPolicy(max_attempts=4, base_delay=0.5, max_delay=8.0, max_elapsed=120.0)


@dataclass
class RunTotals:
    downloads_done: int = 0
    downloads_failed: int = 0
    files_downloaded: int = 0
    files_cached: int = 0
    bytes_downloaded: int = 0
    rejected: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def ok(self) -> bool:
        return self.downloads_failed == 0 and self.rejected == 0


class SimpleRunner:
    def __init__(
        self,
        client: FarmClient,
        policy: DestinationPolicy,
        *,
        threads: int = 8,
        page_size: int = 100,
        reporting: bool = True,
        say: Callable[[str], None] = print,
    ) -> None:
        self.client = client
        self.policy = policy
        self.threads = threads
        self.page_size = page_size
        self.reporting = reporting
        self.say = say
        self.totals = RunTotals()
        self.stop_event = threading.Event()
        self._auth_error: AuthError | None = None

    def run_jobs(self, specs: Iterable[JobSpec]) -> RunTotals:
        with ThreadPoolExecutor(self.threads, thread_name_prefix="worker") as pool:
            for spec in specs:
                for page in self.client.iter_job_downloads(
                    spec.job_id, spec.task_ids, page_size=self.page_size
                ):
                    for rejected in page.rejected:
                        self._count(rejected=1)
                        self.say(f"REFUSED {rejected.job_id}:{rejected.task_id} {rejected.reason}")
                        if rejected.download_id and self.reporting:
                            self._report_fail(rejected.download_id, rejected.reason)
                    for download in page.downloads:
                        pool.submit(self._guarded, download)
                    if self.stop_event.is_set():
                        break
        if self._auth_error is not None:
            raise self._auth_error
        return self.totals

    def _guarded(self, download: Download) -> None:
        if self.stop_event.is_set():
            return
        try:
            self._handle(download)
        except StopRequested:
            self._report(download, "pending", 0)
        except AuthError as exc:
            self._auth_error = exc
            self.stop_event.set()
        except Exception as exc:
            log.exception("unexpected error on %s", download.label)
            self._fail(download, f"unexpected error: {exc}")

    def _handle(self, download: Download) -> None:
        started = time.monotonic()
        root, warning = self.policy.root_for(download)
        if warning:
            log.warning("%s: %s", download.label, warning)
        try:
            planned = plan_files(download, root)
        except CdlError as exc:
            self._fail(download, f"refused: {exc}")
            return
        self._report(download, "downloading", 0)
        fetched = cached = done_bytes = 0
        for remote, dest in planned:
            if self._is_cached(remote, dest):
                cached += 1
                continue
            error = self._fetch_with_retries(remote, dest)
            if error is not None:
                self._fail(download, f"{remote.relative_path}: {error}")
                return
            fetched += 1
            done_bytes += remote.size
        self._report(download, "downloaded", download.size)
        self._count(
            downloads_done=1,
            files_downloaded=fetched,
            files_cached=cached,
            bytes_downloaded=done_bytes,
        )
        state = "CACHED" if fetched == 0 and cached else "DL"
        self.say(
            f"{state:<6} {download.label}  {len(planned)} files  {done_bytes:,} bytes  "
            f"{time.monotonic() - started:.1f}s  -> {root}"
        )

    def _is_cached(self, remote: RemoteFile, dest: Path) -> bool:
        try:
            if not dest.is_file() or dest.stat().st_size != remote.size:
                return False
            return hash_file(dest, check_stop=self._check_stop) == remote.md5
        except OSError:
            return False

    def _fetch_with_retries(self, remote: RemoteFile, dest: Path) -> str | None:
        for attempt in range(1, FILE_RETRY.max_attempts + 1):
            try:
                fetch_file(self.client.http, remote, dest, check_stop=self._check_stop)
                return None
            except TransferError as exc:
                if not exc.retryable or attempt == FILE_RETRY.max_attempts:
                    return str(exc)
                pause = FILE_RETRY.delay(attempt)
                log.warning("%s: %s; retry %d in %.1fs", remote.relative_path, exc, attempt, pause)
                if self.stop_event.wait(pause):
                    raise StopRequested("stopped") from None
        return "attempts exhausted"

    def _check_stop(self) -> None:
        if self.stop_event.is_set():
            raise StopRequested("stopped")

    def _fail(self, download: Download, reason: str) -> None:
        self._count(downloads_failed=1)
        self.say(f"FAILED {download.label}  {reason}")
        self._report(download, "pending", 0)
        if self.reporting:
            self._report_fail(download.download_id, reason)

    def _report(self, download: Download, status: str, done: int) -> None:
        if not self.reporting:
            return
        try:
            self.client.report_status(
                download.download_id,
                status,
                bytes_downloaded=done,
                bytes_to_download=download.size,
            )
        except AuthError:
            raise
        except CdlError as exc:
            log.warning("could not report %s %s: %s", download.label, status, exc)

    def _report_fail(self, download_id: str, reason: str) -> None:
        try:
            self.client.report_fail(download_id, reason)
        except CdlError as exc:
            log.warning("could not report failure of %s: %s", download_id, exc)

    def _count(self, **increments: int) -> None:
        with self.totals.lock:
            for name, value in increments.items():
                setattr(self.totals, name, getattr(self.totals, name) + value)
