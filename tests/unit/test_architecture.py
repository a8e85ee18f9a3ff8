"""Guards on the shape of the code base."""

import subprocess
import sys
from pathlib import Path

import cdl_tui.core

CORE_GUARD = """
import importlib, pkgutil, sys
import cdl_tui.core as core
for module in pkgutil.walk_packages(core.__path__, "cdl_tui.core."):
    importlib.import_module(module.name)
bad = sorted(name for name in sys.modules if name == "textual" or name.startswith("textual."))
print(len([m for m in sys.modules if m.startswith("cdl_tui.core.")]))
sys.exit("core imported: " + ", ".join(bad) if bad else 0)
"""


def test_core_never_imports_textual():
    result = subprocess.run(
        [sys.executable, "-c", CORE_GUARD], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr or result.stdout
    modules = int(result.stdout.strip())
    expected = len(list(Path(cdl_tui.core.__path__[0]).glob("*.py"))) - 1  # not __init__
    assert modules >= expected


def test_the_headless_cli_does_not_import_textual():
    code = "import sys, cdl_tui.tui.cli; sys.exit('textual' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
