"""Build a realistic farm: N jobs of M tasks, each task a few render-output frames.

Files are named like a lighting render's outputs
(`MJ_0080_light_v001/beauty/MJ_0080_light_v001.beauty.1005.exr`), sizes vary around the
requested size per AOV, and the farm includes the awkward cases a client must handle:
every 13th task has no files at all and every 7th task has an empty file. The same seed
gives the same farm, byte for byte.
"""

from __future__ import annotations

import os
import random
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from .content import POOL_SIZE, ContentPool
from .db import FarmStore

# (AOV name, folder, size factor relative to the beauty frame)
AOVS: tuple[tuple[str, str, float], ...] = (
    ("beauty", "beauty", 1.0),
    ("deep", "data", 2.5),
    ("cryptomatte", "crypto", 0.35),
    ("normals", "aovs", 0.6),
    ("depth", "aovs", 0.4),
    ("emission", "aovs", 0.8),
    ("specular", "aovs", 0.7),
    ("diffuse", "aovs", 0.7),
)
SEQUENCES = ("MJ", "KT", "RB", "WS", "LN")
FIRST_FRAME = 1001
NO_FILES_EVERY = 13  # global task n where n % 13 == 12 has no files
EMPTY_FILE_EVERY = 7  # global task n where n % 7 == 3 has an empty last file

FILES_DIR = "files"  # materialized files: files/<job_id>/<task_id>/<relative_path>
TOKEN_FILE = "token"  # noqa: S105 - the name of the file that holds the token


@dataclass(frozen=True)
class FarmSpec:
    jobs: int = 3
    tasks: int = 8
    files: int = 3
    size: int = 4 << 20  # the beauty frame; other AOVs scale from it
    locations: tuple[str, ...] = ()
    seed: int = 1
    output_root: str = "/Volumes/af/show/wash/shots"
    uniform: bool = False  # every file exactly `size`, no empty files or file-less tasks
    materialize: bool = False  # also write the files under DATA_DIR/files/ (for nginx)


def read_token(data_dir: Path) -> str:
    return (Path(data_dir) / TOKEN_FILE).read_text(encoding="utf-8").strip()


def generate_farm(data_dir: Path, spec: FarmSpec) -> list[str]:
    """Add `spec.jobs` jobs to the farm in `data_dir` (created if new); return their IDs."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    store = FarmStore(data_dir)
    try:
        store.create_schema()
        content_seed = int(store.get_meta("content_seed") or spec.seed)
        if store.get_meta("content_seed") is None:
            store.set_meta("content_seed", str(content_seed))
            store.set_meta("secret", secrets.token_hex(32))
        token_path = data_dir / TOKEN_FILE
        if not token_path.exists():
            fd = os.open(token_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(secrets.token_urlsafe(24) + "\n")
        pool = ContentPool(content_seed)
        first = int(store.get_meta("next_job") or 1)
        task_counter = int(store.get_meta("task_counter") or 0)
        job_ids: list[str] = []
        with store.write() as conn:
            builder = _JobBuilder(conn, pool, spec, task_counter, data_dir / FILES_DIR)
            for number in range(first, first + spec.jobs):
                job_ids.append(builder.add_job(number))
            store.set_meta("next_job", str(first + spec.jobs))
            store.set_meta("task_counter", str(builder.task_counter))
    finally:
        store.close()
    return job_ids


class _JobBuilder:
    """Inserts jobs, their Downloads and files inside the caller's transaction."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        pool: ContentPool,
        spec: FarmSpec,
        task_counter: int,
        files_root: Path,
    ) -> None:
        self.files_root = files_root
        self.conn = conn
        self.pool = pool
        self.spec = spec
        self.task_counter = task_counter  # across the whole farm, for the awkward cases
        self.used_ids = {r[0] for r in conn.execute("SELECT download_id FROM downloads")}

    def add_job(self, number: int) -> str:
        spec = self.spec
        rng = random.Random(f"{spec.seed}:{number}")
        job_id = f"{number:05d}"
        sequence = SEQUENCES[(number - 1) % len(SEQUENCES)]
        shot = f"{sequence}_{(number * 10 + 70) % 10000:04d}"
        layer = f"{shot}_light_v{1 + number % 3:03d}"
        location = spec.locations[(number - 1) % len(spec.locations)] if spec.locations else None
        output_dir = f"{spec.output_root.rstrip('/')}/{sequence}/{shot}/renders"
        now = time.time()
        self.conn.execute(
            "INSERT INTO jobs(job_id, title, location, output_dir, created) VALUES (?, ?, ?, ?, ?)",
            (job_id, f"{shot} lighting", location, output_dir, now),
        )
        for task_index in range(spec.tasks):
            files = self._task_files(rng, layer, FIRST_FRAME + task_index)
            self.task_counter += 1
            cur = self.conn.execute(
                "INSERT INTO downloads(download_id, job_id, task_index, task_id, location, "
                "output_dir, size, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    self._new_download_id(rng),
                    job_id,
                    task_index,
                    f"{task_index:03d}",
                    location,
                    output_dir,
                    sum(f[1] for f in files),
                    now,
                ),
            )
            self.conn.executemany(
                "INSERT INTO files(download_pk, position, relative_path, size, md5, "
                "content_start) VALUES (?, ?, ?, ?, ?, ?)",
                [(cur.lastrowid, position, *f) for position, f in enumerate(files)],
            )
            if spec.materialize:
                for path, size, _, start in files:
                    self._write(job_id, f"{task_index:03d}", path, start, size)
        return job_id

    def _write(self, job_id: str, task_id: str, path: str, start: int, size: int) -> None:
        """The file's bytes on disk, where `serve --files-url` points (e.g. nginx)."""
        target = self.files_root / job_id / task_id / path
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as handle:
            for chunk in self.pool.chunks(start, 0, size, 4 << 20):
                handle.write(chunk)

    def _task_files(
        self, rng: random.Random, layer: str, frame: int
    ) -> list[tuple[str, int, str, int]]:
        """(relative_path, size, md5, content_start) for each file of one task."""
        counter = self.task_counter
        if not self.spec.uniform and counter % NO_FILES_EVERY == NO_FILES_EVERY - 1:
            return []
        files = []
        count = self.spec.files
        for index in range(count):
            aov, folder, factor = AOVS[index % len(AOVS)]
            if index >= len(AOVS):
                aov = f"{aov}{index // len(AOVS) + 1}"
            path = f"{layer}/{folder}/{layer}.{aov}.{frame}.exr"
            size = int(self.spec.size * factor * (0.9 + 0.2 * rng.random()))
            if index == count - 1 and counter % EMPTY_FILE_EVERY == 3:
                size = 0
            if self.spec.uniform:
                size = self.spec.size
            start = rng.randrange(POOL_SIZE)
            files.append((path, size, self.pool.md5_base64(start, size), start))
        return files

    def _new_download_id(self, rng: random.Random) -> str:
        """Decimal text of a 64-bit ID above 2**53, like a datastore's: sent as a JSON
        number, a client that parsed it into a float would change it."""
        while True:
            candidate = str(rng.randrange(2**53 + 1, 2**63))
            if candidate not in self.used_ids:
                self.used_ids.add(candidate)
                return candidate
