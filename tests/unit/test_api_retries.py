"""Which reports outlive a stop: the farm client's retry choice (one function, a stub farm)."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from cdl_tui.core.farm.api import FarmClient
from cdl_tui.core.farm.credentials import credentials_from_text
from cdl_tui.core.farm.retry import RetryPolicy
from cdl_tui.core.model.errors import TransientError


def stub_farm(failures: int) -> tuple[FarmClient, list[str]]:
    """A farm that answers the first `failures` requests with 503, then 200."""
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.content.decode())
        return httpx.Response(503 if len(seen) <= failures else 200, text="")

    http = httpx.Client(transport=httpx.MockTransport(answer))
    client = FarmClient(
        "http://farm.test",
        credentials_from_text("t-123456", "test"),
        http=http,
        retry=RetryPolicy(base_delay=0.05, max_delay=0.05),
    )
    return client, seen


def stopped(client: FarmClient) -> threading.Event:
    gave_up = threading.Event()
    stop = threading.Event()
    stop.set()
    client.stop_waiting_on(stop)
    client.stop_reports_on(gave_up)
    return gave_up


@pytest.mark.parametrize("status", ["downloaded", "pending"])
def test_a_final_report_or_a_release_is_retried_after_the_stop(status):
    client, seen = stub_farm(failures=2)
    stopped(client)
    client.report_status("d1", status, bytes_downloaded=1, bytes_to_download=1)
    assert len(seen) == 3


def test_a_claim_or_heartbeat_gives_up_at_once_after_the_stop():
    client, seen = stub_farm(failures=1)
    stopped(client)
    started = time.monotonic()
    with pytest.raises(TransientError, match="stopping"):
        client.report_status("d1", "downloading", bytes_downloaded=0, bytes_to_download=1)
    assert len(seen) == 1 and time.monotonic() - started < 1


def test_final_reports_give_up_once_the_exit_has_no_time_left():
    client, seen = stub_farm(failures=10)
    stopped(client).set()
    with pytest.raises(TransientError, match="stopping"):
        client.report_fail("d1", "md5 mismatch")
    assert len(seen) == 1


def test_a_release_gets_a_few_quick_tries():
    client, seen = stub_farm(failures=3)
    stopped(client)
    started = time.monotonic()
    client.report_status("d1", "pending", bytes_downloaded=0, bytes_to_download=1, quick=True)
    assert len(seen) == 4 and time.monotonic() - started < 3
