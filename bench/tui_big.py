"""The full screen with a big queue and a long history: key latency and memory.

    python bench/tui_big.py [--pending 10000] [--history 100000]

Runs the app (in a pseudo-terminal, 100x30) over an engine stand-in whose snapshot holds
N pending Downloads, 8 active ones that keep moving, a history of M entries, and a job of
`--job-tasks` tasks (one frame each, a few missing); presses tab keys and times how long
until the screen shows the new tab, then opens the big job's frames (Enter on the Jobs tab)
and times them; reads the process's RSS.
Prints one JSON line. (The engine's own cost at this size is measured by its tests: its
snapshot reuses cached views of the queue.)
"""

from __future__ import annotations

import argparse
import json
import os
import select
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MIB = 1 << 20


def big_job(tasks: int):
    """A job of `tasks` frames as the engine's frame catalog holds them: listed, and on
    disk but for one frame in a thousand (grouped the way the engine groups them)."""
    from cdl_tui.core.model.frames import FrameCatalog

    catalog = FrameCatalog("08284")
    for frame in range(1, tasks + 1):
        catalog.listed(f"KT_0090/beauty/KT_0090.beauty.{frame:06d}.exr", 24 * MIB)
    for frame in range(1, tasks + 1):
        if frame % 1000:
            catalog.placed(f"KT_0090/beauty/KT_0090.beauty.{frame:06d}.exr", 24 * MIB)
    return catalog


def build_engine(pending_count: int, history_count: int, job_tasks: int):
    from cdl_tui.core.model.states import FileState, Outcome
    from cdl_tui.core.model.views import (
        ActiveView,
        EngineSnapshot,
        FileView,
        HistoryEntry,
        JobView,
        PendingView,
        Totals,
    )

    catalog = big_job(job_tasks)
    on_disk = job_tasks - job_tasks // 1000
    job = JobView(
        "08284",
        job_tasks,
        on_disk,
        job_tasks // 1000,
        True,
        bytes_total=job_tasks * 24 * MIB,
        bytes_done=on_disk * 24 * MIB,
    )

    now = time.time()
    pending = tuple(
        PendingView(f"p{n}", "08285", f"{n:05d}", 3, 90 * MIB, 0, None, False, 0.0)
        for n in range(pending_count)
    )
    history = [
        HistoryEntry(
            "file",
            Outcome.DL if n % 7 else Outcome.CACHED,
            f"h{n // 3}",
            "08284",
            f"{n // 3:05d}",
            f"/mnt/renders/08284/KT_0090_light_v002/beauty/"
            f"KT_0090_light_v002.beauty.{1001 + n // 3}.exr",
            24 * MIB,
            1.5,
            now - history_count + n,
        )
        for n in range(history_count)
    ]

    class Bus:
        def subscribe(self, subscriber):
            pass

    class BigEngine:
        bus = Bus()
        stopping = False

        def __init__(self):
            self.started = time.monotonic()

        def snapshot(self):
            elapsed = time.monotonic() - self.started
            active = tuple(
                ActiveView(
                    f"a{n}",
                    "08286",
                    f"{n:03d}",
                    f"worker-{n + 1}",
                    100 * MIB,
                    int((elapsed * (n + 1) * MIB) % (100 * MIB)),
                    (
                        FileView(
                            "beauty/x.exr",
                            100 * MIB,
                            FileState.DOWNLOADING,
                            int((elapsed * (n + 1) * MIB) % (100 * MIB)),
                        ),
                    ),
                    now,
                    1,
                    False,
                    (n + 1) * MIB,
                )
                for n in range(8)
            )
            return EngineSnapshot(
                taken_at=time.time(),
                uptime=elapsed,
                mode="daemon",
                farm="farm.example",
                location=None,
                paused=False,
                stopping=False,
                threads=8,
                busy=8,
                active=active,
                pending=pending,
                failed=(),
                recent_files=(),
                recent_tasks=(),
                history_files=len(history),
                history_tasks=0,
                history_serial=len(history),
                totals=Totals(),
                rate=36.0 * MIB,
                rate_history=(36.0 * MIB,) * 60,
                jobs=(job,),
                feeder="idle",
            )

        def frames(self, job_id):
            return catalog.view() if job_id == "08284" else None

        def history_since(self, serial):
            return history[serial:], len(history)

        def __getattr__(self, name):  # commands: the keys pressed here issue none
            return lambda *_args, **_kwargs: None

    return BigEngine()


def child(pending: int, history: int, job_tasks: int) -> None:
    from cdl_tui.tui.app import CdlApp

    engine = build_engine(pending, history, job_tasks)
    CdlApp(engine, refresh_hz=4, watch_terminal=False).run()


def times_until(master: int, needles: dict[str, bytes], timeout: float = 10.0) -> dict:
    """Milliseconds until each needle first shows in the output (None: not within
    `timeout`)."""
    started = time.monotonic()
    seen, found = b"", {}
    while len(found) < len(needles) and time.monotonic() - started < timeout:
        ready, _, _ = select.select([master], [], [], 0.01)
        if ready:
            seen += os.read(master, 65536)
            for name, needle in needles.items():
                if name not in found and needle in seen:
                    found[name] = round((time.monotonic() - started) * 1000, 1)
    return {name: found.get(name) for name in needles}


def rss_mib(pid: int) -> tuple[float, float]:
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pending", type=int, default=10_000)
    parser.add_argument("--history", type=int, default=100_000)
    parser.add_argument("--job-tasks", type=int, default=100_000)
    parser.add_argument("--child", action="store_true")
    args = parser.parse_args()
    if args.child:
        child(args.pending, args.history, args.job_tasks)
        return 0
    sys.path.insert(0, str(HERE))
    import tui_pty

    env = {**os.environ, "TERM": "xterm-256color", "COLORTERM": "truecolor"}
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        "--pending",
        str(args.pending),
        "--history",
        str(args.history),
        "--job-tasks",
        str(args.job_tasks),
    ]
    started = time.monotonic()
    pid, master = tui_pty.spawn(command, 100, 30, env, str(HERE))
    first = tui_pty.wait_for(master, b"DONE/TOTAL", 60)
    tui_pty.read_for(master, 3.0)
    latencies: dict[str, list[float | None]] = {"2": [], "3": [], "4": [], "1": []}
    needles = {"2": b"FILES", "3": b"TOOK", "4": b"PENDING", "1": b"DONE/TOTAL"}
    for _ in range(5):
        for key in ("2", "3", "4", "1"):
            tui_pty.read_for(master, 0.4)
            os.write(master, key.encode())
            took = tui_pty.wait_for(master, needles[key], 5.0)
            latencies[key].append(round(took * 1000, 1) if took is not None else None)
    # Scroll to the end of the 10k queue and of the 100k history.
    for key, sequence in (("2", b"\x1b[F"), ("3", b"\x1b[F")):
        os.write(master, key.encode())
        tui_pty.read_for(master, 0.5)
        sent = time.monotonic()
        os.write(master, sequence)
        tui_pty.read_for(master, 0.3)
        latencies.setdefault(f"end-{key}", []).append(round((time.monotonic() - sent) * 1000))
    # The Jobs tab, then Enter on the big job: its frames, gathered in a thread.
    frames_ms = []
    for _ in range(3):
        os.write(master, b"4")
        tui_pty.wait_for(master, b"PENDING", 5.0)
        tui_pty.read_for(master, 0.4)
        os.write(master, b"\r")
        frames_ms.append(times_until(master, {"opened": b"Job 08284", "frames": b"missing"}))
        os.write(master, b"\x1b")
        tui_pty.read_for(master, 0.5)
    rss, peak = rss_mib(pid)
    os.kill(pid, 15)
    tui_pty.read_for(master, 2.0)
    os.close(master)
    all_ms = [x for key in ("1", "2", "3", "4") for x in latencies[key] if x is not None]
    print(
        json.dumps(
            {
                "pending": args.pending,
                "history": args.history,
                "first_screen_s": round(first, 2) if first else None,
                "tab_switch_ms": {k: v for k, v in latencies.items() if not k.startswith("end")},
                "tab_switch_ms_max": max(all_ms) if all_ms else None,
                "job_tasks": args.job_tasks,
                "job_frames_ms": frames_ms,
                "rss_mib": round(rss, 1),
                "peak_rss_mib": round(peak, 1),
                "wall_s": round(time.monotonic() - started, 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
