"""Logging for a cdl-tui process: a rotating file, optionally stderr, never a secret.

Every record carries its thread name (workers, feeder, reporter...). Handlers carry the
secret scrubber, and the HTTP stack's loggers are guarded too (see core.secrets).
"""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

from cdl_tui.core.model.secrets import guard_third_party_loggers, scrubbing_filter


def _console_wanted(record: logging.LogRecord) -> bool:
    """Records logged with extra={"console": False} go to the file only (the front end
    reports them itself)."""
    return getattr(record, "console", True)


LOG_FORMAT = "%(asctime)s %(levelname)-7s [%(threadName)s] %(name)s: %(message)s"
LOG_FILE = "cdl-tui.log"


def configure_logging(
    *, level: str = "INFO", log_dir: Path | None = None, stderr_level: str | None = "WARNING"
) -> Path | None:
    """Install cdl-tui's handlers on the root logger; return the log file path, if any."""
    guard_third_party_loggers()
    root = logging.getLogger()
    # The lowest level a handler keeps (the problem log takes WARNING and up): a record
    # below it is never built, e.g. the HTTP stack's per-request DEBUG traces.
    levels = [logging.WARNING, logging.getLevelName(level)]
    if stderr_level is not None:
        levels.append(logging.getLevelName(stderr_level))
    root.setLevel(min(lv for lv in levels if isinstance(lv, int)))
    formatter = logging.Formatter(LOG_FORMAT)
    log_path = None
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / LOG_FILE
        file_handler = logging.handlers.RotatingFileHandler(
            log_path, maxBytes=10 << 20, backupCount=5, encoding="utf-8"
        )
        file_handler.setLevel(level)
        file_handler.setFormatter(formatter)
        file_handler.addFilter(scrubbing_filter())
        root.addHandler(file_handler)
    if stderr_level is not None:
        stream = logging.StreamHandler()
        stream.setLevel(stderr_level)
        stream.setFormatter(logging.Formatter("cdl-tui: %(levelname)s: %(message)s"))
        stream.addFilter(scrubbing_filter())
        stream.addFilter(_console_wanted)
        root.addHandler(stream)
    # httpx logs every request at INFO; that belongs in DEBUG for us.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return log_path
