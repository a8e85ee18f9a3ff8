"""Where a Download's files land, and the checks that keep them inside their root.

With `--output DIR` a Download goes to `DIR/<job_id>/`; without it, to its own
`output_dir` (after `path_map`). The farm's output_dir is untrusted: one that cannot exist
here, that resolves (links followed) to a system folder, the home folder or a hidden one,
or that is outside `output_roots` when those are set, falls back to
`<fallback>/<job_id>/<output_dir as folders>/` with a warning naming it. Every root is
returned as a real path (no link in it), which core.folders then opens one component at a
time without following links.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import logging
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from cdl_tui.core.model.errors import ConfigError
from cdl_tui.core.model.models import Download, RemoteFile
from cdl_tui.core.model.paths import UnsafePath, path_parts
from cdl_tui.core.model.settings import DEFAULT_FALLBACK, EngineConfig, Permissions

from .diskguard import existing_ancestor
from .transfer import make_dirs

log = logging.getLogger("cdl.engine")
_WINDOWS_RE = re.compile(r"^(?:[A-Za-z]:|\\\\|//[^/])")


@dataclass(frozen=True)
class DestinationPolicy:
    output: Path | None = None
    fallback: Path = DEFAULT_FALLBACK
    path_map: tuple[tuple[str, str], ...] = ()  # (from, to) prefixes of output_dir
    output_roots: tuple[Path, ...] = ()  # if set, an output_dir must be under one of them

    @classmethod
    def of(cls, config: EngineConfig) -> DestinationPolicy:
        return cls(config.output, config.fallback_dir, config.path_map, config.output_roots)

    def root_for(self, download: Download) -> tuple[Path, str | None]:
        """The folder the Download's relative paths hang from (a real path), and a warning
        if the farm's output_dir was refused and the fallback is used instead."""
        if (output := self._output_real) is not None:
            return output / download.job_id, None
        output_dir = map_output_dir(download.output_dir, self.path_map)
        real, reason = check_output_dir(output_dir, self.allowed_roots())
        if real is not None:
            return real, None  # the very path that was checked: links resolved once
        fallback = _real(self.fallback) / download.job_id / mirrored(output_dir)
        return fallback, f"output_dir {output_dir!r} {reason}; using {fallback}"

    @functools.cached_property
    def _output_real(self) -> Path | None:
        """--output resolved once per run: its links were the user's choice at start, and
        resolving them for each Download cost a `stat` per path component."""
        return None if self.output is None else _real(self.output)

    def allowed_roots(self) -> tuple[Path, ...] | None:
        """Where an output_dir may be: `output_roots` and the `path_map` targets (None:
        anywhere that passes the other checks)."""
        if not self.output_roots:
            return None
        return (*self.output_roots, *(Path(target) for _, target in self.path_map))


def _real(path: Path) -> Path:
    """`path` with every link resolved (the part that exists; the rest as written)."""
    return Path(os.path.realpath(path.expanduser()))


MIRROR_MAX_PARTS = 16  # folders of a mirrored output_dir kept (the last ones)
MIRROR_PART_BYTES = 64  # bytes kept of each


def mirrored(output_dir: str) -> PurePosixPath:
    """The refused output_dir as readable relative folders under the fallback, ending in
    `@` and a hash of the output_dir as given, so that Downloads from different
    output_dirs never share a path there: `/etc/x` -> `etc/x@1f0c...`, `C:\\shots\\a` ->
    `C/shots/a@...`. Hidden, relative and control characters are made plain."""
    tag = hashlib.sha256(output_dir.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    parts = []
    for raw in re.split(r"[\\/]+", output_dir):
        part = "".join(c for c in raw if c.isprintable()).rstrip(":").strip()
        if part in ("", ".", ".."):
            continue
        if part.startswith("."):
            part = "_" + part.lstrip(".")
        cut = part.encode("utf-8", "surrogatepass")[:MIRROR_PART_BYTES]
        parts.append(cut.decode("utf-8", "ignore") or "_")
    parts = parts[-MIRROR_MAX_PARTS:] or [""]
    parts[-1] = f"{parts[-1]}@{tag}"
    return PurePosixPath(*parts)


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


def output_dir_problem(output_dir: str, allowed: tuple[Path, ...] | None = None) -> str | None:
    """Why `output_dir` cannot be used on this machine, or None if it can."""
    return check_output_dir(output_dir, allowed)[1]


def check_output_dir(
    output_dir: str, allowed: tuple[Path, ...] | None = None
) -> tuple[Path | None, str | None]:
    """(the real path to use, None) if `output_dir` can be used here, else (None, why).

    The farm's output_dir is untrusted too: besides paths that cannot exist here, neither
    it nor what it resolves to (links followed) may be the filesystem root, a system
    folder, the user's home (or above it), or go through a hidden folder (a farm must not
    be able to write ~/.ssh/authorized_keys); with `allowed` roots it must be under one.
    The real path is resolved once and that is what is checked and returned (a link
    swapped in later is refused when the folders are opened).
    """
    try:
        return _check_output_dir(output_dir, allowed)
    except (OSError, ValueError) as exc:  # a NUL byte, a name too long, a loop of links
        return None, f"is not a usable path ({getattr(exc, 'strerror', None) or exc})"


def _check_output_dir(
    output_dir: str, allowed: tuple[Path, ...] | None
) -> tuple[Path | None, str | None]:
    if not output_dir:
        return None, "is empty"
    if os.name == "posix" and (_WINDOWS_RE.match(output_dir) or "\\" in output_dir):
        return None, "is a Windows path"
    if any(not c.isprintable() for c in output_dir):
        return None, "contains control characters"
    path = Path(output_dir)
    if not path.is_absolute():
        return None, "is not an absolute path"
    real = _real(path)
    for candidate, how in ((path, ""), (real, f" (it resolves to {real})")):
        if any(part in (".", "..") or part.startswith(".") for part in candidate.parts[1:]):
            return None, f"goes through a hidden or relative folder{how}"
        normal = Path(os.path.normpath(candidate))
        if normal == Path(normal.anchor) or any(
            normal == root or root in normal.parents for root in SYSTEM_ROOTS
        ):
            return None, f"is a system folder{how}"
        home = Path.home()
        if normal == home or normal in home.parents:
            return None, f"is the home folder or above it{how}"
    if allowed is not None:
        roots = [_real(root) for root in allowed]
        if not any(real == root or root in real.parents for root in roots):
            named = ", ".join(map(str, allowed))
            return None, f"is not under output_roots ({named})"
    existing = existing_ancestor(real)
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        return None, f"cannot be written here ({existing} is not a writable folder)"
    return real, None


def plan_files(download: Download, root: Path) -> list[tuple[RemoteFile, Path]]:
    """Each file with its destination; raises UnsafePath for a Download that must not be
    written: a path through a symbolic link (or a file) under `root`, two files on one
    path, or a file whose path is also a folder of another file (`pre` and `pre/child`).
    A link at a file's own name is not refused: it is replaced, never followed.

    Relative paths were checked lexically when the Download was parsed; here the disk is
    consulted. core.folders refuses a link that appears later, when the folders are made.
    """
    paths: set[str] = set()
    for remote in download.files:
        if remote.relative_path in paths:
            raise UnsafePath(f"{remote.relative_path!r} would be written twice")
        paths.add(remote.relative_path)
    root = root.expanduser()
    checked: dict[tuple[str, ...], bool] = {}  # folder parts -> exists as a real folder
    planned = []
    for remote in download.files:
        parts = path_parts(remote.relative_path)
        for depth in range(1, len(parts)):
            folder = parts[:depth]
            if "/".join(folder) in paths:
                raise UnsafePath(
                    f"{'/'.join(folder)!r} is a file and also the folder of "
                    f"{remote.relative_path!r}"
                )
            if folder not in checked:
                checked[folder] = _check_folder(root, folder, checked.get(folder[:-1], True))
        planned.append((remote, root / remote.relative_path))
    return planned


def _check_folder(root: Path, parts: tuple[str, ...], parent_exists: bool) -> bool:
    """Whether the folder `root/parts` exists; UnsafePath if a link or a file is there."""
    if not parent_exists:
        return False
    try:
        info = os.lstat(f"{root}/{'/'.join(parts)}")
    except OSError:
        return False
    if stat.S_ISLNK(info.st_mode):
        raise UnsafePath(f"{'/'.join(parts)!r} in {root} is a symbolic link")
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafePath(f"{'/'.join(parts)!r} in {root} is a file, not a folder")
    return True


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


def warn_if_unbounded(config: EngineConfig) -> None:
    """Say once at start if the farm's output_dir alone chooses where a privileged run
    (root, or a service: systemd sets INVOCATION_ID for its units) writes files."""
    privileged = os.geteuid() == 0 or bool(os.environ.get("INVOCATION_ID"))
    if config.output is None and not config.output_roots and privileged:
        log.warning(
            "output_roots is not set: the farm's output_dir chooses where files are "
            "written (system, home and hidden folders are refused); set output_roots "
            "to the folders renders belong in"
        )
