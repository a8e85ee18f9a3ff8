"""The farm's SQLite store: jobs, Downloads, files, statuses and the audit trail.

One connection per thread (SQLite connections are not shared across threads), WAL mode so
readers never block the writer, and `BEGIN IMMEDIATE` around every lease so that two
clients polling at once - from threads or from processes - never get the same Download.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

DB_NAME = "farm.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    job_id     TEXT PRIMARY KEY,
    title      TEXT NOT NULL,
    location   TEXT,
    output_dir TEXT NOT NULL,
    created    REAL NOT NULL
);
-- One row per task: a Download is all output files of one finished task.
CREATE TABLE IF NOT EXISTS downloads (
    id                INTEGER PRIMARY KEY,
    download_id       TEXT NOT NULL UNIQUE,
    job_id            TEXT NOT NULL REFERENCES jobs(job_id),
    task_index        INTEGER NOT NULL,
    task_id           TEXT NOT NULL,
    location          TEXT,
    output_dir        TEXT NOT NULL,
    size              INTEGER NOT NULL,
    ready             INTEGER NOT NULL DEFAULT 1,  -- the task has finished rendering
    status            TEXT NOT NULL DEFAULT 'pending',
    lease_epoch       INTEGER NOT NULL DEFAULT 0,  -- +1 on every new lease
    lease_holder      TEXT,
    lease_expires     REAL,
    bytes_downloaded  INTEGER NOT NULL DEFAULT 0,
    bytes_to_download INTEGER NOT NULL DEFAULT 0,
    fail_count        INTEGER NOT NULL DEFAULT 0,
    last_error        TEXT,
    updated           REAL NOT NULL,
    UNIQUE (job_id, task_index)
);
CREATE INDEX IF NOT EXISTS downloads_queue ON downloads (status, ready, location, id);
CREATE TABLE IF NOT EXISTS files (
    id             INTEGER PRIMARY KEY,
    download_pk    INTEGER NOT NULL REFERENCES downloads(id),
    position       INTEGER NOT NULL,
    relative_path  TEXT NOT NULL,
    size           INTEGER NOT NULL,
    md5            TEXT NOT NULL,            -- base64 of the raw digest
    content_start  INTEGER NOT NULL          -- offset into the content pool
);
CREATE INDEX IF NOT EXISTS files_by_download ON files (download_pk, position);
-- Every lease, status report, failure report, lease expiry and file request.
CREATE TABLE IF NOT EXISTS audit (
    id          INTEGER PRIMARY KEY,
    ts          REAL NOT NULL,
    kind        TEXT NOT NULL,
    download_id TEXT,
    client      TEXT,
    lease_epoch INTEGER,
    detail      TEXT
);
CREATE INDEX IF NOT EXISTS audit_by_download ON audit (download_id, kind);
"""

STATUSES = ("pending", "downloading", "downloaded")


@dataclass(frozen=True)
class FileRow:
    id: int
    download_pk: int
    relative_path: str
    size: int
    md5: str
    content_start: int


@dataclass(frozen=True)
class DownloadRow:
    id: int
    download_id: str
    job_id: str
    task_id: str
    task_index: int
    location: str | None
    output_dir: str
    size: int
    status: str
    lease_epoch: int
    lease_holder: str | None
    files: tuple[FileRow, ...] = ()


@dataclass(frozen=True)
class FileLookup:
    """A file and the state of its Download at the moment of a request (for the audit)."""

    file: FileRow
    download_id: str
    lease_epoch: int
    lease_holder: str | None


AuditRow = tuple[float, str, str | None, str | None, int | None, str | None]


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.row_factory = sqlite3.Row
    return conn


class FarmStore:
    """Thread-safe access to a farm database (one SQLite connection per thread)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / DB_NAME
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        # Writers in this process queue here rather than in SQLite's busy handler, which
        # sleeps in steps of milliseconds and made every contended report slow.
        self._write_lock = threading.Lock()

    @property
    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path)
            self._local.conn = conn
            with self._all_lock:
                self._all.append(conn)
        return conn

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: BEGIN IMMEDIATE takes the write lock at once, so two
        clients (threads or processes) never interleave a select-then-update."""
        conn = self.conn
        with self._write_lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def create_schema(self) -> None:
        self.conn.executescript(SCHEMA)

    def close(self) -> None:
        with self._all_lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()

    # -- meta ------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    # -- reads -----------------------------------------------------------------------------

    def job_exists(self, job_id: str) -> bool:
        return (
            self.conn.execute("SELECT 1 FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            is not None
        )

    def job_ids(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT job_id FROM jobs ORDER BY job_id")]

    def list_job(
        self,
        job_id: str,
        task_indexes: Sequence[int] | None,
        *,
        after_index: int,
        limit: int,
    ) -> tuple[list[DownloadRow], int | None]:
        """A page of a job's ready Downloads in task order; and the cursor for the next."""
        sql = "SELECT * FROM downloads WHERE job_id = ? AND ready = 1 AND task_index > ?"
        params: list[object] = [job_id, after_index]
        if task_indexes is not None:
            if not task_indexes:
                return [], None
            sql += f" AND task_index IN ({','.join('?' * len(task_indexes))})"
            params.extend(task_indexes)
        sql += " ORDER BY task_index LIMIT ?"
        params.append(limit + 1)
        rows = self.conn.execute(sql, params).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        downloads = self._with_files(rows)
        next_after = downloads[-1].task_index if more and downloads else None
        return downloads, next_after

    def download(self, download_id: str) -> DownloadRow | None:
        row = self.conn.execute(
            "SELECT * FROM downloads WHERE download_id = ?", (download_id,)
        ).fetchone()
        return self._with_files([row])[0] if row else None

    def file_lookup(self, file_id: int) -> FileLookup | None:
        row = self.conn.execute(
            "SELECT f.id, f.download_pk, f.relative_path, f.size, f.md5, f.content_start, "
            "d.download_id, d.lease_epoch, d.lease_holder "
            "FROM files f JOIN downloads d ON d.id = f.download_pk WHERE f.id = ?",
            (file_id,),
        ).fetchone()
        if row is None:
            return None
        values = tuple(row)
        return FileLookup(FileRow(*values[:6]), *values[6:])

    def status_counts(self) -> dict[str, int]:
        rows = self.conn.execute("SELECT status, COUNT(*) FROM downloads GROUP BY status")
        counts = dict.fromkeys(STATUSES, 0)
        counts.update(dict(rows.fetchall()))
        return counts

    def _with_files(self, rows: Sequence[sqlite3.Row]) -> list[DownloadRow]:
        if not rows:
            return []
        by_pk: dict[int, list[FileRow]] = {row["id"]: [] for row in rows}
        marks = ",".join("?" * len(by_pk))
        for frow in self.conn.execute(
            "SELECT id, download_pk, relative_path, size, md5, content_start FROM files "
            f"WHERE download_pk IN ({marks}) ORDER BY download_pk, position",
            list(by_pk),
        ):
            by_pk[frow["download_pk"]].append(FileRow(*frow))
        return [_download_row(row, tuple(by_pk[row["id"]])) for row in rows]

    # -- writes ----------------------------------------------------------------------------

    def lease_next(
        self, *, location: str | None, count: int, client: str, lease_timeout: float
    ) -> list[DownloadRow]:
        """Atomically mark up to `count` pending, ready Downloads as leased to `client`."""
        now = time.time()
        where = "status = 'pending' AND ready = 1" + (" AND location = ?" if location else "")
        with self.write() as conn:
            picked = conn.execute(
                f"SELECT id FROM downloads WHERE {where} ORDER BY id LIMIT ?",
                (location, count) if location else (count,),
            ).fetchall()
            ids = [r[0] for r in picked]
            if not ids:
                return []
            marks = ",".join("?" * len(ids))
            rows = conn.execute(
                "UPDATE downloads SET status = 'downloading', lease_epoch = lease_epoch + 1, "
                "lease_holder = ?, lease_expires = ?, updated = ? "
                f"WHERE id IN ({marks}) RETURNING *",
                [client, now + lease_timeout, now, *ids],
            ).fetchall()
            rows.sort(key=lambda r: r["id"])
            self._insert_audit(
                [(now, "lease", r["download_id"], client, r["lease_epoch"], "next") for r in rows]
            )
        return self._with_files(rows)

    def report_status(
        self,
        download_id: str,
        status: str,
        *,
        bytes_downloaded: int,
        bytes_to_download: int,
        client: str,
        lease_timeout: float,
    ) -> str | None:
        """Apply a status report. Returns the audit kind recorded, or None if unknown id.

        `downloading` leases the Download to the reporter (a renewal if it already holds it).
        A `pending` report from a client that does not hold a live lease is ignored, so a
        late release from an expired holder cannot free a Download someone else is on.
        """
        now = time.time()
        with self.write() as conn:
            row = conn.execute(
                "SELECT id, status, lease_epoch, lease_holder, lease_expires "
                "FROM downloads WHERE download_id = ?",
                (download_id,),
            ).fetchone()
            if row is None:
                return None
            pk, current, epoch, holder, expires = row
            live_lease = current == "downloading" and expires is not None and expires >= now
            mine = holder == client
            detail = f"{status} {bytes_downloaded}/{bytes_to_download}"
            if status == "downloading":
                kind = "heartbeat" if live_lease and mine else "takeover" if live_lease else "lease"
                if kind != "heartbeat":
                    epoch += 1
                if kind == "takeover":
                    detail += f" from {holder}"
                conn.execute(
                    "UPDATE downloads SET status = 'downloading', lease_epoch = ?, "
                    "lease_holder = ?, lease_expires = ?, bytes_downloaded = ?, "
                    "bytes_to_download = ?, updated = ? WHERE id = ?",
                    (
                        epoch,
                        client,
                        now + lease_timeout,
                        bytes_downloaded,
                        bytes_to_download,
                        now,
                        pk,
                    ),
                )
            elif status == "pending" and live_lease and not mine:
                kind = "ignored"
                detail += f" (lease held by {holder})"
            else:
                kind = status
                conn.execute(
                    "UPDATE downloads SET status = ?, lease_holder = NULL, lease_expires = NULL, "
                    "bytes_downloaded = ?, bytes_to_download = ?, updated = ? WHERE id = ?",
                    (status, bytes_downloaded, bytes_to_download, now, pk),
                )
            self._insert_audit([(now, kind, download_id, client, epoch, detail)])
        return kind

    def record_failure(self, download_id: str, message: str, client: str) -> bool:
        now = time.time()
        with self.write() as conn:
            row = conn.execute(
                "UPDATE downloads SET fail_count = fail_count + 1, last_error = ?, updated = ? "
                "WHERE download_id = ? RETURNING lease_epoch",
                (message, now, download_id),
            ).fetchone()
            if row is not None:
                self._insert_audit([(now, "fail", download_id, client, row[0], message[:2000])])
        return row is not None

    def expire_leases(self) -> list[tuple[str, str | None]]:
        """Put every `downloading` Download whose lease has run out back to `pending`."""
        now = time.time()
        with self.write() as conn:
            rows = conn.execute(
                "UPDATE downloads SET status = 'pending', lease_holder = NULL, "
                "lease_expires = NULL, updated = ? "
                "WHERE status = 'downloading' AND lease_expires < ? "
                "RETURNING download_id, lease_holder, lease_epoch",
                (now, now),
            ).fetchall()
            self._insert_audit(
                [(now, "expired", r[0], r[1], r[2], "lease timed out") for r in rows]
            )
        return [(r[0], r[1]) for r in rows]

    def set_ready(self, job_id: str, task_indexes: Iterable[int], ready: bool = True) -> int:
        """Mark tasks as finished rendering (or not); returns how many rows changed."""
        indexes = list(task_indexes)
        if not indexes:
            return 0
        marks = ",".join("?" * len(indexes))
        cur = self.conn.execute(
            f"UPDATE downloads SET ready = ?, updated = ? "
            f"WHERE job_id = ? AND task_index IN ({marks})",
            [int(ready), time.time(), job_id, *indexes],
        )
        return cur.rowcount

    def append_audit(self, rows: Sequence[AuditRow]) -> None:
        if rows:
            with self.write():
                self._insert_audit(rows)

    def _insert_audit(self, rows: Sequence[AuditRow]) -> None:
        self.conn.executemany(
            "INSERT INTO audit(ts, kind, download_id, client, lease_epoch, detail) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )

    # -- audit queries (tests, soak runs) --------------------------------------------------

    def audit_rows(self, kind: str | None = None) -> list[tuple]:
        if kind is None:
            return self.conn.execute("SELECT * FROM audit ORDER BY id").fetchall()
        return self.conn.execute(
            "SELECT * FROM audit WHERE kind = ? ORDER BY id", (kind,)
        ).fetchall()

    def downloads_fetched_under_two_leases(self) -> list[str]:
        """Downloads whose bytes were fetched by more than one client within one lease.

        The lease epoch grows with every new lease (from /downloads/next or a `downloading`
        report), and each file request is recorded with the epoch current at that moment.
        """
        rows = self.conn.execute(
            "SELECT download_id FROM audit WHERE kind = 'file' AND detail LIKE 'GET%' "
            "GROUP BY download_id, lease_epoch HAVING COUNT(DISTINCT client) > 1"
        ).fetchall()
        return [r[0] for r in rows]


def _download_row(row: sqlite3.Row, files: tuple[FileRow, ...]) -> DownloadRow:
    return DownloadRow(
        id=row["id"],
        download_id=row["download_id"],
        job_id=row["job_id"],
        task_id=row["task_id"],
        task_index=row["task_index"],
        location=row["location"],
        output_dir=row["output_dir"],
        size=row["size"],
        status=row["status"],
        lease_epoch=row["lease_epoch"],
        lease_holder=row["lease_holder"],
        files=files,
    )
