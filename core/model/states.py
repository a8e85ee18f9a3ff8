"""The states a file and a Download go through, and what the farm is told about them.

The legacy client kept these per file and mapped them onto the farm's three statuses; the
mapping is kept (QUEUED, PREPARING DIRECTORY, HASHING EXISTING FILE, DOWNLOADING ->
`downloading`; COMPLETE -> `downloaded`; FAILED -> `pending`), with CACHED (an existing file
matched) and SKIPPED (`--on-conflict skip` kept a differing local file) added.
"""

from __future__ import annotations

from enum import Enum


class FarmStatus(str, Enum):
    """A Download's status as the farm knows it (POST /downloads/status)."""

    DOWNLOADING = "downloading"  # ours, being worked on (heartbeats keep it so)
    DOWNLOADED = "downloaded"  # every file in place and verified
    PENDING = "pending"  # not ours any more: the farm may hand it out again

    def __str__(self) -> str:
        return self.value


class FileState(str, Enum):
    QUEUED = "QUEUED"
    PREPARING = "PREPARING DIRECTORY"
    HASHING = "HASHING EXISTING FILE"
    DOWNLOADING = "DOWNLOADING"
    COMPLETE = "COMPLETE"
    CACHED = "CACHED"
    SKIPPED = "SKIPPED"
    FAILED = "FAILED"

    @property
    def finished(self) -> bool:
        return self in _FINISHED_FILE_STATES

    @property
    def farm_status(self) -> FarmStatus:
        return _FARM_STATUS[self]

    def __str__(self) -> str:
        return self.value


_FINISHED_FILE_STATES = frozenset(
    {FileState.COMPLETE, FileState.CACHED, FileState.SKIPPED, FileState.FAILED}
)
_FARM_STATUS = {
    FileState.QUEUED: FarmStatus.DOWNLOADING,
    FileState.PREPARING: FarmStatus.DOWNLOADING,
    FileState.HASHING: FarmStatus.DOWNLOADING,
    FileState.DOWNLOADING: FarmStatus.DOWNLOADING,
    FileState.COMPLETE: FarmStatus.DOWNLOADED,
    FileState.CACHED: FarmStatus.DOWNLOADED,
    FileState.SKIPPED: FarmStatus.DOWNLOADED,
    FileState.FAILED: FarmStatus.PENDING,
}


class Outcome(str, Enum):
    """How a file or a Download ended, as history shows it."""

    DL = "DL"
    CACHED = "CACHED"
    SKIPPED = "SKIPPED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    REFUSED = "REFUSED"  # invalid or unsafe data from the farm: never retried

    def __str__(self) -> str:
        return self.value

    @property
    def ok(self) -> bool:
        return self in (Outcome.DL, Outcome.CACHED, Outcome.SKIPPED)


def file_outcome(state: FileState) -> Outcome:
    return {
        FileState.COMPLETE: Outcome.DL,
        FileState.CACHED: Outcome.CACHED,
        FileState.SKIPPED: Outcome.SKIPPED,
    }.get(state, Outcome.FAILED)


class Mode(str, Enum):
    """What a run lists: /downloads/next, explicit jobs, or both."""

    DAEMON = "daemon"
    JOBS = "jobs"
    BOTH = "daemon+jobs"

    def __str__(self) -> str:
        return self.value


# The origin of a Download leased from /downloads/next (others carry their job's ID).
DAEMON_ORIGIN = "daemon"
