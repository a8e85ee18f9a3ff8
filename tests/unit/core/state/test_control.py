"""Pause and stop between chunks, with real threads and a fake Download."""

from __future__ import annotations

import threading
import time

import pytest

from cdl_tui.core.model.errors import StopRequested
from cdl_tui.core.state.control import RunControl


def in_thread(target) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            target()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, errors


def test_a_paused_worker_waits_at_its_checkpoint_until_resumed(make_active) -> None:
    control = RunControl(threading.RLock())
    one = make_active("1", "a.exr")
    control.pause()
    assert not control.may_start()
    thread, errors = in_thread(lambda: control.checkpoint(one))
    time.sleep(0.1)
    assert thread.is_alive()  # waiting
    control.resume()
    thread.join(2)
    assert not thread.is_alive() and errors == [] and control.may_start()


def test_a_stop_or_a_cancel_ends_a_wait_with_stop_requested(make_active) -> None:
    control = RunControl(threading.RLock())
    one = make_active("1", "a.exr")
    one.paused = True
    thread, errors = in_thread(lambda: control.checkpoint(one))
    time.sleep(0.05)
    one.cancelled = True
    control.wake()
    thread.join(2)
    assert [str(e) for e in errors] == ["cancelled"]
    two = make_active("2", "b.exr")
    thread, errors = in_thread(lambda: control.sleep(two, 30))
    time.sleep(0.05)
    assert control.stop() and not control.stop()  # once only
    thread.join(2)
    assert [str(e) for e in errors] == ["stopping"] and not control.may_start()
    with pytest.raises(StopRequested):
        control.checkpoint(two)


def test_sleep_returns_when_its_time_is_up(make_active) -> None:
    control = RunControl(threading.RLock())
    started = time.monotonic()
    control.sleep(make_active("1", "a.exr"), 0.05)
    assert time.monotonic() - started >= 0.05
