"""`hostsmith reconcile` against the real daemon, and in process once it has stopped.

Drift is made in the simulated cloud's own file, behind the daemon's back,
as an admin's console would: one of Host Factory's hosts terminated, and a
machine tagged with this installation that no request holds (a lost data
dir). The command is answered by the daemon that serves the data dir; a
dry run changes nothing; the pass records the ghost, so Host Factory hears
of it, and reports the orphan; the daemon's metrics count both.
"""

from __future__ import annotations

import json
import pathlib
import sqlite3
from typing import Any

import httpx
import pytest

from hostsmith.actors.providers.sim import SimProvider
from hostsmith.actors.service import EXAMPLE_TEMPLATES, load_templates
from tests.support.daemon import Daemon, hf, hostsmith, write_config

ON_DEMAND = "OnDemand-Minimal-Template-VM"

pytestmark = pytest.mark.slow


def reconcile(config: pathlib.Path, *flags: str) -> dict[str, Any]:
    done = hostsmith("reconcile", "--config", str(config), "--json", *flags)
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def installation_of(data_dir: pathlib.Path) -> str:
    db = sqlite3.connect(data_dir / "events.db")
    try:
        (data,) = db.execute("SELECT data FROM events WHERE stream = 'installation'").fetchone()
    finally:
        db.close()
    return str(json.loads(data)["installation_id"])


def kinds(answer: dict[str, Any]) -> list[tuple[str, str]]:
    return sorted((f["kind"], f["resource_id"]) for f in answer["findings"])


def test_reconcile_by_hand_through_the_daemon_and_in_process(tmp_path: pathlib.Path) -> None:
    config = write_config(tmp_path)
    daemon = Daemon(config).start()
    try:
        code, accepted = hf(
            "requestMachines", {"template": {"templateId": ON_DEMAND, "machineCount": 2}},
            url=daemon.url,
        )  # fmt: skip
        assert code == 0, accepted
        ask = {"requests": [{"requestId": accepted["requestId"]}]}
        for _ in range(100):  # bounded: the fast simulated cloud boots in 0.2 s
            code, status = hf("getRequestStatus", ask, url=daemon.url)
            if status["requests"][0]["status"] == "complete":
                break
        held = status["requests"][0]["machines"]
        assert len(held) == 2

        # drift, behind the daemon's back
        cloud = SimProvider(
            tmp_path / "data" / "sim-cloud.db",
            installation_id=installation_of(tmp_path / "data"),
        )
        try:
            template = load_templates(EXAMPLE_TEMPLATES)[ON_DEMAND]
            (lost,) = cloud.launch_outside("req-from-a-lost-data-dir", template, 1)
            cloud.terminate_outside([held[0]["machineId"]])
        finally:
            cloud.close()
        expected = sorted([("orphan", lost), ("ghost", held[0]["machineId"])])
        for _ in range(20):  # bounded: the simulated shutdown takes 0.1 s; each look is a process
            looked = reconcile(config, "--dry-run")
            if kinds(looked) == expected:
                break
        assert kinds(looked) == expected
        assert [a["action"] for a in looked["actions"]] == ["recorded terminated"]
        nothing = hostsmith("events", "reconcile-sim", "--config", str(config))
        assert nothing.stderr.startswith("error: no events for 'reconcile-sim'")  # none recorded

        done = reconcile(config)
        assert kinds(done) == kinds(looked)
        code, notices = hf("getReturnRequests", {"machines": held}, url=daemon.url)
        assert notices["requests"] == [{"machine": held[0]["name"], "gracePeriod": 0}]
        metrics = httpx.get(f"{daemon.url}/metrics").text
        assert 'hostsmith_reconcile_findings_total{kind="orphan"} 1.0' in metrics
        assert 'hostsmith_reconcile_findings_total{kind="ghost"} 1.0' in metrics
        assert 'hostsmith_reconcile_actions_total{kind="ghost"} 1.0' in metrics
    finally:
        assert daemon.stop() == 0
    assert f"orphan {lost}" in daemon.logs()  # a warning for each finding

    # no daemon now: the pass runs in process; the orphan is still there, the ghost is not
    again = reconcile(config)
    assert kinds(again) == [("orphan", lost)]
    assert again["actions"] == []
    events = hostsmith("events", "reconcile-sim", "--config", str(config), "--json")
    assert events.returncode == 0, events.stderr
    types = [json.loads(line)["type"] for line in events.stdout.splitlines() if line]
    assert types == ["DriftFound", "DriftFound", "DriftActedOn"]
