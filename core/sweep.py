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
import time
from collections.abc import Iterable
from pathlib import Path

from .transfer import is_temp_name

log = logging.getLogger("cdl.sweep")


def sweep_stale_temps(roots: Iterable[Path], max_age: float, now: float | None = None) -> int:
    """Remove our temp, sidecar and lock files older than `max_age`; return how many."""
    cutoff = (now if now is not None else time.time()) - max_age
    removed = 0
    for root in roots:
        if not root.is_dir():
            continue
        for directory, dirs, files in os.walk(root, followlinks=False):
            dirs[:] = [d for d in dirs if not Path(directory, d).is_symlink()]
            for name in files:
                if not is_temp_name(name):
                    continue
                path = Path(directory, name)
                with contextlib.suppress(OSError):
                    stat = path.lstat()
                    if stat.st_mtime < cutoff and not path.is_symlink():
                        path.unlink()
                        removed += 1
    if removed:
        log.info("removed %d stale temp files older than %.0f hours", removed, max_age / 3600)
    return removed
