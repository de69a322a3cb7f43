"""One daemon per data dir: a second one refuses, and one-shot calls go to the first.

Two daemons on one data dir each kept their own projections of one log and
reported different `availableNumber`s; an in-process `hostsmith hf` beside a
daemon diverged the same way. Now the daemon claims the data dir, and a
one-shot call on a served data dir is answered by the daemon.
"""

from __future__ import annotations

import json
import pathlib
import signal
import subprocess
import sys

import httpx
import pytest

from tests.support.daemon import Daemon, hf, hostsmith, write_config

pytestmark = pytest.mark.slow

ON_DEMAND = "OnDemand-Minimal-Template-VM"


def available(url: str) -> int:
    listed = httpx.post(f"{url}/api/v1/getAvailableTemplates", content=b"{}").json()
    (template,) = [t for t in listed["templates"] if t["templateId"] == ON_DEMAND]
    return int(template["availableNumber"])


def test_a_second_daemon_on_the_same_data_dir_refuses_naming_the_first(
    tmp_path: pathlib.Path,
) -> None:
    config = write_config(tmp_path)
    first = Daemon(config).start()
    try:
        second = hostsmith("serve", "--config", str(config), "--port", "0")
        assert second.returncode == 2
        assert second.stdout == ""
        (line,) = second.stderr.strip().splitlines()
        assert f"pid {first.process.pid if first.process else '?'}" in line
        assert first.url in line
        assert str(tmp_path / "data") in line
        assert "Traceback" not in second.stderr
    finally:
        assert first.stop() == 0
    # stopped cleanly, it no longer names itself: the next daemon starts
    assert not (tmp_path / "data" / "daemon.json").exists()
    again = Daemon(config).start()
    assert again.stop() == 0


def test_a_one_shot_call_on_a_served_data_dir_is_answered_by_the_daemon(
    tmp_path: pathlib.Path,
) -> None:
    config = write_config(tmp_path)
    daemon = Daemon(config).start()
    try:
        before = available(daemon.url)
        code, accepted = hf(
            "requestMachines",
            {"template": {"templateId": ON_DEMAND, "machineCount": 3}},
            config=config,  # no --url: in process, but the data dir has a daemon
        )
        assert code == 0, accepted
        # the daemon's own projection counts the request: one writer, one view
        assert available(daemon.url) == before - 3
        code, status = hf(
            "getRequestStatus", {"requests": [{"requestId": accepted["requestId"]}]}, config=config
        )
        assert code == 0
        assert status["requests"][0]["requestId"] == accepted["requestId"]
    finally:
        assert daemon.stop() == 0
    assert accepted["requestId"] in daemon.logs()  # the daemon logged the call it served


def test_a_killed_daemon_leaves_no_claim_behind(tmp_path: pathlib.Path) -> None:
    config = write_config(tmp_path)
    killed = Daemon(config).start()
    assert killed.stop(signal.SIGKILL) == -signal.SIGKILL
    # its daemon.json is left, but names a dead pid: calls run in process again
    assert (tmp_path / "data" / "daemon.json").exists()
    code, listed = hf("getAvailableTemplates", {}, config=config)
    assert code == 0
    assert {t["templateId"] for t in listed["templates"]} >= {ON_DEMAND}
    restarted = Daemon(config).start()
    assert restarted.stop() == 0


def test_a_daemon_waits_for_one_shot_calls_then_claims_the_data_dir(
    tmp_path: pathlib.Path,
) -> None:
    """A one-shot call in process holds the data dir shared; a starting daemon waits for it."""
    config = write_config(tmp_path)
    holding = [
        sys.executable,
        "-c",
        "import pathlib, sys\n"
        "from hostsmith.actors.server import one_shot_claim\n"
        f"with one_shot_claim(pathlib.Path({json.dumps(str(tmp_path / 'data'))})) as d:\n"
        "    print('held', d, flush=True)\n"
        "    sys.stdin.readline()\n",
    ]
    port = Daemon(config).port
    serving = [sys.executable, "-m", "hostsmith.actors.cli", "serve", "--config", str(config)]
    with subprocess.Popen(
        holding, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as holder:
        assert holder.stdout is not None
        assert holder.stdin is not None
        assert holder.stdout.readline().strip() == "held None"
        with subprocess.Popen(
            [*serving, "--port", str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as waiting:
            holder.stdin.write("\n")
            holder.stdin.flush()
            assert holder.wait(timeout=30) == 0
            assert waiting.stdout is not None
            assert waiting.stdout.readline().startswith("hostsmith listening on ")
            waiting.send_signal(signal.SIGTERM)
            waiting.communicate(timeout=60)
            assert waiting.returncode == 0
