"""The systemd unit shipped in contrib/ says what the README promises, and verifies."""

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

UNIT = Path(__file__).resolve().parents[2] / "contrib" / "systemd" / "cdl-tui.service"


def service_section():
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read_string(UNIT.read_text())
    return parser


def test_the_unit_restarts_on_failure_and_stops_gracefully():
    unit = service_section()
    service = unit["Service"]
    assert service["Restart"] == "on-failure"
    assert service["SuccessExitStatus"] == "143"  # our exit code after SIGTERM
    assert service["RestartPreventExitStatus"] == "2"  # usage/config/auth errors
    assert service["KillSignal"] == "SIGTERM"  # a signal the engine handles gracefully
    assert "--headless" in service["ExecStart"]
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_systemd_analyze_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        # Not every machine has systemd; the unit is then checked by the test above only.
        return
    command = Path(sys.executable).parent / "cdl-tui"
    unit = tmp_path / "cdl-tui.service"
    unit.write_text(UNIT.read_text().replace("/opt/cdl-tui/bin/cdl-tui", str(command)))
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "cdl-tui.service" not in result.stdout + result.stderr
