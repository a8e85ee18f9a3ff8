"""Move one file from a signed URL to its final path, verified, atomically.

The bytes stream into a hidden temp file beside the destination while being hashed; the
temp file is fsynced, its size and md5 are checked against the farm's, and only then is it
renamed over the destination. A final path therefore never holds unverified bytes. On any
failure the temp file is removed.

The temp file's name records which file it belongs to (`.<name>.cdl-<md5>.part`), so a
later run can recognise its own leftovers.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from .errors import CdlError
from .faults import maybe_fail
from .models import RemoteFile
from .paths import MAX_NAME_BYTES

HASH_BLOCK = 4 << 20
TEMP_MARK = ".cdl-"
TEMP_SUFFIX = ".part"
_TEMP_RE = re.compile(r"^\..*\.cdl-[0-9a-f]{12}\.part$|^\.cdl-[0-9a-f]{20}-[0-9a-f]{12}\.part$")


class TransferError(CdlError):
    """A file could not be fetched and verified. `retryable` says if trying again may help."""

    def __init__(self, message: str, *, retryable: bool = True, expired: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.expired = expired  # the signed URL was refused: fresh URLs are needed


class StopRequested(CdlError):
    """The engine asked this transfer to stop (cancel, quit, shutdown)."""


def md5_hex(remote: RemoteFile) -> str:
    return remote.md5_digest.hex()


def temp_path_for(dest: Path, remote: RemoteFile) -> Path:
    """The hidden temp file beside `dest` that belongs to `remote` (name and md5)."""
    tag = md5_hex(remote)[:12]
    name = f".{dest.name}{TEMP_MARK}{tag}{TEMP_SUFFIX}"
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        digest = hashlib.sha1(dest.name.encode("utf-8", "surrogatepass"), usedforsecurity=False)
        name = f"{TEMP_MARK}{digest.hexdigest()[:20]}-{tag}{TEMP_SUFFIX}"
    return dest.with_name(name)


def is_temp_name(name: str) -> bool:
    return bool(_TEMP_RE.match(name))


def hash_file(
    path: Path,
    on_bytes: Callable[[int], None] | None = None,
    check_stop: Callable[[], None] | None = None,
) -> str:
    """Base64 md5 of a file on disk, reading in large blocks (hashlib drops the GIL)."""
    digest = hashlib.md5(usedforsecurity=False)
    buffer = bytearray(HASH_BLOCK)
    view = memoryview(buffer)
    with path.open("rb", buffering=0) as handle:
        while True:
            if check_stop is not None:
                check_stop()
            maybe_fail("hash", OSError)
            count = handle.readinto(buffer)
            if not count:
                break
            digest.update(view[:count])
            if on_bytes is not None:
                on_bytes(count)
    return base64.b64encode(digest.digest()).decode("ascii")


@dataclass(frozen=True)
class Permissions:
    file_mode: int = 0o664
    dir_mode: int = 0o775
    group: int | None = None  # gid to chown to, if set


def make_dirs(directory: Path, permissions: Permissions) -> None:
    """Create `directory` and its missing parents with the configured mode."""
    missing = []
    current = directory
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for path in reversed(missing):
        maybe_fail("mkdir", OSError)
        try:
            path.mkdir(mode=permissions.dir_mode)
        except FileExistsError:
            continue
        _apply_mode(path, permissions.dir_mode, permissions.group)


def _apply_mode(path: Path, mode: int, group: int | None) -> None:
    # mkdir and open honour the umask; chmod sets exactly what was configured.
    with contextlib.suppress(OSError):
        path.chmod(mode)
    if group is not None:
        with contextlib.suppress(OSError):
            os.chown(path, -1, group)


def fetch_file(
    http: httpx.Client,
    remote: RemoteFile,
    dest: Path,
    *,
    permissions: Permissions = Permissions(),
    on_bytes: Callable[[int], None] | None = None,
    check_stop: Callable[[], None] | None = None,
) -> None:
    """Download `remote` to `dest`, verified. Raises TransferError or StopRequested."""
    make_dirs(dest.parent, permissions)
    temp = temp_path_for(dest, remote)
    try:
        _stream_to(http, remote, temp, on_bytes, check_stop)
        _apply_mode(temp, permissions.file_mode, permissions.group)
        maybe_fail("rename", TransferError)
        temp.replace(dest)
        _fsync_dir(dest.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise


def _stream_to(
    http: httpx.Client,
    remote: RemoteFile,
    temp: Path,
    on_bytes: Callable[[int], None] | None,
    check_stop: Callable[[], None] | None,
) -> None:
    digest = hashlib.md5(usedforsecurity=False)
    received = 0
    headers = {"Accept": "*/*", "Accept-Encoding": "identity"}
    try:
        with http.stream("GET", remote.url, headers=headers) as response:
            status = response.status_code
            if status in (403, 410):
                raise TransferError(
                    f"the file URL was refused (HTTP {status}); its signature may have expired",
                    expired=True,
                )
            if status != 200:
                raise TransferError(
                    f"the file server answered HTTP {status}",
                    retryable=status == 429 or status >= 500 or status == 404,
                )
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb", buffering=0) as out:
                for chunk in response.iter_raw():
                    if check_stop is not None:
                        check_stop()
                    maybe_fail("chunk", TransferError)
                    digest.update(chunk)
                    out.write(chunk)
                    received += len(chunk)
                    if on_bytes is not None:
                        on_bytes(len(chunk))
                    if received > remote.size:
                        raise TransferError(
                            f"the server sent more than the expected {remote.size} bytes"
                        )
                os.fsync(out.fileno())
    except httpx.TimeoutException as exc:
        raise TransferError(f"timed out after {received} bytes ({type(exc).__name__})") from None
    except httpx.TransportError as exc:
        text = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise TransferError(f"connection failed after {received} bytes: {text}") from None
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise TransferError(f"no space left on the device of {temp.parent}") from None
        raise TransferError(f"cannot write {temp}: {exc.strerror}", retryable=False) from None
    if received != remote.size:
        raise TransferError(f"short body: got {received} of {remote.size} bytes")
    if digest.digest() != remote.md5_digest:
        raise TransferError("md5 mismatch: the bytes received are not the farm's file")


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable (a crash right after must not lose it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
