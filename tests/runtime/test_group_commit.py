"""Group commit: many concurrent commands share few SQLite transactions."""

from __future__ import annotations

from collections.abc import Sequence

import trio

from hostsmith.actors.proof.loadtest import COUNTER, Counter, Increment
from hostsmith.runtime import AppendOutcome, AppendRequest, Journal, NewEvent, open_runtime
from hostsmith.runtime.testing import MemoryStore, _Forwarding
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
        assert runtime.journal.stats.events == commands
        assert runtime.journal.stats.appends <= commands  # queued commands may share one
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


class _LoggingStore(_Forwarding):
    """Notes when each batch reaches the store, beside the journal's answers."""

    def __init__(self, inner: MemoryStore, log: list[str]) -> None:
        super().__init__(inner)
        self.log = log

    async def append_batch(self, requests: Sequence[AppendRequest]) -> list[AppendOutcome]:
        self.log.append("write " + ",".join(request.stream for request in requests))
        await trio.sleep(0.01)  # the write takes a while (virtual time)
        return await self.inner.append_batch(requests)


async def test_the_next_batch_is_written_before_the_last_ones_callers_run(autojump_clock) -> None:  # type: ignore[no-untyped-def]
    log: list[str] = []
    journal = Journal(_LoggingStore(MemoryStore(), log), max_batch=2)

    async def append(stream: str) -> None:
        appended = await journal.append(
            stream, 0, [NewEvent(event_id=f"{stream}-1", type="T", data=b"{}")]
        )
        log.append(f"{stream} answered v{appended.version}")

    async with trio.open_nursery() as nursery:
        await nursery.start(journal.run)
        async with trio.open_nursery() as callers:
            for stream in "abcd":
                callers.start_soon(append, stream)
        journal.close()

    # Two batches of two. The second is handed to the store before any
    # caller of the first runs again, so the trio thread serves those
    # callers while the store writes.
    writes = [n for n, line in enumerate(log) if line.startswith("write")]
    answers = [n for n, line in enumerate(log) if "answered" in line]
    assert len(writes) == 2, log
    assert len(answers) == 4, log
    assert writes[1] < answers[0], log
    assert sorted(log[n] for n in answers) == [f"{s} answered v1" for s in "abcd"]
