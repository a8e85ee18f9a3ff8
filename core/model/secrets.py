"""Keep API keys, tokens and URL signatures out of logs, screens and error messages.

Two layers: credentials live in `Secret` objects whose str/repr are redacted, so an
accidental f-string or log call shows `***`; and `SecretScrubber`, a logging filter that
replaces any registered secret value in a record, guards third-party loggers (httpx logs
request URLs, and the vendor's token exchange carries the key in its query string).
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any
from urllib.parse import quote, quote_plus

REDACTED = "***"
# Shorter secrets are refused at start: one this short could not be scrubbed from output
# without mangling ordinary words (and a real key or token is far longer).
MIN_SECRET_LENGTH = 8


class Secret:
    """A string that never shows itself unless asked with `reveal()`."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        register_secret(value)

    def reveal(self) -> str:
        return self._value

    def __str__(self) -> str:
        return REDACTED

    def __repr__(self) -> str:
        return f"Secret({REDACTED!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


_lock = threading.Lock()
_known: set[str] = set()


def register_secret(value: str) -> None:
    """Remember a secret (and its URL-encoded forms) so the scrubber can hide it."""
    if len(value) < MIN_SECRET_LENGTH:  # refused at start (see credentials)
        return
    with _lock:
        _known.update({value, quote(value, safe=""), quote_plus(value)})


def holds_secret(text: str) -> bool:
    """True if `text` contains a registered secret."""
    with _lock:
        return any(value in text for value in _known)


# The query of a URL, or of a bare path, in a message: a signed URL's signature and key
# id live there, and error messages quote URLs (http.client's "URL can't contain control
# characters. '/b/a x.exr?X-Goog-Signature=...'"). Only queries with a `=` are cut.
_QUERY = re.compile(r"(?<=[\w/.%~-])\?[^\s'\"<>]*=[^\s'\"<>]*")
QUERY_REDACTED = "?…"


def scrub(text: str) -> str:
    """Replace every registered secret in `text` with `***`, and cut URL queries."""
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    for value in known:
        if value in text:
            text = text.replace(value, REDACTED)
    if "?" in text:
        text = _QUERY.sub(QUERY_REDACTED, text)
    return text


def scrub_data(data: Any) -> Any:
    """`data` (JSON-like: dicts, lists, text) with every registered secret in its text
    replaced, before it is written anywhere (a report, an event line)."""
    if isinstance(data, str):
        return scrub(data)
    if isinstance(data, dict):
        return {scrub_data(key): scrub_data(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [scrub_data(item) for item in data]
    return data


class SecretScrubber(logging.Filter):
    """A logging filter that rewrites records so that no registered secret survives."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is logging's problem, not ours
            return True
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            # Format the traceback now, so the scrubbed text is what handlers print.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        return True


_SCRUBBER = SecretScrubber()
# Loggers whose records may carry request URLs. A filter on a logger applies to records
# created on that very logger, so each one is listed rather than a common parent.
_GUARDED_LOGGERS = ("httpx", "httpcore", "httpcore.http11", "httpcore.connection", "cdl")


def guard_third_party_loggers() -> None:
    """Attach the scrubber to the loggers of the HTTP stack (idempotent)."""
    for name in _GUARDED_LOGGERS:
        logger = logging.getLogger(name)
        if _SCRUBBER not in logger.filters:
            logger.addFilter(_SCRUBBER)


def scrubbing_filter() -> SecretScrubber:
    """The shared scrubber, for handlers (the log file, stderr) to install."""
    return _SCRUBBER
