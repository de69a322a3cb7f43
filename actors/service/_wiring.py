"""Wiring: everything hostsmith runs is built here, from a `Config`, in one place.

No container and no globals: `open_application(config)` opens the store,
the runtime with the Host Factory aggregates, the provider behind its
gateway, and the service, and closes them in reverse order. The daemon and
the in-process `hf` command both use it; the daemon also runs the request
driver in the background (`drive=True`), while a one-shot command advances
the requests it is asked about instead.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import trio

from hostsmith.actors.errors import TemplateError
from hostsmith.actors.hostfactory import (
    CAPACITY,
    MACHINE,
    RECONCILER,
    REQUEST,
    Template,
    TemplatesRead,
)
from hostsmith.actors.providers import Gateway, Provider, ProviderContext, ProviderRegistry
from hostsmith.actors.service._config import Config
from hostsmith.actors.service._hostfactory import HostFactory, random_request_id
from hostsmith.actors.service._installation import installation_id
from hostsmith.actors.service._reconciler import Reconciler
from hostsmith.actors.service._templates_file import read_templates_file
from hostsmith.runtime import EventStore, Runtime, open_runtime
from hostsmith.stores import open_store

log = logging.getLogger("hostsmith.config")


@dataclass(frozen=True, slots=True)
class Application:
    config: Config
    runtime: Runtime
    service: HostFactory
    gateway: Gateway
    reconciler: Reconciler


@asynccontextmanager
async def _open_provider(
    config: Config,
    providers: ProviderRegistry,
    templates: dict[str, Template],
    clock: Callable[[], float],
    installation: str,
) -> AsyncIterator[Provider]:
    plugin = providers.get(config.provider)
    context = ProviderContext(templates, config.data_path, clock, installation)
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
    providers = providers or ProviderRegistry.discover()
    check = providers.get(config.provider).check_template
    problem: TemplateError | None = None
    try:
        read = read_templates_file(config.templates_path, check)
    except TemplateError as unusable:
        # Status polls and returns of open requests need no templates, so they
        # go on; only the calls that do answer with the file's problem.
        log.warning("%s", unusable)
        read, problem = TemplatesRead({}, [], []), unusable
    for left_out in read.left_out:  # the others are served: one bad template takes nothing down
        log.warning("template left out: %s", left_out)
    for ignored in read.ignored_keys:
        log.info("template keys ignored: %s", ignored)
    templates = read.templates
    async with open_store(config.store_url) as store:
        installation = await installation_id(store, clock())
        async with (
            _open_provider(config, providers, templates, clock, installation) as provider,
            open_service(
                config,
                store,
                provider,
                templates,
                drive=drive,
                clock=clock,
                templates_problem=problem,
            ) as application,
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
    templates_problem: TemplateError | None = None,
) -> AsyncIterator[Application]:
    """The runtime and the service over an open store and provider (the simulation's way in)."""
    gateway = Gateway(provider, config.gateway)
    async with open_runtime(
        store,
        kinds=[CAPACITY, REQUEST, MACHINE, RECONCILER],
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
            templates_problem=templates_problem,
            read_models=config.read_models,
        )
        reconciler = Reconciler(
            runtime, gateway, service.projections, config.reconcile, clock=clock
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(service.run, drive)
            if drive:
                await nursery.start(reconciler.run)
            yield Application(config, runtime, service, gateway, reconciler)
            nursery.cancel_scope.cancel()
