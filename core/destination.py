"""Where a Download's files land, and the checks that keep them inside their root.

With `--output DIR` a Download goes to `DIR/<job_id>/`; without it, to its own
`output_dir`. An `output_dir` that cannot exist here (a Windows path on Linux, a relative
path, a mount we cannot write) falls back to `<fallback>/<job_id>/` with a warning.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path, PurePath

from .diskguard import existing_ancestor
from .errors import ConfigError
from .models import Download, RemoteFile
from .paths import UnsafePath
from .transfer import Permissions, make_dirs

DEFAULT_FALLBACK = Path("~/cdl-downloads")
_WINDOWS_RE = re.compile(r"^(?:[A-Za-z]:|\\\\|//[^/])")


@dataclass(frozen=True)
class DestinationPolicy:
    output: Path | None = None
    fallback: Path = DEFAULT_FALLBACK
    path_map: tuple[tuple[str, str], ...] = ()  # (from, to) prefixes of output_dir

    def root_for(self, download: Download) -> tuple[Path, str | None]:
        """The folder the Download's relative paths hang from, and a warning if it fell back."""
        if self.output is not None:
            return self.output.expanduser() / download.job_id, None
        output_dir = map_output_dir(download.output_dir, self.path_map)
        reason = output_dir_problem(output_dir)
        if reason is None:
            return Path(output_dir), None
        fallback = self.fallback.expanduser() / download.job_id
        return fallback, f"output_dir {output_dir!r} {reason}; using {fallback}"


def map_output_dir(output_dir: str, rules: tuple[tuple[str, str], ...]) -> str:
    """Translate the submitting machine's folder to this machine's, by the first rule
    whose `from` is a prefix (whole path components; case-insensitive and with either
    slash for Windows paths, as Windows compares them)."""
    for source, target in rules:
        windows = bool(_WINDOWS_RE.match(source)) or "\\" in source
        path = output_dir.replace("\\", "/") if windows else output_dir
        prefix = (source.replace("\\", "/") if windows else source).rstrip("/")
        compare_path, compare_prefix = (path.lower(), prefix.lower()) if windows else (path, prefix)
        if compare_path == compare_prefix or compare_path.startswith(compare_prefix + "/"):
            return target.rstrip("/") + path[len(prefix) :]
    return output_dir


# Folders a render farm has no business writing into, whatever its output_dir says.
SYSTEM_ROOTS = tuple(
    Path(p)
    for p in (
        "/bin",
        "/boot",
        "/dev",
        "/etc",
        "/lib",
        "/lib32",
        "/lib64",
        "/proc",
        "/root",
        "/run",
        "/sbin",
        "/sys",
        "/usr",
        "/var",
    )
)


def output_dir_problem(output_dir: str) -> str | None:
    """Why `output_dir` cannot be used on this machine, or None if it can.

    The farm's output_dir is untrusted too: besides paths that cannot exist here, it may
    not be the filesystem root, a system folder, the user's home (or above it), or go
    through a hidden folder (a farm must not be able to write ~/.ssh/authorized_keys).
    """
    if not output_dir:
        return "is empty"
    if os.name == "posix" and (_WINDOWS_RE.match(output_dir) or "\\" in output_dir):
        return "is a Windows path"
    path = Path(output_dir)
    if not path.is_absolute():
        return "is not an absolute path"
    if any(part in (".", "..") or part.startswith(".") for part in path.parts[1:]):
        return "goes through a hidden or relative folder"
    normal = Path(os.path.normpath(path))
    if normal == Path(normal.anchor) or any(
        normal == root or root in normal.parents for root in SYSTEM_ROOTS
    ):
        return "is a system folder"
    home = Path.home()
    if normal == home or normal in home.parents:
        return "is the home folder or above it"
    existing = existing_ancestor(path)
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        return f"cannot be written here ({existing} is not a writable folder)"
    return None


def _real_path(
    root_real: Path, parts: tuple[str, ...], walked: dict[tuple[str, ...], tuple[Path, bool]]
) -> Path:
    """What `root_real / parts` resolves to, following the symlinks on the way.

    Like Path.resolve(), but one lstat per path component under the root, each done once
    per Download (`walked` remembers them), not one per component of the whole path per
    file; nothing below a component that does not exist yet is looked up.
    """
    real, exists = root_real, True
    for depth in range(1, len(parts) + 1):
        known = walked.get(parts[:depth])
        if known is not None:
            real, exists = known
            continue
        real = real / parts[depth - 1]
        if exists:
            try:
                if stat.S_ISLNK(os.lstat(real).st_mode):
                    real = real.resolve()
            except OSError:
                exists = False
        walked[parts[:depth]] = (real, exists)
    return real


def plan_files(download: Download, root: Path) -> list[tuple[RemoteFile, Path]]:
    """Each file with its destination; raises UnsafePath if any would escape `root`.

    Relative paths were checked lexically when the Download was parsed; here the disk is
    consulted: a path through a symlink that leads outside the root is refused, and so are
    two files of one Download that land on the same path.
    """
    root_real = root.expanduser().resolve()
    walked: dict[tuple[str, ...], tuple[Path, bool]] = {}
    seen: dict[str, str] = {}
    planned = []
    for remote in download.files:
        dest = root / remote.relative_path
        real = _real_path(root_real, PurePath(remote.relative_path).parts, walked)
        if real != root_real and root_real not in real.parents:
            raise UnsafePath(
                f"{remote.relative_path!r} leads outside {root} through a symbolic link"
            )
        key = str(real)
        if key in seen:
            raise UnsafePath(
                f"{remote.relative_path!r} and {seen[key]!r} would be written to the same file"
            )
        seen[key] = remote.relative_path
        planned.append((remote, dest))
    return planned


# Errors that say the folder itself is wrong; any other (EIO, ENOTCONN, ESTALE, ...) says
# its storage is away for now, which a restart or a retry may mend.
_WRONG_FOLDER = {
    errno.ENOENT,
    errno.ENOTDIR,
    errno.EEXIST,
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.ELOOP,
    errno.ENAMETOOLONG,
}


def prepare_output_root(path: Path, what: str, permissions: Permissions) -> str | None:
    """Make sure `path` (the output or fallback folder) is a folder we can write into,
    creating it if missing: a ConfigError (one line, exit 2) at start-up otherwise, rather
    than every Download failing on it in turn. If its storage cannot be reached now (a
    share that is away), a warning is returned instead: Downloads wait and retry then, as
    they would if it went away mid-run."""
    path = path.expanduser()
    doing = "use"
    try:
        try:
            info = path.stat()
        except FileNotFoundError:
            if path.is_symlink():
                target = path.readlink()
                raise ConfigError(
                    f"cannot use {path} ({what}): it links to {target}, which does not exist"
                ) from None
            doing = "create"
            make_dirs(path, permissions, inject_faults=False)
            info = path.stat()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if exc.errno in _WRONG_FOLDER:
            raise ConfigError(f"cannot {doing} {path} ({what}): {reason}") from None
        return f"cannot reach {path} ({what}) now: {reason}; Downloads will retry"
    if not stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"cannot use {path} ({what}): not a folder")
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write into {path} ({what}): permission denied")
    return None
