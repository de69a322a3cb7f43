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

import trio

from hostsmith.actors.hostfactory import CAPACITY, MACHINE, REQUEST, Template
from hostsmith.actors.providers import Gateway, Provider, ProviderContext, ProviderRegistry
from hostsmith.actors.service._config import Config, load_templates
from hostsmith.actors.service._hostfactory import HostFactory, random_request_id
from hostsmith.runtime import EventStore, Runtime, open_runtime
from hostsmith.stores import open_store


@dataclass(frozen=True, slots=True)
class Application:
    config: Config
    runtime: Runtime
    service: HostFactory
    gateway: Gateway


@asynccontextmanager
async def _open_provider(
    config: Config,
    providers: ProviderRegistry,
    templates: dict[str, Template],
    clock: Callable[[], float],
) -> AsyncIterator[Provider]:
    plugin = providers.get(config.provider)
    plugin.check_templates(templates)
    context = ProviderContext(templates, pathlib.Path(config.data_dir), clock)
    async with plugin.open(config.provider_settings(plugin), context) as provider:
        yield provider


@asynccontextmanager
async def open_application(
    config: Config,
    *,
    drive: bool = True,
    clock: Callable[[], float] = time.time,
    providers: ProviderRegistry | None = None,
) -> AsyncIterator[Application]:
    templates = load_templates(config.templates_path)
    providers = providers or ProviderRegistry.discover()
    async with (
        _open_provider(config, providers, templates, clock) as provider,
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
    gateway = Gateway(provider, config.gateway)
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
            config.requests,
            clock=clock,
            new_request_id=new_request_id,
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(service.run, drive)
            yield Application(config, runtime, service, gateway)
            nursery.cancel_scope.cancel()
