"""--on-job-done: the command's environment, once per job, never with a failure."""

from __future__ import annotations

import logging
from pathlib import Path

from cdl_tui.core.model.secrets import register_secret
from cdl_tui.core.model.states import Outcome
from cdl_tui.core.model.views import HistoryEntry, JobView
from cdl_tui.core.run.hooks import JobDoneHook, hook_environment, job_variables


def entry(kind: str, outcome: Outcome, size: int, path: str = "") -> HistoryEntry:
    return HistoryEntry(kind, outcome, "7", "08285", "001", path, size, 0.0, 0.0)


def test_a_hook_gets_no_credential_by_name_or_by_value() -> None:
    register_secret("hook-test-token-0123456789abcdef")  # the key this run was given
    env = hook_environment(
        {
            "PATH": "/usr/bin",
            "CDL_API_KEY": "k" * 40,
            "CONDUCTOR_API_KEY_PATH": "/keys/a.json",
            "MY_COPY": "Bearer hook-test-token-0123456789abcdef",
        }
    )
    assert env == {"PATH": "/usr/bin"}


def test_the_variables_say_what_this_run_did_for_the_job(tmp_path: Path) -> None:
    files = [
        entry("file", Outcome.DL, 100),
        entry("file", Outcome.DL, 50),
        entry("file", Outcome.CACHED, 7),
    ]
    tasks = [entry("task", Outcome.DL, 157, "/renders/shot/001")]
    assert job_variables("08285", 3, files, tasks, None) == {
        "CDL_JOB_ID": "08285",
        "CDL_OUTPUT_DIR": "/renders/shot/001",
        "CDL_TASKS": "3",
        "CDL_FILES": "2",
        "CDL_FILES_CACHED": "1",
        "CDL_BYTES": "150",
    }
    assert job_variables("08285", 3, files, tasks, tmp_path)["CDL_OUTPUT_DIR"] == str(
        tmp_path / "08285"
    )


def test_the_command_runs_once_per_job_with_the_variables(tmp_path: Path) -> None:
    out = tmp_path / "ran.txt"
    hook = JobDoneHook(f'echo "$CDL_JOB_ID $CDL_TASKS" >> {out}')
    view = JobView("08285", listed=2, finished=2, failed=0, listing_complete=True, error=None)
    hook.job_complete(view, [], [], None)
    hook.job_complete(view, [], [], None)  # a retry completed it again: not twice
    hook.join()
    assert out.read_text() == "08285 2\n"


def test_a_job_with_a_failure_runs_no_hook(tmp_path: Path, caplog) -> None:
    out = tmp_path / "ran.txt"
    hook = JobDoneHook(f"touch {out}")
    view = JobView("08285", listed=2, finished=2, failed=1, listing_complete=True, error=None)
    with caplog.at_level(logging.WARNING, logger="cdl.hooks"):
        hook.job_complete(view, [], [], None)
    hook.join()
    assert not out.exists() and hook.threads == []
    assert "had failures" in caplog.text


def test_a_failing_or_hanging_command_is_logged_never_fatal(caplog) -> None:
    with caplog.at_level(logging.INFO, logger="cdl.hooks"):
        failing = JobDoneHook("echo 'no space left' >&2; exit 3")
        assert failing.fire("08285", {})
        failing.join()
        hanging = JobDoneHook("sleep 5", timeout=0.2)
        assert hanging.fire("08286", {})
        hanging.join()
    assert "exited 3: no space left" in caplog.text
    assert "ran over 0s and was stopped" in caplog.text
