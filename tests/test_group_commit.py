"""Group commit: many concurrent commands share few SQLite transactions."""

from __future__ import annotations

import trio

from hostsmith.actors._counter import COUNTER, Counter, Increment
from hostsmith.runtime import open_runtime
from hostsmith.stores import SQLiteStore, open_store


async def test_many_concurrent_commands_cost_far_fewer_sqlite_transactions(tmp_path) -> None:  # type: ignore[no-untyped-def]
    commands, aggregates = 2000, 200
    async with open_store(f"sqlite://{tmp_path}/events.db") as store:
        assert isinstance(store, SQLiteStore)
        async with open_runtime(store, kinds=[COUNTER]) as runtime:
            async with trio.open_nursery() as nursery:
                for n in range(commands):
                    nursery.start_soon(
                        runtime.get(COUNTER, str(n % aggregates)).execute, Increment()
                    )
            values = [(await runtime.get(COUNTER, str(n)).state()).value for n in range(aggregates)]

        assert values == [commands // aggregates] * aggregates
        assert len(await store.read_all(limit=commands + 1)) == commands
        assert runtime.journal.stats.appends == commands
        assert store.transactions == runtime.journal.stats.transactions
        assert store.transactions * 10 <= commands, store.transactions
        assert runtime.journal.stats.largest_batch > 50


async def test_a_lone_command_is_committed_at_once(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async with (
        open_store(f"sqlite://{tmp_path}/events.db") as store,
        open_runtime(store, kinds=[COUNTER]) as runtime,
    ):
        await runtime.get(COUNTER, "a").execute(Increment())
        assert await runtime.get(COUNTER, "a").state() == Counter(1)
        assert runtime.journal.stats.transactions == 1
