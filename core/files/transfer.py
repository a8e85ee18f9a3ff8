"""Move one file from a signed URL to its final path, verified, atomically, resumably.

The bytes stream into a hidden temp file beside the destination while being hashed; the
temp file is fsynced, its size and md5 are checked against the farm's, and only then is it
renamed over the destination. A final path therefore never holds unverified bytes.

A cut transfer (network drop, Ctrl-C, kill -9, power loss) leaves its temp file: the next
try hashes the bytes already there and asks for the rest with an HTTP Range request (and
If-Range with the validator the server gave, kept in a small `.etag` sidecar). A server
that ignores the Range (answers 200) or whose validator changed gets a clean restart. A
wrong md5 at the end deletes the temp file. Names record which file they belong to:

    .<name>.cdl-<md5 prefix>.part        the bytes so far
    .<name>.cdl-<md5 prefix>.part.etag   the validator they came with
    .<name>.cdl-<md5 prefix>.lock        held while a process writes this file
"""

from __future__ import annotations

import base64
import contextlib
import errno
import fcntl
import functools
import hashlib
import os
import re
import stat
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cdl_tui.core.model.errors import (
    DestinationBusy,
    StopRequested,
    TransferError,
)
from cdl_tui.core.model.faults import maybe_fail
from cdl_tui.core.model.models import RemoteFile
from cdl_tui.core.model.paths import MAX_NAME_BYTES
from cdl_tui.core.model.secrets import scrub
from cdl_tui.core.model.settings import Permissions

from .folders import O_SAFE, Folder, apply_mode, open_folder

HASH_BLOCK = 4 << 20
NO_MODES = Permissions()  # modes left to the umask
# A shutdown keeps a partial file this big or bigger for the next run to resume; smaller
# ones are cheaper to fetch again than to leave lying around.
RESUME_MIN = 1 << 20
MIN_STEP = 64 << 10  # the first read of a big body
SLOW_STEP = 4 << 10  # the smallest read, on a slow link
SMALL_BODY = 256 << 10  # read in one go (each read costs a syscall and a GIL hand-off)
TEMP_MARK = ".cdl-"
TEMP_SUFFIX = ".part"
ETAG_SUFFIX = ".part.etag"
LOCK_SUFFIX = ".lock"
_TEMP_RE = re.compile(
    r"^(?:\..*\.cdl-[0-9a-f]{12}|\.cdl-[0-9a-f]{20}-[0-9a-f]{12})(?:\.part|\.part\.etag|\.lock)$"
)


def md5_hex(remote: RemoteFile) -> str:
    return _hex_of(remote.md5)


@functools.lru_cache(maxsize=4096)
def _hex_of(md5_b64: str) -> str:
    """The farm's base64 md5 as hex (asked for several times per file: cached)."""
    return base64.b64decode(md5_b64).hex()


def our_name(name: str, remote: RemoteFile, suffix: str) -> str:
    """The name of our temp, sidecar or lock file for the file `name` of `remote`."""
    tag = md5_hex(remote)[:12]
    ours = f".{name}{TEMP_MARK}{tag}{suffix}"
    if len(ours.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        digest = hashlib.sha1(name.encode("utf-8", "surrogatepass"), usedforsecurity=False)
        ours = f"{TEMP_MARK}{digest.hexdigest()[:20]}-{tag}{suffix}"
    return ours


def temp_path_for(dest: Path, remote: RemoteFile) -> Path:
    """The hidden temp file beside `dest` that belongs to `remote` (name and md5)."""
    return dest.with_name(our_name(dest.name, remote, TEMP_SUFFIX))


def etag_path_for(dest: Path, remote: RemoteFile) -> Path:
    return dest.with_name(our_name(dest.name, remote, ETAG_SUFFIX))


def lock_path_for(dest: Path, remote: RemoteFile) -> Path:
    return dest.with_name(our_name(dest.name, remote, LOCK_SUFFIX))


def is_temp_name(name: str) -> bool:
    """True for the names of our temp, sidecar and lock files."""
    return bool(_TEMP_RE.match(name))


@dataclass(frozen=True)
class Target:
    """Where a file lands: its name in a folder opened without following links."""

    folder: Folder
    name: str

    @property
    def path(self) -> Path:
        return self.folder.path / self.name

    def ours(self, remote: RemoteFile, suffix: str) -> str:
        return our_name(self.name, remote, suffix)


@contextlib.contextmanager
def target_at(dest: Path) -> Iterator[Target]:
    """A Target for `dest` whose folder exists (its real path opened without following
    links); for single files and tests. A Download opens its folders with FolderTree."""
    folder = open_folder(Path(os.path.realpath(dest.parent)), create=False)
    try:
        yield Target(folder, dest.name)
    finally:
        folder.close()


def remove_partial(target: Target, remote: RemoteFile) -> None:
    """Remove the temp file and its sidecar (links at those names go, not their targets)."""
    for suffix in (TEMP_SUFFIX, ETAG_SUFFIX):
        with contextlib.suppress(OSError):
            target.folder.remove(target.ours(remote, suffix))


def partial_bytes(target: Target, remote: RemoteFile) -> int:
    """Bytes in the target's temp file now (nothing if something else holds its name)."""
    info = target.folder.lstat(target.ours(remote, TEMP_SUFFIX))
    return info.st_size if info is not None and stat.S_ISREG(info.st_mode) else 0


def partial_size(dest: Path, remote: RemoteFile) -> int:
    """Bytes in the temp file beside `dest` (an estimate for the disk guard: a link there
    counts as nothing)."""
    try:
        info = temp_path_for(dest, remote).lstat()
    except OSError:
        return 0
    return info.st_size if stat.S_ISREG(info.st_mode) else 0


def hash_file(
    path: Path,
    on_bytes: Callable[[int], None] | None = None,
    check_stop: Callable[[], None] | None = None,
) -> str:
    """Base64 md5 of a file on disk, reading in large blocks (hashlib drops the GIL).
    A link at `path` is not followed (OSError)."""
    fd = os.open(path, os.O_RDONLY | O_SAFE)
    try:
        return hash_fd(fd, on_bytes, check_stop)
    finally:
        os.close(fd)


def hash_fd(
    fd: int,
    on_bytes: Callable[[int], None] | None = None,
    check_stop: Callable[[], None] | None = None,
) -> str:
    """Base64 md5 of what the open file `fd` holds, from its start."""
    digest = _hash_into(hashlib.md5(usedforsecurity=False), fd, None, on_bytes, check_stop)
    return base64.b64encode(digest.digest()).decode("ascii")


def _hash_into(
    digest: hashlib._Hash,
    fd: int,
    limit: int | None,
    on_bytes: Callable[[int], None] | None,
    check_stop: Callable[[], None] | None,
) -> hashlib._Hash:
    buffer = bytearray(HASH_BLOCK)
    view = memoryview(buffer)
    left, position = limit, 0
    while left is None or left > 0:
        if check_stop is not None:
            check_stop()
        maybe_fail("hash", OSError)
        wanted = view if left is None or left >= HASH_BLOCK else view[:left]
        count = _pread_into(fd, wanted, position)
        if not count:
            break
        digest.update(view[:count])
        position += count
        if left is not None:
            left -= count
        if on_bytes is not None:
            on_bytes(count)
    return digest


def _pread_into(fd: int, view: memoryview, position: int) -> int:
    """Read at `position` into `view` (preadv where the platform has it)."""
    if hasattr(os, "preadv"):
        return os.preadv(fd, [view], position)
    os.lseek(fd, position, os.SEEK_SET)
    return os.readv(fd, [view])


def make_dirs(directory: Path, permissions: Permissions, *, inject_faults: bool = True) -> None:
    """Create `directory` and its missing parents (an output root the user chose; a
    Download's own folders are made through core.folders)."""
    missing = []
    current = directory
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for path in reversed(missing):
        if inject_faults:
            maybe_fail("mkdir", OSError)
        try:
            path.mkdir(mode=0o777 if permissions.dir_mode is None else permissions.dir_mode)
        except FileExistsError:
            continue
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | O_SAFE)
        try:
            apply_mode(fd, permissions.dir_mode, permissions.group)
        finally:
            os.close(fd)


@contextlib.contextmanager
def destination_lock(target: Target, remote: RemoteFile) -> Iterator[int]:
    """Hold this file's lock while writing it; raise DestinationBusy if another has it.
    Yields the owner the filesystem gives the lock file (our files there are owned so,
    which on a squashing NFS share may not be our own uid).

    flock() locks belong to an open file, so two threads of one process exclude each
    other too (POSIX record locks would not); Linux maps them onto NFS locks on NFS. The
    lock file is removed by its holder after use; a lock taken on a file that was removed
    meanwhile is given up and taken again on the new one. Anything but a regular file at
    the lock's name (a link, a folder, a FIFO) is not ours and is never removed by name
    here (another process may be replacing it at that moment): the file is refused.
    """
    folder, name = target.folder, target.ours(remote, LOCK_SUFFIX)
    for _ in range(3):
        try:
            fd = folder.open(name, os.O_RDWR | os.O_CREAT, 0o666)  # Folder.open: O_NOFOLLOW
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.EMLINK, errno.EISDIR, errno.ENXIO):
                raise _not_ours(target, name) from None
            raise write_error(exc, target.path) from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise _not_ours(target, name)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # The holder before us may have removed the file we opened: then our lock
            # guards nothing and we take a new one. Compared by inode, not by link count:
            # NFS keeps a removed file open under a ".nfsXXXX" name, still linked.
            now = folder.lstat(name)
            same = now is not None and info.st_ino == now.st_ino
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EACCES, errno.EAGAIN, errno.EWOULDBLOCK):
                raise DestinationBusy(f"another process is writing {target.path}") from None
            if exc.errno in (errno.ENOENT, errno.ESTALE):
                continue  # removed under us: take a new one
            raise TransferError(f"cannot lock {target.path}: {exc.strerror or exc}") from None
        except TransferError:
            os.close(fd)
            raise
        if not same:
            os.close(fd)
            continue
        try:
            yield info.st_uid
        finally:
            with contextlib.suppress(OSError):
                folder.remove(name)
            os.close(fd)
        return
    raise DestinationBusy(f"could not lock {target.path}")


def _not_ours(target: Target, name: str) -> TransferError:
    info = target.folder.lstat(name)
    kind = "entry"
    if info is not None:
        kind = (
            "symbolic link"
            if stat.S_ISLNK(info.st_mode)
            else "folder"
            if stat.S_ISDIR(info.st_mode)
            else "special file"
        )
    return TransferError(
        f"a {kind} that is not ours stands at {target.folder.path / name}; "
        "remove it to download this file",
        unsafe=True,
    )


@dataclass
class Progress:
    """Callbacks for a transfer: bytes received, bytes found on disk, between chunks."""

    on_bytes: Callable[[int], None] | None = None
    on_resumed: Callable[[int], None] | None = None
    check_stop: Callable[[], None] | None = None
    throttle: Callable[[int], None] | None = None  # blocks to keep a bandwidth limit
    largest_read: Callable[[], int | None] | None = None  # the limit's burst size
    # (seconds, bytes/s): a body that averages less than this over this long of reading
    # (waits for our own throttle or a pause not counted) is cut as stalled, like curl's
    # --speed-time/--speed-limit. None: only the connection's read timeout applies.
    stall: tuple[float, float] | None = None


def place_file(target: Target, remote: RemoteFile, make: Callable[[], FileTry]) -> int:
    """Run the try `make` builds under the file's lock; rename its verified temp file over
    the target, or clean up as the error says. The offset it resumed from."""
    with destination_lock(target, remote) as owner:
        transfer = make()
        transfer.owners = {os.geteuid(), owner}
        try:
            transfer.run()
            maybe_fail("rename", TransferError)
            try:
                target.folder.rename(transfer.temp, target.name)
            except OSError as exc:
                raise write_error(exc, target.path) from None
            if transfer.etag_written:
                with contextlib.suppress(OSError):
                    target.folder.remove(transfer.etag_name)
            return transfer.resumed_from
        except StopRequested as stop:
            if not stop.keep_partial or transfer.kept < RESUME_MIN:
                remove_partial(target, remote)
            raise
        except TransferError as exc:
            if not exc.keeps_partial or not transfer.kept:  # an empty one is not worth it
                remove_partial(target, remote)
            raise
        except BaseException:
            remove_partial(target, remote)
            raise
        finally:
            transfer.close()


class Transfer(Protocol):
    """The boundary between a Download's run and the bytes on the wire.

    `fetch` moves one file into a verified temp file beside `target` and renames it in
    place, as `fetch_file` says; it blocks the calling worker until the file is done,
    failed or stopped, calling `progress` on the way (from any thread). A multiplexing
    engine can serve every worker's calls from one loop behind this same method.
    """

    def fetch(
        self, remote: RemoteFile, target: Target, *, permissions: Permissions, progress: Progress
    ) -> int: ...

    def close(self) -> None:
        """Let go of what the engine holds (threads, connections)."""


class FileTry(ABC):
    """One try at one file: resume what is on disk, fetch the rest, check it all. The
    engines (stream.py, curl.py) differ in how the rest is fetched: `run`."""

    def __init__(
        self,
        remote: RemoteFile,
        target: Target,
        progress: Progress,
        permissions: Permissions,
    ) -> None:
        self.permissions = permissions
        self.remote = remote
        self.target = target
        self.progress = progress
        self.temp = target.ours(remote, TEMP_SUFFIX)
        self.etag_name = target.ours(remote, ETAG_SUFFIX)
        self.fd = -1  # the temp file, once opened or made
        self.owners = {os.geteuid()}  # who our files in this folder belong to
        self.digest = hashlib.md5(usedforsecurity=False)
        self.offset = 0  # bytes already in the temp file (and in the digest)
        self.resumed_from = 0
        self.received = 0
        self.etag_written = False

    @property
    def kept(self) -> int:
        """Bytes in the temp file now."""
        return self.offset + self.received

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    @abstractmethod
    def run(self) -> None:
        """Fetch the rest of the file into the temp file and check it (each engine's)."""

    def verify(self) -> None:
        """Check the temp file's bytes against the farm's size and md5."""
        total = self.offset + self.received
        if total != self.remote.size:
            raise TransferError(f"short body: got {total} of {self.remote.size} bytes")
        if self.digest.digest() != self.remote.md5_digest:
            raise TransferError(
                "md5 mismatch: the bytes received are not the farm's file", bad_data=True
            )

    def resume_point(self) -> None:
        """Hash the bytes a cut try left in our temp file: only a regular file of ours
        with one link is resumed; anything else at its name is replaced, not followed."""
        folder = self.target.folder
        try:
            found = folder.owned_regular(self.temp, os.O_RDWR, self.owners)
            self.fd = -1 if found is None else found
            size = os.fstat(self.fd).st_size if self.fd >= 0 else 0
            if 0 < size <= self.remote.size:
                _hash_into(
                    self.digest, self.fd, size, self.progress.on_resumed, self.progress.check_stop
                )
                self.offset = self.resumed_from = size
                return
            if self.fd >= 0:  # empty, or longer than the file: not worth resuming
                self.close()
                remove_partial(self.target, self.remote)
        except OSError as exc:
            raise write_error(exc, self.target.path) from None

    def write_etag(self, etag: str) -> None:
        with contextlib.suppress(OSError):
            fd = self.target.folder.create(self.etag_name, 0o666)
            try:
                os.write(fd, etag.encode("ascii", "replace")[:1024])
            finally:
                os.close(fd)
            self.etag_written = True

    def _read_etag(self) -> str:
        fd = self.target.folder.owned_regular(self.etag_name, os.O_RDONLY, self.owners)
        if fd is None:
            return ""
        try:
            return os.read(fd, 1024).decode("ascii", "replace").strip()
        finally:
            os.close(fd)

    def headers(self) -> dict[str, str]:
        headers = {"Accept": "*/*", "Accept-Encoding": "identity"}
        if self.offset and self.offset == self.remote.size:
            headers["Range"] = "bytes=0-0"  # every byte is here: only check the URL works
        elif self.offset:
            headers["Range"] = f"bytes={self.offset}-"
            with contextlib.suppress(OSError):
                if etag := self._read_etag():
                    headers["If-Range"] = etag
        return headers

    def judge(self, status: int, content_range: str | None) -> bool:
        """The answer's status (not a refusal): True to write its body, False if every
        byte is on disk already; a 200 to a Range restarts from byte 0."""
        if self.offset and self.offset == self.remote.size and status in (200, 206, 416):
            return False
        if self.offset and status == 206 and _range_start(content_range) == self.offset:
            return True
        if status == 200:
            if self.offset:  # the server ignored the Range, or the validator changed
                if self.progress.on_resumed is not None:
                    self.progress.on_resumed(-self.offset)
                self.digest = hashlib.md5(usedforsecurity=False)
                self.offset = self.resumed_from = 0
            return True
        raise TransferError(
            f"the file server answered HTTP {status}",
            retryable=status == 429 or status >= 500 or status in (404, 416),
        )


REFUSALS = (400, 403, 410)  # how storage refuses a URL (see refusal_error)
ERROR_BODY_LIMIT = 4096  # bytes of an error answer read for its reason
ERROR_BODY_SECONDS = 2.0  # and for at most this long
_XML_CODE = re.compile(r"<Code>\s*([^<]{1,80}?)\s*</Code>")
_XML_MESSAGE = re.compile(r"<Message>\s*([^<]{1,300}?)\s*</Message>")


def certificate_error(problem: str) -> TransferError:
    """The file host's TLS certificate could not be verified (either engine)."""
    return TransferError(
        f"cannot verify the file host's TLS certificate ({problem}); "
        "give its CA with --ca-bundle (or --insecure, not advised)",
        unsafe=True,
    )


def connection_error(received: int, text: str, *, timed_out: bool = False) -> TransferError:
    """A cut or silent connection, in the same words whichever engine saw it."""
    if timed_out:
        return TransferError(f"timed out after {received} bytes ({text})")
    return TransferError(f"connection failed after {received} bytes: {text}")


def too_long(size: int) -> TransferError:
    """The body went past the file's size: not the farm's file (either engine)."""
    return TransferError(f"the server sent more than the expected {size} bytes", bad_data=True)


def refusal_reason(raw: bytes) -> tuple[str, str]:
    """(code, ": reason") from the first bytes of an error answer (see storage_refusal)."""
    text = raw[:ERROR_BODY_LIMIT].decode("utf-8", "replace")
    code_match, message_match = _XML_CODE.search(text), _XML_MESSAGE.search(text)
    code = code_match[1] if code_match else ""
    reason = f"{code}: {message_match[1]}" if code and message_match else code or text
    reason = "".join(c if c.isprintable() else " " for c in scrub(reason))
    reason = " ".join(reason.split())[:160]
    return code, f": {reason}" if reason else ""


def refusal_error(status: int, code: str, reason: str) -> TransferError:
    """Storage says "expired" its own way: Google Cloud Storage 400 ExpiredToken, Amazon
    S3 403 AccessDenied, others 410. Each asks for a fresh URL; another 400 is final."""
    if status != 400 or code == "ExpiredToken":
        return TransferError(
            f"the file URL was refused (HTTP {status}{reason}); its signature may have expired",
            expired=True,
        )
    return TransferError(f"the file server answered HTTP 400{reason}", retryable=False)


def write_error(exc: OSError, temp: Path) -> TransferError:
    if exc.errno == errno.ENOSPC:
        return TransferError(f"no space left on the device of {temp.parent}", no_space=True)
    if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK):  # e.g. a Samba lease: wait a little
        return TransferError(f"{temp} is busy: {exc.strerror}")
    return TransferError(f"cannot write {temp}: {exc.strerror}", retryable=False)


def _range_start(content_range: str | None) -> int | None:
    match = re.match(r"bytes (\d+)-\d+/\d+", content_range or "")
    return int(match[1]) if match else None
