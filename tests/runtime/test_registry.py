"""Activation, passivation and eviction of live aggregates."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from hostsmith.actors.proof.loadtest import COUNTER, Counter, Increment
from hostsmith.runtime import NewEvent, UnknownEventType, append, open_runtime
from hostsmith.runtime.testing import EventCapture, MemoryStore


async def test_an_idle_aggregate_is_passivated_and_reactivates_with_its_state(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = EventCapture()
    async with open_runtime(store, kinds=[COUNTER], idle_timeout=60) as runtime:
        counter = runtime.get(COUNTER, "c")
        for _ in range(3):
            await counter.execute(Increment())
        await trio.sleep(30)
        assert runtime.registry.is_live("counter", "c")

        await trio.sleep(60)  # idle for longer than the timeout
        assert not runtime.registry.is_live("counter", "c")
        assert runtime.registry.passivated == 1

        store.reads.clear()
        assert await counter.state() == Counter(3)  # the old reference still works
        assert runtime.registry.is_live("counter", "c")
        assert store.reads == [("counter-c", 0)]  # rebuilt from the log
        assert (await counter.execute(Increment())).version == 4


async def test_use_keeps_an_aggregate_live(autojump_clock: trio.testing.MockClock) -> None:
    async with open_runtime(MemoryStore(), kinds=[COUNTER], idle_timeout=60) as runtime:
        counter = runtime.get(COUNTER, "c")
        for _ in range(10):
            await counter.execute(Increment())
            await trio.sleep(30)
        assert runtime.registry.is_live("counter", "c")
        assert runtime.registry.passivated == 0


async def test_the_least_recently_used_aggregate_is_evicted_at_the_cap() -> None:
    async with open_runtime(MemoryStore(), kinds=[COUNTER], max_resident=3) as runtime:
        for name in "abc":
            await runtime.get(COUNTER, name).execute(Increment())
        await runtime.get(COUNTER, "a").execute(Increment())  # b is now the oldest

        await runtime.get(COUNTER, "d").execute(Increment())
        await trio.testing.wait_all_tasks_blocked()

        live = {name for name in "abcd" if runtime.registry.is_live("counter", name)}
        assert live == {"a", "c", "d"}
        assert runtime.registry.evicted == 1
        assert runtime.registry.resident == 3
        assert await runtime.get(COUNTER, "b").state() == Counter(1)
        assert runtime.registry.resident == 3


async def test_many_aggregates_under_a_small_cap_lose_no_command() -> None:
    async with open_runtime(MemoryStore(), kinds=[COUNTER], max_resident=8) as runtime:
        async with trio.open_nursery() as nursery:
            for n in range(200):
                nursery.start_soon(runtime.get(COUNTER, str(n % 20)).execute, Increment())
        totals = [(await runtime.get(COUNTER, str(n)).state()).value for n in range(20)]
        assert totals == [10] * 20
        assert runtime.registry.resident <= 8


async def test_an_aggregate_that_cannot_be_rebuilt_fails_its_callers_not_its_neighbours() -> None:
    store = MemoryStore()
    await append(store, "counter-bad", 0, [NewEvent(event_id="x", type="Vanished", data=b"{}")])
    async with open_runtime(store, kinds=[COUNTER]) as runtime:
        with pytest.raises(
            UnknownEventType,
            match=r"^stored event type 'Vanished' is not registered \(registered: Incremented\)",
        ):
            await runtime.get(COUNTER, "bad").execute(Increment())
        assert (await runtime.get(COUNTER, "good").execute(Increment())).version == 1
        with pytest.raises(UnknownEventType):
            await runtime.get(COUNTER, "bad").state()


async def test_asking_for_an_unregistered_kind_names_the_registered_ones() -> None:
    async with open_runtime(MemoryStore(), kinds=[COUNTER]) as runtime:
        with pytest.raises(
            KeyError, match=r"no aggregate kind 'ghost' is registered \(registered: counter\)"
        ):
            runtime.registry.ref("ghost", "1")
