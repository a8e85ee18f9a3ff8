import pytest

from .scenarios import use_utc


@pytest.fixture(autouse=True)
def utc():
    use_utc()
