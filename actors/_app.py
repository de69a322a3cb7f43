"""Wiring: everything hostsmith runs is built here, from a `Config`, in one place.

No container and no globals: `open_application(config)` opens the store,
the runtime with the Host Factory aggregates, the provider behind its
gateway, and the service, and closes them in reverse order. The daemon and
the in-process `hf` command both use it; the daemon also runs the request
driver in the background (`drive=True`), while a one-shot command advances
the requests it is asked about instead.
"""

from __future__ import annotations

import math
import pathlib
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import msgspec
import trio

from hostsmith.actors._aws import check_templates, open_aws_provider
from hostsmith.actors._config import Config
from hostsmith.actors._gateway import Gateway, GatewayPolicy
from hostsmith.actors._machines import MACHINE
from hostsmith.actors._provider import Provider
from hostsmith.actors._requests import REQUEST
from hostsmith.actors._service import HostFactory, Settings, random_request_id
from hostsmith.actors._sim import SimProvider, SimSettings
from hostsmith.actors._templates import CAPACITY, Template, load_templates
from hostsmith.runtime import EventStore, Runtime, open_runtime
from hostsmith.stores import open_store


@dataclass(frozen=True, slots=True)
class Application:
    config: Config
    runtime: Runtime
    service: HostFactory
    gateway: Gateway


def _simulated_cloud(config: Config, clock: Callable[[], float]) -> SimProvider:
    data_dir = pathlib.Path(config.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    settings = SimSettings(**msgspec.structs.asdict(config.sim))
    return SimProvider(data_dir / "sim-cloud.db", settings, clock=clock)


@asynccontextmanager
async def _open_provider(
    config: Config, templates: dict[str, Template], clock: Callable[[], float]
) -> AsyncIterator[Provider]:
    if config.provider == "aws":
        check_templates(templates)
        async with open_aws_provider(config.aws) as provider:
            yield provider
        return
    simulated = _simulated_cloud(config, clock)
    try:
        yield simulated
    finally:
        simulated.close()


@asynccontextmanager
async def open_application(
    config: Config, *, drive: bool = True, clock: Callable[[], float] = time.time
) -> AsyncIterator[Application]:
    templates = load_templates(config.templates_path)
    async with (
        _open_provider(config, templates, clock) as provider,
        open_store(config.store_url) as store,
        open_service(config, store, provider, templates, drive=drive, clock=clock) as application,
    ):
        yield application


@asynccontextmanager
async def open_service(
    config: Config,
    store: EventStore,
    provider: Provider,
    templates: dict[str, Template],
    *,
    drive: bool = True,
    clock: Callable[[], float] = time.time,
    rng: random.Random | None = None,
    new_request_id: Callable[[str], str] = random_request_id,
) -> AsyncIterator[Application]:
    """The runtime and the service over an open store and provider (the simulation's way in)."""
    gateway = Gateway(provider, GatewayPolicy(**msgspec.structs.asdict(config.gateway)))
    async with open_runtime(
        store,
        kinds=[CAPACITY, REQUEST, MACHINE],
        idle_timeout=600.0 if drive else math.inf,
        wall_clock=clock,
        rng=rng,
    ) as runtime:
        service = HostFactory(
            runtime,
            gateway,
            templates,
            Settings(
                request_timeout=config.requests.timeout,
                poll_interval=config.requests.poll_interval,
                retention=config.requests.retention,
            ),
            clock=clock,
            new_request_id=new_request_id,
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(service.run, drive)
            yield Application(config, runtime, service, gateway)
            nursery.cancel_scope.cancel()
