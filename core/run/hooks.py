"""`--on-job-done CMD`: run a command when every task of a job is downloaded.

The command runs through the shell (it is the user's own configuration), in its own
thread so the engine never waits for it, with the job in environment variables:

    CDL_JOB_ID       the job, e.g. 08285
    CDL_OUTPUT_DIR   where its files went (the first task's folder)
    CDL_TASKS        Downloads (tasks) in the job
    CDL_FILES        files downloaded in this run
    CDL_FILES_CACHED files that were already in place
    CDL_BYTES        bytes downloaded in this run

It runs once per job per run, and only if no task of the job failed. A hook that fails,
hangs past `timeout` or cannot start is logged, never fatal.
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from cdl_tui.core.model.secrets import holds_secret
from cdl_tui.core.model.states import Outcome
from cdl_tui.core.model.views import HistoryEntry, JobView

log = logging.getLogger("cdl.hooks")


# Where credentials live in the environment; a hook gets none of them.
CREDENTIAL_VARIABLES = (
    "CDL_API_KEY",
    "CDL_API_KEY_FILE",
    "CONDUCTOR_API_KEY",
    "CONDUCTOR_API_KEY_PATH",
)


def hook_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment for a hook: ours, less every credential (by name, and any variable
    whose value holds a key or token we know)."""
    return {
        name: value
        for name, value in environ.items()
        if name not in CREDENTIAL_VARIABLES and not holds_secret(value)
    }


def job_variables(
    job_id: str,
    tasks: int,
    files: Sequence[HistoryEntry],
    task_entries: Sequence[HistoryEntry],
    output: Path | None,
) -> dict[str, str]:
    """The hook's variables for a job, from its history entries of this run."""
    roots = [e.path for e in task_entries if e.path]
    output_dir = str(output / job_id) if output else (roots[:1] or [""])[0]
    return {
        "CDL_JOB_ID": job_id,
        "CDL_OUTPUT_DIR": output_dir,
        "CDL_TASKS": str(tasks),
        "CDL_FILES": str(sum(1 for e in files if e.outcome is Outcome.DL)),
        "CDL_FILES_CACHED": str(sum(1 for e in files if e.outcome is Outcome.CACHED)),
        "CDL_BYTES": str(sum(e.size for e in files if e.outcome is Outcome.DL)),
    }


class JobDoneHook:
    def __init__(self, command: str, timeout: float = 3600.0) -> None:
        self.command = command
        self.timeout = timeout
        self._done: set[str] = set()
        self._lock = threading.Lock()
        self.threads: list[threading.Thread] = []

    def fire(self, job_id: str, variables: Mapping[str, str]) -> bool:
        """Start the command for `job_id` unless it already ran; True if it was started."""
        with self._lock:
            if job_id in self._done:
                return False
            self._done.add(job_id)
        thread = threading.Thread(
            target=self._run, args=(job_id, dict(variables)), name=f"hook-{job_id}", daemon=True
        )
        self.threads.append(thread)
        thread.start()
        return True

    def _run(self, job_id: str, variables: dict[str, str]) -> None:
        env = {**hook_environment(os.environ), **variables}
        try:
            result = subprocess.run(  # noqa: S602 - the user's own command, from their config
                self.command,
                shell=True,
                env=env,
                capture_output=True,
                text=True,
                timeout=self.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            log.error(
                "the job-done hook for %s ran over %.0fs and was stopped", job_id, self.timeout
            )
            return
        except OSError as exc:
            log.error("the job-done hook for %s could not start: %s", job_id, exc)
            return
        if result.returncode:
            tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or [""]
            log.error(
                "the job-done hook for %s exited %d: %s", job_id, result.returncode, tail[0][:200]
            )
        else:
            log.info("the job-done hook for %s ran", job_id)

    def job_complete(
        self,
        view: JobView,
        files: Sequence[HistoryEntry],
        tasks: Sequence[HistoryEntry],
        output: Path | None,
    ) -> None:
        """A job is complete: run the command, unless one of its Downloads failed."""
        if view.failed:
            log.warning("job %s had failures; its --on-job-done hook does not run", view.job_id)
            return
        self.fire(view.job_id, job_variables(view.job_id, view.listed, files, tasks, output))

    def join(self, timeout: float = 10.0) -> None:
        for thread in self.threads:
            thread.join(timeout)
