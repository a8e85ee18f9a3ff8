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


def user_agent() -> str:
    """Name the client, its version and this process.

    The host and pid let a farm tell two daemons on one machine apart (the reference farm
    records it in its audit table).
    """
    return (
        f"cdl-tui/{__version__} (python {platform.python_version()}; {platform.system()}; "
        f"{socket.gethostname()}; pid {os.getpid()})"
    )
