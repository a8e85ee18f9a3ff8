"""The installed version of cdl-tui, and the User-Agent every request carries."""

from __future__ import annotations

import os
import platform
import socket
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cdl-tui")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+src"


_agent: tuple[int, str] | None = None


def user_agent() -> str:
    """Name the client, its version and this process.

    The host and pid let a farm tell two daemons on one machine apart (the reference farm
    records it in its audit table). Built once per process: it goes on every request.
    """
    global _agent  # noqa: PLW0603 - a per-process cache
    pid = os.getpid()
    if _agent is None or _agent[0] != pid:
        _agent = (
            pid,
            f"cdl-tui/{__version__} (python {platform.python_version()}; "
            f"{platform.system()}; {socket.gethostname()}; pid {pid})",
        )
    return _agent[1]
