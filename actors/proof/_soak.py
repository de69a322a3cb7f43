"""Soak on virtual time: a day of Host Factory traffic over a thousand hosts, in minutes.

`soak()` runs the service in process, over a real SQLite file and the sim
cloud, on trio's `MockClock`. `clients` simulated Host Factories keep
`hosts` machines in play between them, with churn: each asks for a batch,
polls getRequestStatus until it is done, holds the machines for a random
while (asking getReturnRequests about them as Host Factory does), returns
them, polls the return, and starts again. Every simulated hour the soak
samples memory: the process's resident set, Python's allocated blocks and
live objects, the resident aggregates, and the requests the projections
hold, and the size of the log on disk.

Memory stays flat when passivation (idle aggregates leave memory) and the
projections' retention (settled requests are forgotten after an hour) both
work: what is in memory then follows the hosts in play, not the history.

Why these choices: the store is SQLite with `worker=inline`, so the virtual
clock cannot run ahead of a write (see stores/_worker.py), and the history
lives on disk, as it does in the daemon; an in-memory store would itself
grow with the history and hide what the service holds. Random choices come
from `random.Random(seed)`, so a run is repeatable in its workload.
"""

from __future__ import annotations

import gc
import math
import pathlib
import random
import sys

import msgspec
import trio
import trio.testing

from hostsmith.actors.proof._simulation import EPOCH
from hostsmith.actors.proof.loadtest import (
    CallFailed,
    HostFactoryCall,
    Recorder,
    calls_into,
    poll_status,
    resident_set_bytes,
)
from hostsmith.actors.providers.sim import SimProvider, SimSettings
from hostsmith.actors.service import (
    Application,
    Config,
    RequestSettings,
    load_templates,
    open_service,
)
from hostsmith.stores import open_store

HOUR = 3600.0
POLL, POLL_LIMIT = 30.0, 240
"""Host Factory's status polls: every 30 s, for at most two hours."""


class HourSample(msgspec.Struct, kw_only=True):
    hour: int
    rss_mb: float
    """Includes the event store's page cache, which fills up to its cap (64 MiB)."""
    store_mb: float
    """The SQLite event log on disk (its file and write-ahead log)."""
    allocated_blocks: int
    live_objects: int
    resident_aggregates: int
    requests_in_projection: int
    hosts_held: int
    cycles: int


class SoakReport(msgspec.Struct, kw_only=True):
    hours: int
    hosts: int
    clients: int
    cycles: int
    calls: int
    failed_calls: int
    passivated: int
    samples: list[HourSample]


class _Held:
    """Hosts the simulated Host Factories hold right now."""

    count = 0


def soak(
    workdir: pathlib.Path,
    *,
    hours: int = 24,
    hosts: int = 1000,
    clients: int = 50,
    seed: int = 0,
    hold: tuple[float, float] = (1800.0, 5400.0),
) -> SoakReport:
    """Run the soak to its end (synchronously: it owns its trio run and clock)."""
    workdir = workdir.absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    clock = trio.testing.MockClock(autojump_threshold=0)
    return trio.run(_soak, workdir, hours, hosts, clients, seed, hold, clock=clock)


def _epoch() -> float:
    return EPOCH + trio.current_time()


async def _soak(
    workdir: pathlib.Path,
    hours: int,
    hosts: int,
    clients: int,
    seed: int,
    hold: tuple[float, float],
) -> SoakReport:
    config = Config(
        data_dir=str(workdir),
        requests=RequestSettings(timeout=1800.0, poll_interval=10.0, retention=HOUR),
    )
    templates = load_templates(config.templates_path)
    template_id = max(templates.values(), key=lambda t: t.max_number).template_id
    # the example templates are small: let this one hold every host in play
    templates[template_id] = msgspec.structs.replace(templates[template_id], max_number=hosts * 2)
    cloud = SimProvider(
        workdir / "sim-cloud.db",
        SimSettings(seed=seed, capacity=hosts * 2, boot_time=60.0, shutdown_time=30.0),
        clock=_epoch,
    )
    recorder, held, samples = Recorder(), _Held(), []
    per_client = max(1, math.ceil(hosts / clients))
    try:
        async with (
            open_store(f"sqlite://{workdir}/events.db?worker=inline") as store,
            open_service(
                config, store, cloud, templates, clock=_epoch, rng=random.Random(seed)
            ) as application,
            trio.open_nursery() as nursery,
        ):
            call = calls_into(application.service)
            for n in range(clients):
                draw = random.Random(f"{seed}/{n}")
                nursery.start_soon(
                    _host_factory, recorder, call, template_id, per_client, hold, draw, held
                )
            for hour in range(1, hours + 1):
                await trio.sleep_until(hour * HOUR)
                samples.append(_sample(hour, application, recorder, held, workdir))
            nursery.cancel_scope.cancel()
            passivated = application.runtime.registry.passivated
    finally:
        cloud.close()
    return SoakReport(
        hours=hours,
        hosts=per_client * clients,
        clients=clients,
        cycles=recorder.cycles,
        calls=sum(figures.calls for figures in recorder.figures().values()),
        failed_calls=sum(recorder.errors.values()),
        passivated=passivated,
        samples=samples,
    )


async def _host_factory(
    recorder: Recorder,
    call: HostFactoryCall,
    template_id: str,
    machines: int,
    hold: tuple[float, float],
    draw: random.Random,
    held: _Held,
) -> None:
    """One Host Factory: keep `machines` hosts in play, churning them."""
    await trio.sleep(draw.uniform(0, 300))  # they do not all start at once
    while True:
        began = trio.current_time()
        try:
            asked = await recorder.timed(
                call,
                "requestMachines",
                {"template": {"templateId": template_id, "machineCount": machines}},
            )
            entry = await poll_status(recorder, call, asked["requestId"], POLL, POLL_LIMIT)
            hosts = [
                {"name": m["name"], "machineId": m["machineId"]}
                for m in entry["machines"]
                if m["result"] == "succeed"
            ]
            held.count += len(hosts)
            if hosts:
                release_at = trio.current_time() + draw.uniform(*hold)
                while trio.current_time() < release_at:
                    await recorder.timed(call, "getReturnRequests", {"machines": hosts})
                    await trio.sleep(60)
                returned = await recorder.timed(call, "requestReturnMachines", {"machines": hosts})
                held.count -= len(hosts)
                await poll_status(recorder, call, returned["requestId"], POLL, POLL_LIMIT)
            recorder.cycle_done(began)
        except CallFailed:
            await trio.sleep(60)


def _sample(
    hour: int, application: Application, recorder: Recorder, held: _Held, workdir: pathlib.Path
) -> HourSample:
    """Memory now (blocking on purpose: virtual time stands still while it looks)."""
    gc.collect()
    store_bytes = sum(part.stat().st_size for part in workdir.glob("events.db*"))
    return HourSample(
        hour=hour,
        rss_mb=round(resident_set_bytes() / 2**20, 1),
        store_mb=round(store_bytes / 2**20, 1),
        allocated_blocks=sys.getallocatedblocks(),
        live_objects=len(gc.get_objects()),
        resident_aggregates=application.runtime.registry.resident,
        requests_in_projection=len(application.service.projections.requests),
        hosts_held=held.count,
        cycles=recorder.cycles,
    )
