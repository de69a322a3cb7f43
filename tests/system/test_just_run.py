"""The newcomer's line: `just run` in a fresh clone installs only what the daemon needs,
says what it is doing, and reaches "listening".

The clone is of this repository's last commit, set up from nothing (its own
.venv, pip's cache allowed), with its data dir in the test's folder. The
run is bounded: the daemon is stopped by SIGTERM once it listens, and a
watchdog kills the whole group if it never does.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import signal
import subprocess
import threading

import pytest

from hostsmith.actors.proof import free_port
from tests.support.daemon import without_hostsmith_settings

ROOT = pathlib.Path(__file__).parents[2]
TEST_TOOLS = ("pytest", "moto", "mypy", "ruff", "hypothesis")


@pytest.mark.slow
def test_just_run_in_a_fresh_clone_installs_the_daemon_only_and_reaches_listening(
    tmp_path: pathlib.Path,
) -> None:
    just = shutil.which("just")
    if just is None:
        pytest.fail("`just` is not on PATH: python3 -m pip install rust-just")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    port = free_port()
    environment = without_hostsmith_settings() | {"XDG_DATA_HOME": str(tmp_path / "data")}
    environment.pop("VIRTUAL_ENV", None)
    with subprocess.Popen(
        [just, "run", "--port", str(port)],
        cwd=clone,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as running:
        watchdog = threading.Timer(600, os.killpg, (running.pid, signal.SIGKILL))
        watchdog.start()
        try:
            assert running.stdout is not None
            said = []
            for line in running.stdout:
                said.append(line.rstrip())
                if line.startswith("hostsmith listening on "):
                    break
            os.killpg(running.pid, signal.SIGTERM)
            _, errors = running.communicate(timeout=120)
        finally:
            watchdog.cancel()
    assert said[-1] == f"hostsmith listening on http://127.0.0.1:{port}", (said, errors)
    assert said[0].startswith("hostsmith: creating the virtualenv .venv with Python 3.")
    assert "hostsmith: installing hostsmith and what the daemon needs into .venv" in said[1]
    assert any(line.startswith("Collecting trio") for line in said)
    assert "hostsmith: installed; starting the daemon" in said
    installed = subprocess.run(
        [str(clone / ".venv" / "bin" / "python"), "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.lower()
    names = {line.split("==")[0] for line in installed.split()}
    assert "hostsmith" in names
    assert not names & set(TEST_TOOLS), names & set(TEST_TOOLS)
