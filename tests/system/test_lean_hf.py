"""Host Factory's call to a daemon loads only what it needs: no trio, no CLI framework, no server.

Host Factory starts a new process for every call, so the imports are the
call's cost. `python -X importtime` lists the modules a run imported by an
import statement (those a package loads lazily are not listed, but what
they import is); the call to a daemon must import none of the heavy ones. (How fast it is, is
measured by `hostsmith bench hf-call`, never by a test.)
"""

from __future__ import annotations

import subprocess
import sys

from hostsmith.actors.commands._hf_script import COMMANDS as LEAN_COMMANDS
from hostsmith.actors.hostfactory import COMMANDS
from tests.support.daemon import without_hostsmith_settings

HEAVY = ("trio", "typer", "rich", "httpx", "hypercorn", "prometheus_client", "pytest", "sqlite3")


def imported_by(*arguments: str) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "hostsmith.actors.cli", *arguments],
        capture_output=True,
        text=True,
        check=False,
        env=without_hostsmith_settings(),
    )
    modules = {
        line.split("|")[-1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    return modules, done


def test_a_call_to_a_daemon_imports_nothing_heavy() -> None:
    # the daemon's address is refused: the call is made, and answered with the reason
    modules, done = imported_by(
        "hf", "getAvailableTemplates", "-d", "{}", "--url", "http://127.0.0.1:9"
    )
    assert done.returncode == 1
    assert "cannot reach the hostsmith daemon at http://127.0.0.1:9" in done.stdout
    assert "msgspec" in modules  # the configuration was read (this lists what was imported)
    loaded = sorted({m for m in modules if m.split(".")[0] in HEAVY})
    assert loaded == []


def test_the_full_command_line_is_still_there_for_help() -> None:
    modules, done = imported_by("hf", "--help")
    assert done.returncode == 0
    assert "Speak Host Factory's provider protocol" in done.stdout
    assert "typer" in modules


def test_the_lean_path_knows_host_factorys_five_calls_in_order() -> None:
    assert LEAN_COMMANDS == COMMANDS
