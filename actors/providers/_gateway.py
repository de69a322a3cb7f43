"""The provider gateway: every call to a cloud goes through here.

It applies one resilience policy to whatever provider it wraps:
- a concurrency cap (`max_concurrent` calls in flight), because clouds rate
  limit their APIs and a burst of requests must queue here, not there;
- a deadline on every attempt (`trio.fail_after`), so a hung call ends;
- retries of transient errors and timeouts with exponential backoff and
  jitter (stamina); permanent errors are never retried;
- a circuit breaker shared by all calls: under a sustained outage it opens
  and calls fail at once with `CircuitOpen` until a probe succeeds, so the
  provider is not hammered while it is down.

It is an object rather than an actor with a mailbox: calls are independent
and should run concurrently up to the cap, and the cap *is* the bounded
queue (callers wait for a slot, in order).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import stamina
import trio

from hostsmith.actors.errors import PermanentProviderError, ProviderError, TransientProviderError
from hostsmith.actors.hostfactory import CloudGroup, CloudMachine, StateChange, Template
from hostsmith.actors.providers._policy import GatewayPolicy
from hostsmith.actors.providers._protocol import (
    Inventory,
    Provider,
    Provisioned,
    ReclaimNotice,
)
from hostsmith.runtime import CircuitBreaker, CircuitState

log = logging.getLogger("hostsmith.gateway")
T = TypeVar("T")


@dataclass(slots=True)
class _Describe:
    """One describe being gathered: whose ids, who makes the call, and what came back."""

    machine_ids: set[str] = field(default_factory=set)
    leader_task: trio.lowlevel.Task | None = None
    """The caller that opened the batch: it waits the window, then calls for everyone."""
    done: trio.Event = field(default_factory=trio.Event)
    found: dict[str, StateChange] = field(default_factory=dict)
    failure: BaseException | None = None


def _again(failure: BaseException) -> BaseException:
    """The batch's failure for one caller: a fresh exception of the tree, never a shared one."""
    if isinstance(failure, ProviderError):
        return type(failure)(failure.message)
    if isinstance(failure, trio.TooSlowError):
        return trio.TooSlowError()
    return TransientProviderError(
        f"the describe this look shared did not finish: {type(failure).__name__}"
    )


def is_transient(error: BaseException) -> bool:
    """Worth retrying: the provider said so, or the attempt ran out of time."""
    if isinstance(error, ProviderError):
        return error.transient
    return isinstance(error, trio.TooSlowError)


class Gateway:
    def __init__(self, provider: Provider, policy: GatewayPolicy | None = None) -> None:
        self.provider = provider
        self.policy = policy = policy or GatewayPolicy()
        self.calls = 0
        self.retries = 0
        self._slots = trio.CapacityLimiter(policy.max_concurrent)
        self._gathering: _Describe | None = None
        self.breaker = CircuitBreaker(
            f"provider:{provider.name}",
            failure_threshold=policy.failure_threshold,
            reset_timeout=policy.reset_timeout,
            counts_as_failure=is_transient,
            on_change=self._circuit_changed,
        )

    async def provision(
        self, request_id: str, template: Template, count: int, *, launch: int = 0
    ) -> Provisioned:
        return await self._call(
            "provision",
            functools.partial(self.provider.provision, launch=launch),
            request_id,
            template,
            count,
        )

    async def describe(
        self, machine_ids: Sequence[str], *, share: bool = True
    ) -> list[StateChange]:
        """The machines' states; calls made together share one call to the cloud.

        Every request's driver looks at its machines about once a second while
        they boot or stop. Each look waits `describe_window` for the others of
        that moment, and one provider call covers them all: a thousand open
        requests cost the cloud's rate limit one describe, not a thousand.
        A look that someone is waiting for (a Host Factory call) passes
        `share=False` and is made at once, on its own.
        """
        if not share:
            return await self._call("describe", self.provider.describe, machine_ids)
        batch = self._gathering
        if batch is None:
            batch = self._gathering = _Describe(leader_task=trio.lowlevel.current_task())
        batch.machine_ids.update(machine_ids)
        if batch.leader_task is trio.lowlevel.current_task():
            await self._describe_for_all(batch)
        else:
            await batch.done.wait()
        if batch.failure is not None:
            raise _again(batch.failure)
        return [batch.found[i] for i in machine_ids if i in batch.found]

    async def _describe_for_all(self, batch: _Describe) -> None:
        try:
            await trio.sleep(self.policy.describe_window)  # the others of this moment join
            self._gathering = None
            ids = sorted(batch.machine_ids)
            changes = await self._call("describe", self.provider.describe, ids)
            batch.found = {change.machine_id: change for change in changes}
        except BaseException as failure:
            batch.failure = failure
            if self._gathering is batch:
                self._gathering = None
            raise
        finally:
            batch.done.set()

    async def terminate(self, machine_ids: Sequence[str]) -> None:
        await self._call("terminate", self.provider.terminate, machine_ids)

    async def reclaim_notices(self) -> list[ReclaimNotice]:
        return await self._call("reclaim_notices", self.provider.reclaim_notices)

    @property
    def lists_inventory(self) -> bool:
        """Whether the provider can list what it holds (so can be reconciled)."""
        return isinstance(self.provider, Inventory)

    async def inventory(self) -> list[CloudMachine]:
        """Every machine of this installation the cloud lists (see `Inventory`)."""
        return await self._call("inventory", self._inventory().inventory)

    async def groups(self) -> list[CloudGroup]:
        """Every fleet, group and launch template of this installation the cloud holds."""
        return await self._call("groups", self._inventory().groups)

    async def delete_group(self, group: CloudGroup) -> None:
        await self._call("delete_group", self._inventory().delete_group, group)

    async def resize_group(self, group: CloudGroup, target: float) -> None:
        await self._call("resize_group", self._inventory().resize_group, group, target)

    def _inventory(self) -> Inventory:
        provider = self.provider
        if not isinstance(provider, Inventory):
            raise PermanentProviderError(
                f"the {provider.name} provider cannot list the machines it holds"
            )
        return provider

    async def check_access(self) -> None:
        """Raise the provider's reason when the cloud cannot be used now; once, no retries."""
        try:
            with trio.fail_after(self.policy.call_timeout):
                await self.provider.check_access()
        except trio.TooSlowError:
            raise TransientProviderError(
                f"the {self.provider.name} provider did not confirm its access within "
                f"{self.policy.call_timeout:g} s"
            ) from None

    async def _call(
        self, operation: str, function: Callable[..., Awaitable[T]], *args: object
    ) -> T:
        policy = self.policy
        async with self._slots:
            first = True
            async for attempt in stamina.retry_context(
                on=is_transient,
                attempts=policy.attempts,
                timeout=None,  # bounded by attempts; stamina's timer is the wall clock
                wait_initial=policy.wait_initial,
                wait_max=policy.wait_max,
            ):
                if not first:
                    self.retries += 1
                first = False
                with attempt:
                    self.calls += 1
                    with self.breaker.guard(), trio.fail_after(policy.call_timeout):
                        return await function(*args)
        raise AssertionError("unreachable: stamina re-raises the last error")

    def _circuit_changed(self, breaker: CircuitBreaker, state: CircuitState) -> None:
        level = logging.WARNING if state is CircuitState.OPEN else logging.INFO
        log.log(
            level,
            "circuit %s is now %s after %d consecutive failures",
            breaker.name,
            state.value,
            breaker.failures,
        )
