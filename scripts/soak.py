"""Soak: three daemons share one faulty farm; one is killed with SIGKILL and restarted.

    python scripts/soak.py [--seconds 240] [--jobs 12] [--tasks 60] [--files 3]

Builds a farm of thousands of files, serves it with fault injection (5xx, cut connections,
wrong bytes, slow responses) and a short lease timeout, runs three `cdl-tui --headless`
daemons into one shared output folder, SIGKILLs one of them mid-run and starts it again,
and waits until the farm has everything `downloaded` (or the time is up). Then it checks,
from the disk and from the farm's own audit table (never from the clients' logs):

    files verified                 every farm file on disk with the farm's md5
    corrupt final files            must be 0
    leftover temp files            must be 0
    fetched under two leases       must be 0
    stuck `downloading`            must be 0

Prints a table and one JSON line; exits 1 if any must-be-zero is not zero. Not part of CI.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

FAULTS = "500=0.03,503=0.03,cut=0.03,corrupt=0.02,slow=0.02,slow_delay=1,bandwidth=2MiB,seed=11"


def bin_path(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def start_farm(data: Path, faults: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [bin_path("cdl-farm"), "serve", str(data), "--lease-timeout", "10", "--faults", faults],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        raise SystemExit("the farm did not start")
    return proc, url


def start_daemon(name: str, url: str, token: str, out: Path, work: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CDL_", "CONDUCTOR_"))}
    env.update(
        CDL_API_KEY=token,
        XDG_STATE_HOME=str(work / f"state-{name}"),
        XDG_CONFIG_HOME=str(work / "config"),
    )
    log = (work / f"daemon-{name}.log").open("a")
    return subprocess.Popen(
        [
            bin_path("cdl-tui"),
            "--headless",
            "--api-url",
            url,
            "--output",
            str(out),
            "--threads",
            "4",
            "--poll-interval",
            "1",
            "--summary-interval",
            "30",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def farm_stats(url: str, token: str) -> dict:
    request = urllib.request.Request(  # noqa: S310 - the farm we started
        f"{url}/_farm/stats", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - our farm
        return json.load(response)


def md5_b64(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        while block := handle.read(4 << 20):
            digest.update(block)
    return base64.b64encode(digest.digest()).decode()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--jobs", type=int, default=12)
    parser.add_argument("--tasks", type=int, default=60)
    parser.add_argument("--files", type=int, default=3)
    parser.add_argument("--size", default="1MiB")
    parser.add_argument("--kill-after", type=float, default=30.0)
    parser.add_argument("--faults", default=FAULTS)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    return parser.parse_args()


def run_daemons(args, farm: tuple[str, str], work: Path, store, total: int):
    """Three daemons; SIGKILL one, restart it; until everything is downloaded."""
    url, token = farm
    out = work / "out"
    daemons = {name: start_daemon(name, url, token, out, work) for name in ("a", "b", "c")}
    started = time.monotonic()
    killed = restarted = False
    while time.monotonic() - started < args.seconds:
        time.sleep(1.0)
        elapsed = time.monotonic() - started
        if not killed and elapsed > args.kill_after:
            daemons["b"].send_signal(signal.SIGKILL)
            daemons["b"].wait()
            killed = True
            partials = sum(1 for p in out.rglob(".*.part"))
            print(f"soak: {elapsed:.0f}s: SIGKILL daemon b ({partials} partial files on disk)")
        elif killed and not restarted and elapsed > args.kill_after + 3:
            daemons["b"] = start_daemon("b", url, token, out, work)
            restarted = True
            print(f"soak: {elapsed:.0f}s: daemon b started again")
        done = store.status_counts()["downloaded"]
        if restarted and done == total:
            print(f"soak: {elapsed:.0f}s: every Download is downloaded")
            break
    time.sleep(2.0)  # let the last reports land
    for proc in daemons.values():
        proc.send_signal(signal.SIGTERM)
    return {name: proc.wait(60) for name, proc in daemons.items()}, time.monotonic() - started


def check_disk(store, out: Path) -> tuple[int, int, int, int]:
    """(files, verified, corrupt, missing): every farm file compared with the disk."""
    rows = store.conn.execute(
        "SELECT d.job_id, f.relative_path, f.md5 FROM files f "
        "JOIN downloads d ON d.id = f.download_pk"
    ).fetchall()
    verified = corrupt = missing = 0
    for job_id, relative_path, md5 in rows:
        path = out / job_id / relative_path
        if not path.is_file():
            missing += 1
        elif md5_b64(path) == md5:
            verified += 1
        else:
            corrupt += 1
            print(f"soak: CORRUPT {path}")
    return len(rows), verified, corrupt, missing


def main() -> int:
    args = parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from cdl_tui.farm.db import FarmStore

    work = Path(tempfile.mkdtemp(prefix="cdl-soak-"))
    data, out = work / "farm", work / "out"
    subprocess.run(
        [
            bin_path("cdl-farm"),
            "generate",
            str(data),
            "--jobs",
            str(args.jobs),
            "--tasks",
            str(args.tasks),
            "--files",
            str(args.files),
            "--size",
            args.size,
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    token = (data / "token").read_text().strip()
    farm, url = start_farm(data, args.faults)
    store = FarmStore(data)
    total = store.conn.execute("SELECT COUNT(*) FROM downloads").fetchone()[0]
    print(f"soak: farm {url}: {args.jobs} jobs x {args.tasks} tasks, faults {args.faults}")
    codes, seconds = run_daemons(args, (url, token), work, store, total)
    stats = farm_stats(url, token)  # flushes the audit trail
    farm.terminate()
    farm.wait(30)
    files, verified, corrupt, missing = check_disk(store, out)
    leftovers = [p for p in out.rglob(".*") if p.is_file()]
    counts = store.status_counts()
    faults = {k: v for k, v in stats["counters"].items() if k.startswith("fault_")}
    result = {
        "seconds": round(seconds, 1),
        "downloads": total,
        "files": files,
        "files_verified": verified,
        "files_missing": missing,
        "faults_injected": sum(faults.values()),
        "faults": faults,
        "resumed_ranges": sum(
            1 for r in store.audit_rows("file") if "bytes=" in r["detail"] and "206" in r["detail"]
        ),
        "corrupt_final_files": corrupt,
        "leftover_temp_files": len(leftovers),
        "fetched_under_two_leases": len(store.downloads_fetched_under_two_leases()),
        "stuck_downloading": counts["downloading"],
        "farm_statuses": counts,
        "daemon_exit_codes": codes,
    }
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"  {key:<{width}}  {value}")
    print(json.dumps(result))
    if args.keep:
        print(f"soak: kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    zeros = (
        "corrupt_final_files",
        "leftover_temp_files",
        "fetched_under_two_leases",
        "stuck_downloading",
        "files_missing",
    )
    return 1 if any(result[k] for k in zeros) else 0


if __name__ == "__main__":
    sys.exit(main())
