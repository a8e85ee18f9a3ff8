"""The full screen with a big queue and a long history: key latency and memory.

    python bench/tui_big.py [--pending 10000] [--history 100000]

Runs the app (in a pseudo-terminal, 100x30) over an engine stand-in whose snapshot holds
N pending Downloads, 8 active ones that keep moving, and a history of M entries; presses
tab keys and times how long until the screen shows the new tab; reads the process's RSS.
Prints one JSON line. (The engine's own cost at this size is measured by its tests: its
snapshot reuses cached views of the queue.)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MIB = 1 << 20


def build_engine(pending_count: int, history_count: int):
    from cdl_tui.core.model.states import FileState, Outcome
    from cdl_tui.core.model.views import (
        ActiveView,
        EngineSnapshot,
        FileView,
        HistoryEntry,
        PendingView,
        Totals,
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
                jobs=(),
                feeder="idle",
            )

        def history_since(self, serial):
            return history[serial:], len(history)

        def __getattr__(self, name):  # commands: the keys pressed here issue none
            return lambda *_args, **_kwargs: None

    return BigEngine()


def child(pending: int, history: int) -> None:
    from cdl_tui.tui.app import CdlApp

    CdlApp(build_engine(pending, history), refresh_hz=4, watch_terminal=False).run()


def rss_mib(pid: int) -> tuple[float, float]:
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pending", type=int, default=10_000)
    parser.add_argument("--history", type=int, default=100_000)
    parser.add_argument("--child", action="store_true")
    args = parser.parse_args()
    if args.child:
        child(args.pending, args.history)
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
    ]
    started = time.monotonic()
    pid, master = tui_pty.spawn(command, 100, 30, env, str(HERE))
    first = tui_pty.wait_for(master, b"DONE/TOTAL", 60)
    tui_pty.read_for(master, 3.0)
    latencies = {"2": [], "3": [], "1": []}
    needles = {"2": b"FILES", "3": b"TOOK", "1": b"DONE/TOTAL"}
    for _ in range(5):
        for key in ("2", "3", "1"):
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
    rss, peak = rss_mib(pid)
    os.kill(pid, 15)
    tui_pty.read_for(master, 2.0)
    os.close(master)
    all_ms = [x for key in ("1", "2", "3") for x in latencies[key] if x is not None]
    print(
        json.dumps(
            {
                "pending": args.pending,
                "history": args.history,
                "first_screen_s": round(first, 2) if first else None,
                "tab_switch_ms": {k: v for k, v in latencies.items() if not k.startswith("end")},
                "tab_switch_ms_max": max(all_ms) if all_ms else None,
                "rss_mib": round(rss, 1),
                "peak_rss_mib": round(peak, 1),
                "wall_s": round(time.monotonic() - started, 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
