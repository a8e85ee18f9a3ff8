"""How this farm speaks, where the contract leaves a choice: the client must cope with each.

The reference farm is written from the same text as the client, so a misreading of that
text would pass both. These switches make the farm answer the way other farms and storage
services do, and the integration tests run the client against each:

- `ids`: `download_id` as a JSON number (the vendor's service: a 64-bit datastore ID) or
  as a string (other deployments). The farm checks that status reports send the ID back
  in the type it gave out, as the vendor's own client does.
- `numeric_job_ids`: `job_id` and `task_id` as JSON numbers (unpadded) instead of
  zero-padded strings.
- `expired`: how file storage refuses an expired signed URL: `gcs` (Google Cloud Storage,
  where the vendor keeps outputs: 400 with an `ExpiredToken` XML body), `s3` (403,
  `AccessDenied`, "Request has expired") or `gone` (410).
- `ok_status`: what a successful API call answers (the vendor: 201; any 2xx is allowed).
- `max_page`: the most Downloads one listing page holds, whatever `limit` asked for.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

ID_STYLES = ("number", "string")
EXPIRED_STYLES = ("gcs", "s3", "gone")


class BadId(ValueError):
    """A download_id in a request that is not one this farm gave out, in its type."""


@dataclass(frozen=True)
class Dialect:
    ids: str = "number"
    numeric_job_ids: bool = False
    expired: str = "gcs"
    ok_status: int = 201
    max_page: int = 1000

    def __post_init__(self) -> None:
        if self.ids not in ID_STYLES:
            raise ValueError(f"id style must be one of {', '.join(ID_STYLES)}")
        if self.expired not in EXPIRED_STYLES:
            raise ValueError(f"expired style must be one of {', '.join(EXPIRED_STYLES)}")

    # -- IDs ---------------------------------------------------------------------------------

    def wire_id(self, stored: str) -> int | str:
        """The download_id as this farm sends it (the store keeps decimal text)."""
        return int(stored) if self.ids == "number" else stored

    def stored_id(self, sent: Any) -> str:
        """The store's key for a download_id a client sent back in a JSON body."""
        if self.ids == "number":
            if isinstance(sent, bool) or not isinstance(sent, int):
                raise BadId("'download_id' must be the number this farm sent, not a string")
            return str(sent)
        if not isinstance(sent, str) or not sent:
            raise BadId("'download_id' must be the string this farm sent")
        return sent

    def job_field(self, padded: str) -> int | str:
        return int(padded) if self.numeric_job_ids else padded

    # -- storage answers ---------------------------------------------------------------------

    def refusal(self, reason: str, expires: str) -> tuple[int, str, bytes]:
        """(status, content type, body) refusing a signed URL, as this storage would.

        `reason` is "signature expired" or another reason from `check_file_signature`."""
        if reason != "signature expired":
            return 403, "application/xml", _xml("SignatureDoesNotMatch", reason)
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(expires)))
        if self.expired == "gcs":
            details = f"<Details>Request signature expired at: {when}</Details>"
            return (
                400,
                "application/xml",
                _xml("ExpiredToken", "The provided token has expired.", details),
            )
        if self.expired == "s3":
            extra = f"<Expires>{when}</Expires><RequestId>cdl-farm</RequestId>"
            return 403, "application/xml", _xml("AccessDenied", "Request has expired", extra)
        return 410, "text/plain; charset=utf-8", b"This signed URL has expired.\n"


def _xml(code: str, message: str, extra: str = "") -> bytes:
    return (
        "<?xml version='1.0' encoding='UTF-8'?>"
        f"<Error><Code>{code}</Code><Message>{message}</Message>{extra}</Error>"
    ).encode()
