"""What the farm sends, parsed and validated into frozen dataclasses.

A Download is every output file of one finished task. The farm's answers are untrusted:
`parse_downloads` keeps each valid Download and turns each invalid one into a
`RejectedDownload` carrying a one-line reason, so one bad entry never stops the others.

Farms differ in what they send, and we accept what the contract allows: the vendor's
service sends `download_id` as a JSON number (a 64-bit datastore ID), others as a string.
A Download keeps both forms: `download_id`, its text (decimal for a number), is what this
program keys, shows and puts in URL paths; `wire_id` is the value as it came, which status
reports send back in its own type. `job_id` and `task_id` may come as numbers too.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import InvalidDownload
from .jobspec import pad_job_id, pad_task_id
from .paths import UnsafePath, normalize_relative_path

WireId = int | str  # a download_id as the farm sent it
MAX_ID_LENGTH = 256


@dataclass(frozen=True, slots=True)
class RemoteFile:
    """One output file: where to fetch it, what it must hash to, where it goes."""

    url: str
    md5: str  # base64 of the raw 16-byte digest, as the farm sends it
    relative_path: str  # normalized; see core.paths
    size: int

    @property
    def md5_digest(self) -> bytes:
        return base64.b64decode(self.md5)


@dataclass(frozen=True, slots=True)
class Download:
    """All output files of one task, as leased or listed by the farm."""

    download_id: str  # the ID as text: decimal for a numeric ID
    wire_id: WireId  # the ID as the farm sent it, for status reports
    job_id: str
    task_id: str
    output_dir: str
    size: int
    files: tuple[RemoteFile, ...]
    location: str | None = None

    @property
    def label(self) -> str:
        return f"{self.job_id}:{self.task_id}"


@dataclass(frozen=True, slots=True)
class RejectedDownload:
    """A Download that failed validation. download_id is known when it could be read."""

    reason: str
    download_id: str | None = None
    wire_id: WireId | None = None
    job_id: str | None = None
    task_id: str | None = None


@dataclass(frozen=True, slots=True)
class DownloadBatch:
    """One answer from the farm: the valid Downloads, the rejected ones, the next cursor."""

    downloads: tuple[Download, ...]
    rejected: tuple[RejectedDownload, ...] = ()
    next_cursor: str | None = None


def parse_downloads(items: Any, *, next_cursor: str | None = None) -> DownloadBatch:
    """Validate a list of Download objects; raise InvalidDownload only if it is not a list."""
    if not isinstance(items, list):
        raise InvalidDownload(f"expected a list of downloads, got {_type_name(items)}")
    good: list[Download] = []
    bad: list[RejectedDownload] = []
    for index, item in enumerate(items):
        try:
            good.append(parse_download(item))
        except InvalidDownload as exc:
            bad.append(_rejection(item, index, str(exc)))
    return DownloadBatch(tuple(good), tuple(bad), next_cursor)


def parse_download(obj: Any) -> Download:
    """Validate one Download object; raise InvalidDownload with the reason."""
    if not isinstance(obj, Mapping):
        raise InvalidDownload(f"a download must be an object, got {_type_name(obj)}")
    wire_id = _wire_id(obj)
    job_id = pad_job_id(_digits(obj, "job_id"))
    task_id = pad_task_id(_digits(obj, "task_id"))
    output_dir = _text(obj, "output_dir")
    size = _count(obj, "size")
    location = obj.get("location")
    if location is not None and not isinstance(location, str):
        raise InvalidDownload(f"'location' must be a string or null, got {_type_name(location)}")
    if location is not None:
        _check_encodable("location", location)
    raw_files = obj.get("files")
    if raw_files is None:
        raise InvalidDownload("'files' is missing")
    if not isinstance(raw_files, list):
        raise InvalidDownload(f"'files' must be a list, got {_type_name(raw_files)}")
    files = tuple(_parse_file(index, item) for index, item in enumerate(raw_files))
    return Download(
        download_id=str(wire_id),
        wire_id=wire_id,
        job_id=job_id,
        task_id=task_id,
        output_dir=output_dir,
        size=size,
        files=files,
        location=location or None,
    )


def _parse_file(index: int, obj: Any) -> RemoteFile:
    where = f"file {index + 1}"
    if not isinstance(obj, Mapping):
        raise InvalidDownload(f"{where} must be an object, got {_type_name(obj)}")
    try:
        url = _text(obj, "url")
        md5 = _text(obj, "md5")
        raw_path = _text(obj, "relative_path")
        size = _count(obj, "size")
    except InvalidDownload as exc:
        raise InvalidDownload(f"{where}: {exc}") from None
    if not url.startswith(("http://", "https://")):
        raise InvalidDownload(f"{where}: 'url' is not an http(s) URL")
    if not _is_md5_base64(md5):
        raise InvalidDownload(f"{where}: 'md5' is not the base64 of a 16-byte digest")
    try:
        relative_path = normalize_relative_path(raw_path)
    except UnsafePath as exc:
        raise InvalidDownload(f"{where}: refused: {exc}") from None
    return RemoteFile(url=url, md5=md5, relative_path=relative_path, size=size)


class _Missing:
    pass


_MISSING = _Missing()


def _text(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key, _MISSING)
    if value is _MISSING or value is None:
        raise InvalidDownload(f"'{key}' is missing")
    if not isinstance(value, str):
        raise InvalidDownload(f"'{key}' must be a string, got {_type_name(value)}")
    _check_encodable(key, value)
    return value


def _check_encodable(key: str, value: str) -> None:
    """JSON can carry a lone surrogate (\\ud800) that no file, database or log can store."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidDownload(f"'{key}' is not valid text (a lone surrogate)") from None


def _wire_id(obj: Mapping[str, Any]) -> WireId:
    """The download_id as sent: a non-empty string, or a whole number of any size (JSON
    parsing gives Python ints exactly; a float would have lost digits, so it is refused)."""
    value = obj.get("download_id")
    if value is None:
        raise InvalidDownload("'download_id' is missing")
    if isinstance(value, bool) or not isinstance(value, int | str):
        kind = _type_name(value)
        raise InvalidDownload(f"'download_id' must be a string or a whole number, got {kind}")
    if value == "":
        raise InvalidDownload("'download_id' is empty")
    if isinstance(value, str) and len(value) > MAX_ID_LENGTH:
        raise InvalidDownload(f"'download_id' is longer than {MAX_ID_LENGTH} characters")
    if isinstance(value, str):
        _check_encodable("download_id", value)
    return value


def _digits(obj: Mapping[str, Any], key: str) -> str:
    """A job or task ID: digits as text, or a whole number (padded by the caller)."""
    value = obj.get(key)
    if value is None:
        raise InvalidDownload(f"'{key}' is missing")
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise InvalidDownload(f"'{key}' must not be negative")
        value = str(value)
    if not isinstance(value, str):
        raise InvalidDownload(f"'{key}' must be digits or a whole number, got {_type_name(value)}")
    if not value.isascii() or not value.isdigit() or len(value) > 20:
        raise InvalidDownload(f"'{key}' must be digits, got {value[:20]!r}")
    return value


def _count(obj: Mapping[str, Any], key: str) -> int:
    value = obj.get(key, _MISSING)
    if value is _MISSING or value is None:
        raise InvalidDownload(f"'{key}' is missing")
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidDownload(f"'{key}' must be an integer, got {_type_name(value)}")
    if value < 0:
        raise InvalidDownload(f"'{key}' must not be negative")
    return value


def _is_md5_base64(text: str) -> bool:
    try:
        return len(base64.b64decode(text, validate=True)) == 16
    except (binascii.Error, ValueError):
        return False


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _rejection(item: Any, index: int, reason: str) -> RejectedDownload:
    """Keep whatever identifies the rejected entry, so it can be reported and shown."""
    wire_id = job_id = task_id = None
    if isinstance(item, Mapping):
        with contextlib.suppress(InvalidDownload):
            wire_id = _wire_id(item)
        with contextlib.suppress(InvalidDownload):
            job_id = pad_job_id(_digits(item, "job_id"))
        with contextlib.suppress(InvalidDownload):
            task_id = pad_task_id(_digits(item, "task_id"))
    if wire_id is None:
        reason = f"download #{index + 1}: {reason}"
    return RejectedDownload(
        reason=reason,
        download_id=None if wire_id is None else str(wire_id),
        wire_id=wire_id,
        job_id=job_id,
        task_id=task_id,
    )


def iter_files(downloads: Iterable[Download]) -> Iterable[tuple[Download, RemoteFile]]:
    for download in downloads:
        for remote in download.files:
            yield download, remote
