"""Folders opened without following links (core.folders), on a real filesystem."""

import os
from pathlib import Path

import pytest

from cdl_tui.core.files.folders import FolderTree, OpenRoots, open_folder
from cdl_tui.core.model.errors import LinkRefused


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_tree_of_many_folders_keeps_few_descriptors_open(tmp_path):
    before = open_fds()
    with FolderTree(tmp_path.resolve() / "root", None, None) as tree:
        for index in range(300):
            folder = tree.folder(("shot", f"layer{index:03d}"))
            fd = folder.create("f.exr")
            os.close(fd)
            assert open_fds() - before <= FolderTree.MAX_OPEN + 1
        assert tree.existing(("shot", "layer000")) is not None  # opened again on demand
        assert tree.existing(("shot", "missing")) is None  # and nothing is created
    assert open_fds() == before
    assert not (tmp_path / "root" / "shot" / "missing").exists()
    assert len(list((tmp_path / "root" / "shot").iterdir())) == 300


def test_a_link_on_the_way_is_refused_not_followed(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    with pytest.raises(LinkRefused, match="is a symbolic link"):
        open_folder(tmp_path.resolve() / "link" / "inside")
    assert not (tmp_path / "real" / "inside").exists()
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(LinkRefused, match="is a file"):
        open_folder(tmp_path.resolve() / "file" / "inside")


def test_create_replaces_a_planted_link_and_owned_regular_refuses_strangers(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"keep")
    folder = open_folder(tmp_path.resolve() / "f")
    try:
        Path(tmp_path / "f" / "name").symlink_to(outside)
        assert folder.owned_regular("name") is None  # a link is not ours to use
        fd = folder.create("name")
        os.write(fd, b"ours")
        os.close(fd)
        assert outside.read_bytes() == b"keep"
        assert (tmp_path / "f" / "name").read_bytes() == b"ours"
        os.link(tmp_path / "f" / "name", tmp_path / "second-link")
        assert folder.owned_regular("name") is None  # two links: not only ours
    finally:
        folder.close()


def _write_through(roots: OpenRoots, root: Path, name: str) -> None:
    with FolderTree(root, None, None, roots) as tree:
        os.close(tree.folder(()).create(name))


def test_a_root_kept_open_is_walked_again_once_its_path_leads_elsewhere(tmp_path):
    root = tmp_path.resolve() / "out" / "00001"
    roots = OpenRoots()
    before = open_fds()
    _write_through(roots, root, "a.exr")
    _write_through(roots, root, "b.exr")  # the kept root: same folder
    assert sorted(p.name for p in root.iterdir()) == ["a.exr", "b.exr"]
    # The folder is moved away and another takes its place: files go to the new one.
    root.rename(tmp_path / "moved")
    root.mkdir()
    _write_through(roots, root, "c.exr")
    assert [p.name for p in root.iterdir()] == ["c.exr"]
    assert not (tmp_path / "moved" / "c.exr").exists()
    # Removed: made again (or, for a look without creating, not found).
    (root / "c.exr").unlink()
    root.rmdir()
    with pytest.raises(FileNotFoundError):
        roots.open(root, None, None, create=False)
    _write_through(roots, root, "d.exr")
    assert [p.name for p in root.iterdir()] == ["d.exr"]
    assert open_fds() == before + 1  # the one kept root
    roots.close()
    assert open_fds() == before


def test_a_kept_root_replaced_by_a_link_is_refused_not_followed(tmp_path):
    root = tmp_path.resolve() / "out"
    roots = OpenRoots()
    _write_through(roots, root, "a.exr")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    root.rename(tmp_path / "old")
    root.symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(LinkRefused, match="symbolic link"):
        _write_through(roots, root, "b.exr")
    assert list(elsewhere.iterdir()) == []
    roots.close()


def test_a_kept_root_moved_away_and_linked_back_is_refused(tmp_path):
    # The same folder (same inode) reached through a link: written through, it would put
    # the files wherever the folder was moved to, outside the output folder.
    base = tmp_path.resolve()
    root = base / "allowed" / "out" / "00001"
    roots = OpenRoots()
    _write_through(roots, root, "a.exr")
    outside = base / "outside"
    outside.mkdir()
    (base / "allowed" / "out").rename(outside / "out")
    (base / "allowed" / "out").symlink_to(outside / "out", target_is_directory=True)
    with pytest.raises(LinkRefused, match="symbolic link"):
        _write_through(roots, root, "b.exr")
    assert [p.name for p in outside.rglob("*.exr")] == ["a.exr"]
    roots.close()


def test_roots_closed_keep_nothing_more(tmp_path):
    root = tmp_path.resolve() / "out"
    roots = OpenRoots()
    before = open_fds()
    roots.close()
    _write_through(roots, root, "a.exr")  # a straggler after the engine's end
    assert (root / "a.exr").exists()
    assert open_fds() == before
