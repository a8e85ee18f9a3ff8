"""Exceptions the engine raises. Each message is one line a user can act on.

No message ever contains an API key or token: credentials are only ever held in
`core.secrets.Secret` objects, whose text form is redacted.
"""

from __future__ import annotations

import ssl


class CdlError(Exception):
    """Base class for every error cdl-tui reports to a user."""


class ConfigError(CdlError):
    """Settings are missing, malformed or contradictory (exit code 2)."""


class JobSpecError(ConfigError):
    """A job spec on the command line or from the TUI could not be parsed."""


class AuthError(CdlError):
    """The farm refused our credentials (401/403 from the API). Never retried."""


class TlsError(AuthError):
    """A TLS certificate that cannot be verified: never retried, fatal like a refused key
    (a man in the middle, or a CA the user must name with --ca-bundle)."""


class ApiError(CdlError):
    """The farm answered in a way we cannot use, and retrying will not help."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TransientError(ApiError):
    """A failure worth retrying: connection trouble, timeouts, 429, 5xx, garbled bodies."""

    def __init__(
        self, message: str, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status)
        self.retry_after = retry_after


class InvalidDownload(CdlError):
    """One Download from the farm failed validation; the others are unaffected."""


def certificate_problem(exc: BaseException) -> str | None:
    """The reason, if `exc` (or what caused it) is a failed TLS certificate check."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen.verify_message or str(seen)
        seen = seen.__cause__ or seen.__context__
    return None
