"""Run cdl-tui's full screen under a pseudo-terminal and measure what it costs.

    python bench/tui_pty.py [--seconds 20] [--size 100x30] [--ssh] [--keys]

Starts `cdl-tui --demo` (a throttled demo farm, so 8 downloads stay active) in a pty of
the given size, skips the start-up, then counts the bytes the app writes to the terminal
and the CPU time it uses over a steady-state window. With --keys it also measures
key-press-to-screen latency: it presses `2`/`1` (switch tabs) and times until the screen
shows the change. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import pty
import select
import shutil
import signal
import struct
import sys
import tempfile
import termios
import time
from pathlib import Path


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (and its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def spawn(command: list[str], cols: int, rows: int, env: dict[str, str], cwd: str):
    pid, master = pty.fork()
    if pid == 0:  # the child, on the pty
        os.chdir(cwd)
        os.execvpe(command[0], command, env)  # noqa: S606 - the program under test
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    return pid, master


def read_for(master: int, seconds: float) -> bytes:
    chunks = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([master], [], [], left)
        if ready:
            try:
                chunks.append(os.read(master, 65536))
            except OSError:
                break
    return b"".join(chunks)


def wait_for(master: int, needle: bytes, timeout: float) -> float | None:
    """Seconds until `needle` appears in the output, or None."""
    started = time.monotonic()
    seen = b""
    while time.monotonic() - started < timeout:
        ready, _, _ = select.select([master], [], [], 0.01)
        if ready:
            seen += os.read(master, 65536)
            if needle in seen:
                return time.monotonic() - started
    return None


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=6.0)
    parser.add_argument("--size", default="100x30")
    parser.add_argument("--ssh", action="store_true", help="set SSH_CONNECTION (2 Hz)")
    parser.add_argument("--keys", action="store_true", help="measure key latency too")
    parser.add_argument("--demo-faults", default="bandwidth=192KiB")
    parser.add_argument("--command", default=shutil.which("cdl-tui") or "cdl-tui")
    args = parser.parse_args()
    cols, rows = (int(n) for n in args.size.split("x"))
    work = tempfile.mkdtemp(prefix="cdl-tui-pty-")
    env = {
        **os.environ,
        "TERM": "xterm-256color",
        "COLORTERM": "truecolor",
        "CDL_DEMO_FAULTS": args.demo_faults,
        "XDG_STATE_HOME": work,
        "XDG_CONFIG_HOME": work,
    }
    if args.ssh:
        env["SSH_CONNECTION"] = "10.0.0.1 50000 10.0.0.2 22"
    else:
        env.pop("SSH_CONNECTION", None)
    pid, master = spawn([args.command, "--demo", "--output", f"{work}/out"], cols, rows, env, work)
    try:
        read_for(master, args.warmup)
        cpu_before = cpu_seconds(pid)
        started = time.monotonic()
        data = read_for(master, args.seconds)
        elapsed = time.monotonic() - started
        cpu = cpu_seconds(pid) - cpu_before
        result = {
            "size": args.size,
            "ssh": args.ssh,
            "seconds": round(elapsed, 2),
            "bytes_per_second": round(len(data) / elapsed),
            "cpu_percent": round(100 * cpu / elapsed, 1),
        }
        if args.keys:
            latencies = []
            for key, needle in [(b"2", b"JOB:TASK        FILES"), (b"1", b"DONE/TOTAL")] * 5:
                read_for(master, 0.3)
                os.write(master, key)
                took = wait_for(master, needle, 2.0)
                if took is not None:
                    latencies.append(took * 1000)
            result["key_latency_ms"] = sorted(round(x, 1) for x in latencies)
        print(json.dumps(result))
    finally:
        os.kill(pid, signal.SIGTERM)
        read_for(master, 3.0)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        os.close(master)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
