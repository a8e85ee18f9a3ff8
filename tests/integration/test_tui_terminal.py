"""The full screen on a real pseudo-terminal: it starts, and when the terminal goes away
the process stops within seconds, cleanly, without spinning the CPU."""

import contextlib
import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from .conftest import temp_files, wait_for


def cdl_tui() -> str:
    return str(Path(sys.executable).parent / "cdl-tui")


def environment(farm, tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CDL_", "CONDUCTOR_"))}
    env.update(
        TERM="xterm-256color",
        CDL_API_KEY=farm.token,
        XDG_STATE_HOME=str(tmp_path / "state"),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
    )
    return env


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def drain(master: int, seconds: float) -> bytes:
    data = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.05)
        if ready:
            try:
                data += os.read(master, 65536)
            except OSError:
                break
    return data


def set_size(fd: int, cols: int = 100, rows: int = 30) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def watch_exit(pid: int, timeout: float) -> tuple[int | None, float, float]:
    """(exit status, seconds until exit, CPU seconds used meanwhile)."""
    started = time.monotonic()
    cpu_start = cpu_seconds(pid)
    cpu_last = cpu_start
    while time.monotonic() - started < timeout:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status, time.monotonic() - started, cpu_last - cpu_start
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            cpu_last = cpu_seconds(pid)
        time.sleep(0.05)
    return None, timeout, cpu_last - cpu_start


def assert_hung_up_cleanly(watched, waited, out, farm):
    """Exit 129 soon after the terminal went away, without spinning on it, leaving no
    temp files and nothing `downloading` on the farm. `watched` is what watch_exit gave."""
    status, took, cpu = watched
    assert status is not None, f"still running {waited} s after its terminal went away"
    assert os.waitstatus_to_exitcode(status) == 129
    assert took < 10
    assert cpu < 0.5 * took + 0.5  # no spinning on a dead terminal
    assert not temp_files(out)
    assert farm.store().status_counts()["downloading"] == 0


@pytest.fixture
def slow_farm(start_farm):
    return start_farm("--faults", "bandwidth=128KiB", jobs=1, tasks=6, files=1, size=3_000_000)


def test_the_full_screen_starts_and_a_hangup_stops_it_cleanly(slow_farm, tmp_path):
    """The terminal is the controlling tty: closing it sends SIGHUP -> exit 129."""
    out = tmp_path / "out"
    pid, master = pty.fork()
    if pid == 0:
        os.execve(  # noqa: S606 - the program under test
            cdl_tui(),
            [cdl_tui(), "--api-url", slow_farm.url, slow_farm.job_ids[0], "--output", str(out)],
            environment(slow_farm, tmp_path),
        )
    set_size(master)
    screen = drain(master, 4.0)
    assert b"\x1b[?1049h" in screen  # the alternate screen: the full-screen app runs
    assert b"JOB:TASK" in screen
    wait_for(lambda: temp_files(out), timeout=20, what="transfers")
    os.close(master)  # the SSH link drops
    assert_hung_up_cleanly(watch_exit(pid, 15), 15, out, slow_farm)


def test_a_vanished_terminal_without_sighup_is_noticed(slow_farm, tmp_path):
    """Not the controlling tty (no SIGHUP comes): reads give EOF, and the app must notice
    instead of spinning."""
    out = tmp_path / "out"
    master, slave = pty.openpty()
    set_size(slave)
    proc = subprocess.Popen(
        [cdl_tui(), "--api-url", slow_farm.url, slow_farm.job_ids[0], "--output", str(out)],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=environment(slow_farm, tmp_path),
        start_new_session=True,
    )
    os.close(slave)
    drain(master, 4.0)
    wait_for(lambda: temp_files(out), timeout=20, what="transfers")
    os.close(master)
    watched = watch_exit(proc.pid, 20)
    if watched[0] is None:
        proc.kill()
    assert_hung_up_cleanly(watched, 20, out, slow_farm)


def test_sigterm_in_the_full_screen_restores_the_terminal(slow_farm, tmp_path):
    out = tmp_path / "out"
    pid, master = pty.fork()
    if pid == 0:
        os.execve(  # noqa: S606 - the program under test
            cdl_tui(),
            [cdl_tui(), "--api-url", slow_farm.url, slow_farm.job_ids[0], "--output", str(out)],
            environment(slow_farm, tmp_path),
        )
    set_size(master)
    drain(master, 3.0)
    wait_for(lambda: temp_files(out), timeout=20, what="transfers")
    os.kill(pid, signal.SIGTERM)
    tail = drain(master, 5.0)
    status, _, _ = watch_exit(pid, 15)
    os.close(master)
    assert status is not None and os.waitstatus_to_exitcode(status) == 143
    assert b"\x1b[?1049l" in tail  # left the alternate screen
    assert b"RUN HISTORY" in tail  # and printed the final summary
    assert not temp_files(out)


def test_stdout_not_a_terminal_means_plain_text(start_farm, tmp_path):
    farm = start_farm(jobs=1, tasks=2)
    result = subprocess.run(
        [
            cdl_tui(),
            "--api-url",
            farm.url,
            farm.job_ids[0],
            "--exit-when-done",
            "--output",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        env=environment(farm, tmp_path),
        timeout=60,
    )
    assert result.returncode == 0
    assert b"RUN HISTORY" in result.stdout
    assert b"\x1b[" not in result.stdout + result.stderr
