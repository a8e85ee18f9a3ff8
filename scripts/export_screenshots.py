"""Export every scenario of the snapshot tests as an SVG in screenshots/.

    python scripts/export_screenshots.py

Re-run it whenever the UI changes, then look at the pictures: they are the product.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# By path: some packages install a top-level `tests` package of their own.
sys.path.insert(0, str(ROOT / "tests" / "tui"))

from scenarios import SCENARIOS, make_app, use_utc  # noqa: E402
from textual._doc import take_svg_screenshot  # noqa: E402


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
        (out / f"{scenario.name}.svg").write_text(svg, encoding="utf-8")
        print(f"screenshots/{scenario.name}.svg")
    return 0


if __name__ == "__main__":
    sys.exit(main())
