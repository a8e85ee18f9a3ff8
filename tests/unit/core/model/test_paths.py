"""path_parts: the cheap split a worker makes per file, against pathlib's own."""

from pathlib import PurePosixPath

import pytest

from cdl_tui.core.model.paths import path_parts


@pytest.mark.parametrize(
    "path",
    ["a.exr", "shot/beauty/a.0001.exr", "a//b/./c.exr", "./a/b", "a/b/", "é/ü ß/名前.exr"],
)
def test_path_parts_are_the_parts_pathlib_gives(path):
    assert path_parts(path) == PurePosixPath(path).parts
