"""Backup under load, restore into a new data dir, verify: the admin's way back.

The real daemon takes Host Factory traffic from a background thread (a
bounded number of calls) while `hostsmith backup` copies its live SQLite
store. The copy must be the log as it was at one commit (a prefix of the
final log, event for event), the daemon must have gone on writing meanwhile,
and the backup restored into a new data dir must serve Host Factory the
requests it holds.
"""

from __future__ import annotations

import json
import pathlib
import sqlite3
import threading

import httpx
import pytest

from hostsmith.actors.proof.loadtest import templates_with_room
from tests.support.daemon import Daemon, hf, hostsmith, write_config

pytestmark = pytest.mark.slow

ON_DEMAND = "OnDemand-Minimal-Template-VM"
CALLS = 60


def rows(path: pathlib.Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return db.execute(
            "SELECT position, stream, version, event_id, type, data FROM events ORDER BY position"
        ).fetchall()


def keep_calling(url: str, acknowledged: list[str], started: threading.Event) -> None:
    """Host Factory's traffic: acquire one machine, then ask after it, CALLS times."""
    with httpx.Client(base_url=url, timeout=60) as client:
        for n in range(CALLS):
            answer = client.post(
                "/api/v1/requestMachines",
                json={"template": {"templateId": ON_DEMAND, "machineCount": 1}},
            )
            if answer.status_code == 200:
                acknowledged.append(answer.json()["requestId"])
            client.post(
                "/api/v1/getRequestStatus",
                json={"requests": [{"requestId": r} for r in acknowledged[-5:]]},
            )
            if n == 5:
                started.set()


def test_a_backup_taken_under_load_restores_into_a_new_data_dir_and_serves(
    tmp_path: pathlib.Path,
) -> None:
    templates = templates_with_room(tmp_path / "templates.json", 1000)
    config = write_config(tmp_path, f'templates = "{templates}"')
    daemon = Daemon(config).start()
    acknowledged: list[str] = []
    started = threading.Event()
    load = threading.Thread(target=keep_calling, args=(daemon.url, acknowledged, started))
    try:
        load.start()
        assert started.wait(timeout=120)
        before_backup = list(acknowledged)
        backed_up = hostsmith("backup", str(tmp_path / "backup"), "--config", str(config), "--json")
        load.join(timeout=300)
    finally:
        assert daemon.stop() == 0
    assert backed_up.returncode == 0, backed_up.stderr
    report = json.loads(backed_up.stdout)
    assert report["provider_files"] == ["sim-cloud.db"]
    copy, live = rows(tmp_path / "backup" / "events.db"), rows(tmp_path / "data" / "events.db")
    assert len(copy) == report["events"] > 0
    assert copy == live[: len(copy)]  # the log at one commit, event for event
    assert len(live) > len(copy)  # and the daemon went on writing meanwhile

    other = tmp_path / "restored"
    other.mkdir()
    restored_config = write_config(other, f'templates = "{templates}"')
    restored = hostsmith("restore", str(tmp_path / "backup"), "--config", str(restored_config))
    assert restored.returncode == 0, restored.stderr
    assert rows(other / "data" / "events.db") == copy
    again = hostsmith("restore", str(tmp_path / "backup"), "--config", str(restored_config))
    assert again.returncode == 2
    assert "already holds events: restore into an empty store" in again.stderr
    # the restored data dir serves Host Factory the requests acknowledged before the backup
    code, status = hf(
        "getRequestStatus",
        {"requests": [{"requestId": r} for r in before_backup]},
        config=restored_config,
    )
    assert code == 0, status
    assert [entry["requestId"] for entry in status["requests"]] == before_backup
    assert all(entry["status"] in ("running", "complete") for entry in status["requests"])


def test_restore_refuses_while_a_daemon_serves_the_data_dir(tmp_path: pathlib.Path) -> None:
    config = write_config(tmp_path)
    daemon = Daemon(config).start()
    try:
        backed_up = hostsmith("backup", str(tmp_path / "backup"), "--config", str(config))
        assert backed_up.returncode == 0, backed_up.stderr
        refused = hostsmith("restore", str(tmp_path / "backup"), "--config", str(config))
    finally:
        assert daemon.stop() == 0
    assert refused.returncode == 2
    assert f"serves {tmp_path / 'data'} at {daemon.url}: stop it before restoring" in " ".join(
        refused.stderr.split()
    )
