"""The disk guard: start a Download only if what it still needs fits on its filesystem.

Before a Download starts, the bytes it still has to write (files not yet in place, less
partial temp files already on disk) plus a margin are compared with the free space of its
destination's filesystem, less what Downloads already running on that filesystem have
reserved. If it does not fit, the Download waits (WAITING FOR DISK) while others, for
other filesystems, go on; it is tried again when space may have been freed.
"""

from __future__ import annotations

import errno
import shutil
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cdl_tui.core.model.errors import WaitForDisk
from cdl_tui.core.model.models import RemoteFile
from cdl_tui.core.model.settings import FreeSpace

from .transfer import partial_size


def free_space(path: Path) -> int:
    return shutil.disk_usage(path).free


def capacity_of(path: Path) -> int:
    return shutil.disk_usage(path).total


MARGIN_SHARE = 0.02  # of a filesystem's size, when that is less than the margin


def existing_ancestor(path: Path) -> Path:
    return _existing(path)[0]


# What Path.exists() takes for "not there" (a link loop included).
_ABSENT = (errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP)


def _existing(path: Path) -> tuple[Path, int]:
    """The nearest folder of `path` that exists (itself, if it does), and its device."""
    current = path
    while True:
        try:
            return current, current.stat().st_dev
        except (OSError, ValueError) as exc:
            if isinstance(exc, OSError) and exc.errno not in _ABSENT:
                raise
            if current.parent == current:
                return current, 0
            current = current.parent


@dataclass(frozen=True)
class Reservation:
    device: int
    size: int


class DiskGuard:
    def __init__(
        self,
        margin: int = 256 << 20,
        probe: FreeSpace = free_space,
        capacity: FreeSpace = capacity_of,
    ) -> None:
        self.margin = margin
        self.probe = probe
        self.capacity = capacity
        self._reserved: dict[int, int] = {}
        self._margins: dict[int, int] = {}  # device -> its margin (sizes do not change)
        self._lock = threading.Lock()

    @staticmethod
    def still_needed(files: Iterable[tuple[RemoteFile, Path]]) -> int:
        """Bytes still to write for these files: not in place, less partials on disk."""
        need = 0
        for remote, dest in files:
            try:
                if dest.stat().st_size == remote.size:
                    continue  # in place already (it will be verified, not written)
            except OSError:
                pass
            need += max(0, remote.size - partial_size(dest, remote))
        return need

    def reserve_for(self, directory: Path, files: list[tuple[RemoteFile, Path]]) -> Reservation:
        """Reserve room for these files.

        Most of the time the disk has room for all of them twice over: then their full
        size is reserved without looking at the files (a stat per file). Only when room is
        tighter are the files on disk counted, so that a re-run verifying files already in
        place does not hold room other Downloads need."""
        total = sum(remote.size for remote, _ in files)
        try:
            return self.reserve(directory, total, slack=total)
        except WaitForDisk:
            return self.reserve(directory, self.still_needed(files))

    def reserve(self, directory: Path, need: int, slack: int = 0) -> Reservation:
        """Reserve `need` bytes on the filesystem of `directory`, or raise WaitForDisk.
        `slack` more bytes must be free too, but are not reserved."""
        where, device = _existing(directory)
        free = self.probe(where)
        margin = self._margins.get(device)
        if margin is None:
            margin = self._margins[device] = self.margin_for(where)
        with self._lock:
            taken = self._reserved.get(device, 0)
            if need and free - taken < need + slack + margin:
                raise WaitForDisk(
                    f"needs {need} bytes (+{margin} margin) on {where}, {max(0, free - taken)} free"
                )
            self._reserved[device] = taken + need
        return Reservation(device, need)

    def margin_for(self, where: Path) -> int:
        """The room to leave free on `where`'s filesystem: the configured margin, or 2 %
        of the filesystem if that is less (a 100 MB filesystem is not full for a small
        file because it has less than 256 MiB free)."""
        try:
            return min(self.margin, int(self.capacity(where) * MARGIN_SHARE))
        except OSError:
            return self.margin

    def release(self, reservation: Reservation | None) -> None:
        if reservation is None:
            return
        with self._lock:
            left = self._reserved.get(reservation.device, 0) - reservation.size
            if left > 0:
                self._reserved[reservation.device] = left
            else:
                self._reserved.pop(reservation.device, None)
