"""Which proxy a file URL goes through: the environment's http_proxy, https_proxy,
all_proxy and no_proxy, read by urllib as httpx reads them for the API (trust_env). Both
transfer engines ask here, so that a host is proxied, or not, whichever moves its files.
"""

from __future__ import annotations

import re
import urllib.request
from urllib.parse import urlsplit

# scheme://netloc: the part of a URL a proxy decision depends on (cheaper than urlsplit,
# which a signed URL's long query made a cost per file).
_ORIGIN = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)")


class ProxyRules:
    def __init__(self, proxies: dict[str, str] | None = None) -> None:
        self._proxies = urllib.request.getproxies() if proxies is None else proxies
        self._decided: dict[tuple[str, str] | None, str | None] = {}  # (scheme, netloc): proxy

    def proxy_for(self, url: str) -> str | None:
        """The proxy URL for `url`, or None to connect directly."""
        origin = _ORIGIN.match(url)
        # The netloc less any user:password@, which the cache has no need to hold.
        key = (origin[1].lower(), origin[2].rpartition("@")[2].lower()) if origin else None
        if key in self._decided:
            return self._decided[key]
        parts = urlsplit(url)
        proxy = self._proxies.get(parts.scheme) or self._proxies.get("all")
        if proxy and urllib.request.proxy_bypass(parts.hostname or ""):
            proxy = None
        if key is not None:
            self._decided[key] = proxy or None
        return proxy or None
