"""Folders reached without following links, and files opened relative to them.

Render outputs land on shared storage that other people and services can write. A name we
are about to create there (a temp file, a lock, a sidecar, a folder, the final file) may
already be a symbolic link planted by someone else, pointing anywhere; a folder on the
way may be swapped for a link between a check and a write. So nothing here opens a path
by its name from `/`: a `Folder` is an open directory descriptor reached one component at
a time with `O_NOFOLLOW`, and every file of ours is opened, created, renamed and removed
relative to it (`openat`, `mkdirat`, `renameat`, `unlinkat`), never following a link:

- a link where a folder should be fails (ELOOP/ENOTDIR): `LinkRefused`;
- files are created with `O_CREAT | O_EXCL | O_NOFOLLOW`, after removing whatever held the
  name (unlinking a link removes the link, not its target);
- an existing file is reused (a partial download to resume, a lock, a sidecar) only if it
  is a regular file, owned by us, with one link (`owned_regular`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import threading
from collections import OrderedDict
from pathlib import Path, PurePosixPath

from cdl_tui.core.model.errors import LinkRefused
from cdl_tui.core.model.faults import maybe_fail

O_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a FIFO planted at one of our names must not hang the open.
O_SAFE = O_NOFOLLOW | os.O_NONBLOCK
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | O_NOFOLLOW
# To walk through a folder (as a dir_fd) without reading it.
PATH_FLAGS = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY | O_NOFOLLOW


class Folder:
    """An open folder; `path` is only for messages (the descriptor is what is used)."""

    def __init__(self, fd: int, path: Path) -> None:
        self.fd = fd
        self.path = path

    def __repr__(self) -> str:
        return f"Folder({self.path})"

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    # -- inside this folder -------------------------------------------------------------

    def lstat(self, name: str) -> os.stat_result | None:
        """The entry itself (a link is not followed); None if there is none."""
        try:
            return os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def open(self, name: str, flags: int, mode: int = 0o666) -> int:
        """os.open relative to this folder; a link at `name` fails (ELOOP)."""
        return os.open(name, flags | O_SAFE, mode, dir_fd=self.fd)

    def create(self, name: str, mode: int = 0o666, flags: int = os.O_WRONLY) -> int:
        """A new, empty file at `name` (whatever held the name is removed first)."""
        flags |= os.O_CREAT | os.O_EXCL  # + O_NOFOLLOW (open): a link is not followed
        try:
            return self.open(name, flags, mode)
        except FileExistsError:
            self.remove(name)
            return self.open(name, flags, mode)

    def owned_regular(
        self, name: str, flags: int = os.O_RDONLY, owners: set[int] | None = None
    ) -> int | None:
        """Open an existing file of ours: a regular file, owned by us (or by one of
        `owners`: what a share maps us to), with no other hard link. None if there is
        none, or if what is there is anything else (not ours to use; `create` replaces
        it)."""
        try:
            fd = self.open(name, flags)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ELOOP, errno.EMLINK, errno.EISDIR, errno.ENXIO):
                return None
            raise
        info = os.fstat(fd)
        ours = info.st_uid in (owners or {os.geteuid()})
        if stat.S_ISREG(info.st_mode) and ours and info.st_nlink == 1:
            return fd  # O_NONBLOCK does not change reads and writes of a regular file
        os.close(fd)
        return None

    def remove(self, name: str) -> None:
        """Remove the entry `name` if there is one (a link itself, never its target)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=self.fd)

    def rename(self, old: str, new: str) -> None:
        """Rename within this folder; a link at `new` is replaced, not followed."""
        os.rename(old, new, src_dir_fd=self.fd, dst_dir_fd=self.fd)

    def sync(self) -> None:
        """Make renames into this folder durable."""
        with contextlib.suppress(OSError):
            os.fsync(self.fd)

    def child(self, name: str, dir_mode: int | None = None, group: int | None = None) -> Folder:
        """The folder `name` in this one, created if missing (with `dir_mode` if set, else
        as the umask says). A link or a file in its place raises LinkRefused."""
        try:
            maybe_fail("mkdir", OSError)
            os.mkdir(name, 0o777 if dir_mode is None else dir_mode, dir_fd=self.fd)
        except FileExistsError:
            return self.existing(name)
        folder = self.existing(name)
        apply_mode(folder.fd, dir_mode, group)
        return folder

    def existing(self, name: str, *, path_only: bool = False) -> Folder:
        """The folder `name` in this one; LinkRefused if a link or a file is there.
        `path_only`: a handle to walk through (needs no read permission on it)."""
        try:
            fd = os.open(name, PATH_FLAGS if path_only else DIR_FLAGS, dir_fd=self.fd)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
                raise
            info = self.lstat(name)
            link = info is not None and stat.S_ISLNK(info.st_mode)
            what = "a symbolic link" if link else "a file"
            raise LinkRefused(
                exc.errno, f"{self.path / name} is {what}, not a folder of ours"
            ) from None
        return Folder(fd, self.path / name)


def apply_mode(fd: int, mode: int | None, group: int | None) -> None:
    """Set a configured mode and group on what `fd` holds (none configured: the umask's)."""
    if mode is not None:
        with contextlib.suppress(OSError):
            os.fchmod(fd, mode)
    if group is not None:
        with contextlib.suppress(OSError):
            os.fchown(fd, -1, group)


def open_folder(
    path: Path, dir_mode: int | None = None, group: int | None = None, *, create: bool = True
) -> Folder:
    """Open the absolute folder `path` one component at a time from `/`, following no
    link on the way (give it a real path: resolve the links the user chose first), and
    creating missing folders if `create`. The folders above it are only walked through
    (O_PATH where there is one: no read permission needed on them, as for a path).
    Raises LinkRefused, FileNotFoundError (not `create`) or OSError."""
    if not path.is_absolute():
        raise ValueError(f"{path} is not absolute")
    parts = PurePosixPath(path).parts[1:]
    folder = Folder(os.open("/", PATH_FLAGS if parts else DIR_FLAGS), Path("/"))
    try:
        for depth, part in enumerate(parts, 1):
            last = depth == len(parts)
            if create:
                try:
                    os.mkdir(part, 0o777 if dir_mode is None else dir_mode, dir_fd=folder.fd)
                except FileExistsError:
                    pass
                else:
                    made = folder.existing(part)
                    apply_mode(made.fd, dir_mode, group)
                    made.close()
            inner = folder.existing(part, path_only=not last)
            folder.close()
            folder = inner
    except BaseException:
        folder.close()
        raise
    return folder


class OpenRoots:
    """The roots Downloads hang from, kept open from one Download to the next.

    Walking a root from `/` costs three calls per component (a job folder six levels deep:
    eighteen, for each Download of a job of small tasks). A root opened before is handed
    out again (a duplicate descriptor, the caller's to close) only while the kernel's path
    of that descriptor (`/proc/self/fd/N`) is the root's path itself: the folder is still
    there, under no other name, reached through no link (a link anywhere on the way, or a
    folder moved elsewhere and linked back, makes the two differ). Otherwise, and where
    there is no /proc, the root is walked afresh by `open_folder`, refusing links as ever.

    Owned data: the open roots, under its own lock; `close` at the engine's end.
    """

    MAX_OPEN = 8

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: OrderedDict[Path, Folder] = OrderedDict()
        self._closed = False

    def open(
        self, path: Path, dir_mode: int | None, group: int | None, *, create: bool = True
    ) -> Folder:
        """`open_folder(path, ...)`, from the roots kept open when it can be."""
        with self._lock:
            kept = self._open.get(path)
            fd = -1 if kept is None else os.dup(kept.fd)
        if fd >= 0:
            if _still_at(fd, path):
                return Folder(fd, path)
            os.close(fd)
        folder = open_folder(path, dir_mode, group, create=create)
        if _still_at(folder.fd, path):  # else (no /proc, a bind mount...): never kept
            self._keep(path, folder)
        return folder

    def _keep(self, path: Path, folder: Folder) -> None:
        try:
            copy = Folder(os.dup(folder.fd), path)
        except OSError:  # out of descriptors: the caller's folder is what matters
            return
        with self._lock:
            if self._closed:
                dropped = [copy]
            else:
                old = self._open.pop(path, None)
                self._open[path] = copy
                dropped = [] if old is None else [old]
                while len(self._open) > self.MAX_OPEN:
                    dropped.append(self._open.popitem(last=False)[1])
        for each in dropped:
            each.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            dropped = list(self._open.values())
            self._open.clear()
        for folder in dropped:
            folder.close()


def _still_at(fd: int, path: Path) -> bool:
    """True if the folder open at `fd` is, by the kernel's own account, at `path` now."""
    try:
        return Path(f"/proc/self/fd/{fd}").readlink() == path
    except OSError:
        return False


class FolderTree:
    """The folders of one Download under its root, opened on demand without following
    links, at most MAX_OPEN at a time (least recently used closed first: a Download may
    have thousands of folders, and descriptors are few). The root comes from `roots`
    when given (kept open between Downloads)."""

    MAX_OPEN = 32

    def __init__(
        self,
        root: Path,
        dir_mode: int | None,
        group: int | None,
        roots: OpenRoots | None = None,
    ) -> None:
        self.root = root
        self._mode, self._group = dir_mode, group
        self._roots = roots
        self._open: OrderedDict[tuple[str, ...], Folder] = OrderedDict()

    def _open_root(self, *, create: bool) -> Folder:
        if self._roots is None:
            return open_folder(self.root, self._mode, self._group, create=create)
        return self._roots.open(self.root, self._mode, self._group, create=create)

    def folder(self, parts: tuple[str, ...]) -> Folder:
        """The folder at `parts` under the root, created and opened if need be. Valid
        until the next call (which may close it to make room)."""
        known = self._open.get(parts)
        if known is not None:
            self._open.move_to_end(parts)
            return known
        if parts:
            folder = self.folder(parts[:-1]).child(parts[-1], self._mode, self._group)
        else:
            folder = self._open_root(create=True)
        self._keep(parts, folder)
        return folder

    def existing(self, parts: tuple[str, ...]) -> Folder | None:
        """The folder at `parts` if it exists (nothing is created); None if it does not.
        Raises LinkRefused if a link or a file stands on the way."""
        known = self._open.get(parts)
        if known is not None:
            return known
        try:
            if parts:
                parent = self.existing(parts[:-1])
                if parent is None:
                    return None
                folder = parent.existing(parts[-1])
            else:
                folder = self._open_root(create=False)
        except FileNotFoundError:
            return None
        self._keep(parts, folder)
        return folder

    def _keep(self, parts: tuple[str, ...], folder: Folder) -> None:
        self._open[parts] = folder
        while len(self._open) > self.MAX_OPEN:
            _, oldest = self._open.popitem(last=False)
            oldest.close()

    def close(self) -> None:
        for folder in self._open.values():
            folder.close()
        self._open.clear()

    def __enter__(self) -> FolderTree:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
