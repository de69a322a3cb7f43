"""The real daemon on a real filesystem that fills up, then gets its space back.

Found by hand (issue 13): after a full disk, every requestMachines failed
with a version conflict and the request in flight stayed `running` until the
daemon was restarted, while /healthz said ok. Here the daemon's data dir is
a small tmpfs of its own: it is filled to the last byte under traffic, and
then the filler is deleted. No restart: the daemon must serve again, and
every request it acknowledged must complete.
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.daemon import FAST_SIM, Daemon
from tests.support.small_disk import fill, mounted_tmpfs

pytestmark = pytest.mark.slow

ON_DEMAND = "OnDemand-Minimal-Template-VM"


@pytest.fixture
def data_dir(tmp_path: pathlib.Path) -> Iterator[pathlib.Path]:
    yield from mounted_tmpfs(tmp_path / "data", "2m")


def ask(daemon: Daemon, command: str, payload: Any) -> tuple[int, dict[str, Any]]:
    response = httpx.post(f"{daemon.url}/api/v1/{command}", json=payload, timeout=60)
    return response.status_code, response.json()


def acquire(daemon: Daemon) -> tuple[int, dict[str, Any]]:
    return ask(
        daemon, "requestMachines", {"template": {"templateId": ON_DEMAND, "machineCount": 1}}
    )


def status_of(daemon: Daemon, request_ids: list[str]) -> dict[str, str]:
    code, answer = ask(
        daemon, "getRequestStatus", {"requests": [{"requestId": r} for r in request_ids]}
    )
    assert code == 200, answer
    return {entry["requestId"]: entry["status"] for entry in answer["requests"]}


def test_the_daemon_serves_again_once_a_full_disk_has_room(
    tmp_path: pathlib.Path, data_dir: pathlib.Path
) -> None:
    config = tmp_path / "hostsmith.toml"
    config.write_text(f'data_dir = "{data_dir}"\n{FAST_SIM}')
    daemon = Daemon(config).start()
    try:
        code, first = acquire(daemon)
        assert code == 200, first
        accepted = [first["requestId"]]
        filler = fill(data_dir)
        # SQLite may still have room in pages it holds: call until a write fails
        for _ in range(50):
            code, answer = acquire(daemon)
            if code != 200:
                break
            accepted.append(answer["requestId"])
        assert code == 503, answer
        assert "database or disk is full" in answer["message"]
        assert answer["message"].endswith("it is safe to send it again")
        health = httpx.get(f"{daemon.url}/healthz")
        assert health.status_code == 503
        assert health.json()["status"] == "degraded"

        filler.unlink()  # the admin frees space; the daemon is not restarted
        code, answer = acquire(daemon)
        assert code == 200, answer  # not 'another writer got there first'
        accepted.append(answer["requestId"])
        assert httpx.get(f"{daemon.url}/healthz").json()["status"] == "ok"
        for _ in range(200):  # bounded: each poll is a real call to the daemon
            statuses = status_of(daemon, accepted)
            if "running" not in statuses.values():
                break
        assert set(statuses.values()) == {"complete"}, statuses
    finally:
        assert daemon.stop() == 0, daemon.logs()
