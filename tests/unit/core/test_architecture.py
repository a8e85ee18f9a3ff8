"""The rules that keep core/ small parts with one-way dependencies (docs/architecture.md).

They read the checkout itself (not the installed copy): import-linter's contracts and
mypy's strict mode (both configured in pyproject.toml) run over a throwaway package
folder whose `cdl_tui/core`, `tui` and `farm` are links to the repository's folders.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
CORE = ROOT / "core"
BIN = Path(sys.executable).parent
MAX_LINES = 400  # engine.py, and any class in core/
MAX_RUN_NAMES = 8  # names DownloadRun uses outside core/run and core/model


@pytest.fixture(scope="module")
def package_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder where `cdl_tui` is the checkout (as the wheel maps it)."""
    root = tmp_path_factory.mktemp("pkg")
    (root / "cdl_tui").mkdir()
    for part in ("core", "tui", "farm"):
        (root / "cdl_tui" / part).symlink_to(ROOT / part, target_is_directory=True)
    return root


def _run(command: list[str], package_root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(package_root), "MYPYPATH": str(package_root)}
    return subprocess.run(
        command, cwd=package_root, env=env, capture_output=True, text=True, timeout=240
    )


def test_the_import_contracts_hold(package_root: Path) -> None:
    """Layers (model <- files, farm <- state <- run <- engine; TYPE_CHECKING and
    function-level imports count), core without textual, the app on the facade only."""
    result = _run([str(BIN / "lint-imports"), str(ROOT / "pyproject.toml")], package_root)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_core_is_strictly_typed(package_root: Path) -> None:
    cache = package_root / ".mypy_cache"
    command = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml")]
    result = _run([*command, "--cache-dir", str(cache), "-p", "cdl_tui.core"], package_root)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def _core_sources() -> list[tuple[Path, str, ast.Module]]:
    sources = []
    for path in sorted(CORE.rglob("*.py")):
        text = path.read_text()
        sources.append((path, text, ast.parse(text)))
    return sources


def test_no_import_inside_a_function_in_core_without_a_start_up_reason() -> None:
    found = []
    for path, text, tree in _core_sources():
        lines = text.splitlines()
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    around = " ".join(lines[max(0, node.lineno - 2) : node.lineno])
                    if "start-up" not in around:
                        found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not found, f"imports inside functions, with no start-up reason beside them: {found}"


def test_every_type_ignore_in_core_says_why() -> None:
    bare = []
    for path, text, _ in _core_sources():
        for number, line in enumerate(text.splitlines(), 1):
            if "type: ignore" in line:
                after = line.split("type: ignore", 1)[1].split("]", 1)[-1]
                if "#" not in after:
                    bare.append(f"{path.relative_to(ROOT)}:{number}")
    assert not bare, f"type: ignore without a reason beside it: {bare}"


def test_engine_py_and_every_class_in_core_stay_small() -> None:
    engine_lines = len((CORE / "engine.py").read_text().splitlines())
    assert engine_lines <= MAX_LINES, f"core/engine.py has {engine_lines} lines"
    big = []
    for path, _, tree in _core_sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                size = node.end_lineno - node.lineno + 1
                if size > MAX_LINES:
                    big.append(f"{path.relative_to(ROOT)}: {node.name} ({size} lines)")
    assert not big, big


RUN_SOURCE = CORE / "run" / "download_run.py"


def _names_used_outside(source: str) -> set[str]:
    """What run/download_run.py takes from outside core/run and core/model: the names it
    imports from other cdl_tui modules, and every name it uses on its AttemptHost (the
    one door to state/ and farm/: its members are implemented there)."""
    tree = ast.parse(source)
    inside = ("cdl_tui.core.run", "cdl_tui.core.model")
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cdl_"):
            if not node.module.startswith(inside):
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("cdl_tui"))
        elif isinstance(node, ast.Attribute):
            owner = node.value
            on_host = isinstance(owner, ast.Name) and owner.id == "host"
            on_host |= isinstance(owner, ast.Attribute) and owner.attr == "host"
            if on_host:
                names.add(f"host.{node.attr}")
    return names


def test_download_run_uses_at_most_eight_names_outside_run_and_model() -> None:
    source = RUN_SOURCE.read_text()
    names = _names_used_outside(source)
    assert len(names) <= MAX_RUN_NAMES, sorted(names)
    # The host's part of them is what AttemptHost declares, nothing else.
    tree = ast.parse(source)
    (protocol,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "AttemptHost"]
    declared = {f"host.{f.name}" for f in protocol.body if isinstance(f, ast.FunctionDef)}
    assert {n for n in names if n.startswith("host.")} == declared


def test_the_count_sees_one_more_call_back_and_one_more_import() -> None:
    source = RUN_SOURCE.read_text()
    before = _names_used_outside(source)
    planted = source.replace(
        "from cdl_tui.core.state.active import",
        "from cdl_tui.core.state.outcomes import Outcomes\nfrom cdl_tui.core.state.active import",
    )
    planted += "\n\ndef _extra(run: DownloadRun) -> None:\n    run.host.finish()\n"
    after = _names_used_outside(planted)
    assert after - before == {"host.finish", "cdl_tui.core.state.outcomes.Outcomes"}
