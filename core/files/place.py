"""One Download's files on disk: where each goes, what stands there, how it gets there.

Its folders are opened one component at a time without following links (files/folders.py).
A file at its final path is kept if it is known to hold the farm's bytes (this run
verified it, or the journal's md5 for an unchanged file matches) or if hashing it shows so
(CACHED); a differing one follows --on-conflict; anything else is fetched through the
Transfer. Renames are made durable once per folder (`sync`), before the Download is
reported `downloaded`.

Owned data: the open folder tree and the folders renamed into, used by one worker only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from stat import S_ISDIR, S_ISREG

from cdl_tui.core.files.folders import Folder, FolderTree, OpenRoots
from cdl_tui.core.files.transfer import (
    Progress,
    Target,
    Transfer,
    destination_lock,
    hash_fd,
    partial_bytes,
    remove_partial,
)
from cdl_tui.core.files.verified import VerifiedFiles
from cdl_tui.core.model.errors import AttemptProblem, CdlError, FileProblem, LinkRefused
from cdl_tui.core.model.models import RemoteFile
from cdl_tui.core.model.paths import path_parts
from cdl_tui.core.model.settings import Permissions
from cdl_tui.core.model.states import FileState

log = logging.getLogger("cdl.worker")

Callback = Callable[[int], None]


class DownloadFiles:
    def __init__(
        self,
        root: Path,
        *,
        permissions: Permissions,
        verified: VerifiedFiles,
        transfer: Transfer,
        on_conflict: str,
        force: bool,
        roots: OpenRoots | None = None,
    ) -> None:
        self.root = root
        self._permissions = permissions
        self._verified = verified
        self._transfer = transfer
        self._on_conflict = on_conflict
        self._force = force
        self._tree = FolderTree(root, permissions.dir_mode, permissions.group, roots)
        self._renamed_into: set[tuple[str, ...]] = set()  # folders whose renames are unsynced

    def target(self, remote: RemoteFile, dest: Path) -> Target:
        """The file's folder, created and opened without following links, and its name."""
        parts = _parts(remote)
        try:
            folder = self._tree.folder(parts[:-1])
        except LinkRefused as exc:
            # Someone put a link (or a file) where our folder goes: never write through it.
            raise FileProblem(f"refused: {exc.strerror}", retryable=False) from None
        except OSError as exc:
            raise FileProblem(f"cannot create {dest.parent}: {why(exc)}") from None
        return Target(folder, parts[-1])

    def still_in_place(
        self, remote: RemoteFile, dest: Path, target: Target, settled: FileState
    ) -> bool:
        """An earlier attempt of this Download put the file in place as `settled`: True
        if it is unchanged since (a skipped file was never verified: it differs from the
        farm's by choice, and stays so while it is there)."""
        st = target.folder.lstat(target.name)
        if st is None or not S_ISREG(st.st_mode):
            return False  # gone (or replaced by a link, a folder): placed again
        if settled is not FileState.SKIPPED and not self._verified.trusted(dest, remote, st):
            return False
        self._renamed_into.add(_parts(remote)[:-1])  # renamed before, maybe never synced
        return True

    def existing(
        self,
        remote: RemoteFile,
        dest: Path,
        target: Target,
        *,
        hashing: Callable[[], None],
        on_bytes: Callback,
        check_stop: Callable[[], None],
    ) -> FileState | None:
        """CACHED or SKIPPED if the file on disk settles it; None if it must be fetched.
        A link at the file's name is never followed: it differs, by definition.
        `hashing` is called before the file is read to be hashed."""
        folder, name = target.folder, target.name
        st = folder.lstat(name)
        if self._force or st is None:
            return None
        if S_ISDIR(st.st_mode):
            raise FileProblem("a folder stands where the file goes", retryable=False)
        if not S_ISREG(st.st_mode):
            # A link (or a FIFO...) is never read or written through: the rename replaces it.
            log.warning("%s is not a regular file; it is replaced", dest)
            return None
        verified = self._verified
        if verified.trusted(dest, remote, st):
            return FileState.CACHED
        if verified.journal_md5(dest, st) == remote.md5:
            verified.remember(dest, remote, st)  # trusted for the rest of this run
            return FileState.CACHED
        if st.st_size == remote.size:
            hashing()
            try:
                fd = folder.open(name, os.O_RDONLY)
                try:
                    digest = hash_fd(fd, on_bytes=on_bytes, check_stop=check_stop)
                    st = os.fstat(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                log.warning("cannot hash %s (%s); it counts as differing", dest, why(exc))
                digest = None
            if digest == remote.md5:
                verified.remember(dest, remote, st)
                return FileState.CACHED
        if self._on_conflict == "skip":
            log.warning("%s differs from the farm's file; kept (--on-conflict skip)", dest)
            return FileState.SKIPPED
        if self._on_conflict == "backup":
            backup = _backup_name(folder, name)
            try:
                folder.rename(name, backup)
            except OSError as exc:
                raise AttemptProblem(f"cannot back up {dest}: {why(exc)}") from None
            log.warning("%s differed from the farm's file; moved it to %s", dest, backup)
        return None

    def fetch(
        self,
        remote: RemoteFile,
        dest: Path,
        target: Target,
        *,
        on_bytes: Callback,
        on_resumed: Callback,
        check_stop: Callable[[], None],
        stall: tuple[float, float] | None,
    ) -> int:
        """Fetch the file through a verified temp file (one try); the offset it resumed
        from. Raises what Transfer.fetch raises."""
        progress = Progress(
            on_bytes=on_bytes, on_resumed=on_resumed, check_stop=check_stop, stall=stall
        )
        resumed = self._transfer.fetch(
            remote, target, permissions=self._permissions, progress=progress
        )
        self._renamed_into.add(_parts(remote)[:-1])
        self._verified.remember(dest, remote, target.folder.lstat(target.name))
        return resumed

    @staticmethod
    def partial(remote: RemoteFile, target: Target) -> int:
        """Bytes of the file's temp file on disk (0 if none)."""
        return partial_bytes(target, remote)

    def sync(self) -> None:
        """Make the renames durable: once per folder, not once per file."""
        for parts in self._renamed_into:
            folder = self._tree.existing(parts)
            if folder is not None:
                folder.sync()
        self._renamed_into.clear()

    def remove_partials(self, remotes: list[RemoteFile]) -> None:
        """The Download is given up: its temp files go, each under its lock (one another
        process is writing is left to it), links at their names removed, never followed.
        Folders that do not exist hold none of ours, and none are created for this."""
        for remote in remotes:
            parts = _parts(remote)
            with contextlib.suppress(CdlError, OSError):
                folder = self._tree.existing(parts[:-1])
                if folder is not None:
                    target = Target(folder, parts[-1])
                    with destination_lock(target, remote):
                        remove_partial(target, remote)

    def close(self) -> None:
        self._tree.close()


def _parts(remote: RemoteFile) -> tuple[str, ...]:
    return path_parts(remote.relative_path)


def _backup_name(folder: Folder, name: str) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate = f"{name}.cdl-backup-{stamp}"
    serial = 1
    while folder.lstat(candidate) is not None:
        candidate = f"{name}.cdl-backup-{stamp}-{serial}"
        serial += 1
    return candidate


def why(exc: OSError) -> str:
    """An OS error in a few words (its strerror, without the path)."""
    with contextlib.suppress(AttributeError):
        if exc.strerror:
            return exc.strerror
    return str(exc) or type(exc).__name__
