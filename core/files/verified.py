"""Which files at their final paths are known to hold the farm's bytes.

Two sources: what this run verified itself (hashed, or downloaded and checked), kept in
memory by the file's identity (size, mtime, inode), and the md5 journal of earlier runs,
trusted only for an unchanged file and only if `md5_cache` is on. An entry that is not a
regular file (a link, a FIFO) is never trusted: its name is replaced, never read through.

Owned data: the in-memory map, under its own lock (a leaf: nothing is called while it is
held). The journal has its own writer thread.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from stat import S_ISREG

from cdl_tui.core.files.journal import Journal
from cdl_tui.core.model.models import RemoteFile


class VerifiedFiles:
    def __init__(self, journal: Journal | None, *, md5_cache: bool = True) -> None:
        self.journal = journal
        self.md5_cache = md5_cache
        self._lock = threading.Lock()
        self._known: dict[str, tuple[int, int, int, str]] = {}  # path -> stat key + md5

    def trusted(self, dest: Path, remote: RemoteFile, st: os.stat_result | None) -> bool:
        """True if this run verified `dest` already and it has not changed since (`st`:
        the entry as it is now, a link not followed; None if there is none)."""
        with self._lock:
            key = self._known.get(str(dest))
        if key is None or key[3] != remote.md5 or st is None or not S_ISREG(st.st_mode):
            return False
        return key[:3] == (st.st_size, st.st_mtime_ns, st.st_ino)

    def remember(self, dest: Path, remote: RemoteFile, st: os.stat_result | None) -> None:
        """`dest` (whose entry is `st` now) holds the farm's file."""
        if st is None:
            return
        with self._lock:
            self._known[str(dest)] = (st.st_size, st.st_mtime_ns, st.st_ino, remote.md5)
        if self.journal is not None:
            self.journal.record_verified(dest, remote.md5, st)

    def journal_md5(self, dest: Path, st: os.stat_result | None) -> str | None:
        """The md5 the journal holds for an unchanged `dest` (None: hash it)."""
        if self.journal is None or not self.md5_cache or st is None:
            return None
        if not S_ISREG(st.st_mode):
            return None
        return self.journal.cached_md5(dest, st)
