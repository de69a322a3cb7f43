"""The provider protocol: the five things hostsmith asks of a cloud.

A provider is anything with these coroutine methods. `sim` and `aws`
implement it; the provider gateway wraps one with retries, a circuit
breaker, deadlines and a concurrency cap, so a provider itself stays a thin
translation of the cloud's API.

- `provision(request_id, template, count, launch=0)`: start up to `count`
  machines. It must be idempotent per request id and launch (a client
  token, or a tag), so that retrying after a crash never creates machines
  twice: a repeat returns the machines of the first call. `launch` is 0
  for a request's first launch and counts up for each launch that replaces
  machines stuck pending; every machine of every launch carries the
  request's id.
- `describe(machine_ids)`: the current state of each machine it knows.
- `terminate(machine_ids)`: begin taking machines down (idempotent).
- `reclaim_notices()`: machines the cloud is about to take back or already
  took, with the seconds of grace left (0 when already gone).
- `check_access()`: raise a `ProviderError` naming why the cloud cannot be
  used right now (no credentials, expired ones). It is called as every
  acquire begins, before anything is recorded, so that Host Factory hears
  the reason at once rather than "success" and a failure at the next poll;
  it must be cheap (no call to the cloud when nothing has changed).

A provider may also list what it holds (`Inventory`): every machine, and
every fleet, group or launch template, it made under this installation's
tag, whatever the log says, and mend a group (delete it, or set its
target). The reconciler needs it; a provider without it is simply not
reconciled.

Errors are classified at the source: `TransientProviderError` is worth a
retry (throttling, capacity for now, a 5xx); `PermanentProviderError` is
not (a bad image id, missing permissions), and fails the request with the
provider's own message.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import msgspec

from hostsmith.actors.hostfactory import CloudGroup, CloudMachine, Machine, StateChange, Template


class Provisioned(msgspec.Struct, frozen=True):
    machines: tuple[Machine, ...]
    final: bool = True
    """False when the cloud may still add machines to this request later."""


class ReclaimNotice(msgspec.Struct, frozen=True):
    machine_id: str
    name: str
    grace_period: int


class Provider(Protocol):
    name: str

    async def provision(
        self, request_id: str, template: Template, count: int, *, launch: int = 0
    ) -> Provisioned: ...

    async def describe(self, machine_ids: Sequence[str]) -> list[StateChange]: ...

    async def terminate(self, machine_ids: Sequence[str]) -> None: ...

    async def reclaim_notices(self) -> list[ReclaimNotice]: ...

    async def check_access(self) -> None: ...


@runtime_checkable
class Inventory(Protocol):
    async def inventory(self) -> list[CloudMachine]:
        """Every machine this installation launched that the cloud still lists, any state.

        Only machines tagged with this installation's id (`ProviderContext.
        installation_id`): another installation's machines are never listed, so
        never touched."""
        ...

    async def groups(self) -> list[CloudGroup]:
        """Every fleet, group and launch template of this installation the cloud holds."""
        ...

    async def delete_group(self, group: CloudGroup) -> None:
        """Delete it, leaving its machines running (idempotent: gone already is done)."""
        ...

    async def resize_group(self, group: CloudGroup, target: float) -> None:
        """Set the capacity it keeps, in its units, terminating none of its machines."""
        ...
