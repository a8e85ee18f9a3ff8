"""How one attempt of a Download ended: what a worker's run hands back to be settled.

A run (run/download_run.py) does the work and says how it ended; state/outcomes.py
applies the rules (report, requeue with backoff, park, give up). The run never decides
what happens to the Download next, except that the last failure removes its temp files.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from cdl_tui.core.model.errors import CdlError


class AttemptEnd(str, Enum):
    DONE = "done"  # every file in place and verified
    FAILED = "failed"  # a file or the Download failed: retry with backoff, or give up
    NO_SPACE = "waiting for disk"  # not enough free space: park it, look again soon
    BUSY = "busy"  # another process writes one of its files: park it a little
    STOPPED = "stopped"  # a cancel or a shutdown stopped it between chunks
    FATAL = "fatal"  # an error that ends the whole run (a refused API key)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class AttemptResult:
    end: AttemptEnd
    reason: str = ""
    retryable: bool = True  # FAILED: False when the farm's data is refused (never retried)
    failed_path: str | None = None  # FAILED: the relative path of the file that failed
    error: CdlError | None = None  # FATAL: the error that ends the run


def is_last_attempt(attempts_before: int, max_attempts: int, *, retryable: bool) -> bool:
    """Whether a failure of the attempt running now (after `attempts_before` failed ones)
    is the Download's last."""
    return not retryable or attempts_before + 1 >= max_attempts
