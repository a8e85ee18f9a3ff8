"""Fakes at the boundaries of core/'s parts, shared by their unit tests."""

from __future__ import annotations

import threading

import pytest


class FakeFarm:
    def __init__(self, fail_with: Exception | None = None) -> None:
        self.seen: list[tuple[object, str, int]] = []
        self.fails: list[tuple[str, str]] = []
        self.fail_with = fail_with
        self.lock = threading.Lock()

    def report_status(self, wire_id, status, *, bytes_downloaded, bytes_to_download, quick):
        if self.fail_with is not None:
            raise self.fail_with
        with self.lock:
            self.seen.append((wire_id, status, bytes_downloaded))

    def report_fail(self, download_id: str, message: str) -> None:
        self.fails.append((download_id, message))

    def statuses(self) -> list[str]:
        with self.lock:
            return [status for _, status, _ in self.seen]


@pytest.fixture
def make_farm() -> type[FakeFarm]:
    """`make_farm(fail_with=None)`: a farm client that records the reports it is sent."""
    return FakeFarm
