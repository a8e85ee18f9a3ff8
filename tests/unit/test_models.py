"""Validation of what the farm sends: one bad Download never stops the others."""

import base64
import copy
import hashlib

import pytest

from cdl_tui.core.model.errors import InvalidDownload
from cdl_tui.core.model.models import parse_download, parse_downloads

MD5 = base64.b64encode(hashlib.md5(b"x").digest()).decode()


def good_download(**changes):
    download = {
        "download_id": "6227709558521856",
        "job_id": "08285",
        "task_id": "004",
        "output_dir": "/Volumes/af/show/renders",
        "size": 10,
        "location": "studio-a",
        "files": [
            {
                "url": "https://storage.example/a?sig=1",
                "md5": MD5,
                "relative_path": "MJ_0080/beauty/MJ_0080.beauty.1004.exr",
                "size": 10,
            }
        ],
    }
    download.update(changes)
    return download


def test_a_valid_download_parses_into_frozen_dataclasses():
    download = parse_download(good_download())
    assert download.label == "08285:004"
    assert download.files[0].size == 10
    assert download.files[0].md5_digest == hashlib.md5(b"x").digest()
    with pytest.raises(AttributeError):
        download.size = 3  # frozen


def test_ids_are_padded_and_a_null_location_is_none():
    download = parse_download(good_download(job_id="8285", task_id="4", location=None))
    assert (download.job_id, download.task_id, download.location) == ("08285", "004", None)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"download_id": None}, "'download_id' is missing"),
        ({"download_id": 6.2e15}, "'download_id' must be a string or a whole number, got float"),
        ({"download_id": True}, "'download_id' must be a string or a whole number, got bool"),
        ({"download_id": ""}, "'download_id' is empty"),
        ({"download_id": "x" * 300}, "'download_id' is longer than 256 characters"),
        ({"job_id": -5}, "'job_id' must not be negative"),
        ({"task_id": 1.5}, "'task_id' must be digits or a whole number, got float"),
        ({"job_id": "08x85"}, "'job_id' must be digits"),
        ({"size": "10"}, "'size' must be an integer, got str"),
        ({"size": True}, "'size' must be an integer, got bool"),
        ({"size": -1}, "'size' must not be negative"),
        ({"files": None}, "'files' is missing"),
        ({"files": {}}, "'files' must be a list, got dict"),
        ({"location": 3}, "'location' must be a string or null"),
        ({"output_dir": None}, "'output_dir' is missing"),
    ],
)
def test_missing_or_ill_typed_fields_are_refused_with_the_reason(changes, reason):
    with pytest.raises(InvalidDownload) as info:
        parse_download(good_download(**changes))
    assert reason in str(info.value)


@pytest.mark.parametrize(
    ("file_changes", "reason"),
    [
        ({"md5": "not base64!"}, "'md5' is not the base64 of a 16-byte digest"),
        ({"md5": base64.b64encode(b"short").decode()}, "16-byte digest"),
        ({"url": "ftp://x/y"}, "'url' is not an http(s) URL"),
        ({"size": None}, "file 1: 'size' is missing"),
        ({"relative_path": "/etc/passwd"}, "is absolute"),
        ({"relative_path": "a/../../etc/passwd"}, "climbs out"),
        ({"relative_path": "C:/Windows/x"}, "names a drive"),
        ({"relative_path": "a\\..\\b"}, "backslash"),
        ({"relative_path": "a\x00b"}, "NUL byte"),
        ({"relative_path": "a/" + "n" * 256}, "longer than 255 bytes"),
    ],
)
def test_bad_files_refuse_their_download(file_changes, reason):
    download = good_download()
    download["files"][0].update(file_changes)
    with pytest.raises(InvalidDownload) as info:
        parse_download(download)
    assert reason in str(info.value)


def test_harmless_path_spellings_are_normalized():
    download = good_download()
    download["files"][0]["relative_path"] = "./MJ//beauty/./x.exr"
    assert parse_download(download).files[0].relative_path == "MJ/beauty/x.exr"


def test_one_bad_download_does_not_stop_the_others():
    bad = good_download(download_id="999", size="big")
    not_an_object = ["nope"]
    other = good_download(download_id="777")
    batch = parse_downloads([good_download(), bad, not_an_object, other], next_cursor="c1")
    assert [d.download_id for d in batch.downloads] == ["6227709558521856", "777"]
    assert batch.next_cursor == "c1"
    assert len(batch.rejected) == 2
    assert batch.rejected[0].download_id == "999"
    assert "'size' must be an integer" in batch.rejected[0].reason
    assert batch.rejected[1].download_id is None
    assert batch.rejected[1].reason.startswith("download #3:")


def test_a_download_with_no_files_is_valid():
    download = parse_download(good_download(files=[], size=0))
    assert download.files == ()


def test_the_input_is_not_modified():
    raw = good_download()
    before = copy.deepcopy(raw)
    parse_download(raw)
    assert raw == before


def test_a_non_list_answer_is_an_error():
    with pytest.raises(InvalidDownload):
        parse_downloads({"download_id": "1"})


# A farm we did not write (the vendor's) sends download_id as a JSON number: a 64-bit
# datastore ID, over 2**53, so a float would change it.
BIG_ID = 2**62 + 12345


def test_a_numeric_download_id_is_kept_exactly_and_in_its_type():
    download = parse_download(good_download(download_id=BIG_ID))
    assert download.download_id == str(BIG_ID)  # the text: keys, screens, URL paths
    assert download.wire_id == BIG_ID  # what status reports send back
    assert type(download.wire_id) is int


def test_a_string_download_id_is_sent_back_as_a_string():
    download = parse_download(good_download(download_id="dl-0042"))
    assert (download.download_id, download.wire_id) == ("dl-0042", "dl-0042")


def test_numeric_job_and_task_ids_are_padded():
    download = parse_download(good_download(job_id=8285, task_id=4))
    assert (download.job_id, download.task_id, download.label) == ("08285", "004", "08285:004")


def test_unknown_fields_are_ignored():
    raw = good_download(priority=3, labels={"a": 1})
    raw["files"][0]["job_id"] = "08285"  # the vendor repeats these in each file
    raw["files"][0]["checksum_type"] = "md5"
    assert parse_download(raw).download_id == "6227709558521856"


def test_a_rejected_download_keeps_a_numeric_id_to_report_it():
    (rejected,) = parse_downloads([good_download(download_id=BIG_ID, size="big")]).rejected
    assert rejected.download_id == str(BIG_ID)
    assert rejected.wire_id == BIG_ID
    assert "'size' must be an integer" in rejected.reason


def test_a_rejected_download_with_numeric_job_and_task_ids_names_them():
    (rejected,) = parse_downloads([good_download(job_id=8285, task_id=4, files=3)]).rejected
    assert (rejected.job_id, rejected.task_id) == ("08285", "004")
