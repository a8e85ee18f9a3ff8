"""Where files land, and the on-disk checks that keep them inside their root."""

from pathlib import Path

import pytest

from cdl_tui.core.files.destination import DestinationPolicy, output_dir_problem, plan_files
from cdl_tui.core.model.models import parse_download
from cdl_tui.core.model.paths import UnsafePath

MD5 = "1B2M2Y8AsgTpgAmY7PhCfg=="


def download(output_dir="/tmp/x", paths=("a/b.exr",)):
    return parse_download(
        {
            "download_id": "1",
            "job_id": "08285",
            "task_id": "004",
            "output_dir": output_dir,
            "size": 0,
            "files": [
                {"url": "http://h/f", "md5": MD5, "relative_path": p, "size": 0} for p in paths
            ],
        }
    )


def test_output_puts_each_job_in_its_own_folder(tmp_path):
    root, warning = DestinationPolicy(output=tmp_path).root_for(download())
    assert root == tmp_path / "08285"
    assert warning is None


def test_the_downloads_own_output_dir_is_used_when_it_can_exist(tmp_path):
    target = tmp_path / "show" / "renders"
    root, warning = DestinationPolicy().root_for(download(str(target)))
    assert root == target and warning is None


@pytest.mark.parametrize(
    ("output_dir", "problem", "mirror"),
    [
        ("C:\\proj\\renders", "is a Windows path", "C/proj/renders"),
        ("\\\\server\\share\\renders", "is a Windows path", "server/share/renders"),
        ("relative/renders", "is not an absolute path", "relative/renders"),
        ("", "is empty", ""),
        ("/etc/cron.d", "is a system folder", "etc/cron.d"),
        ("/srv/../home/x/.ssh", "goes through a hidden or relative folder", "srv/home/x/_ssh"),
    ],
)
def test_unusable_output_dirs_fall_back_with_a_warning(tmp_path, output_dir, problem, mirror):
    """Under the fallback, the refused output_dir becomes folders: Downloads from two
    different output_dirs never share a path there."""
    assert problem in output_dir_problem(output_dir)
    policy = DestinationPolicy(fallback=tmp_path / "fallback")
    root, warning = policy.root_for(download(output_dir))
    assert str(root.relative_to(tmp_path / "fallback" / "08285")).startswith(f"{mirror}@")
    assert problem in warning and str(root) in warning and repr(output_dir) in warning


def test_an_unwritable_output_dir_falls_back(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        problem = output_dir_problem(str(locked / "renders"))
    finally:
        locked.chmod(0o700)
    import os

    if os.geteuid() == 0:  # root can write anywhere; the check must still say nothing wrong
        assert problem is None
    else:
        assert "cannot be written here" in problem


def test_plan_maps_relative_paths_under_the_root(tmp_path):
    planned = plan_files(download(paths=("a/b.exr", "c.exr")), tmp_path)
    assert [dest for _, dest in planned] == [tmp_path / "a/b.exr", tmp_path / "c.exr"]


def test_a_symlink_out_of_the_root_is_refused(tmp_path):
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "a" / "escape").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafePath, match=r"'a/escape' in .* is a symbolic link"):
        plan_files(download(paths=("a/escape/b.exr",)), root)


def test_a_symlink_inside_the_root_is_refused_too(tmp_path):
    """It could be swapped for one that leads out between the check and the write: we
    never write through a link we did not make."""
    root = tmp_path / "root"
    (root / "real").mkdir(parents=True)
    (root / "alias").symlink_to(root / "real", target_is_directory=True)
    with pytest.raises(UnsafePath, match="is a symbolic link"):
        plan_files(download(paths=("alias/b.exr",)), root)


def test_a_file_where_a_folder_goes_is_refused(tmp_path):
    (tmp_path / "a").write_bytes(b"")
    with pytest.raises(UnsafePath, match=r"'a' in .* is a file, not a folder"):
        plan_files(download(paths=("a/b.exr",)), tmp_path)


def test_two_files_on_one_path_are_refused(tmp_path):
    with pytest.raises(UnsafePath, match="written twice"):
        plan_files(download(paths=("a/b.exr", "a//./b.exr")), tmp_path)


@pytest.mark.parametrize("paths", [("pre", "pre/child"), ("pre/child/x.exr", "pre/child")])
def test_a_file_that_is_also_a_folder_of_another_is_refused(tmp_path, paths):
    with pytest.raises(UnsafePath, match=r"'pre(/child)?' is a file and also the folder of"):
        plan_files(download(paths=paths), tmp_path)


def test_an_output_dir_that_resolves_to_a_system_folder_is_refused(tmp_path):
    (tmp_path / "innocent").symlink_to("/etc", target_is_directory=True)
    problem = output_dir_problem(str(tmp_path / "innocent" / "cron.d"))
    assert problem == "is a system folder (it resolves to /etc/cron.d)"


def test_an_output_dir_that_resolves_into_a_hidden_folder_is_refused(tmp_path):
    (tmp_path / ".ssh").mkdir()
    (tmp_path / "keys").symlink_to(tmp_path / ".ssh", target_is_directory=True)
    assert "goes through a hidden" in output_dir_problem(str(tmp_path / "keys"))


def test_output_roots_accept_only_output_dirs_under_them_or_a_path_map_target(tmp_path):
    renders, mapped, other = tmp_path / "renders", tmp_path / "mapped", tmp_path / "other"
    for folder in (renders, mapped, other):
        folder.mkdir()
    policy = DestinationPolicy(
        fallback=tmp_path / "fallback",
        output_roots=(renders,),
        path_map=(("/Volumes/af", str(mapped)),),
    )
    assert policy.root_for(download(str(renders / "show")))[0] == renders / "show"
    assert policy.root_for(download("/Volumes/af/show"))[0] == mapped / "show"
    root, warning = policy.root_for(download(str(other / "show")))
    mirror = str(other / "show").lstrip("/")
    assert str(root.relative_to(tmp_path / "fallback" / "08285")).startswith(f"{mirror}@")
    assert f"{str(other / 'show')!r} is not under output_roots ({renders}, {mapped})" in warning
    (renders / "sneaky").symlink_to(other, target_is_directory=True)
    assert "not under output_roots" in policy.root_for(download(str(renders / "sneaky")))[1]


def test_roots_are_real_paths(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    root, _ = DestinationPolicy(output=tmp_path / "link").root_for(download())
    assert root == tmp_path / "real" / "08285"


def test_the_root_may_not_exist_yet(tmp_path):
    planned = plan_files(download(paths=("x.exr",)), tmp_path / "new" / "root")
    assert planned[0][1] == Path(tmp_path / "new" / "root" / "x.exr")


def test_an_output_folder_on_storage_that_is_away_is_a_warning_not_an_error(tmp_path, monkeypatch):
    import errno

    from cdl_tui.core.files import destination
    from cdl_tui.core.model.errors import ConfigError
    from cdl_tui.core.model.settings import Permissions

    def away(path, permissions, **kw):
        raise OSError(errno.ENOTCONN, "Transport endpoint is not connected")

    monkeypatch.setattr(destination, "make_dirs", away)
    warning = destination.prepare_output_root(tmp_path / "share", "the output", Permissions())
    assert warning is not None and "Transport endpoint is not connected" in warning

    def refused(path, permissions, **kw):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(destination, "make_dirs", refused)
    with pytest.raises(ConfigError, match="Read-only file system"):
        destination.prepare_output_root(tmp_path / "ro", "the output", Permissions())


def test_mirrored_output_dirs_never_collide():
    from cdl_tui.core.files.destination import mirrored

    pairs = [
        ("C:\\r\\x", "/C/r/x"),
        ("/a:/x", "/a/x"),
        ("/x /y", "/x/y"),
        ("/r/.h", "/r/_h"),
        ("/a/../b", "/a/b"),
        ("/" + "n" * 300 + "1", "/" + "n" * 300 + "2"),
    ]
    for one, other in pairs:
        assert mirrored(one) != mirrored(other), (one, other)
    assert str(mirrored("/shots/MJ/renders")).startswith("shots/MJ/renders@")
    many = mirrored("/" + "/".join(f"d{i}" for i in range(100)) + "/\x00\x1b[31m")
    assert len(many.parts) <= 16 and all(c.isprintable() for c in str(many))


@pytest.mark.parametrize(
    "output_dir", ["/renders/a\x00b", "/renders/" + "x" * 5000, "/renders/ok\x1b[2J"]
)
def test_an_output_dir_that_is_no_usable_path_falls_back_without_an_error(tmp_path, output_dir):
    policy = DestinationPolicy(fallback=tmp_path / "fallback")
    root, warning = policy.root_for(download(output_dir))
    assert root.is_relative_to(tmp_path / "fallback")
    assert warning is not None


def test_the_checked_real_path_is_the_root_used(tmp_path):
    from cdl_tui.core.files.destination import check_output_dir

    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    real, reason = check_output_dir(str(tmp_path / "link" / "shot"))
    assert (real, reason) == (tmp_path / "real" / "shot", None)
    root, _ = DestinationPolicy().root_for(download(str(tmp_path / "link" / "shot")))
    assert root == real
