"""The local journal: which files this machine has verified, and what happened before.

A SQLite database in the user's state dir (`$XDG_STATE_HOME/cdl/journal.sqlite`, WAL, so
it survives crashes and several cdl-tui processes can share it). It holds:

- the md5 cache: for every verified file, (path, size, mtime_ns, inode, device) -> md5. A
  rerun or a restarted daemon trusts an entry whose key still matches the file on disk and
  skips hashing it; any change of the key means hashing again;
- the download history of every run, which the History tab and the reports show.

Writes go through one background thread in batches (a worker never waits on the disk for
them); reads use a connection per thread. A journal that SQLite cannot read is moved aside
and rebuilt, with a warning: the cache is an optimisation, never a reason to stop.
"""

from __future__ import annotations

import logging
import os
import queue
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from cdl_tui.core.model.states import Outcome
from cdl_tui.core.model.views import HistoryEntry

log = logging.getLogger("cdl.journal")

JOURNAL_NAME = "journal.sqlite"
WRITE_PAUSE = 0.2  # seconds between two write transactions
SCHEMA = """
CREATE TABLE IF NOT EXISTS verified (
    path        TEXT PRIMARY KEY,
    size        INTEGER NOT NULL,
    mtime_ns    INTEGER NOT NULL,
    inode       INTEGER NOT NULL,
    device      INTEGER NOT NULL,
    md5         TEXT NOT NULL,
    verified_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS history (
    id          INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    download_id TEXT NOT NULL,
    job_id      TEXT NOT NULL,
    task_id     TEXT NOT NULL,
    path        TEXT NOT NULL,
    size        INTEGER NOT NULL,
    seconds     REAL NOT NULL,
    finished_at REAL NOT NULL,
    reason      TEXT NOT NULL,
    run_started REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS history_by_job ON history (job_id, kind, finished_at);
"""

Write = tuple[str, tuple[object, ...]]  # (what, its values), for the writer thread


def stat_key(path: Path, st: os.stat_result | None = None) -> tuple[int, int, int, int] | None:
    """What identifies an unchanged file; `st` if the caller has stat()ed it already."""
    if st is None:
        try:
            st = path.stat()
        except OSError:
            return None
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self.set_aside: str | None = None  # why an unreadable journal was moved aside
        self._open_checked()
        self._queue: queue.SimpleQueue[Write | threading.Event | None] = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write_loop, name="journal", daemon=True)
        self._writer.start()
        self.lookups = 0
        self.hits = 0

    # -- opening ---------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    def _open_checked(self) -> None:
        try:
            conn = self._connect()
            conn.executescript(SCHEMA)
            _add_run_started(conn)
            if conn.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise sqlite3.DatabaseError("quick_check failed")
            conn.close()
        except sqlite3.DatabaseError as exc:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            self.set_aside = (
                f"the journal {self.path} is unreadable ({exc}); moved it to {aside.name} "
                "and starting a new one (files will be hashed again)"
            )
            log.warning("%s", self.set_aside)
            for suffix in ("", "-wal", "-shm"):
                source = Path(f"{self.path}{suffix}")
                if source.exists():
                    source.replace(Path(f"{aside}{suffix}"))
            conn = self._connect()
            conn.executescript(SCHEMA)
            conn.close()

    @property
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    # -- the md5 cache ---------------------------------------------------------------------

    def cached_md5(self, path: Path, st: os.stat_result | None = None) -> str | None:
        """The md5 recorded for `path` if the file is unchanged since; else None."""
        key = stat_key(path, st)
        if key is None:
            return None
        self.lookups += 1
        try:
            row = self._conn.execute(
                "SELECT size, mtime_ns, inode, device, md5 FROM verified WHERE path = ?",
                (str(path),),
            ).fetchone()
        except sqlite3.Error as exc:
            log.warning("journal lookup failed (%s); hashing instead", exc)
            return None
        if row is None or tuple(row[:4]) != key:
            return None
        self.hits += 1
        md5: str | None = row[4]
        return md5

    def record_verified(self, path: Path, md5: str, st: os.stat_result | None = None) -> None:
        key = stat_key(path, st)
        if key is not None:
            self._queue.put(("verified", (str(path), *key, md5, time.time())))

    def forget(self, path: Path) -> None:
        self._queue.put(("forget", (str(path),)))

    # -- history ---------------------------------------------------------------------------

    def record_history(self, entry: HistoryEntry) -> None:
        self._queue.put(
            (
                "history",
                (
                    entry.kind,
                    entry.outcome.value,
                    entry.download_id,
                    entry.job_id,
                    entry.task_id,
                    entry.path,
                    entry.size,
                    entry.seconds,
                    entry.finished_at,
                    entry.reason,
                    entry.run_started,
                ),
            )
        )

    def recent_history(self, limit: int, before: float | None = None) -> list[HistoryEntry]:
        """The last `limit` entries (oldest first), finished before `before` if given."""
        sql = (
            "SELECT kind, outcome, download_id, job_id, task_id, path, size, seconds, "
            "finished_at, reason, run_started FROM history"
        )
        params: list[object] = []
        if before is not None:
            sql += " WHERE finished_at < ?"
            params.append(before)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        try:
            rows = self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            log.warning("cannot read the journal's history: %s", exc)
            return []
        return [_entry(row) for row in reversed(rows)]

    def job_history(self, job_id: str, before: float) -> list[HistoryEntry]:
        """Task entries of a job from runs before `before` (for reports)."""
        try:
            rows = self._conn.execute(
                "SELECT kind, outcome, download_id, job_id, task_id, path, size, seconds, "
                "finished_at, reason, run_started FROM history WHERE job_id = ? AND kind = 'task' "
                "AND finished_at < ? ORDER BY id",
                (job_id, before),
            ).fetchall()
        except sqlite3.Error:
            return []
        return [_entry(row) for row in rows]

    # -- writing ---------------------------------------------------------------------------

    def flush(self, timeout: float = 10.0) -> None:
        done = threading.Event()
        self._queue.put(done)
        done.wait(timeout)

    def close(self) -> None:
        self._queue.put(None)  # the writer stops
        self._writer.join(10.0)

    def _write_loop(self) -> None:
        conn = self._connect()
        while True:
            item = self._queue.get()
            batch = [item]
            while len(batch) < 1000:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = any(entry is None for entry in batch)
            waiters = [e for e in batch if isinstance(e, threading.Event)]
            writes = [e for e in batch if isinstance(e, tuple)]
            self._apply_each_if_need_be(conn, writes)
            for waiter in waiters:
                waiter.set()
            if stop:
                conn.close()
                return
            if not waiters:
                # Let records gather: one transaction per batch, not one per file. The
                # journal is a cache; a crash loses at most this much of it.
                time.sleep(WRITE_PAUSE)

    def _apply_each_if_need_be(self, conn: sqlite3.Connection, writes: list[Write]) -> None:
        """Write a batch; if it fails, each record alone, so one bad record (text SQLite
        cannot store, a full disk for a moment) costs only itself. This thread never
        dies: the journal is a cache, and the run goes on without what it could not keep."""
        try:
            self._apply(conn, writes)
            return
        except Exception as exc:
            if len(writes) == 1:
                log.warning("could not write a journal record: %r", exc)
                return
        for write in writes:
            try:
                self._apply(conn, [write])
            except Exception as exc:
                log.warning("could not write a journal record: %r", exc)

    @staticmethod
    def _apply(conn: sqlite3.Connection, writes: list[Write]) -> None:
        if not writes:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            for kind, values in writes:
                if kind == "verified":
                    conn.execute(
                        "INSERT OR REPLACE INTO verified VALUES (?, ?, ?, ?, ?, ?, ?)", values
                    )
                elif kind == "forget":
                    conn.execute("DELETE FROM verified WHERE path = ?", values)
                else:
                    conn.execute(
                        "INSERT INTO history(kind, outcome, download_id, job_id, task_id, "
                        "path, size, seconds, finished_at, reason, run_started) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        values,
                    )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def _add_run_started(conn: sqlite3.Connection) -> None:
    """Journals written before runs were told apart get the column (0: run not known)."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(history)")}
    if "run_started" in columns:
        return
    try:
        conn.execute("ALTER TABLE history ADD COLUMN run_started REAL NOT NULL DEFAULT 0")
    except sqlite3.OperationalError as exc:  # another process added it first
        if "duplicate column" not in str(exc):
            raise


def _entry(row: tuple[Any, ...]) -> HistoryEntry:  # columns typed by the schema, not Python
    return HistoryEntry(
        kind=row[0],
        outcome=Outcome(row[1]),
        download_id=row[2],
        job_id=row[3],
        task_id=row[4],
        path=row[5],
        size=row[6],
        seconds=row[7],
        finished_at=row[8],
        reason=row[9],
        run_started=row[10],
    )
