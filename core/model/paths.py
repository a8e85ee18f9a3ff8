"""Lexical checks for paths that come from the farm.

Every `relative_path` is untrusted. This module refuses the ones that could escape the
output directory or confuse the filesystem, before anything touches the disk. (Checks that
need the disk, such as symlinks that lead outside the root, live with the code that
resolves destinations.)
"""

from __future__ import annotations

import re

from .errors import CdlError

MAX_NAME_BYTES = 255  # NAME_MAX on Linux and macOS
MAX_PATH_BYTES = 4096  # PATH_MAX on Linux

_DRIVE_RE = re.compile(r"^[A-Za-z]:")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


class UnsafePath(CdlError):
    """A path from the farm that must never be written."""


def path_parts(relative_path: str) -> tuple[str, ...]:
    """The names of a relative path, as PurePosixPath(...).parts gives them, for a
    fraction of its cost (asked per file)."""
    return tuple(part for part in relative_path.split("/") if part not in ("", "."))


def normalize_relative_path(raw: str) -> str:
    """Return `raw` as a clean POSIX relative path, or raise UnsafePath with the reason.

    Refused: empty, absolute, a drive letter, a backslash, a NUL or other control byte, a
    `..` component, a hidden name (`.ssh`), an over-long name or path. Harmless `.` and
    empty components (`a/./b`, `a//b`) are dropped so that two spellings of one file
    compare equal.
    """
    if not raw:
        raise UnsafePath("the path is empty")
    if "\x00" in raw:
        raise UnsafePath(f"the path {_shown(raw)} contains a NUL byte")
    if _CONTROL_RE.search(raw):
        raise UnsafePath(f"the path {_shown(raw)} contains control characters")
    if "\\" in raw:
        raise UnsafePath(f"the path {_shown(raw)} contains a backslash")
    if raw.startswith("/"):
        raise UnsafePath(f"the path {_shown(raw)} is absolute")
    if _DRIVE_RE.match(raw):
        raise UnsafePath(f"the path {_shown(raw)} names a drive")
    parts = [part for part in raw.split("/") if part not in ("", ".")]
    if not parts:
        raise UnsafePath(f"the path {_shown(raw)} names no file")
    if ".." in parts:
        raise UnsafePath(f"the path {_shown(raw)} climbs out of its folder with '..'")
    if any(part.startswith(".") for part in parts):
        # .ssh, .git, .config...: never a render output, and our own temp files are
        # hidden names: a farm must not be able to name them.
        raise UnsafePath(f"the path {_shown(raw)} goes through a hidden name")
    for part in parts:
        if len(part.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
            raise UnsafePath(f"a name in {_shown(raw)} is longer than {MAX_NAME_BYTES} bytes")
    clean = "/".join(parts)
    if len(clean.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise UnsafePath(f"the path {_shown(raw)} is longer than {MAX_PATH_BYTES} bytes")
    return clean


def _shown(raw: str, limit: int = 80) -> str:
    """A printable, bounded rendering of an untrusted path for one-line messages."""
    text = raw.encode("unicode_escape").decode("ascii")
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return repr(text)
