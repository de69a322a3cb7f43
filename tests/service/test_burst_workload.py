"""The burst workload's bookkeeping, on virtual time: what it counts is what the log holds.

The workload runs in process (`calls_into`) against the service on the
simulated cloud and a memory store, with Host Factory's 30 s poll on
virtual time: every host requested must be seen `complete` and returned,
and the log must hold exactly those hosts, each launched once and
terminated.
"""

from __future__ import annotations

import pathlib
import random

import msgspec
import trio

from hostsmith.actors.hostfactory import MACHINE
from hostsmith.actors.proof.loadtest import (
    BurstPlan,
    Recorder,
    calls_into,
    request_sizes,
    run_burst,
    templates_with_room,
)
from hostsmith.actors.providers.sim import SimProvider, SimSettings
from hostsmith.actors.service import (
    Config,
    load_templates,
    open_service,
)
from hostsmith.runtime.testing import MemoryStore
from tests.support.virtual_time import epoch

HOSTS = 1500


def test_request_sizes_add_up_and_stay_within_host_factorys_bounds() -> None:
    for seed in range(20):
        sizes = request_sizes(HOSTS, 1000, random.Random(seed))
        assert sum(sizes) == HOSTS
        assert all(1 <= size <= 1000 for size in sizes)


async def test_every_host_requested_is_seen_complete_returned_and_in_the_log(
    tmp_path: pathlib.Path, autojump_clock: trio.abc.Clock
) -> None:
    templates = load_templates(templates_with_room(tmp_path / "templates.json", HOSTS))
    store = MemoryStore()
    cloud = SimProvider(
        tmp_path / "sim.db",
        SimSettings(capacity=2 * HOSTS, boot_time=20.0),
        clock=epoch,
    )
    plan = BurstPlan(
        hosts=HOSTS,
        templates=tuple(templates),
        poll_interval=30.0,
        senders=20,
        template_limit=HOSTS,
    )
    recorder = Recorder()
    try:
        async with open_service(
            Config(data_dir=str(tmp_path)), store, cloud, templates, clock=epoch
        ) as app:
            outcome = await run_burst(calls_into(app.service), plan, recorder)
    finally:
        cloud.close()
    assert outcome.requests_failed == 0
    assert outcome.hosts_requested == outcome.hosts_complete == outcome.hosts_returned == HOSTS
    assert outcome.complete_after is not None
    assert outcome.complete_after.count == outcome.requests
    assert outcome.complete_after.p50_s >= 20.0  # not before the cloud booted them
    assert recorder.figures()["requestMachines"].calls == outcome.requests
    assert recorder.errors == {}

    launched: set[str] = set()
    terminated: set[str] = set()
    for event in await store.read_all(0, 10**7):
        if not event.stream.startswith(f"{MACHINE.name}-"):
            continue
        data = msgspec.json.decode(event.data)
        if event.type == "MachineLaunched":
            assert event.stream not in launched  # each host launched once
            launched.add(event.stream)
        elif event.type == "MachineStateRecorded" and data.get("state") == "terminated":
            terminated.add(event.stream)
    assert len(launched) == HOSTS
    assert terminated == launched
