"""The md5 cache: a file is trusted while it is the very entry that was verified."""

from __future__ import annotations

import os
from pathlib import Path

from cdl_tui.core.files.journal import Journal
from cdl_tui.core.files.verified import VerifiedFiles
from cdl_tui.core.model.models import RemoteFile

MD5 = "ZZZZZZZZZZZZZZZZZZZZZZ=="


def remote(md5: str = MD5) -> RemoteFile:
    return RemoteFile(url="http://s/a.exr", md5=md5, relative_path="a.exr", size=5)


def test_this_runs_verification_holds_until_the_file_changes(tmp_path: Path) -> None:
    dest = tmp_path / "a.exr"
    dest.write_bytes(b"frame")
    verified = VerifiedFiles(None)
    assert not verified.trusted(dest, remote(), os.lstat(dest))
    verified.remember(dest, remote(), os.lstat(dest))
    assert verified.trusted(dest, remote(), os.lstat(dest))
    assert not verified.trusted(dest, remote("other md5 value aaaa=="), os.lstat(dest))
    dest.write_bytes(b"FRAME")  # same size, new content: a new mtime
    os.utime(dest, ns=(1, 1))
    assert not verified.trusted(dest, remote(), os.lstat(dest))
    assert not verified.trusted(dest, remote(), None)


def test_a_link_is_never_trusted(tmp_path: Path) -> None:
    real = tmp_path / "real.exr"
    real.write_bytes(b"frame")
    link = tmp_path / "a.exr"
    link.symlink_to(real)
    verified = VerifiedFiles(None)
    verified.remember(link, remote(), os.lstat(link))
    assert not verified.trusted(link, remote(), os.lstat(link))


def test_the_journal_answers_for_unchanged_files_only_when_the_cache_is_on(
    tmp_path: Path,
) -> None:
    dest = tmp_path / "a.exr"
    dest.write_bytes(b"frame")
    journal = Journal(tmp_path / "journal.sqlite")
    try:
        VerifiedFiles(journal).remember(dest, remote(), os.lstat(dest))
        journal.flush()
        st = os.lstat(dest)
        assert VerifiedFiles(journal).journal_md5(dest, st) == MD5
        assert VerifiedFiles(journal, md5_cache=False).journal_md5(dest, st) is None
        assert VerifiedFiles(None).journal_md5(dest, st) is None
        os.utime(dest, ns=(1, 1))
        assert VerifiedFiles(journal).journal_md5(dest, os.lstat(dest)) is None
    finally:
        journal.close()
