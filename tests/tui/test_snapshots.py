"""Snapshot tests of the app's screens in fixed states (see scenarios.py).

The same scenarios are exported to screenshots/ by scripts/export_screenshots.py.
Update the stored snapshots after an intended change with
`python -m pytest tests/tui/test_snapshots.py --snapshot-update`, then look at them.
"""

import pytest

from .scenarios import SCENARIOS, make_app


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_screen(snap_compare, scenario):
    assert snap_compare(make_app(scenario), press=scenario.press, terminal_size=scenario.size)
