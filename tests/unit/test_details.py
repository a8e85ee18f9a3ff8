"""Unit tests for what details() is made of: URL hosts, wire IDs, records and their bound."""

import base64

import pytest

from cdl_tui.core.model.models import RejectedDownload, parse_download
from cdl_tui.core.model.secrets import register_secret
from cdl_tui.core.state.details import (
    FILE_QUEUED,
    MAX_ATTEMPTS_KEPT,
    DetailBook,
    DownloadRecord,
    refused_detail,
    url_host,
    url_hosts,
    wire_text,
)
from cdl_tui.core.state.scheduler import QueuedDownload

MD5 = base64.b64encode(bytes(16)).decode()


def queued(n, wire_id=None, urls=()):
    download = parse_download(
        {
            "download_id": str(n) if wire_id is None else wire_id,
            "job_id": "1",
            "task_id": str(n),
            "output_dir": "/x",
            "size": 10 * len(urls),
            "files": [
                {"url": url, "md5": MD5, "relative_path": f"f{i}.exr", "size": 10}
                for i, url in enumerate(urls)
            ],
        }
    )
    return QueuedDownload(download, "00001")


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://storage.example.com/b/o.exr?X-Goog-Signature=abc&e=1", "storage.example.com"),
        ("http://127.0.0.1:8123/files/7?expires=1&sig=ff", "127.0.0.1:8123"),
        ("https://user:secret-password@host.example:8443/x", "host.example:8443"),
        ("https://host.example?sig=abc", "host.example"),
        ("https://host.example#frag@evil", "host.example"),
        ("http://[::1]:9000/a", "[::1]:9000"),
        ("https://host.example", "host.example"),
    ],
)
def test_a_url_host_has_no_userinfo_path_query_or_fragment(url, host):
    assert url_host(url) == host


def test_url_hosts_are_each_given_once_in_order():
    urls = ["http://b:1/x?s=1", "http://a/y?s=2", "http://b:1/z?s=3", "http:///no-host"]
    assert url_hosts(urls) == ("b:1", "a")


def test_a_wire_id_shows_its_type():
    assert wire_text(9007199254740993) == "9007199254740993"
    assert wire_text("ab12") == '"ab12"'
    assert wire_text("12") == '"12"'
    assert wire_text(None) == ""


def test_a_record_keeps_the_last_attempts_numbered_and_scrubbed():
    register_secret("hunter2-secret-value")
    record = DownloadRecord(queued(1))
    for number in range(1, MAX_ATTEMPTS_KEPT + 6):
        record.start_attempt("worker-1", float(number))
        assert record.attempts[-1].outcome == "running"
        assert record.attempts[-1].ended_at is None
        record.end_attempt("failed", number + 0.5, (), f"try {number}: hunter2-secret-value")
    assert len(record.attempts) == MAX_ATTEMPTS_KEPT
    assert [a.number for a in record.attempts] == list(range(6, MAX_ATTEMPTS_KEPT + 6))
    last = record.attempts[-1]
    assert (last.outcome, last.ended_at) == ("failed", MAX_ATTEMPTS_KEPT + 5.5)
    assert last.error == f"try {MAX_ATTEMPTS_KEPT + 5}: ***"


def test_a_detail_shows_hosts_never_urls_and_queued_files_before_any_attempt():
    urls = ["https://s.example/a.exr?sig=SECRETSIG", "https://s.example/b.exr?sig=SECRETSIG"]
    detail = DownloadRecord(queued(1, wire_id=41, urls=urls)).detail("pending", "PENDING", "")
    assert detail.url_hosts == ("s.example",)
    assert detail.wire_id == "41"
    assert [(f.relative_path, f.state, f.final_path, f.temp_path) for f in detail.files] == [
        ("f0.exr", FILE_QUEUED, "", ""),
        ("f1.exr", FILE_QUEUED, "", ""),
    ]
    assert "SECRETSIG" not in repr(detail)


def test_a_refused_download_shows_what_is_known():
    rejected = RejectedDownload("'size' is missing", download_id="ab", wire_id="ab", job_id="7")
    detail = refused_detail(rejected, "00007")
    assert (detail.where, detail.outcome, detail.wire_id) == ("failed", "REFUSED", '"ab"')
    assert (detail.reason, detail.origin, detail.attempts) == ("'size' is missing", "00007", ())
    assert refused_detail(RejectedDownload("bad"), "daemon").wire_id == ""


def test_the_book_forgets_the_oldest_finished_and_never_one_still_ours():
    book = DetailBook(keep=3)
    ours = [book.open(queued(n)) for n in range(10)]
    for record in ours[:8]:  # 8 finish; 8 and 9 stay ours (running, queued or given up)
        record.start_attempt("w", 0.0)
        record.end_attempt("done", 1.0, ())
        book.close(record.item.download_id, record.detail("done", "DL", ""))
    assert [n for n in range(10) if book.finished(str(n))] == [5, 6, 7]
    assert [n for n in range(10) if book.record(str(n))] == [8, 9]
    assert book.finished("5").attempts[0].outcome == "done"


def test_a_download_leased_again_goes_on_counting_its_attempts():
    book = DetailBook(keep=10)
    record = book.open(queued(1))
    record.start_attempt("w", 0.0)
    record.end_attempt("waiting for disk", 1.0, ())
    book.close("1", record.detail("history", "RELEASED", "no room"))
    again = book.open(queued(1))
    assert book.finished("1") is None and book.record("1") is again
    again.start_attempt("w", 2.0)
    assert [a.number for a in again.attempts] == [1, 2]
