"""Everything known about one Download, for a detail view: `Engine.details()`.

The engine keeps a small record of each Download of this run (`DownloadRecord`): its last
MAX_ATTEMPTS_KEPT attempts, and its files as the last attempt left them. When a Download
stops being ours (done, or released to the farm) its record is frozen into the
`DownloadDetail` it will always show. `DetailBook` keeps the records of every Download still
ours (queued, running or given up) and the details of the last `keep` that finished, so a
100,000-task run holds no more than that many finished ones. A detail holds no URL, only the
hosts of its files' URLs.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, replace

from cdl_tui.core.model.models import Download, RejectedDownload, WireId
from cdl_tui.core.model.secrets import scrub
from cdl_tui.core.model.states import Outcome
from cdl_tui.core.model.views import AttemptRecord, DownloadDetail, FileDetail

from .scheduler import QueuedDownload

MAX_ATTEMPTS_KEPT = 20  # attempts a record keeps, the last ones
DEFAULT_KEEP_FINISHED = 20_000  # finished Downloads whose details are kept, if history_size is None
FILE_QUEUED = "queued"  # the state of a file no attempt has reached
RUNNING = "running"  # the outcome of an attempt that has not ended
_AUTHORITY_END = re.compile(r"[/?#]")


def url_host(url: str) -> str:
    """The host[:port] of a URL, without its scheme, userinfo, path, query or fragment."""
    _, scheme_end, rest = url.partition("://")
    authority = _AUTHORITY_END.split(rest if scheme_end else url, maxsplit=1)[0]
    return authority.rpartition("@")[2]


def url_hosts(urls: Iterable[str]) -> tuple[str, ...]:
    """The hosts of these URLs, each once, in the order first seen."""
    return tuple(dict.fromkeys(host for host in map(url_host, urls) if host))


def wire_text(wire_id: WireId | None) -> str:
    """The ID as the farm sent it, its type showing: 9007199254740993 or "ab12"; "" if none."""
    if wire_id is None:
        return ""
    if isinstance(wire_id, int):
        return str(wire_id)
    return json.dumps(wire_id, ensure_ascii=False)


def queued_files(download: Download) -> tuple[FileDetail, ...]:
    """The Download's files before an attempt planned where they go."""
    return tuple(
        FileDetail(remote.relative_path, "", "", remote.size, remote.md5, FILE_QUEUED, "")
        for remote in download.files
    )


def refused_detail(rejected: RejectedDownload, origin: str) -> DownloadDetail:
    """All there is to know of a Download refused as the farm described it."""
    return DownloadDetail(
        download_id=rejected.download_id,
        wire_id=wire_text(rejected.wire_id),
        job_id=rejected.job_id,
        task_id=rejected.task_id,
        where="failed",
        outcome=Outcome.REFUSED.value,
        reason=scrub(rejected.reason),
        attempts=(),
        files=(),
        url_hosts=(),
        size=0,
        origin=origin,
    )


@dataclass(eq=False, slots=True)
class DownloadRecord:
    """What details() needs of a Download still ours, beyond what the engine holds anyway.

    Not thread-safe on its own: the engine guards it with its lock.
    """

    item: QueuedDownload  # the Download as queued now (a retry queues it anew)
    attempts: tuple[AttemptRecord, ...] = ()  # the last MAX_ATTEMPTS_KEPT, oldest first
    files: tuple[FileDetail, ...] = ()  # as the last attempt left them; () while one runs

    def start_attempt(self, worker: str, started_at: float) -> None:
        number = self.attempts[-1].number + 1 if self.attempts else 1
        attempt = AttemptRecord(number, worker, started_at, None, RUNNING, "")
        self.attempts = (*self.attempts, attempt)[-MAX_ATTEMPTS_KEPT:]
        self.files = ()

    def end_attempt(
        self, outcome: str, ended_at: float, files: tuple[FileDetail, ...], error: str = ""
    ) -> None:
        """The running attempt ended with `outcome` (and `error` if it failed), leaving its
        files as `files` say."""
        ended = replace(self.attempts[-1], ended_at=ended_at, outcome=outcome, error=scrub(error))
        self.attempts = (*self.attempts[:-1], ended)
        self.files = files

    def detail(
        self, where: str, outcome: str, reason: str, live: tuple[FileDetail, ...] = ()
    ) -> DownloadDetail:
        """The record as a DownloadDetail. Its files: `live` (those of a running attempt),
        else as the last attempt left them, else all queued."""
        download = self.item.download
        return DownloadDetail(
            download_id=download.download_id,
            wire_id=wire_text(download.wire_id),
            job_id=download.job_id,
            task_id=download.task_id,
            where=where,
            outcome=outcome,
            reason=scrub(reason),
            attempts=self.attempts,
            files=live or self.files or queued_files(download),
            url_hosts=url_hosts(remote.url for remote in download.files),
            size=download.size,
            origin=self.item.origin,
        )


class DetailBook:
    """The records of this run's Downloads: every one still ours, never forgotten, and the
    frozen details of the last `keep` that finished (the oldest are forgotten first).

    Not thread-safe on its own: the engine guards it with its lock.
    """

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self._ours: dict[str, DownloadRecord] = {}
        self._finished: OrderedDict[str, DownloadDetail] = OrderedDict()

    def open(self, item: QueuedDownload) -> DownloadRecord:
        """The record of a queued Download: its own, made now, or that of an earlier lease
        of it (a Download released to the farm may be leased again; its attempts go on)."""
        record = self._ours.get(item.download_id)
        if record is None:
            earlier = self._finished.pop(item.download_id, None)
            record = DownloadRecord(item)
            if earlier is not None:
                record.attempts, record.files = earlier.attempts, earlier.files
            self._ours[item.download_id] = record
        record.item = item
        return record

    def record(self, download_id: str) -> DownloadRecord | None:
        """The record of a Download still ours (queued, running or given up)."""
        return self._ours.get(download_id)

    def finished(self, download_id: str) -> DownloadDetail | None:
        """The detail of a Download that finished, if it is among the last `keep`."""
        return self._finished.get(download_id)

    def close(self, download_id: str, detail: DownloadDetail) -> None:
        """The Download is not ours any more: keep `detail` of it, within the bound."""
        self._ours.pop(download_id, None)
        self._finished[download_id] = detail
        self._finished.move_to_end(download_id)
        while len(self._finished) > self.keep:
            self._finished.popitem(last=False)
