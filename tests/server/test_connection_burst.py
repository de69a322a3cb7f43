"""A thousand Host Factory clients at once are all answered by the daemon.

Host Factory starts a process, and so a connection, per call. With
hypercorn's default accept backlog of 100, the HTTP load test at 1,000
clients had 470 to 600 of its first calls' connections reset by the daemon.
Here the real daemon takes the same load test, bounded (one cycle per
client), on loopback; every call must be answered.
"""

from __future__ import annotations

import json
import pathlib

import pytest

from hostsmith.actors.proof.loadtest import templates_with_room
from tests.support.daemon import Daemon, hostsmith, write_config

CLIENTS = 1000


@pytest.mark.slow
def test_a_thousand_clients_connecting_at_once_are_all_answered(tmp_path: pathlib.Path) -> None:
    templates = templates_with_room(tmp_path / "templates.json", CLIENTS)
    # warnings only: the test reads the daemon's stderr at the end, and a pipe nobody
    # reads holds 64 KB (a line per call would stall the daemon on its own log)
    settings = f'templates = "{templates}"\n[log]\nlevel = "warning"'
    daemon = Daemon(write_config(tmp_path, settings)).start()
    try:
        result = hostsmith(
            "loadtest", "--workload", "hostfactory", "--target", daemon.url,
            "--concurrency", str(CLIENTS), "--cycles", "1", "--no-progress", "--json",
        )  # fmt: skip
    finally:
        assert daemon.stop() == 0
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["error_reasons"] == []
    assert report["calls"]["requestMachines"]["calls"] == CLIENTS
    assert report["calls"]["requestReturnMachines"]["calls"] == CLIENTS
