"""The journal tells runs apart (History separates them), old journals included."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from cdl_tui.core.files.journal import Journal
from cdl_tui.core.model.states import Outcome
from cdl_tui.core.model.views import HistoryEntry

OLD_HISTORY = """
CREATE TABLE history (
    id INTEGER PRIMARY KEY, kind TEXT NOT NULL, outcome TEXT NOT NULL,
    download_id TEXT NOT NULL, job_id TEXT NOT NULL, task_id TEXT NOT NULL,
    path TEXT NOT NULL, size INTEGER NOT NULL, seconds REAL NOT NULL,
    finished_at REAL NOT NULL, reason TEXT NOT NULL
);
INSERT INTO history VALUES (1, 'task', 'DL', '7', '08285', '001', '/out', 5, 1.0, 100.0, '');
"""


def entry(finished_at: float, run_started: float) -> HistoryEntry:
    return HistoryEntry(
        "task", Outcome.DL, "8", "08285", "002", "/out", 5, 1.0, finished_at, "", run_started
    )


def test_an_old_journal_gains_run_started_and_keeps_its_history(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(OLD_HISTORY)
    conn.close()
    journal = Journal(path)
    try:
        (old,) = journal.recent_history(10)
        assert (old.download_id, old.run_started) == ("7", 0.0)
        journal.record_history(entry(200.0, 150.0))
        journal.flush()
        assert [e.run_started for e in journal.recent_history(10)] == [0.0, 150.0]
        assert [e.run_started for e in journal.job_history("08285", 1e12)] == [0.0, 150.0]
    finally:
        journal.close()
    # Opened again (the column exists now): nothing to add, nothing lost.
    again = Journal(path)
    try:
        assert len(again.recent_history(10)) == 2
    finally:
        again.close()
