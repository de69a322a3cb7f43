"""The deployment pieces an admin looks for first: the systemd unit, the licence, the changelog."""

from __future__ import annotations

import configparser
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).parents[2]
UNIT = ROOT / "deploy" / "hostsmith.service"


def unit_sections() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read_string(UNIT.read_text())
    return parser


def test_the_unit_runs_as_its_own_user_with_a_state_directory_and_stops_gracefully() -> None:
    service = unit_sections()["Service"]
    assert service["User"] == "hostsmith"
    assert service["StateDirectory"] == "hostsmith"
    assert service["Environment"] == "HOSTSMITH_DATA_DIR=/var/lib/hostsmith"  # the state dir
    assert service["Restart"] == "on-failure"
    assert service["RestartPreventExitStatus"] == "2"  # hostsmith's exit code for start-up errors
    assert service["KillSignal"] == "SIGTERM"
    assert int(service["TimeoutStopSec"]) > 30  # beyond the daemon's 30 s graceful timeout
    assert service["ExecStart"].split()[1:3] == ["serve", "--config"]


def test_systemd_analyze_verifies_the_unit(tmp_path: pathlib.Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here; the unit's keys are checked above")
    # the unit as installed, but pointing at this checkout's hostsmith
    hostsmith = pathlib.Path(sys.executable).with_name("hostsmith")
    text = UNIT.read_text().replace("/opt/hostsmith/.venv/bin/hostsmith", str(hostsmith))
    installed = tmp_path / "hostsmith.service"
    installed.write_text(text)
    verified = subprocess.run(
        [analyze, "verify", str(installed)], capture_output=True, text=True, check=False
    )
    problems = [
        line
        for line in verified.stderr.splitlines()
        # a container without a running systemd cannot look up units it does not need
        if "hostsmith.service" in line or "Unknown key" in line or "Invalid" in line
    ]
    assert verified.returncode == 0, verified.stderr
    assert problems == [], verified.stderr


def test_the_licence_is_the_one_pyproject_names_and_a_changelog_exists() -> None:
    assert 'license = "Apache-2.0"' in (ROOT / "pyproject.toml").read_text()
    assert (
        "Apache License\n                           Version 2.0" in (ROOT / "LICENSE").read_text()
    )
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert changelog.startswith("# Changelog")
    assert "## 0.1.0" in changelog
