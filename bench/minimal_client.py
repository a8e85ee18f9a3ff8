"""The floor for cdl-tui's transfer path: the plainest client doing the same safety steps.

    python bench/minimal_client.py --api-url URL --token T --job 00001 --output DIR

Lists the job (POST /jobs/<job>/downloads, paged), then 8 threads take its Downloads: for
each file, http.client GET with 1 MiB reads into an exclusive temp file beside the target,
md5 as the bytes arrive, fsync, compare the md5, rename; one `downloaded` status report per
task. No resume, retry, refresh, lock, journal, disk guard or screen: untuned on purpose.
Prints one JSON line: files, bytes, seconds, and the process's CPU seconds.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import json
import os
import queue
import resource
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

READ = 1 << 20
THREADS = 8


def api(url: str, token: str, path: str, body: object) -> dict:
    request = urllib.request.Request(  # noqa: S310 - the bench's own farm
        f"{url}{path}",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request) as response:  # noqa: S310
        text = response.read()
    return json.loads(text) if text.strip() else {}


def listing(url: str, token: str, job: str) -> list[dict]:
    downloads, cursor = [], None
    while True:
        query = "limit=1000" + (f"&start_cursor={cursor}" if cursor else "")
        page = api(url, token, f"/jobs/{job}/downloads?{query}", {"tids": None})
        downloads += page["downloads"]
        cursor = page["next_cursor"]
        if not cursor:
            return downloads


def fetch(connections: dict, file: dict, dest: Path) -> int:
    parts = urlsplit(file["url"])
    key = (parts.hostname, parts.port)
    conn = connections.get(key) or http.client.HTTPConnection(parts.hostname, parts.port)
    connections[key] = conn
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    conn.request("GET", target)
    response = conn.getresponse()
    if response.status != 200:
        raise RuntimeError(f"{file['relative_path']}: HTTP {response.status}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    temp = dest.with_name(f".{dest.name}.part")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    digest = hashlib.md5(usedforsecurity=False)
    try:
        while chunk := response.read(READ):
            digest.update(chunk)
            os.write(fd, chunk)
        os.fsync(fd)
    finally:
        os.close(fd)
    if base64.b64encode(digest.digest()).decode() != file["md5"]:
        temp.unlink()
        raise RuntimeError(f"{file['relative_path']}: md5 mismatch")
    temp.rename(dest)
    return file["size"]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--api-url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--job", default="00001")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    started = time.monotonic()
    work: queue.SimpleQueue[dict | None] = queue.SimpleQueue()
    for download in listing(args.api_url, args.token, args.job):
        work.put(download)
    totals = {"files": 0, "bytes": 0}
    lock = threading.Lock()

    def worker() -> None:
        connections: dict = {}
        while (download := work.get()) is not None:
            root = args.output / download["job_id"]
            moved = [fetch(connections, f, root / f["relative_path"]) for f in download["files"]]
            for folder in {(root / f["relative_path"]).parent for f in download["files"]}:
                fd = os.open(folder, os.O_RDONLY)
                try:
                    os.fsync(fd)  # the renames, durable before the report
                finally:
                    os.close(fd)
            api(
                args.api_url,
                args.token,
                "/downloads/status",
                {
                    "download_id": download["download_id"],
                    "status": "downloaded",
                    "bytes_downloaded": download["size"],
                    "bytes_to_download": download["size"],
                },
            )
            with lock:
                totals["files"] += len(moved)
                totals["bytes"] += sum(moved)

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for thread in threads:
        work.put(None)
        thread.start()
    for thread in threads:
        thread.join()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                **totals,
                "seconds": round(time.monotonic() - started, 3),
                "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 3),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
