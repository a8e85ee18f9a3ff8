"""The screenshots in screenshots/ show the same in every viewer: no web font to fetch,
and a font list that ends in `monospace`, so GitHub's image view keeps columns aligned."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

SCREENSHOTS = sorted((Path(__file__).resolve().parents[2] / "screenshots").glob("*.svg"))
SVG_NAMESPACE = "http://www.w3.org/2000/svg"


def test_there_are_screenshots() -> None:
    assert len(SCREENSHOTS) >= 20


@pytest.mark.parametrize("path", SCREENSHOTS, ids=[p.stem for p in SCREENSHOTS])
def test_a_screenshot_is_self_contained_and_falls_back_to_monospace(path: Path) -> None:
    svg = path.read_text(encoding="utf-8")
    assert "@font-face" not in svg
    links = set(re.findall(r"(?:https?:)?//[\w.-]+\.\w+[^\s\"')<]*", svg)) - {SVG_NAMESPACE}
    assert not links, links
    families = re.findall(r"font-family:\s*([^;]*);", svg)
    assert families, "no font-family"
    assert all(f.strip().endswith("monospace") for f in families), families
