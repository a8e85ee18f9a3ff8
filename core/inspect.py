"""`--verify` and `--dry-run`: compare what the farm lists with what is on disk.

Neither writes anything, reports anything to the farm, nor leases anything: they use the
job listing only. `--verify` hashes every file that is present; `--dry-run` says what a run
would fetch (hashing what is present too, so "already present" means verified).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISREG

from cdl_tui.core.farm.api import FarmClient
from cdl_tui.core.files.destination import DestinationPolicy, plan_files
from cdl_tui.core.files.transfer import hash_file
from cdl_tui.core.model.jobspec import JobSpec
from cdl_tui.core.model.models import Download, RemoteFile
from cdl_tui.core.model.paths import UnsafePath


@dataclass(frozen=True)
class LocalCheck:
    download: Download
    remote: RemoteFile | None  # None when the whole Download was refused
    dest: Path | None
    state: str  # "same", "missing", "size differs", "md5 differs", "refused"
    reason: str = ""
    on_disk: int = 0  # the size of what is at `dest` (0 when missing)

    @property
    def ok(self) -> bool:
        return self.state == "same"


def check_jobs(
    client: FarmClient,
    specs: list[JobSpec],
    policy: DestinationPolicy,
    *,
    regex: str | None = None,
    page_size: int = 100,
    hash_present: bool = True,
) -> Iterator[LocalCheck | str]:
    """A LocalCheck per file of the given jobs (or a string: a Download the farm
    described badly)."""
    pattern = re.compile(regex) if regex else None
    for spec in specs:
        for batch in client.iter_job_downloads(spec.job_id, spec.task_ids, page_size=page_size):
            for rejected in batch.rejected:
                yield f"{rejected.job_id}:{rejected.task_id} refused: {rejected.reason}"
            for download in batch.downloads:
                yield from _check_download(download, policy, pattern, hash_present)


def _check_download(
    download: Download,
    policy: DestinationPolicy,
    pattern: re.Pattern[str] | None,
    hash_present: bool,
) -> Iterator[LocalCheck]:
    root, _ = policy.root_for(download)
    try:
        planned = plan_files(download, root)
    except UnsafePath as exc:
        yield LocalCheck(download, None, None, "refused", str(exc))
        return
    for remote, dest in planned:
        if pattern is not None and not pattern.search(remote.relative_path):
            continue
        state, on_disk = compare(remote, dest, hash_present)
        yield LocalCheck(download, remote, dest, state, on_disk=on_disk)


def compare(remote: RemoteFile, dest: Path, hash_present: bool = True) -> tuple[str, int]:
    """How the file at `dest` stands against the farm's, and its size on disk (0 when
    missing). A link there is not followed: it is not a downloaded file (a run would
    replace it), so it counts as missing."""
    try:
        info = dest.lstat()
    except OSError:
        return "missing", 0
    if not S_ISREG(info.st_mode):
        return "missing", 0
    if info.st_size != remote.size:
        return "size differs", info.st_size
    try:
        if hash_present and hash_file(dest) != remote.md5:
            return "md5 differs", info.st_size
    except OSError:
        return "missing", 0
    return "same", info.st_size
