"""The real API client against a real reference farm on loopback."""

import logging
import threading

import pytest

from cdl_tui.core.farm.api import FarmClient
from cdl_tui.core.farm.credentials import credentials_from_text
from cdl_tui.core.farm.retry import RetryPolicy
from cdl_tui.core.model.errors import ApiError, AuthError

FAST_RETRY = RetryPolicy(max_attempts=8, base_delay=0.01, max_delay=0.05, max_elapsed=20)


def bearer(farm):
    return credentials_from_text(farm.token, "test")


def vendor_key(farm, client_id="studio-a"):
    return credentials_from_text(
        f'{{"client_id": "{client_id}", "private_key": "{farm.token}"}}', "CONDUCTOR_API_KEY"
    )


def test_paging_through_a_1000_task_job(start_farm):
    farm = start_farm(jobs=1, tasks=1000, files=1, size=1024)
    with FarmClient(farm.url, bearer(farm)) as client:
        pages = list(client.iter_job_downloads(farm.job_ids[0], page_size=90))
    assert len(pages) == 12  # 11 full pages of 90 and one of 10
    downloads = [d for page in pages for d in page.downloads]
    assert [d.task_id for d in downloads] == [f"{n:03d}" for n in range(1000)]
    assert len({d.download_id for d in downloads}) == 1000
    assert all(not page.rejected for page in pages)
    assert pages[-1].next_cursor is None
    # every 13th task has no files, the others one
    assert sum(1 for d in downloads if not d.files) == 1000 // 13


def test_listing_chosen_tasks_and_the_legacy_listing(start_farm):
    farm = start_farm(jobs=1, tasks=20)
    job = farm.job_ids[0]
    with FarmClient(farm.url, bearer(farm)) as client:
        page = next(client.iter_job_downloads(job, ("001", "003", "019")))
        assert [d.task_id for d in page.downloads] == ["001", "003", "019"]
        legacy = client.list_job_downloads_legacy(job)
        assert len(legacy.downloads) == 20
        one = client.list_job_downloads_legacy(job, "007")
        assert [d.task_id for d in one.downloads] == ["007"]
        with pytest.raises(ApiError, match="job 99999 not found") as info:
            list(client.iter_job_downloads("99999"))
        assert info.value.status == 404


def test_next_leases_and_reports_round_trip(start_farm):
    farm = start_farm(jobs=2, tasks=4, locations=("studio-a", "studio-b"))
    with FarmClient(farm.url, bearer(farm)) as client:
        batch = client.next_downloads(location="studio-b", count=20)
        assert len(batch.downloads) == 4
        assert {d.location for d in batch.downloads} == {"studio-b"}
        first = batch.downloads[0]
        client.report_status(
            first.wire_id, "downloading", bytes_downloaded=5, bytes_to_download=first.size
        )
        client.report_status(
            first.wire_id, "downloaded", bytes_downloaded=first.size, bytes_to_download=0
        )
        client.report_fail(batch.downloads[1].download_id, "disk on fire")
        client.report_status(
            batch.downloads[1].wire_id, "pending", bytes_downloaded=0, bytes_to_download=1
        )
        assert client.next_downloads(location="studio-b", count=20).downloads[0].download_id == (
            batch.downloads[1].download_id
        )
        # without a tag, any tag
        assert len(client.next_downloads(location=None, count=20).downloads) == 4
    store = farm.store()
    assert store.status_counts() == {"pending": 0, "downloading": 7, "downloaded": 1}
    fails = store.audit_rows("fail")
    assert fails[0]["detail"] == "disk on fire"


def test_wrong_token_is_an_auth_error_at_once_without_retries(start_farm):
    farm = start_farm(jobs=1, tasks=1)
    bad = credentials_from_text("not-the-right-token", "CDL_API_KEY")
    with FarmClient(farm.url, bad, retry=FAST_RETRY) as client:
        with pytest.raises(AuthError) as info:
            client.next_downloads(location=None, count=1)
    message = str(info.value)
    assert "401" in message
    assert "CDL_API_KEY" in message
    assert "not-the-right-token" not in message
    assert "\n" not in message
    assert farm.stats()["downloads"]["downloading"] == 0


def test_vendor_key_is_exchanged_once_and_the_secret_never_logged(start_farm, caplog):
    farm = start_farm(jobs=1, tasks=3)
    with caplog.at_level(logging.DEBUG), FarmClient(farm.url, vendor_key(farm)) as client:
        for _ in range(3):
            client.list_job_downloads_legacy(farm.job_ids[0])
        assert client.tokens.exchanges == 1
    everything = caplog.text + "".join(r.getMessage() for r in caplog.records)
    assert farm.token not in everything
    assert "oauth_jwt" in everything  # the exchange was logged, with the secret scrubbed


def test_a_wrong_vendor_key_is_one_clear_auth_error(start_farm):
    farm = start_farm(jobs=1, tasks=1)
    wrong = credentials_from_text(
        '{"client_id": "studio-a", "private_key": "pk-wrong-123456"}', "CONDUCTOR_API_KEY"
    )
    with FarmClient(farm.url, wrong) as client, pytest.raises(AuthError) as info:
        client.list_job_downloads_legacy(farm.job_ids[0])
    assert "client_id studio-a" in str(info.value)
    assert "pk-wrong-123456" not in str(info.value)


def test_expired_token_is_refreshed_in_time(start_farm):
    """A 2 s token lifetime: the client refreshes before expiry (10% margin) and keeps going."""
    farm = start_farm("--token-ttl", "2", jobs=1, tasks=1)
    with FarmClient(farm.url, vendor_key(farm)) as client:
        client.list_job_downloads_legacy(farm.job_ids[0])
        threading.Event().wait(2.2)
        client.list_job_downloads_legacy(farm.job_ids[0])
        assert client.tokens.exchanges == 2


def test_a_401_mid_run_renews_the_token_once(start_farm):
    farm = start_farm(jobs=1, tasks=1)
    with FarmClient(farm.url, vendor_key(farm)) as client:
        client.list_job_downloads_legacy(farm.job_ids[0])
        # Forge a stale cached token: the farm answers 401, the client renews and retries.
        client.tokens._granted = type(client.tokens._granted)(
            access_token=credentials_from_text("stale-token-value", "t").token,
            expires_at=client.tokens._granted.expires_at,
            lifetime=3600,
        )
        client.list_job_downloads_legacy(farm.job_ids[0])
        assert client.tokens.exchanges == 2


def test_transient_server_errors_are_retried(start_farm):
    farm = start_farm("--faults", "api500=0.5,seed=3", jobs=1, tasks=30)
    with FarmClient(farm.url, bearer(farm), retry=FAST_RETRY) as client:
        downloads = [
            d
            for page in client.iter_job_downloads(farm.job_ids[0], page_size=5)
            for d in page.downloads
        ]
    assert len(downloads) == 30
    assert farm.stats()["counters"]["fault_api500"] > 0


def test_connection_refused_is_transient_and_bounded():
    policy = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.01)
    creds = credentials_from_text("token-xyz-123", "t")
    with FarmClient("http://127.0.0.1:9", creds, retry=policy) as client:
        with pytest.raises(ApiError, match="gave up after 3 attempts"):
            client.next_downloads(location=None, count=1)
