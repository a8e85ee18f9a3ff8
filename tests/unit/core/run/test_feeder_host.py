"""The feeder sees the run through FeederHost: the engine's intake must provide it."""

from __future__ import annotations

from cdl_tui.core.engine import Engine, EngineConfig
from cdl_tui.core.farm.api import FarmClient
from cdl_tui.core.farm.credentials import credentials_from_text
from cdl_tui.core.run.feeder import FeederHost, ListingSettings


def test_the_intake_is_a_feeder_host_and_its_config_has_the_listing_settings() -> None:
    client = FarmClient("http://127.0.0.1:9", credentials_from_text("token-12345", "t"))
    try:
        engine = Engine(client, EngineConfig(reporting=False))
        assert isinstance(engine.intake, FeederHost)
        assert isinstance(engine.config, ListingSettings)
    finally:
        client.close()
