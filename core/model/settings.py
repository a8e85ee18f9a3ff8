"""The settings of one run of the engine, and the few types they are made of.

Pure data: the engine hands each part the fields it needs; nothing here reads a file or
the environment (core/config.py turns a TOML file and the command line into these).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cdl_tui.core.model.jobspec import JobSpec
from cdl_tui.core.model.states import Mode

DEFAULT_FALLBACK = Path("~/cdl-downloads")
CONFLICT_POLICIES = ("overwrite", "skip", "backup")
FreeSpace = Callable[[Path], int]  # bytes free at a path (tests swap the measure)


@dataclass(frozen=True)
class Permissions:
    """Modes for what we create; None leaves them to the umask (0666/0777 & ~umask)."""

    file_mode: int | None = None
    dir_mode: int | None = None
    group: int | None = None  # gid to chown to, if set

    @property
    def create_mode(self) -> int:
        """The mode to create a file with (the configured one is set exactly after)."""
        return 0o666 if self.file_mode is None else self.file_mode


TRANSFER_ENGINES = ("auto", "curl", "python")  # how file bodies move (see core/files/)


@dataclass(frozen=True)
class FileTls:
    """How file hosts' certificates are checked: the same trust as the API client's
    (--ca-bundle, else SSL_CERT_FILE / SSL_CERT_DIR, else certifi's bundle)."""

    verify: bool = True
    ca_file: str | None = None
    ca_dir: str | None = None


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
    free_space: FreeSpace | None = None  # how free space is measured (tests swap it)
    max_bandwidth: float | None = None  # bytes/s for all workers together
    stall_timeout: float = 60.0  # a file body averaging under stall_min_rate this long
    stall_min_rate: float = 1024.0  # is cut as stalled and resumed (bytes/s; 0: off)
    on_job_done: str | None = None  # shell command run when a job is complete
    temp_max_age: float = 2 * 86400.0  # unclaimed temp files older than this are removed
    path_map: tuple[tuple[str, str], ...] = ()  # output_dir prefixes, submitter -> here
    output_roots: tuple[Path, ...] = ()  # if set, a farm's output_dir must be under one
    failed_hold: float = 900.0  # seconds a daemon keeps the lease of a Download it gave up
    transfer: str = "auto"  # curl (libcurl, one loop thread), python (a stream per worker)

    def __post_init__(self) -> None:
        if self.on_conflict not in CONFLICT_POLICIES:
            raise ValueError(f"on_conflict must be one of {', '.join(CONFLICT_POLICIES)}")
        if self.transfer not in TRANSFER_ENGINES:
            raise ValueError(f"transfer must be one of {', '.join(TRANSFER_ENGINES)}")

    @property
    def mode(self) -> Mode:
        if self.daemon and self.jobs:
            return Mode.BOTH
        return Mode.DAEMON if self.daemon else Mode.JOBS
