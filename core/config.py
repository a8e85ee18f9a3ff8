"""Settings, and where each one came from.

Precedence, highest first: command-line flags > `CDL_*` environment variables > the TOML
config file (`$XDG_CONFIG_HOME/cdl/config.toml`, or `--config`) > the vendor's
`CONDUCTOR_*` environment variables > built-in defaults. Every resolved value remembers
its source, which `--print-config` shows (with secrets redacted).
"""

from __future__ import annotations

import grp
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from cdl_tui.core.model import faults
from cdl_tui.core.model.errors import ConfigError
from cdl_tui.core.model.secrets import Secret
from cdl_tui.core.model.settings import TRANSFER_ENGINES
from cdl_tui.core.model.units import parse_size

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised by the Python 3.10 smoke run in CI
    import tomli as tomllib

ENV_PREFIX = "CDL_"


def _xdg(name: str, fallback: str, env: Mapping[str, str]) -> Path:
    value = env.get(name)
    return Path(value) if value else Path.home() / fallback


def default_config_path(env: Mapping[str, str]) -> Path:
    return _xdg("XDG_CONFIG_HOME", ".config", env) / "cdl" / "config.toml"


def default_state_dir(env: Mapping[str, str]) -> Path:
    return _xdg("XDG_STATE_HOME", ".local/state", env) / "cdl"


# -- value parsers ----------------------------------------------------------------------------


def _as_str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("expected text")
    return value


def _as_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("expected a whole number")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        return int(value)
    raise ValueError("expected a whole number")


def _as_positive_int(value: Any) -> int:
    number = _as_int(value)
    if number < 1:
        raise ValueError("must be at least 1")
    return number


def _as_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a number")
    if isinstance(value, int | float | str):
        number = float(value)
    else:
        raise ValueError("expected a number")
    if number < 0:
        raise ValueError("must not be negative")
    return number


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError("expected true or false")


def _as_path(value: Any) -> Path:
    return Path(_as_str(value)).expanduser()


def _as_path_list(value: Any) -> tuple[Path, ...]:
    """Folders: a TOML list, or text separated by ':' (as in CDL_OUTPUT_ROOTS)."""
    items = value if isinstance(value, list) else _as_str(value).split(os.pathsep)
    paths = tuple(_as_path(item) for item in items if str(item).strip())
    for path in paths:
        if not path.is_absolute():
            raise ValueError(f"{path} is not an absolute path")
    return paths


def _as_secret(value: Any) -> Secret:
    return Secret(_as_str(value))


_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _as_level(value: Any) -> str:
    level = _as_str(value).upper()
    if level not in _LEVELS:
        raise ValueError(f"expected one of {', '.join(_LEVELS)}")
    return level


_CONFLICT = ("overwrite", "skip", "backup")


def _as_conflict(value: Any) -> str:
    text = _as_str(value).lower()
    if text not in _CONFLICT:
        raise ValueError(f"expected one of {', '.join(_CONFLICT)}")
    return text


def _as_transfer(value: Any) -> str:
    text = _as_str(value).lower()
    if text not in TRANSFER_ENGINES:
        raise ValueError(f"expected one of {', '.join(TRANSFER_ENGINES)}")
    return text


def _as_regex(value: Any) -> str:
    text = _as_str(value)
    try:
        re.compile(text)
    except re.error as exc:
        raise ValueError(f"not a regular expression ({exc})") from None
    return text


def _as_mode(value: Any) -> int:
    """A permission mode: 0o664 from TOML, or "664" / "0o664" as text."""
    if isinstance(value, int) and not isinstance(value, bool):
        mode = value
    else:
        text = _as_str(value).strip().lower().removeprefix("0o")
        if not text or any(ch not in "01234567" for ch in text):
            raise ValueError("expected an octal mode like 664")
        mode = int(text, 8)
    if not 0 <= mode <= 0o7777:
        raise ValueError("expected an octal mode like 664")
    return mode


def _as_group(value: Any) -> str:
    """A group name or gid that exists on this machine."""
    text = _as_str(value) if not isinstance(value, int) else str(value)
    try:
        grp.getgrgid(int(text)) if text.isdigit() else grp.getgrnam(text)
    except (KeyError, OverflowError):
        raise ValueError(f"no group {text!r} on this machine") from None
    return text


def _as_faults(value: Any) -> str:
    text = _as_str(value)
    faults.validate(text)
    return text


def _as_size(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return parse_size(_as_str(value))


def _as_rate(value: Any) -> float | None:
    """A bandwidth like 40MB/s or 40MiB (0 or "none": no limit)."""
    if isinstance(value, str) and value.strip().lower() in ("", "0", "none", "off"):
        return None
    rate = _as_size(value)
    return float(rate) if rate > 0 else None


def _as_path_map(value: Any) -> tuple[tuple[str, str], ...]:
    """[[path_map]] tables with `from` and `to`, in order."""
    if not isinstance(value, list):
        raise ValueError("write it as [[path_map]] tables with from and to, in the config file")
    rules = []
    for index, rule in enumerate(value, 1):
        if not isinstance(rule, dict) or set(rule) != {"from", "to"}:
            raise ValueError(f"rule {index} needs exactly `from` and `to`")
        source, target = rule["from"], rule["to"]
        if not isinstance(source, str) or not isinstance(target, str) or not source or not target:
            raise ValueError(f"rule {index}: `from` and `to` must be non-empty text")
        rules.append((source, target))
    return tuple(rules)


def _as_interval(value: Any) -> float:
    number = _as_float(value)
    if number <= 0:
        raise ValueError("must be more than 0")
    return number


def _setting(
    default: Any,
    parse: Callable[[Any], Any],
    help: str,
    *,
    vendor_env: str | None = None,
    secret: bool = False,
) -> Any:
    return field(
        default=default,
        metadata={"parse": parse, "help": help, "vendor_env": vendor_env, "secret": secret},
    )


@dataclass(frozen=True)
class Settings:
    """Every setting cdl-tui reads from flags, environment or the config file."""

    api_url: str | None = _setting(
        None, _as_str, "base URL of the farm API", vendor_env="CONDUCTOR_URL"
    )
    api_key: Secret | None = _setting(
        None,
        _as_secret,
        "bearer token, or the vendor's API key (JSON or base64 JSON with client_id)",
        vendor_env="CONDUCTOR_API_KEY",
        secret=True,
    )
    api_key_file: Path | None = _setting(
        None,
        _as_path,
        "file holding a bearer token or a vendor API key",
        vendor_env="CONDUCTOR_API_KEY_PATH",
    )
    ca_bundle: Path | None = _setting(None, _as_path, "CA bundle (PEM) to verify TLS with")
    tls_verify: bool = _setting(True, _as_bool, "verify TLS certificates")
    connect_timeout: float = _setting(10.0, _as_float, "seconds to wait for a connection")
    read_timeout: float = _setting(60.0, _as_float, "seconds to wait for data")
    api_deadline: float = _setting(
        120.0, _as_interval, "seconds for one API answer to arrive in full (retries aside)"
    )
    max_response_bytes: int = _setting(
        64 << 20, _as_size, "the largest API answer read, decoded (e.g. 64MiB)"
    )
    max_pages: int = _setting(10_000, _as_positive_int, "pages of one job listing at most")
    stall_timeout: float = _setting(
        60.0, _as_interval, "seconds a file may average under stall_min_rate before it is cut"
    )
    stall_min_rate: float | None = _setting(
        1024.0, _as_rate, "bytes/s below which a file transfer stalls (0: never)"
    )
    output: Path | None = _setting(None, _as_path, "download into DIR/<job_id>/...")
    threads: int = _setting(8, _as_positive_int, "download worker threads")
    location: str | None = _setting(None, _as_str, "location tag for daemon mode")
    page_size: int = _setting(
        100,
        _as_positive_int,
        "Downloads per page of a job listing",
        vendor_env="CONDUCTOR_DOWNLOADER_PAGE_SIZE",
    )
    log_level: str = _setting("INFO", _as_level, "log level", vendor_env="CONDUCTOR_LOG_LEVEL")
    log_dir: Path | None = _setting(
        None, _as_path, "folder for the rotating log file (default $XDG_STATE_HOME/cdl/log)"
    )
    poll_interval: float = _setting(
        15.0, _as_interval, "seconds to nap when the farm has nothing, and between re-listings"
    )
    heartbeat_interval: float = _setting(
        5.0, _as_interval, "seconds between `downloading` reports of an active Download"
    )
    summary_interval: float = _setting(
        10.0, _as_interval, "seconds between plain-text summaries (headless mode)"
    )
    max_attempts: int = _setting(5, _as_positive_int, "attempts per Download before FAILED")
    on_conflict: str = _setting(
        "overwrite", _as_conflict, "an existing file that differs: overwrite, skip or backup"
    )
    transfer: str = _setting(
        "auto", _as_transfer, "file transfers: curl, python, or auto (curl if pycurl imports)"
    )
    regex: str | None = _setting(None, _as_regex, "download only files whose path matches")
    force: bool = _setting(False, _as_bool, "re-download files even if they are in place")
    disable_reporting: bool = _setting(False, _as_bool, "send no status reports to the farm")
    history_size: int = _setting(
        100, _as_positive_int, "files and tasks kept in history (daemon mode)"
    )
    file_mode: int | None = _setting(
        None, _as_mode, "force this mode on downloaded files (octal; default 0666 & ~umask)"
    )
    dir_mode: int | None = _setting(
        None, _as_mode, "force this mode on created folders (octal; default 0777 & ~umask)"
    )
    output_roots: tuple[Path, ...] = _setting(
        (),
        _as_path_list,
        "folders a farm's output_dir must be under (else fallback_dir); list, or a:b",
    )
    group: str | None = _setting(None, _as_group, "group to give downloaded files and folders")
    fallback_dir: Path = _setting(
        Path("~/cdl-downloads"),
        _as_path,
        "where Downloads go whose output_dir cannot exist here",
    )
    md5_cache: bool = _setting(
        True, _as_bool, "trust the journal's md5 of files unchanged since verified"
    )
    journal: Path | None = _setting(
        None, _as_path, "the local journal (default $XDG_STATE_HOME/cdl/journal.sqlite)"
    )
    max_bandwidth: float | None = _setting(
        None, _as_rate, "limit for all downloads together, e.g. 40MB/s (MB and MiB)"
    )
    on_job_done: str | None = _setting(None, _as_str, "command to run when a job completes")
    disk_margin: int = _setting(
        256 << 20, _as_size, "free space to leave on each filesystem (at most 2% of it)"
    )
    unreachable_max: float = _setting(
        300.0, _as_interval, "--exit-when-done: seconds the farm may be unreachable"
    )
    disk_wait_max: float = _setting(
        1800.0, _as_interval, "seconds a Download may wait for disk space before it FAILS"
    )
    temp_max_age: float = _setting(
        2 * 86400.0, _as_interval, "seconds after which an unclaimed temp file is removed"
    )
    path_map: tuple[tuple[str, str], ...] = _setting(
        (), _as_path_map, "[[path_map]] from/to: translate output_dir prefixes"
    )
    refresh_hz: float | None = _setting(
        None, _as_interval, "TUI refreshes per second (default 4, or 2 over SSH)"
    )
    faults: str | None = _setting(
        None, _as_faults, "fault injection for robustness tests, e.g. chunk=0.01,api=0.05"
    )

    # Filled in by resolve_settings: setting name -> where its value came from.
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def source_of(self, name: str) -> str:
        return self.sources.get(name, "default")

    def rank_of(self, name: str) -> int:
        """Precedence of a value's source: 4 flag, 3 CDL env, 2 config file, 1 vendor env."""
        source = self.source_of(name)
        for prefix, rank in (("flag", 4), ("env CDL_", 3), ("config", 2), ("env", 1)):
            if source.startswith(prefix):
                return rank
        return 0


SETTING_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Settings) if f.name != "sources")
_FIELDS = {f.name: f for f in fields(Settings) if f.name != "sources"}


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def resolve_settings(
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config_path: Path | None = None,
) -> Settings:
    """Merge every source into Settings. `flags` holds only the flags the user gave.

    `config_path` None means the default location, which may be absent; an explicit path
    (from `--config` or `CDL_CONFIG`) must exist.
    """
    env = os.environ if env is None else env
    flags = flags or {}
    explicit = config_path
    if explicit is None and env.get("CDL_CONFIG"):
        explicit = Path(env["CDL_CONFIG"])
    path = explicit or default_config_path(env)
    file_values = load_config_file(path, required=explicit is not None)

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    layers: list[tuple[str, Callable[[str], Any]]] = [
        ("vendor", lambda name: _vendor_value(name, env)),
        ("file", file_values.get),
        ("env", lambda name: env.get(env_name(name))),
        ("flag", flags.get),
    ]
    for name in SETTING_NAMES:
        meta = _FIELDS[name].metadata
        for layer, lookup in layers:
            raw = lookup(name)
            if raw is None or (isinstance(raw, str) and raw == "" and layer != "flag"):
                continue
            source = {
                "vendor": f"env {meta['vendor_env']}",
                "file": f"config {path}",
                "env": f"env {env_name(name)}",
                "flag": f"flag {flag_name(name)}",
            }[layer]
            try:
                values[name] = meta["parse"](raw)
            except (ValueError, TypeError) as exc:
                shown = "***" if meta["secret"] else repr(raw)
                raise ConfigError(f"{name} from {source}: {shown} is not valid: {exc}") from None
            sources[name] = source
    return replace(Settings(**values), sources=sources)


def _vendor_value(name: str, env: Mapping[str, str]) -> str | None:
    vendor = _FIELDS[name].metadata["vendor_env"]
    return env.get(vendor) if vendor else None


def load_config_file(path: Path, *, required: bool) -> dict[str, Any]:
    """Read the TOML config file; unknown keys are an error that names the key."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        if required:
            raise ConfigError(f"config file {path} does not exist") from None
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        table = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    for key in table:
        if key not in _FIELDS:
            raise ConfigError(
                f"config file {path}: unknown setting {key!r} (known: {', '.join(SETTING_NAMES)})"
            )
    return table


def describe_settings(settings: Settings) -> list[tuple[str, str, str]]:
    """(name, shown value, source) for every setting; secrets are redacted."""
    rows = []
    for name in SETTING_NAMES:
        value = getattr(settings, name)
        if _FIELDS[name].metadata["secret"] and value is not None:
            shown = "*** (set)"
        elif value is None:
            shown = "(not set)"
        elif name in ("file_mode", "dir_mode"):
            shown = oct(value)
        elif name == "path_map":
            shown = "; ".join(f"{a} -> {b}" for a, b in value) or "(none)"
        elif name == "output_roots":
            shown = ", ".join(map(str, value)) or "(none: any output_dir that passes the checks)"
        else:
            shown = str(value)
        rows.append((name, shown, settings.source_of(name)))
    return rows
