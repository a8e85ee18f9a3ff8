"""The scenes the screenshots show are believable: task sizes vary, and each row's rate
and ETA, as shown, agree with the bytes it has left (within 10 %)."""

from __future__ import annotations

import re

from cdl_tui.tui.widgets import rows

from .scenarios import MIB, active_views, job_views

UNITS = {"Bytes": 1, "KiB": 1 << 10, "MiB": MIB, "GiB": 1 << 30}
ROW = re.compile(
    r"(?P<done>[\d.]+ \w+)/(?P<total>[\d.]+ \w+) +(?P<rate>[\d.]+ \w+)/s +(?P<eta>[\d:]+)"
)


def _bytes(text: str) -> float:
    number, unit = text.split()
    return float(number) * UNITS[unit]


def _seconds(text: str) -> int:
    parts = [int(p) for p in text.split(":")]
    return sum(p * 60**i for i, p in enumerate(reversed(parts)))


def _agree(line: str) -> None:
    match = ROW.search(line)
    assert match, line
    left = _bytes(match["total"]) - _bytes(match["done"])
    moved = _bytes(match["rate"]) * _seconds(match["eta"])
    assert abs(moved - left) <= 0.1 * left, line


def test_active_rows_show_a_rate_and_an_eta_that_agree_with_what_is_left() -> None:
    shown = [rows.active_row(v, 100).plain for v in active_views() if not v.paused]
    assert len(shown) >= 6
    for line in shown:
        _agree(line)
    sizes = {v.size for v in active_views()}
    assert len(sizes) >= 4  # task sizes vary


def test_job_rows_agree_too() -> None:
    moving = [v for v in job_views(active_views()) if v.rate]
    assert moving
    for view in moving:
        _agree(rows.job_row(view, 120).plain)
