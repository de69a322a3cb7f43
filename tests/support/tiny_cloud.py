"""A third provider, tiny, registered from the tests the way any other package would register one.

Its machines live in a dict and run the moment they are asked for; it
exists to show that the provider registry, a provider's own config section
and the whole Host Factory cycle need nothing from hostsmith but a
`ProviderPlugin` (tests/providers/test_provider_registry.py).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import msgspec

from hostsmith.actors.hostfactory import Machine, MachineState, StateChange, Template
from hostsmith.actors.providers import ProviderContext, ProviderPlugin, Provisioned, ReclaimNotice


class TinySettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The `[tiny]` section."""

    prefix: str = "tiny"


class TinyCloud:
    name = "tiny"

    def __init__(self, settings: TinySettings) -> None:
        self.settings = settings
        self.states: dict[str, MachineState] = {}
        self.made: dict[str, Provisioned] = {}
        self.numbers = itertools.count(1)

    async def provision(
        self, request_id: str, template: Template, count: int, *, launch: int = 0
    ) -> Provisioned:
        key = f"{request_id}/{launch}"
        if key not in self.made:  # idempotent per request id and launch, as the protocol asks
            machines = []
            for _ in range(count):
                n = next(self.numbers)
                machine_id = f"{self.settings.prefix}-{n}"
                self.states[machine_id] = "running"
                machines.append(
                    Machine(
                        machine_id=machine_id,
                        name=f"{machine_id}.tiny.internal",
                        state="running",
                        private_ip=f"10.9.0.{n}",
                        launchtime=int(time.time()),
                    )
                )
            self.made[key] = Provisioned(tuple(machines))
        return self.made[key]

    async def describe(self, machine_ids: Sequence[str]) -> list[StateChange]:
        return [StateChange(i, self.states[i]) for i in machine_ids if i in self.states]

    async def terminate(self, machine_ids: Sequence[str]) -> None:
        for machine_id in machine_ids:
            if machine_id in self.states:
                self.states[machine_id] = "terminated"

    async def check_access(self) -> None:
        """A dict needs no credentials."""

    async def reclaim_notices(self) -> list[ReclaimNotice]:
        return []


@asynccontextmanager
async def open_tiny_cloud(
    settings: TinySettings, context: ProviderContext
) -> AsyncIterator[TinyCloud]:
    yield TinyCloud(settings)


PLUGIN = ProviderPlugin(name="tiny", settings=TinySettings, open=open_tiny_cloud)
