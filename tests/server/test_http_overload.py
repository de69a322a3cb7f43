"""An overloaded daemon says so: an ask that times out inside hostsmith is a 503, not a 500.

The HTTP API is called as hypercorn calls it (an ASGI app), in process, on
virtual time, over a store whose first request-opening write stalls past
the ask timeout. The answer must be a clear 503 and the request must not be
left running: the timed-out open is cancelled once it lands.
"""

from __future__ import annotations

import pathlib

import trio

from hostsmith.actors.providers.sim import SimProvider
from hostsmith.actors.server import Api
from hostsmith.actors.service import Config, load_templates, open_service
from hostsmith.runtime.testing import FaultyStore, MemoryStore
from tests.service.test_service import SlowToOpen
from tests.support.asgi import post
from tests.support.virtual_time import epoch


async def test_an_ask_timeout_is_a_503_and_nothing_is_left_running(
    tmp_path: pathlib.Path, autojump_clock: trio.abc.Clock
) -> None:
    config = Config(data_dir=str(tmp_path))
    templates = load_templates(config.templates_path)
    store = SlowToOpen(delay=15.0)  # past the 10 s ask timeout
    cloud = SimProvider(tmp_path / "sim.db", clock=epoch)
    try:
        async with open_service(config, store, cloud, templates, clock=epoch) as application:
            api = Api(application)
            template = next(iter(templates))
            status, answer = await post(
                api, "requestMachines", {"template": {"templateId": template, "machineCount": 2}}
            )
            assert status == 503
            assert answer["message"].startswith("requestMachines did not finish in time (")
            assert answer["message"].endswith(
                "hostsmith is overloaded; it is safe to send it again"
            )
            await trio.sleep(120)
            events = await store.read_all(0, 10_000)
            opened = [e.stream for e in events if e.type == "AcquireOpened"]
            settled = [e.data for e in events if e.type == "RequestSettled"]
            assert len(opened) == 1  # the open landed after all…
            assert b"cancelled" in settled[0]  # …and was cancelled, not left to run
    finally:
        cloud.close()


async def test_a_failed_store_write_is_a_503_that_names_it_and_records_nothing(
    tmp_path: pathlib.Path, autojump_clock: trio.abc.Clock
) -> None:
    config = Config(data_dir=str(tmp_path))
    templates = load_templates(config.templates_path)
    store = FaultyStore(MemoryStore())
    cloud = SimProvider(tmp_path / "sim.db", clock=epoch)
    try:
        async with open_service(config, store, cloud, templates, clock=epoch) as application:
            api = Api(application)
            template = next(iter(templates))
            before = await store.read_all(0, 10_000)
            store.fail_next_appends(1)
            status, answer = await post(
                api, "requestMachines", {"template": {"templateId": template, "machineCount": 2}}
            )
            assert status == 503
            assert answer["message"].startswith("requestMachines was not recorded: ")
            assert "OSError: injected write failure" in answer["message"]
            assert answer["message"].endswith(
                "hostsmith's event store failed; it is safe to send it again"
            )
            after = await store.read_all(0, 10_000)
            assert [e.type for e in after] == [e.type for e in before]
    finally:
        cloud.close()
