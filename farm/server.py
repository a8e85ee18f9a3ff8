"""Run the reference farm: uvicorn on a pre-bound socket, plus the lease sweeper.

`FarmServer.run()` serves in the calling thread until stopped (the `cdl-farm serve`
command); `FarmServer.start()` serves from a background thread and returns once the farm
accepts connections (the `--demo` mode and in-process tests).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import uvicorn

from .app import Farm, FarmOptions, build_app
from .files import quiet_injected_cuts

log = logging.getLogger("cdl.farm")


class _Uvicorn(uvicorn.Server):
    """uvicorn's server, telling us when it is listening.

    uvicorn re-raises a captured SIGINT/SIGTERM once it has shut down, which would kill
    the process before the farm flushes its audit trail; we record the signal instead.
    """

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_ready = on_ready
        self.stopped_by: int | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:  # noqa: ARG002
        self.stopped_by = sig
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        self.should_exit = True

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if not self.should_exit:
            self._on_ready()


class LeaseSweeper:
    """Puts `downloading` Downloads whose lease ran out back to `pending`."""

    def __init__(self, farm: Farm) -> None:
        self._farm = farm
        self._stop = threading.Event()
        timeout = farm.options.lease_timeout
        self.interval = max(0.1, min(5.0, timeout / 4))
        self._thread = threading.Thread(target=self._run, name="farm-sweeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                expired = self._farm.store.expire_leases()
            except Exception:
                log.exception("lease sweep failed")
                continue
            for download_id, holder in expired:
                log.info("lease of %s (held by %s) expired; back to pending", download_id, holder)


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio only turns Nagle off (TCP_NODELAY) for sockets
    # that say they are TCP, and with Nagle on, every response on a kept-alive
    # connection waited ~40 ms for the client's delayed ACK. NODELAY on the listener is
    # inherited by the accepted sockets too.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(512)
    sock.set_inheritable(True)
    return sock


def url_for(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


class FarmServer:
    def __init__(
        self, data_dir: Path, options: FarmOptions, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.farm = Farm(Path(data_dir), options)
        self._sock = bind_socket(host, port)
        self.url = url_for(self._sock)
        self._ready = threading.Event()
        config = uvicorn.Config(
            build_app(self.farm),
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_keep_alive=30,
        )
        self._announce: Callable[[str], None] | None = None
        self._server = _Uvicorn(config, self._on_listening)
        self._sweeper = LeaseSweeper(self.farm)
        self._thread: threading.Thread | None = None
        if options.faults.active:
            quiet_injected_cuts()

    def run(self, on_ready: Callable[[str], None] | None = None) -> int | None:
        """Serve in this thread until stop() or a signal; return the signal, if one."""
        self._announce = on_ready
        self._sweeper.start()
        try:
            asyncio.run(self._server.serve(sockets=[self._sock]))
        finally:
            self._shutdown()
        return self._server.stopped_by

    def _on_listening(self) -> None:
        self._ready.set()
        if self._announce is not None:
            self._announce(self.url)

    def start(self, timeout: float = 15.0) -> str:
        """Serve from a background thread; return the base URL once it accepts."""
        self._thread = threading.Thread(target=self.run, name="farm-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the reference farm did not start")
        return self.url

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(15.0)

    def _shutdown(self) -> None:
        self._sweeper.stop()
        self.farm.close()
        self._sock.close()

    def __enter__(self) -> FarmServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
