"""The active set: one writer per final path, views that follow pauses."""

from __future__ import annotations

import threading

import pytest

from cdl_tui.core.model.errors import DestinationBusy
from cdl_tui.core.model.states import FileState
from cdl_tui.core.state.active import ActiveSet


def test_two_downloads_never_write_the_same_final_path(make_active) -> None:
    actives = ActiveSet(threading.RLock())
    first, second = make_active("1", "a.exr", "b.exr"), make_active("2", "b.exr")
    actives.claim_paths(first)
    actives.claim_paths(first)  # its own claim again: fine
    with pytest.raises(DestinationBusy, match="written by download 1"):
        actives.claim_paths(second)
    actives.release_paths(second)  # not its claim: nothing changes
    with pytest.raises(DestinationBusy):
        actives.claim_paths(second)
    actives.release_paths(first)
    actives.claim_paths(second)


def test_views_follow_a_global_pause_and_files_say_where_they_go(make_active) -> None:
    actives = ActiveSet(threading.RLock())
    one = make_active("1", "a.exr")
    actives.add(one)
    assert len(actives) == 1 and actives.get("1") is one
    (view,) = actives.views(paused_all=False)
    assert not view.paused and view.files[0].state is FileState.QUEUED
    (view,) = actives.views(paused_all=True)
    assert view.paused and view.eta is None
    (detail,) = one.file_details(running=False)
    assert detail.final_path == "/out/a.exr" and detail.temp_path.endswith(".part")
    assert actives.pop("1") is one and actives.pop("1") is None and len(actives) == 0
