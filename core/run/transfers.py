"""Which engine moves file bodies: libcurl's (curl.py) where pycurl can be imported, else
the standard library's (stream.py), with a one-line notice. Both share the bandwidth limit
and the proxy rules, and trust file hosts as the API client does."""

from __future__ import annotations

import logging

from cdl_tui.core.farm.api import FarmClient
from cdl_tui.core.files import curl
from cdl_tui.core.files.fetchers import Fetcher
from cdl_tui.core.files.proxies import ProxyRules
from cdl_tui.core.files.stream import ThreadTransfer
from cdl_tui.core.files.throttle import TokenBucket
from cdl_tui.core.files.transfer import Transfer
from cdl_tui.core.model.errors import ConfigError

log = logging.getLogger("cdl.engine")


def choose_transfer(kind: str, client: FarmClient, throttle: TokenBucket) -> Transfer:
    """The Transfer for `kind` ("auto", "curl" or "python")."""
    problem = curl.available()
    proxies = ProxyRules()  # the environment's, read once
    if kind == "curl" and problem is not None:
        raise ConfigError(f"transfer = curl, but pycurl cannot be imported here ({problem})")
    if kind == "python" or problem is not None:
        if kind == "auto":
            log.warning(
                "pycurl cannot be imported (%s): files move through Python's http.client, "
                "slower for many small files",
                problem,
            )
        return ThreadTransfer(Fetcher(client.http, lambda: client.tls, proxies=proxies), throttle)
    timeout = client.http.timeout
    settings = curl.CurlSettings(
        tls=client.file_tls,
        connect_timeout=timeout.connect or 10.0,
        read_timeout=timeout.read or 60.0,
    )
    return curl.CurlTransfer(settings, throttle, proxies)
