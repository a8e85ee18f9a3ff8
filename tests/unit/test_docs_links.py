"""Nothing in the repository links outside it: every link in its Markdown leads to a file
of the checkout (a clone has no `../shared/`), and none points to another site."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted(
    p
    for p in ROOT.rglob("*.md")
    if not any(part.startswith(".") or part in ("node_modules",) for part in p.parts)
    and "site-packages" not in p.parts
)
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_the_pages_are_found() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in PAGES}
    assert {"README.md", "CHANGELOG.md", "docs/farm-api.md", "docs/architecture.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(ROOT).as_posix() for p in PAGES])
def test_every_link_leads_to_a_file_of_the_checkout(page: Path) -> None:
    broken = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if target.startswith("#"):
            continue
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:...
            broken.append(f"{target}: leads outside the repository")
            continue
        path = (page.parent / target.split("#", 1)[0]).resolve()
        if not path.is_relative_to(ROOT):
            broken.append(f"{target}: outside the checkout")
        elif not path.exists():
            broken.append(f"{target}: no such file")
    assert not broken, broken
