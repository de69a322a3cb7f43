"""Looks at machines made in one moment share one describe call to the cloud (issue 14).

The provider here is a stand-in passed to the gateway: it counts its
describe calls and answers every id it is asked about, or fails on demand.
"""

from __future__ import annotations

from collections.abc import Sequence

import trio

from hostsmith.actors.errors import PermanentProviderError, TransientProviderError
from hostsmith.actors.hostfactory import StateChange, Template
from hostsmith.actors.providers import Gateway, GatewayPolicy, Provisioned, ReclaimNotice


class CountingCloud:
    name = "counting"

    def __init__(self) -> None:
        self.describes: list[list[str]] = []
        self.failing: Exception | None = None

    async def describe(self, machine_ids: Sequence[str]) -> list[StateChange]:
        self.describes.append(list(machine_ids))
        await trio.sleep(0.2)  # the cloud's own latency
        if self.failing is not None:
            raise self.failing
        return [StateChange(i, "running") for i in machine_ids]

    async def provision(
        self, request_id: str, template: Template, count: int, *, launch: int = 0
    ) -> Provisioned:
        raise AssertionError("not used")

    async def terminate(self, machine_ids: Sequence[str]) -> None:
        raise AssertionError("not used")

    async def reclaim_notices(self) -> list[ReclaimNotice]:
        return []

    async def check_access(self) -> None:
        pass


async def test_fifty_looks_at_once_are_one_call_and_each_gets_its_own_machines(
    autojump_clock: trio.abc.Clock,
) -> None:
    cloud = CountingCloud()
    gateway = Gateway(cloud, GatewayPolicy(describe_window=0.05))
    seen: dict[int, list[str]] = {}

    async def look(n: int) -> None:
        seen[n] = [change.machine_id for change in await gateway.describe([f"i-{n}", "i-shared"])]

    async with trio.open_nursery() as nursery:
        for n in range(50):
            nursery.start_soon(look, n)
    assert len(cloud.describes) == 1
    assert sorted(cloud.describes[0]) == sorted([f"i-{n}" for n in range(50)] + ["i-shared"])
    assert seen == {n: [f"i-{n}", "i-shared"] for n in range(50)}
    # a later look is a call of its own
    await gateway.describe(["i-late"])
    assert cloud.describes[1] == ["i-late"]


async def test_a_shared_call_that_fails_fails_every_look_with_the_clouds_words(
    autojump_clock: trio.abc.Clock,
) -> None:
    cloud = CountingCloud()
    cloud.failing = PermanentProviderError("UnauthorizedOperation: not allowed")
    gateway = Gateway(cloud, GatewayPolicy(describe_window=0.05))
    failures: list[BaseException] = []

    async def look(n: int) -> None:
        try:
            await gateway.describe([f"i-{n}"])
        except PermanentProviderError as failure:
            failures.append(failure)

    async with trio.open_nursery() as nursery:
        for n in range(5):
            nursery.start_soon(look, n)
    assert len(cloud.describes) == 1
    assert [str(f) for f in failures] == ["UnauthorizedOperation: not allowed"] * 5
    assert len({id(f) for f in failures}) == 5  # each caller its own exception


async def test_a_cancelled_leader_leaves_no_look_waiting(autojump_clock: trio.abc.Clock) -> None:
    """The first look makes the call for all; if it is cancelled, the others hear so."""
    cloud = CountingCloud()
    gateway = Gateway(cloud, GatewayPolicy(describe_window=0.05))
    outcomes: list[str] = []
    leader_scope = trio.CancelScope()

    async def leader() -> None:
        with leader_scope:
            await gateway.describe(["i-1"])

    async def follower() -> None:
        try:
            await gateway.describe(["i-2"])
            outcomes.append("answered")
        except TransientProviderError as failure:
            outcomes.append(str(failure))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(leader)
        await trio.sleep(0.001)
        nursery.start_soon(follower)
        await trio.sleep(0.01)
        leader_scope.cancel()  # while it gathers the others
    assert outcomes == ["the describe this look shared did not finish: Cancelled"]
    # and nothing is left half open: a fresh look is a call of its own
    assert [c.machine_id for c in await gateway.describe(["i-3"])] == ["i-3"]
    assert cloud.describes == [["i-3"]]
