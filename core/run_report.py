"""`--report PATH`: a JSON account of the run, written at exit.

    {
      "cdl_tui": "0.1.0", "started_at": "...", "finished_at": "...", "exit_code": 0,
      "stop_reason": "...", "farm": "127.0.0.1:8765", "mode": "jobs",
      "totals": {"files_downloaded": ..., "bytes_downloaded": ..., ...},
      "jobs": [
        {"job_id": "08285", "listed": 48, "complete": true, "error": null,
         "sequences": [
           {"pattern": "renders/beauty/MJ_0100.beauty.####.exr", "frames": "1001-1100",
            "missing": "1050-1052,1077", "empty": "1090", "files": 96, "bytes": ...}],
         "single_files": [{"path": "renders/scene.abc", "size": ..., "on_disk": true}],
         "tasks": [
           {"task_id": "004", "download_id": "...", "outcome": "DL", "bytes": ...,
            "seconds": 1.2, "reason": "",
            "files": [{"path": "/out/08285/...exr", "size": ..., "outcome": "DL",
                       "seconds": 0.4, "reason": ""}]}]}]
    }

`sequences`: the job's files grouped into frame sequences (model/frames.py): `pattern` is
relative to the job's folder with one `#` per digit of the frame; `frames` (on disk),
`missing` (gaps in the range, and frames listed but not on disk) and `empty` (zero bytes,
or under 10 % of the median of the 4 nearest frames) are frame sets as fileseq writes them,
"" when there are none; `files` and `bytes` are those on disk. Files with no frame number,
or alone in their sequence, are in `single_files`.

Outcomes: DL (downloaded and verified), CACHED (already on disk), SKIPPED (a differing
local file kept by --on-conflict skip), FAILED, CANCELLED, REFUSED (the farm's data was
unusable or unsafe). Daemon mode keeps only the last `history_size` entries, so its report
covers those.
"""

from __future__ import annotations

import datetime
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from cdl_tui.core.model.frames import FramesView
from cdl_tui.core.model.secrets import scrub_data
from cdl_tui.core.model.version import __version__
from cdl_tui.core.model.views import HistoryEntry

from .engine import Engine


def _iso(at: float) -> str:
    return datetime.datetime.fromtimestamp(at, datetime.timezone.utc).isoformat()


def build_report(engine: Engine) -> dict[str, Any]:
    snap = engine.snapshot()
    files, tasks = engine.history()
    files_by_task: dict[tuple[str, str], list[HistoryEntry]] = {}
    for entry in files:
        files_by_task.setdefault((entry.job_id, entry.task_id), []).append(entry)
    jobs: dict[str, dict[str, Any]] = {}
    for view in snap.jobs:
        error = next((t.error for t in engine.trackers() if t.job_id == view.job_id), None)
        jobs[view.job_id] = {
            "job_id": view.job_id,
            "listed": view.listed,
            "complete": view.complete,
            "error": error,
            **_frames(engine.frames(view.job_id)),
            "tasks": [],
        }
    for task in tasks:
        if task.job_id not in jobs:  # a daemon's job, not asked for: its frames once
            jobs[task.job_id] = {
                "job_id": task.job_id,
                "listed": None,
                "complete": None,
                "error": None,
                **_frames(engine.frames(task.job_id)),
                "tasks": [],
            }
        job = jobs[task.job_id]
        job["tasks"].append(
            {
                "task_id": task.task_id,
                "download_id": task.download_id,
                "outcome": task.outcome.value,
                "bytes": task.size,
                "seconds": round(task.seconds, 3),
                "finished_at": _iso(task.finished_at),
                "reason": task.reason,
                "files": [
                    {
                        "path": f.path,
                        "size": f.size,
                        "outcome": f.outcome.value,
                        "seconds": round(f.seconds, 3),
                        "reason": f.reason,
                    }
                    for f in files_by_task.get((task.job_id, task.task_id), [])
                ],
            }
        )
    return {
        "cdl_tui": __version__,
        "started_at": _iso(snap.taken_at - snap.uptime),
        "finished_at": _iso(snap.taken_at),
        "exit_code": engine.exit_code,
        "stop_reason": engine.stop_reason,
        "farm": snap.farm,
        "mode": snap.mode,
        "uptime_seconds": round(snap.uptime, 3),
        "totals": {
            **{k: getattr(snap.totals, k) for k in snap.totals.__dataclass_fields__},
            "failed": snap.totals.failed,  # what the exit code and the screen count
        },
        "refused": [
            {
                "download_id": f.download_id,
                "job_id": f.job_id,
                "task_id": f.task_id,
                "reason": f.reason,
            }
            for f in snap.failed
            if f.outcome.value == "REFUSED"
        ],
        "jobs": list(jobs.values()),
    }


def _frames(view: FramesView | None) -> dict[str, Any]:
    sequences = view.sequences if view is not None else ()
    singles = view.singles if view is not None else ()
    return {
        "sequences": [
            {
                "pattern": s.pattern,
                "frames": s.frames,
                "missing": s.missing,
                "empty": s.empty,
                "files": s.files,
                "bytes": s.bytes,
            }
            for s in sequences
        ],
        "single_files": [{"path": f.path, "size": f.size, "on_disk": f.on_disk} for f in singles],
    }


def write_report(engine: Engine, path: Path) -> None:
    """Write the report atomically (a temp file renamed into place)."""
    data = json.dumps(scrub_data(build_report(engine)), indent=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(data + "\n")
        Path(temp).replace(path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
