"""When the farm client says the farm is back: the end of the standing problem "farm"
(one function of the client, a stub farm; the problem log is the real one)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from cdl_tui.core.farm.api import FARM_PROBLEM, FarmClient
from cdl_tui.core.farm.credentials import credentials_from_text
from cdl_tui.core.farm.retry import RetryPolicy
from cdl_tui.core.state.problems import ProblemHandler, ProblemLog, current_problems


@pytest.fixture
def problems() -> Iterator[ProblemLog]:
    log = ProblemLog()
    handler = ProblemHandler(log)
    logging.getLogger("cdl").addHandler(handler)
    yield log
    logging.getLogger("cdl").removeHandler(handler)


def client_for(answer: Callable[[int], httpx.Response], problems: ProblemLog) -> FarmClient:
    calls = [0]

    def respond(_request: httpx.Request) -> httpx.Response:
        calls[0] += 1
        return answer(calls[0])

    client = FarmClient(
        "http://farm.test",
        credentials_from_text("t-123456", "test"),
        http=httpx.Client(transport=httpx.MockTransport(respond)),
        retry=RetryPolicy(base_delay=0.01, max_delay=0.01),
    )
    client.on_answer(lambda sent_at: problems.clear(FARM_PROBLEM, noted_before=sent_at))
    return client


def farm_standing(problems: ProblemLog) -> list[str]:
    return [p.text for p in current_problems(problems.view(), time.time()) if p.key == "farm"]


def test_503s_stand_until_the_farm_answers(problems: ProblemLog) -> None:
    def answer(n: int) -> httpx.Response:
        return httpx.Response(503) if n <= 2 else httpx.Response(200, json={"data": []})

    client = client_for(answer, problems)
    client.next_downloads(location=None, count=1)
    (entry,) = [p for p in problems.view() if p.key == FARM_PROBLEM]
    assert entry.count == 2 and entry.cleared_at is not None and entry.retry_at
    assert farm_standing(problems) == []


def test_an_unreadable_200_is_trouble_that_a_good_answer_ends(problems: ProblemLog) -> None:
    """A proxy's HTML page with 200 used to be logged as trouble and never cleared."""

    def answer(n: int) -> httpx.Response:
        if n == 1:
            return httpx.Response(200, text="<html>proxy error</html>")
        return httpx.Response(200, json={"data": []})

    client = client_for(answer, problems)
    client.next_downloads(location=None, count=1)
    assert farm_standing(problems) == []
    assert any(p.key == FARM_PROBLEM for p in problems.view())  # it was noted


def test_a_clear_refusal_shows_the_farm_is_there(problems: ProblemLog) -> None:
    def answer(n: int) -> httpx.Response:
        return httpx.Response(503) if n == 1 else httpx.Response(404, json={"error": "no"})

    client = client_for(answer, problems)
    with pytest.raises(Exception, match="404"):
        client.next_downloads(location=None, count=1)
    assert farm_standing(problems) == []
