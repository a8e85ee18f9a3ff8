"""At start: remove our temp files that nothing will resume any more.

A temp file left by a cut transfer is resumed when its Download comes round again (in this
run or a later one). One that stays unclaimed for `max_age` (two days by default) belongs
to a Download that is not coming back; this sweep, run in the background at start over
the output folders, removes those, with their sidecars and stale lock files. It never
follows symbolic links and never touches a name that is not ours.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from .transfer import is_temp_name

log = logging.getLogger("cdl.sweep")


def sweep_stale_temps(roots: Iterable[Path], max_age: float, now: float | None = None) -> int:
    """Remove our temp, sidecar and lock files older than `max_age`; return how many.

    The walk goes through folders by descriptor (os.fwalk, links not followed), and each
    name is looked at and removed relative to its folder's descriptor, so a folder swapped
    for a link during the walk cannot lead it elsewhere."""
    cutoff = (now if now is not None else time.time()) - max_age
    removed = 0
    for root in roots:
        if not root.is_dir():
            continue
        for _directory, _dirs, files, dir_fd in os.fwalk(root, follow_symlinks=False):
            for name in files:
                if not is_temp_name(name):
                    continue
                with contextlib.suppress(OSError):
                    info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                    if info.st_mtime < cutoff and stat.S_ISREG(info.st_mode):
                        os.unlink(name, dir_fd=dir_fd)
                        removed += 1
    if removed:
        log.info("removed %d stale temp files older than %.0f hours", removed, max_age / 3600)
    return removed


def start_sweep(roots: Iterable[Path | None], max_age: float) -> None:
    """Sweep these output folders (None: not set) in a background thread."""
    folders = [root.expanduser() for root in roots if root is not None]
    threading.Thread(
        target=sweep_stale_temps, args=(folders, max_age), name="sweep", daemon=True
    ).start()
