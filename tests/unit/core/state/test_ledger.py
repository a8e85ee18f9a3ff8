"""The counters: what a Download given up counts as, and what a retry takes back."""

from __future__ import annotations

import pytest

from cdl_tui.core.model.states import Outcome
from cdl_tui.core.state.ledger import Counters


def test_given_up_downloads_count_by_outcome_and_retries_take_them_back() -> None:
    counters = Counters()
    for outcome in (Outcome.FAILED, Outcome.FAILED, Outcome.REFUSED, Outcome.CANCELLED):
        counters.given_up(outcome)
    totals = counters.frozen()
    assert (totals.downloads_failed, totals.downloads_refused) == (2, 1)
    assert totals.downloads_cancelled == 1 and totals.failed == 3  # cancelled is no failure
    counters.given_up(Outcome.FAILED, -1)
    assert counters.frozen().failed == 2


def test_a_finished_outcome_is_not_a_way_to_give_up() -> None:
    with pytest.raises(ValueError, match="DL"):
        Counters().given_up(Outcome.DL)
