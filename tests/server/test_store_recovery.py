"""A store that fails writes (a full disk) and then recovers: served again, no restart.

Found by hand: after the disk filled and space was freed, every
requestMachines still failed with a version conflict, the request in flight
stayed `running`, and `/healthz` said ok throughout; only a restart mended
it. Here the store's fault injection (`failing`) plays the full disk, and
the daemon's ASGI app is called in process on virtual time (the real
SQLite file on a real full filesystem is `test_daemon_full_disk.py`).
While the store fails, calls get a 503 that names the cause and /healthz
says degraded; once it heals, the next call is served, the request that was
in flight completes, and what the service holds in memory equals what a
fresh service reads back from the log.
"""

from __future__ import annotations

import pathlib
import sqlite3
from typing import Any

import trio

from hostsmith.actors.providers.sim import SimProvider
from hostsmith.actors.server import Api
from hostsmith.actors.service import Config, load_templates, open_service
from hostsmith.runtime.testing import FaultyStore, MemoryStore
from tests.support.asgi import call, post
from tests.support.virtual_time import epoch

ON_DEMAND = "OnDemand-Minimal-Template-VM"
DISK_FULL = sqlite3.OperationalError("database or disk is full")


def acquire(count: int) -> dict[str, Any]:
    return {"template": {"templateId": ON_DEMAND, "machineCount": count}}


async def view(api: Api, request_ids: list[str]) -> tuple[int, list[tuple[str, str, int]]]:
    """What Host Factory sees: the template's availableNumber and each request's state."""
    _, listed = await post(api, "getAvailableTemplates", {})
    (template,) = [t for t in listed["templates"] if t["templateId"] == ON_DEMAND]
    _, status = await post(
        api, "getRequestStatus", {"requests": [{"requestId": r} for r in request_ids]}
    )
    requests = [(r["requestId"], r["status"], len(r["machines"])) for r in status["requests"]]
    return template["availableNumber"], requests


async def test_a_full_disk_then_freed_space_serves_again_with_no_restart(
    tmp_path: pathlib.Path, autojump_clock: trio.abc.Clock
) -> None:
    config = Config(data_dir=str(tmp_path))
    templates = load_templates(config.templates_path)
    cloud = SimProvider(tmp_path / "sim.db", clock=epoch)
    log = MemoryStore()
    store = FaultyStore(log)
    try:
        async with open_service(config, store, cloud, templates, clock=epoch) as application:
            api = Api(application)
            status, first = await post(api, "requestMachines", acquire(2))
            assert status == 200
            assert await call(api, "GET", "/healthz") == (
                200,
                {"status": "ok", "store": "writable", "provider_circuit": "closed"},
            )

            store.failing = DISK_FULL  # the disk fills while the first is in flight
            status, refused = await post(api, "requestMachines", acquire(3))
            assert status == 503
            assert "database or disk is full" in refused["message"]
            assert refused["message"].endswith("it is safe to send it again")
            await trio.sleep(60)  # the driver keeps trying to record the first request
            status, health = await call(api, "GET", "/healthz")
            assert status == 503
            assert health["status"] == "degraded"
            assert health["store_error"] == "OperationalError: database or disk is full"
            assert health["failing_for_seconds"] >= 60

            store.failing = None  # space is freed
            status, second = await post(api, "requestMachines", acquire(3))
            assert status == 200, second  # no 'another writer got there first'
            assert (await call(api, "GET", "/healthz"))[0] == 200
            await trio.sleep(600)  # time to boot: nothing may be left stuck
            ids = [first["requestId"], second["requestId"]]
            in_memory = await view(api, ids)
            assert in_memory[1] == [(ids[0], "complete", 2), (ids[1], "complete", 3)]
            # the refused call and the driver's retries all met the full disk
            assert application.runtime.journal.stats.failed_transactions >= 2
        # memory equals the log: a fresh service on the same log sees the same
        async with open_service(config, log, cloud, templates, drive=False, clock=epoch) as again:
            assert await view(Api(again), ids) == in_memory
    finally:
        cloud.close()
