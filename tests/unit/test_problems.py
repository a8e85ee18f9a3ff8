"""The problem log: repeats merge, standing problems clear, fleeting ones fade."""

from __future__ import annotations

import logging

from cdl_tui.core.model.secrets import register_secret
from cdl_tui.core.state.problems import (
    FLEETING,
    ProblemHandler,
    ProblemLog,
    Severity,
    current_problems,
    one_line,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_standing_problem_is_current_until_cleared_and_repeats_merge() -> None:
    clock = Clock()
    problems = ProblemLog(clock=clock)
    problems.note(Severity.WARNING, "the farm does not answer", key="farm", retry_at=1004.0)
    clock.now += 5
    problems.note(Severity.WARNING, "the farm still does not answer", key="farm", retry_at=1012.0)
    (entry,) = problems.view()
    assert (entry.count, entry.text, entry.retry_at) == (
        2,
        "the farm still does not answer",
        1012.0,
    )
    assert (entry.first_at, entry.last_at) == (1000.0, 1005.0)
    clock.now += 3600
    assert current_problems(problems.view(), clock.now) == [entry]
    problems.clear("farm")
    assert current_problems(problems.view(), clock.now) == []
    assert problems.view()[0].cleared_at == clock.now
    # After it cleared, the same key starts a new entry (the log keeps both).
    problems.note(Severity.ERROR, "down again", key="farm")
    assert [p.count for p in problems.view()] == [1, 2]


def test_a_problem_without_a_key_fades_and_only_consecutive_repeats_merge() -> None:
    clock = Clock()
    problems = ProblemLog(clock=clock)
    problems.note(Severity.WARNING, "disk slow")
    problems.note(Severity.WARNING, "disk slow")
    problems.note(Severity.ERROR, "other")
    problems.note(Severity.WARNING, "disk slow")
    assert [(p.text, p.count) for p in problems.view()] == [
        ("disk slow", 1),
        ("other", 1),
        ("disk slow", 2),
    ]
    clock.now += FLEETING + 1
    assert current_problems(problems.view(), clock.now) == []


def test_a_repeat_keeps_the_worst_severity() -> None:
    problems = ProblemLog()
    problems.note(Severity.ERROR, "given up", key="download 1")
    problems.note(Severity.WARNING, "attempt failed", key="download 1")
    assert problems.view()[0].severity is Severity.ERROR


def test_the_log_is_bounded_and_its_view_is_cached() -> None:
    problems = ProblemLog(limit=3)
    for n in range(10):
        problems.note(Severity.WARNING, f"problem {n}")
    view = problems.view()
    assert [p.text for p in view] == ["problem 9", "problem 8", "problem 7"]
    assert problems.view() is view


def test_text_is_one_scrubbed_line() -> None:
    problems = ProblemLog()
    problems.note(Severity.ERROR, "bad answer\nline two", key="x")
    register_secret("echoed-token-0123456789")
    problems.note(Severity.ERROR, "the farm said: bad token echoed-token-0123456789")
    texts = [p.text for p in problems.view()]
    assert texts[1] == "bad answer"
    assert "0123456789" not in texts[0]
    assert one_line("x" * 5000, limit=10) == "x" * 9 + "…"
    assert one_line("   ") == ""


def test_the_handler_notes_warnings_and_errors_with_their_key() -> None:
    problems = ProblemLog()
    logger = logging.getLogger("cdl.test-problems")
    handler = ProblemHandler(problems)
    logger.addHandler(handler)
    try:
        logger.info("not a problem")
        logger.warning("listing failed: %s", "refused", extra={"problem": "farm", "retry_at": 5.0})
        logger.error("job 1 is not on the farm")
    finally:
        logger.removeHandler(handler)
    error, warning = problems.view()
    assert (error.severity, error.key, error.text) == (
        Severity.ERROR,
        None,
        "job 1 is not on the farm",
    )
    assert (warning.severity, warning.key, warning.retry_at) == (Severity.WARNING, "farm", 5.0)
    assert warning.text == "listing failed: refused"


def test_a_flood_of_warnings_never_pushes_a_standing_problem_out() -> None:
    clock = Clock()
    problems = ProblemLog(limit=5, clock=clock)
    problems.note(Severity.ERROR, "job 99999 is not on the farm", key="job 99999")
    for n in range(50):
        clock.now += 1
        problems.note(Severity.WARNING, f"slow disk {n}")
    view = problems.view()
    assert len(view) == 5
    assert "job 99999 is not on the farm" in [p.text for p in view]
    assert current_problems(view, clock.now)[-1].key == "job 99999"


def test_a_clear_for_an_answer_sent_before_the_last_failure_leaves_it_standing() -> None:
    clock = Clock()
    problems = ProblemLog(clock=clock)
    problems.note(Severity.WARNING, "the farm answered 503", key="farm")
    problems.clear("farm", noted_before=clock.now - 1)  # a request sent before it failed
    assert current_problems(problems.view(), clock.now)
    problems.clear("farm", noted_before=clock.now + 1)  # sent after: the farm is back
    assert not current_problems(problems.view(), clock.now)


def test_url_queries_never_reach_the_log() -> None:
    problems = ProblemLog()
    problems.note(
        Severity.WARNING,
        "connection failed after 0 bytes: URL can't contain control characters. "
        "'/bucket/MJ 0080.exr?X-Goog-Signature=deadbeef123&X-Goog-Credential=key' (found ' ')",
    )
    (entry,) = problems.view()
    assert "deadbeef123" not in entry.text and "X-Goog" not in entry.text
    assert "/bucket/MJ 0080.exr?…" in entry.text
