"""From resolved Settings to what a run needs: a FarmClient and an EngineConfig."""

from __future__ import annotations

import grp
import logging
from pathlib import Path

from cdl_tui.core.config import Settings
from cdl_tui.core.engine import EngineConfig
from cdl_tui.core.farm.api import (
    ApiLimits,
    FarmClient,
    Timeouts,
    file_tls_setting,
    make_http_client,
    normalize_base_url,
    tls_verify_setting,
)
from cdl_tui.core.farm.credentials import Credentials, credentials_from_file, credentials_from_text
from cdl_tui.core.files.journal import JOURNAL_NAME
from cdl_tui.core.model.errors import ConfigError
from cdl_tui.core.model.jobspec import JobSpec
from cdl_tui.core.model.settings import Permissions

NO_URL_HELP = (
    "no farm API URL: pass --api-url URL, set CDL_API_URL, put api_url in "
    "~/.config/cdl/config.toml, or set CONDUCTOR_URL; or try `cdl-tui --demo`"
)
NO_KEY_HELP = (
    "no API key: set CDL_API_KEY, pass --api-key-file FILE, put api_key in "
    "~/.config/cdl/config.toml, or set CONDUCTOR_API_KEY / CONDUCTOR_API_KEY_PATH"
)

log = logging.getLogger("cdl.connect")


def api_url_from(settings: Settings) -> str:
    if not settings.api_url:
        raise ConfigError(NO_URL_HELP)
    return normalize_base_url(settings.api_url, f"the API URL from {settings.source_of('api_url')}")


def credentials_from(settings: Settings) -> Credentials:
    """The credential with the highest-precedence source; a direct key wins a tie."""
    key, key_file = settings.api_key, settings.api_key_file
    if key_file is not None and (
        key is None or settings.rank_of("api_key_file") > settings.rank_of("api_key")
    ):
        return credentials_from_file(key_file, settings.source_of("api_key_file"))
    if key is not None:
        return credentials_from_text(key.reveal(), settings.source_of("api_key"))
    raise ConfigError(NO_KEY_HELP)


def client_from(settings: Settings, credentials: Credentials | None = None) -> FarmClient:
    """A FarmClient for `settings` (credentials override the configured ones, e.g. --demo)."""
    url = api_url_from(settings)
    creds = credentials or credentials_from(settings)
    verify = tls_verify_setting(
        str(settings.ca_bundle) if settings.ca_bundle else None, settings.tls_verify
    )
    if not settings.tls_verify:
        log.warning(
            "TLS certificates are not verified (--insecure): anyone on the way can read "
            "and change what is downloaded and see the key"
        )
    http = make_http_client(
        timeouts=Timeouts(connect=settings.connect_timeout, read=settings.read_timeout),
        verify=verify,
        max_connections=max(16, settings.threads * 2),
    )
    limits = ApiLimits(
        max_response_bytes=settings.max_response_bytes,
        max_pages=settings.max_pages,
        deadline=settings.api_deadline,
    )
    ca_bundle = str(settings.ca_bundle) if settings.ca_bundle else None
    file_tls = file_tls_setting(ca_bundle, settings.tls_verify)
    return FarmClient(url, creds, http=http, verify=verify, limits=limits, file_tls=file_tls)


def group_id(group: str | None) -> int | None:
    if group is None:
        return None
    if group.isdigit():
        return int(group)
    return grp.getgrnam(group).gr_gid


def engine_config_from(
    settings: Settings,
    jobs: list[JobSpec],
    *,
    exit_when_done: bool,
    state_dir: Path | None = None,
) -> EngineConfig:
    """Job mode when jobs are given; daemon mode (`/downloads/next`) otherwise."""
    return EngineConfig(
        jobs=tuple(jobs),
        daemon=not jobs,
        location=settings.location,
        exit_when_done=exit_when_done,
        threads=settings.threads,
        output=settings.output,
        fallback_dir=settings.fallback_dir,
        page_size=settings.page_size,
        poll_interval=settings.poll_interval,
        heartbeat_interval=settings.heartbeat_interval,
        max_attempts=settings.max_attempts,
        on_conflict=settings.on_conflict,
        force=settings.force,
        regex=settings.regex,
        reporting=not settings.disable_reporting,
        # An --exit-when-done run keeps its whole history (for the summary and the report).
        history_size=None if exit_when_done else settings.history_size,
        permissions=Permissions(
            file_mode=settings.file_mode,
            dir_mode=settings.dir_mode,
            group=group_id(settings.group),
        ),
        journal=settings.journal or (state_dir / JOURNAL_NAME if state_dir else None),
        md5_cache=settings.md5_cache,
        max_bandwidth=settings.max_bandwidth,
        stall_timeout=settings.stall_timeout,
        stall_min_rate=settings.stall_min_rate or 0.0,
        on_job_done=settings.on_job_done,
        disk_margin=settings.disk_margin,
        disk_wait_max=settings.disk_wait_max,
        unreachable_max=settings.unreachable_max,
        temp_max_age=settings.temp_max_age,
        path_map=settings.path_map,
        output_roots=settings.output_roots,
        transfer=settings.transfer,
    )
