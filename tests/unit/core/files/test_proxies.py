"""ProxyRules: one decision per origin, and no password kept with it (NO_PROXY, read
from the environment, is tested end to end in test_transfer_engines)."""

from cdl_tui.core.files.proxies import ProxyRules


def test_decisions_per_origin_hold_no_password():
    rules = ProxyRules({"http": "http://proxy:3128"})
    assert rules.proxy_for("http://user:secret@storage.example/a.exr?sig=1") == (
        "http://proxy:3128"
    )
    assert rules.proxy_for("HTTP://Storage.Example:80/b.exr") == "http://proxy:3128"
    assert rules.proxy_for("https://storage.example/d.exr") is None  # no https proxy
    assert "secret" not in repr(rules._decided)
