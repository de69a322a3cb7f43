"""Subscriptions: catch up, follow live commits, resume from the checkpoint."""

from __future__ import annotations

from collections.abc import Sequence

import trio
import trio.testing

from hostsmith.actors.proof.loadtest import COUNTER, Increment
from hostsmith.runtime import StoredEvent, open_runtime
from hostsmith.runtime.testing import FaultyStore, MemoryStore


class Seen:
    def __init__(self) -> None:
        self.positions: list[int] = []

    async def __call__(self, events: Sequence[StoredEvent]) -> None:
        self.positions.extend(event.position for event in events)


async def test_a_subscription_catches_up_then_follows_live_commits(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_runtime(MemoryStore(), kinds=[COUNTER]) as runtime:
        for _ in range(3):
            await runtime.get(COUNTER, "a").execute(Increment())
        seen = Seen()
        subscription = await runtime.subscribe("projection", seen, batch_size=2)
        await subscription.caught_up.wait()
        assert seen.positions == [1, 2, 3]

        await runtime.get(COUNTER, "b").execute(Increment())
        await trio.testing.wait_all_tasks_blocked()
        assert seen.positions == [1, 2, 3, 4]  # woken by the commit, no polling delay
        assert trio.current_time() < 1


async def test_a_subscription_resumes_from_its_checkpoint(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = MemoryStore()
    first = Seen()
    async with open_runtime(store, kinds=[COUNTER]) as runtime:
        subscription = await runtime.subscribe("projection", first)
        for _ in range(5):
            await runtime.get(COUNTER, "a").execute(Increment())
        await trio.testing.wait_all_tasks_blocked()
        assert subscription.position == 5

    assert await store.load_checkpoint("projection") == 5
    second = Seen()
    async with open_runtime(store, kinds=[COUNTER]) as runtime:
        await runtime.get(COUNTER, "a").execute(Increment())
        subscription = await runtime.subscribe("projection", second)
        await subscription.caught_up.wait()
    assert first.positions == [1, 2, 3, 4, 5]
    assert second.positions == [6]


async def test_a_subscription_sees_writes_from_elsewhere_by_polling(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = MemoryStore()
    seen = Seen()
    async with open_runtime(store, kinds=[COUNTER]) as runtime:
        subscription = await runtime.subscribe("projection", seen, poll_interval=2.0)
        await subscription.caught_up.wait()
        async with open_runtime(store, kinds=[COUNTER]) as elsewhere:  # another journal
            await elsewhere.get(COUNTER, "x").execute(Increment())
        await trio.sleep(2.5)
        assert seen.positions == [1]


async def test_a_view_restarted_after_a_read_error_resumes_where_it_was_not_from_the_start(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Issue 22: a durable=False subscription restarted by its supervisor after a failed
    read started again from position 0, feeding its view the whole history twice."""
    store = FaultyStore()
    seen = Seen()
    async with open_runtime(store, kinds=[COUNTER]) as runtime:
        for _ in range(8):
            await runtime.get(COUNTER, "a").execute(Increment())
        subscription = await runtime.subscribe("view", seen, durable=False)
        await subscription.caught_up.wait()
        store.fail_next_log_reads(1)
        await trio.sleep(1.5)  # its next poll fails; the supervisor restarts it
        for _ in range(2):
            await runtime.get(COUNTER, "a").execute(Increment())
        await trio.sleep(1.5)
        assert runtime.supervisor.restarts == 1
    assert seen.positions == list(range(1, 11))
    assert await store.load_checkpoint("view") == 0  # an in-memory view saves none


async def test_a_view_starts_after_the_position_it_already_reflects(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = MemoryStore()
    seen = Seen()
    async with open_runtime(store, kinds=[COUNTER]) as runtime:
        for _ in range(5):
            await runtime.get(COUNTER, "a").execute(Increment())
        subscription = await runtime.subscribe("view", seen, durable=False, after=3)
        await subscription.caught_up.wait()
    assert seen.positions == [4, 5]
