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


# What a Download's run meets on disk and on the wire (raised by files/, state/control).


class TransferError(CdlError):
    """A file could not be fetched and verified. `retryable` says if trying again may help."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = True,
        expired: bool = False,
        no_space: bool = False,
        bad_data: bool = False,
        unsafe: bool = False,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable and not unsafe
        self.unsafe = unsafe  # something not ours stands at one of our names: refuse
        self.expired = expired  # the signed URL was refused: fresh URLs are needed
        self.no_space = no_space  # the disk is full: wait for space, do not count a failure
        self.bad_data = bad_data  # the bytes are wrong: a resume from them is pointless

    @property
    def keeps_partial(self) -> bool:
        """A cut or refused transfer keeps its bytes for a resume."""
        return self.retryable and not self.no_space and not self.bad_data


class StopRequested(CdlError):
    """The engine asked this transfer to stop. On a cancel the partial file goes; on a
    shutdown it stays (if at least RESUME_MIN bytes), to be resumed by the next run."""

    def __init__(self, reason: str = "stopping") -> None:
        super().__init__(reason)
        self.keep_partial = reason != "cancelled"


class DestinationBusy(CdlError):
    """Another process (a second daemon on this machine or on a shared filesystem) is
    writing this file right now."""


class WaitForDisk(CdlError):
    """Not enough free space for this Download now."""


class LinkRefused(OSError):
    """A symbolic link (or a non-folder) stands where a folder of ours must be."""


class AttemptProblem(CdlError):
    """This attempt fails, though no one file failed (a backup that cannot be made)."""


class FileProblem(CdlError):
    """One file of a Download cannot be placed (a link where its folder goes, a folder
    where it goes, a folder that cannot be made): the attempt fails on that file."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


def certificate_problem(exc: BaseException) -> str | None:
    """The reason, if `exc` (or what caused it) is a failed TLS certificate check."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen.verify_message or str(seen)
        seen = seen.__cause__ or seen.__context__
    return None
