"""Export every scenario of the snapshot tests as an SVG in screenshots/.

    python scripts/export_screenshots.py

Re-run it whenever the UI changes, then look at the pictures: they are the product.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# By path: some packages install a top-level `tests` package of their own.
sys.path.insert(0, str(ROOT / "tests" / "tui"))

from scenarios import SCENARIOS, make_app, use_utc  # noqa: E402
from textual._doc import take_svg_screenshot  # noqa: E402

FONT_FACE = re.compile(r"\s*@font-face\s*\{[^}]*\}")
FONT_FAMILY = re.compile(r"font-family:\s*[^;]*;")
MONOSPACE = 'font-family: "Fira Code", "DejaVu Sans Mono", Menlo, Consolas, monospace;'


def self_contained(svg: str) -> str:
    """The SVG without web fonts: no @font-face, no remote URL, and a font list that ends
    in `monospace`, so that any viewer (GitHub's image view) keeps the columns aligned."""
    svg = FONT_FACE.sub("", svg)
    svg = svg.replace("<!-- Generated with Rich https://www.textualize.io -->", "")
    return FONT_FAMILY.sub(MONOSPACE, svg)


def main() -> int:
    use_utc()
    out = ROOT / "screenshots"
    out.mkdir(exist_ok=True)
    for scenario in SCENARIOS:
        svg = take_svg_screenshot(
            app=make_app(scenario),
            press=scenario.press,
            terminal_size=scenario.size,
            title=f"cdl-tui - {scenario.name}",
        )
        (out / f"{scenario.name}.svg").write_text(self_contained(svg), encoding="utf-8")
        print(f"screenshots/{scenario.name}.svg")
    return 0


if __name__ == "__main__":
    sys.exit(main())
