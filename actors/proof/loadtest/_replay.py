"""Replay and activation workloads: how fast state is rebuilt from a store.

`replay`: fill a store with E counter events over A streams (appended in
batches straight through the store, which is also the store's raw append
throughput), then read the whole log back, decode every event and fold it
into per-aggregate state: decode plus evolve, the work of a full replay.

`activation`: one aggregate with E events; the time for a fresh runtime to
answer its first query, replaying everything, and again with a snapshot at
the last version, replaying nothing.
"""

from __future__ import annotations

import dataclasses
import math
import time

import msgspec

from hostsmith.actors.proof.loadtest._counter_aggregate import COUNTER, Counter, Incremented
from hostsmith.runtime import AppendRequest, EventStore, NewEvent, Snapshot, open_runtime
from hostsmith.stores import open_store


class ReplayReport(msgspec.Struct, kw_only=True):
    workload: str = "replay"
    store: str
    events: int
    aggregates: int
    append_events_per_s: float
    replay_events_per_s: float


class ActivationReport(msgspec.Struct, kw_only=True):
    workload: str = "activation"
    store: str
    events: int
    without_snapshot_ms: float
    with_snapshot_ms: float


async def _fill(store: EventStore, events: int, aggregates: int, batch: int = 10_000) -> float:
    """Append `events` over `aggregates` streams; returns seconds spent appending."""
    versions = [0] * aggregates
    data = msgspec.json.encode(Incremented(1))
    spent = 0.0
    for start in range(0, events, batch):
        requests = []
        for n in range(start, min(start + batch, events)):
            stream = n % aggregates
            requests.append(
                AppendRequest(
                    COUNTER.stream(str(stream)),
                    versions[stream],
                    (NewEvent(event_id=f"fill-{n}", type="Incremented", data=data),),
                )
            )
            versions[stream] += 1
        began = time.perf_counter()
        await store.append_batch(requests)
        spent += time.perf_counter() - began
    return spent


async def run_replay(store_url: str, events: int, aggregates: int) -> ReplayReport:
    async with open_store(store_url) as store:
        if await store.read_all(0, 1):
            raise ValueError(f"{store_url} is not empty: the replay workload needs a new store")
        appending = await _fill(store, events, aggregates)
        if store_url.startswith("memory:"):
            replaying, states = await _replay(store)
    if not store_url.startswith("memory:"):
        # From a store opened afresh, as at start-up: opening counts too (a
        # JSON store reads its files when it opens).
        began = time.perf_counter()
        async with open_store(store_url) as store:
            opening = time.perf_counter() - began
            replaying, states = await _replay(store)
            replaying += opening
    assert sum(state.value for state in states.values()) == events
    return ReplayReport(
        store=store_url,
        events=events,
        aggregates=aggregates,
        append_events_per_s=round(events / appending),
        replay_events_per_s=round(events / replaying),
    )


async def _replay(store: EventStore) -> tuple[float, dict[str, Counter]]:
    """Read the whole log, decode every event and fold it into its aggregate's state."""
    decode, evolve = COUNTER.events.decode, COUNTER.evolve
    states: dict[str, Counter] = {}
    began = time.perf_counter()
    position = 0
    while batch := await store.read_all(position, 10_000):
        for stored in batch:
            event = decode(stored.type, stored.schema_version, stored.data)
            states[stored.stream] = evolve(states.get(stored.stream) or Counter(), event)
        position = batch[-1].position
    return time.perf_counter() - began, states


async def run_activation(store_url: str, events: int) -> ActivationReport:
    async with open_store(store_url) as store:
        if await store.read_all(0, 1):
            raise ValueError(f"{store_url} is not empty: the activation workload needs a new store")
        await _fill(store, events, 1)

        async def activate(kind: object) -> float:
            async with open_runtime(store, kinds=[kind], idle_timeout=math.inf) as runtime:  # type: ignore[list-item]
                began = time.perf_counter()
                state: Counter = await runtime.get(kind, "0").state()  # type: ignore[arg-type]
                spent = time.perf_counter() - began
            assert state == Counter(events)
            return spent

        without = await activate(COUNTER)
        snapshotted = dataclasses.replace(COUNTER, snapshot_every=events)
        await store.save_snapshot(
            Snapshot(
                stream=COUNTER.stream("0"),
                version=events,
                state=msgspec.json.encode(Counter(events)),
                schema_version=snapshotted.snapshot_version,
            )
        )
        with_snapshot = await activate(snapshotted)
    return ActivationReport(
        store=store_url,
        events=events,
        without_snapshot_ms=round(without * 1e3, 2),
        with_snapshot_ms=round(with_snapshot * 1e3, 2),
    )
