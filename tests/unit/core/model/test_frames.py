"""A job's files as frame sequences: ranges on disk, missing, empty; single files."""

from __future__ import annotations

from cdl_tui.core.model.frames import BATCH, FrameCatalog, frame_set, suspicious

BEAUTY = "renders/beauty/MJ_0100.beauty.{:04d}.exr"


def catalog_of(frames, *, on_disk=None, sizes=None, path=BEAUTY) -> FrameCatalog:
    catalog = FrameCatalog("08285")
    for frame in frames:
        catalog.listed(path.format(frame), (sizes or {}).get(frame, 1000))
    for frame in frames if on_disk is None else on_disk:
        catalog.placed(path.format(frame), (sizes or {}).get(frame, 1000))
    return catalog


def test_the_example_frames_missing_and_empty() -> None:
    listed = [f for f in range(1001, 1101) if f not in (1050, 1051, 1052, 1077)]
    view = catalog_of(listed, sizes={1090: 0}).view()
    (seq,) = view.sequences
    assert seq.pattern == "renders/beauty/MJ_0100.beauty.####.exr"
    assert seq.frames == "1001-1049,1053-1076,1078-1100"
    assert (seq.missing, seq.empty) == ("1050-1052,1077", "1090")
    assert (seq.files, seq.bytes, seq.listed, seq.first, seq.last) == (96, 95000, 96, 1001, 1100)
    assert view.singles == () and view.missing == 4


def test_frames_listed_but_not_on_disk_are_missing_too() -> None:
    view = catalog_of(range(1, 11), on_disk=[1, 2, 3, 7]).view()
    (seq,) = view.sequences
    assert (seq.frames, seq.missing) == ("1-3,7", "4-6,8-10")
    assert seq.pattern == "renders/beauty/MJ_0100.beauty.####.exr"


def test_a_frame_under_a_tenth_of_its_neighbours_is_suspicious() -> None:
    sizes = {1: 100, 2: 100, 3: 9, 4: 100, 5: 100, 6: 11, 7: 100, 8: 100, 9: 100}
    assert suspicious(sizes) == [3]  # 9 < 10 % of 100; 11 is not
    # The 4 nearest by frame number: 5 is judged by 1-4, not by the far 50-53.
    near_and_far = {1: 100, 2: 100, 3: 100, 4: 100, 5: 15, 50: 1000, 51: 1000, 52: 1000}
    assert suspicious({**near_and_far, 53: 1000}) == []
    assert suspicious({**near_and_far, 5: 9, 53: 1000}) == [5]
    assert suspicious({1: 0, 2: 7}) == [1]  # empty is always suspicious
    assert suspicious({1: 1000, 2: 1000, 3: 1000, 4: 1000, 5: 50}) == [5]  # at the edge
    assert suspicious({1: 1000}) == []  # no neighbour: no judgement


def test_files_with_no_frame_or_alone_in_their_sequence_are_listed_singly() -> None:
    catalog = catalog_of(range(1001, 1004))
    catalog.listed("renders/scene.abc", 50)
    catalog.listed("comp/MJ_0100.comp.1001.exr", 70)  # one frame: no sequence
    catalog.placed("renders/scene.abc", 50)
    view = catalog.view()
    assert [s.pattern for s in view.sequences] == ["renders/beauty/MJ_0100.beauty.####.exr"]
    assert [(s.path, s.size, s.on_disk) for s in view.singles] == [
        ("comp/MJ_0100.comp.1001.exr", 70, False),
        ("renders/scene.abc", 50, True),
    ]
    assert view.missing == 1


def test_a_listing_still_running_is_grouped_as_it_comes_in_batches() -> None:
    catalog = FrameCatalog("08285")
    for frame in range(1001, 1001 + BATCH + 10):
        catalog.listed(BEAUTY.format(frame), 10)
    assert len(catalog._buffer) == 10  # a batch was grouped on the way
    catalog.placed(BEAUTY.format(1001), 10)
    (seq,) = catalog.view().sequences
    assert (seq.frames, seq.missing) == ("1001", f"1002-{1000 + BATCH + 10}")
    for frame in range(2001, 2005):  # the listing goes on: the same sequence grows
        catalog.listed(BEAUTY.format(frame), 10)
    (seq,) = catalog.view().sequences
    assert (seq.first, seq.last, seq.listed) == (1001, 2004, BATCH + 14)
    catalog.listed(BEAUTY.format(1001), 10)  # listed again (a retry): counted once
    assert catalog.view().sequences[0].listed == BATCH + 14


def test_sequences_apart_by_folder_and_name_one_whatever_its_padding() -> None:
    catalog = catalog_of(range(1, 4))
    for frame in range(1, 4):
        catalog.listed(f"renders/depth/MJ_0100.depth.{frame:04d}.exr", 10)
    patterns = [s.pattern for s in catalog.view().sequences]
    assert patterns == [
        "renders/beauty/MJ_0100.beauty.####.exr",
        "renders/depth/MJ_0100.depth.####.exr",
    ]
    # Padding that changes within a sequence, or from one batch of paths to the next,
    # does not split it (fileseq reads each batch on its own).
    mixed = FrameCatalog("08285")
    for name in ("a.0001", "a.0002", "a.3", "a.0004", "a.0005", "a.6"):
        mixed.listed(f"{name}.exr", 10)
        mixed.placed(f"{name}.exr", 10)
    (seq,) = mixed.view().sequences
    assert (seq.frames, seq.missing) == ("1-6", "")
    for names in (range(1, 301), range(300, 0, -1), range(9700, 10300)):
        unpadded = FrameCatalog("08285")
        for frame in names:
            unpadded.listed(f"b.{frame}.exr", 10)
        (seq,) = unpadded.view().sequences
        assert seq.listed == len(names) and seq.missing == f"{min(names)}-{max(names)}"


def test_gaps_of_millions_are_ranges_not_lists() -> None:
    catalog = FrameCatalog("08285")
    for stamp in (1_700_000_000, 1_700_300_000, 1_800_000_000):
        catalog.listed(f"logs/run.{stamp}.txt", 10)
        catalog.placed(f"logs/run.{stamp}.txt", 10)
    (seq,) = catalog.view().sequences
    assert seq.frames == "1700000000,1700300000,1800000000"
    assert seq.missing == "1700000001-1700299999,1700300001-1799999999"


def test_frame_sets_are_written_as_fileseq_writes_them() -> None:
    assert frame_set([]) == "" and frame_set([5]) == "5"
    assert frame_set([1, 2, 3, 7, 9, 10]) == "1-3,7,9-10"
