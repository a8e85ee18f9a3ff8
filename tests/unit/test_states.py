from cdl_tui.core.model.states import FileState, Outcome, file_outcome


def test_file_states_map_to_the_farms_statuses_as_the_legacy_client_did():
    assert {s: s.farm_status for s in FileState} == {
        FileState.QUEUED: "downloading",
        FileState.PREPARING: "downloading",
        FileState.HASHING: "downloading",
        FileState.DOWNLOADING: "downloading",
        FileState.COMPLETE: "downloaded",
        FileState.CACHED: "downloaded",
        FileState.SKIPPED: "downloaded",
        FileState.FAILED: "pending",
    }


def test_the_legacy_names_are_kept():
    assert str(FileState.PREPARING) == "PREPARING DIRECTORY"
    assert str(FileState.HASHING) == "HASHING EXISTING FILE"


def test_outcomes():
    assert file_outcome(FileState.COMPLETE) is Outcome.DL
    assert file_outcome(FileState.CACHED) is Outcome.CACHED
    assert file_outcome(FileState.FAILED) is Outcome.FAILED
    assert [o.value for o in Outcome if o.ok] == ["DL", "CACHED", "SKIPPED"]
    assert {s for s in FileState if s.finished} == {
        FileState.COMPLETE,
        FileState.CACHED,
        FileState.SKIPPED,
        FileState.FAILED,
    }
