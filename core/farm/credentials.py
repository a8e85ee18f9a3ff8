"""Where the bearer token comes from, and how a vendor API key becomes one.

Two kinds of credential:
- `BearerToken`: a token used as is (`CDL_API_KEY`, `--api-key-file`, the config file).
- `VendorKey`: the vendor's API key, a JSON object (or base64 of one) with `client_id` and
  `private_key`, exchanged at `/api/oauth_jwt` for an expiring access token.

A key file holding JSON with `client_id` is a vendor key; anything else is a bearer token.
Secrets are wrapped in `Secret` the moment they are read.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cdl_tui.core.model.errors import AuthError, ConfigError, TransientError
from cdl_tui.core.model.secrets import MIN_SECRET_LENGTH, Secret

log = logging.getLogger("cdl.credentials")

OAUTH_PATH = "/api/oauth_jwt"
OAUTH_SCOPE = "owner admin user"
# Refresh this long before the token expires (or at 10% of its life, if that is shorter).
REFRESH_MARGIN = 60.0


@dataclass(frozen=True)
class BearerToken:
    token: Secret
    source: str  # where it came from, for messages ("CDL_API_KEY", "key file /x", ...)


@dataclass(frozen=True)
class VendorKey:
    client_id: str
    private_key: Secret
    source: str


Credentials = BearerToken | VendorKey


def credentials_from_text(text: str, source: str) -> Credentials:
    """Classify key material: vendor JSON (plain or base64) with client_id, else a token."""
    stripped = text.strip()
    if not stripped:
        raise ConfigError(f"the API key from {source} is empty")
    obj = _json_object(stripped)
    if obj is not None and "client_id" in obj:
        client_id = obj.get("client_id")
        private_key = obj.get("private_key")
        if not isinstance(client_id, str) or not client_id:
            raise ConfigError(f"the vendor API key from {source} has no usable 'client_id'")
        if not isinstance(private_key, str) or not private_key:
            raise ConfigError(f"the vendor API key from {source} has no 'private_key'")
        _long_enough(private_key, f"the vendor API key's private_key from {source}", True)
        return VendorKey(client_id, Secret(private_key), source)
    if any(ch.isspace() or ord(ch) < 0x20 for ch in stripped):
        # A token goes into an HTTP header; whitespace means the file is not a token.
        raise ConfigError(
            f"the API key from {source} is neither a token (it contains spaces or line "
            "breaks) nor a vendor key (JSON with client_id)"
        )
    _long_enough(stripped, f"the API key from {source}")
    return BearerToken(Secret(stripped), source)


def _long_enough(secret: str, what: str, in_query: bool = False) -> None:
    # A token goes into an HTTP header, which takes printable ASCII; a vendor private key
    # goes into a query string (escaped), where line breaks are fine.
    if not secret.isascii() or not (in_query or secret.isprintable()):
        raise ConfigError(f"{what} holds characters other than plain ASCII: not a key")
    if len(secret) < MIN_SECRET_LENGTH:
        raise ConfigError(
            f"{what} is {len(secret)} characters long; a key shorter than "
            f"{MIN_SECRET_LENGTH} could not be kept out of logs and reports: use the whole key"
        )


def credentials_from_file(path: Path, source: str) -> Credentials:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"API key file {path} ({source}) does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "unreadable"
        raise ConfigError(f"cannot read API key file {path} ({source}): {reason}") from None
    return credentials_from_text(text, f"{source} {path}")


def _json_object(text: str) -> dict[str, Any] | None:
    candidates = [text]
    with contextlib.suppress(binascii.Error, ValueError, UnicodeDecodeError):
        candidates.append(base64.b64decode(text, validate=True).decode("utf-8"))
    for candidate in candidates:
        try:
            obj = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(obj, dict):
            return obj
    return None


class TokenSource(Protocol):
    """Gives the bearer token for the next request."""

    def bearer(self) -> str: ...

    def describe(self) -> str:
        """What the token is, for messages (never the token itself)."""
        ...

    def renew_after_401(self) -> bool:
        """Drop a cached token after a 401; True if asking again may succeed."""
        ...


class StaticToken:
    def __init__(self, credentials: BearerToken) -> None:
        self._credentials = credentials

    def bearer(self) -> str:
        return self._credentials.token.reveal()

    def renew_after_401(self) -> bool:
        return False

    def describe(self) -> str:
        return f"the token from {self._credentials.source}"


@dataclass(frozen=True)
class GrantedToken:
    access_token: Secret
    expires_at: float  # on the monotonic clock
    lifetime: float


# A callable that performs the exchange request: (client_id, private_key) -> parsed JSON.
Exchanger = Callable[[str, str], Any]


class VendorTokenExchange:
    """Exchanges a vendor key for an access token, caches it and refreshes it in time."""

    def __init__(
        self,
        key: VendorKey,
        exchange: Exchanger,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._key = key
        self._exchange = exchange
        self._clock = clock
        self._lock = threading.Lock()
        self._granted: GrantedToken | None = None
        self.exchanges = 0  # how many times the key was exchanged (tests, diagnostics)

    def describe(self) -> str:
        return f"the vendor API key from {self._key.source} (client_id {self._key.client_id})"

    def bearer(self) -> str:
        with self._lock:
            granted = self._granted
            now = self._clock()
            if granted is None or now >= granted.expires_at - self._margin(granted):
                granted = self._granted = self._fetch()
            return granted.access_token.reveal()

    def renew_after_401(self) -> bool:
        with self._lock:
            self._granted = None
        return True

    @staticmethod
    def _margin(granted: GrantedToken) -> float:
        return min(REFRESH_MARGIN, granted.lifetime * 0.1)

    def _fetch(self) -> GrantedToken:
        answer = self._exchange(self._key.client_id, self._key.private_key.reveal())
        self.exchanges += 1
        if not isinstance(answer, dict):
            raise TransientError("the token exchange answered something that is not an object")
        token = answer.get("access_token")
        expires_in = answer.get("expires_in")
        if not isinstance(token, str) or not token:
            raise AuthError(f"the token exchange for {self.describe()} gave no access_token")
        try:
            if not isinstance(expires_in, (int, float, str)):
                raise TypeError(type(expires_in).__name__)
            lifetime = float(expires_in)
        except (TypeError, ValueError):
            raise AuthError(
                f"the token exchange for {self.describe()} gave no usable expires_in"
            ) from None
        secret = Secret(token)
        log.info("exchanged %s for a token valid %.0fs", self.describe(), lifetime)
        return GrantedToken(secret, self._clock() + lifetime, lifetime)
