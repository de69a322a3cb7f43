"""The event store contract: what every store must do, as a test suite a store's author runs.

hostsmith runs it against each of its own backends; a store registered from
another package (through the `hostsmith.stores` entry points) runs the same
suite by subclassing `StoreContract` in its tests and giving it two
fixtures:

- `store`: an open, empty store, closed after the test;
- `open_durable_store`: a function that opens the same durable store again
  each time it is called (an async context manager), for the test that
  closes a store and reopens it.

```python
class TestMyStore(StoreContract):
    @pytest.fixture
    async def store(self, tmp_path):
        async with open_store(f"mystore://{tmp_path}") as opened:
            yield opened

    @pytest.fixture
    def open_durable_store(self, tmp_path):
        return lambda: open_store(f"mystore://{tmp_path}")
```

The tests are coroutines and use anyio only: run them with pytest-trio in
trio mode (`trio_mode = true`), or mark the class `@pytest.mark.anyio` and
let anyio's plugin run them on trio and asyncio alike (`anyio_backend`),
as hostsmith does. Each test states one rule of the `EventStore`
protocol (`hostsmith.runtime`), so a failure names the rule broken.
This module needs pytest, which hostsmith itself does not depend on; it is
imported only by test suites.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import anyio
import pytest

from hostsmith.runtime import (
    Appended,
    AppendRequest,
    ConflictError,
    DuplicateEventError,
    EventStore,
    NewEvent,
    Snapshot,
    append,
)

__all__ = ["StoreContract", "event"]


def event(event_id: str, payload: str = "{}", **metadata: object) -> NewEvent:
    """A new event of type `Thing` with this id and JSON payload."""
    return NewEvent(event_id=event_id, type="Thing", data=payload.encode(), **metadata)  # type: ignore[arg-type]


class StoreContract:
    """The contract suite; subclass it as `Test…` and provide the two fixtures above."""

    async def test_append_and_read_give_back_exactly_what_went_in(self, store: EventStore) -> None:
        written = [
            event("e1", '{"n":1}', correlation_id="corr", causation_id="cmd", recorded_at=12.5),
            event("e2", '{"n":2}', schema_version=3),
        ]
        appended = await append(store, "order-1", 0, written)

        stored = await store.read("order-1")

        assert appended == Appended("order-1", 2, (1, 2))
        assert [(s.stream, s.version, s.position) for s in stored] == [
            ("order-1", 1, 1),
            ("order-1", 2, 2),
        ]
        for new, old in zip(written, stored, strict=True):
            assert (old.event_id, old.type, old.data, old.schema_version) == (
                new.event_id,
                new.type,
                new.data,
                new.schema_version,
            )
            assert (old.correlation_id, old.causation_id, old.recorded_at) == (
                new.correlation_id,
                new.causation_id,
                new.recorded_at,
            )
        assert await store.read("order-1", after_version=1) == stored[1:]
        assert await store.read("nobody") == []

    async def test_read_all_keeps_global_commit_order(self, store: EventStore) -> None:
        await append(store, "a", 0, [event("a1")])
        await append(store, "b", 0, [event("b1"), event("b2")])
        await append(store, "a", 1, [event("a2")])

        everything = await store.read_all()

        assert [e.event_id for e in everything] == ["a1", "b1", "b2", "a2"]
        assert [e.position for e in everything] == [1, 2, 3, 4]
        assert [e.event_id for e in await store.read_all(after_position=2, limit=1)] == ["b2"]
        assert await store.read_all(after_position=4) == []

    async def test_wrong_expected_version_raises_conflict_and_writes_nothing(
        self, store: EventStore
    ) -> None:
        await append(store, "a", 0, [event("a1")])

        with pytest.raises(
            ConflictError, match=r"^stream 'a' is at version 1, not the expected 0: "
        ):
            await append(store, "a", 0, [event("a2")])
        with pytest.raises(ConflictError):
            await append(store, "a", 5, [event("a3")])

        assert [e.event_id for e in await store.read_all()] == ["a1"]

    async def test_conflict_in_a_batch_spares_its_neighbours(self, store: EventStore) -> None:
        outcomes = await store.append_batch(
            [
                AppendRequest("a", 0, (event("a1"),)),
                AppendRequest("b", 7, (event("b1"),)),
                AppendRequest("c", 0, (event("c1"),)),
            ]
        )

        assert isinstance(outcomes[0], Appended)
        assert isinstance(outcomes[1], ConflictError)
        assert isinstance(outcomes[2], Appended)
        assert [e.event_id for e in await store.read_all()] == ["a1", "c1"]

    async def test_two_appends_to_one_stream_in_one_batch_are_applied_in_order(
        self,
        store: EventStore,
    ) -> None:
        outcomes = await store.append_batch(
            [AppendRequest("a", 0, (event("a1"),)), AppendRequest("a", 1, (event("a2"),))]
        )

        assert outcomes == [Appended("a", 1, (1,)), Appended("a", 2, (2,))]

    async def test_duplicate_event_id_is_a_no_op(self, store: EventStore) -> None:
        first = await append(store, "a", 0, [event("a1"), event("a2")])

        again = await append(store, "a", 0, [event("a1"), event("a2")])

        assert again == Appended("a", 2, first.positions, duplicate=True)
        assert len(await store.read_all()) == 2

    async def test_mixing_stored_and_new_event_ids_is_refused(self, store: EventStore) -> None:
        await append(store, "a", 0, [event("a1")])

        with pytest.raises(DuplicateEventError, match=r"^append to 'a' mixes new events"):
            await append(store, "a", 1, [event("a1"), event("a2")])

        assert [e.event_id for e in await store.read_all()] == ["a1"]

    async def test_a_multi_event_append_is_atomic(self, store: EventStore) -> None:
        await append(store, "a", 0, [event("a1")])

        outcomes = await store.append_batch([AppendRequest("a", 0, (event("x1"), event("x2")))])

        assert isinstance(outcomes[0], ConflictError)
        assert [e.event_id for e in await store.read("a")] == ["a1"]

    async def test_snapshots_round_trip(self, store: EventStore) -> None:
        assert await store.load_snapshot("a") is None
        first = Snapshot(stream="a", version=3, state=b'{"n":3}', schema_version=2, recorded_at=1.5)
        newer = Snapshot(stream="a", version=9, state=b'{"n":9}', schema_version=2, recorded_at=2.5)

        await store.save_snapshot(first)
        assert await store.load_snapshot("a") == first
        await store.save_snapshot(newer)
        assert await store.load_snapshot("a") == newer

    async def test_checkpoints_round_trip(self, store: EventStore) -> None:
        assert await store.load_checkpoint("projection") == 0
        await store.save_checkpoint("projection", 42)
        await store.save_checkpoint("publisher", 7)
        assert await store.load_checkpoint("projection") == 42
        assert await store.checkpoints() == {"projection": 42, "publisher": 7}

    async def test_close_and_reopen_loses_nothing(
        self, open_durable_store: Callable[[], AbstractAsyncContextManager[EventStore]]
    ) -> None:
        async with open_durable_store() as store:
            await append(store, "a", 0, [event("a1"), event("a2")])
            await store.save_snapshot(Snapshot(stream="a", version=2, state=b"{}"))
            await store.save_checkpoint("p", 2)
            before = await store.read_all()

        async with open_durable_store() as store:
            assert await store.read_all() == before
            assert (await store.load_snapshot("a")) is not None
            assert await store.load_checkpoint("p") == 2
            await append(store, "a", 2, [event("a3")])
            assert [e.position for e in await store.read_all()] == [1, 2, 3]

    async def test_concurrent_batches_keep_positions_gap_free(self, store: EventStore) -> None:
        async def writer(name: str) -> None:
            for n in range(20):
                await append(store, name, n, [event(f"{name}-{n}")])

        async with anyio.create_task_group() as writers:
            for name in "abcd":
                writers.start_soon(writer, name)

        positions = [e.position for e in await store.read_all(limit=1000)]
        assert positions == list(range(1, 81))
