"""The counter workload: how fast the engine turns commands into durable events.

K closed-loop clients share C commands; command i increments aggregate
i mod A. Each client waits for its command to be durable before sending the
next, so the figure is end-to-end: ask, decide, group commit, evolve, reply.

The same run also measures a *baseline*: the same number of round trips by
the same number of clients through the bare async library (on trio, a
bounded memory channel into an echo task per aggregate and a `trio.Event`
for the answer; on asyncio, an `asyncio.Queue` and an `asyncio.Event`),
with no runtime and no persistence. It runs once before the engine and
once after, and the two are averaged. `ratio_to_baseline` is the share of
that speed the engine keeps while making every command durable.

The workload runs on trio or on asyncio (`loop`): the engine is the same
code on both (anyio, and one seam for the hot path), and `compare_loops`
runs it on each in turn, each in a fresh process and, for a SQLite or JSON
store, on a fresh file of its own (`events.db` becomes `events.trio.db`
and `events.asyncio.db`): a second run on the store the first one filled
came out at half the speed, whichever library it was.

`resident_memory` is a separate measurement: activate A aggregates, give each
one command, and divide the growth of the process's resident set by A.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import math
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass

import anyio
import msgspec
import trio

from hostsmith.actors.proof.loadtest._counter_aggregate import COUNTER, Increment
from hostsmith.runtime import current_parking, open_runtime
from hostsmith.stores import open_store


class CounterReport(msgspec.Struct, kw_only=True):
    workload: str = "counter"
    loop: str = "trio"
    store: str
    aggregates: int
    commands: int
    concurrency: int
    elapsed_s: float
    commands_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    transactions: int
    mean_batch_size: float
    baseline_ask_per_s: float
    ratio_to_baseline: float


class MemoryReport(msgspec.Struct, kw_only=True):
    workload: str = "resident-memory"
    store: str
    aggregates: int
    rss_bytes_per_aggregate: float
    python_bytes_per_aggregate: float


class LoopComparison(msgspec.Struct, kw_only=True):
    workload: str = "counter"
    trio: CounterReport
    asyncio: CounterReport
    asyncio_over_trio: float


@dataclass(frozen=True, slots=True)
class CounterLoad:
    store: str
    aggregates: int
    commands: int
    concurrency: int


def compare_loops(load: CounterLoad) -> LoopComparison:
    """The counter on trio, then on asyncio, each in a fresh process."""
    on_trio, on_asyncio = (
        _in_a_process(dataclasses.replace(load, store=_store_of(load.store, loop)), loop)
        for loop in ("trio", "asyncio")
    )
    return LoopComparison(
        trio=on_trio,
        asyncio=on_asyncio,
        asyncio_over_trio=round(on_asyncio.commands_per_s / on_trio.commands_per_s, 3),
    )


def _store_of(url: str, loop: str) -> str:
    """A file store of the loop's own beside the one named; any other store as it is."""
    if not url.startswith(("sqlite://", "json://")):
        return url
    head, query = url.split("?", 1) if "?" in url else (url, "")
    stem, dot, extension = head.rpartition(".")
    named = f"{stem}.{loop}.{extension}" if dot and "/" not in extension else f"{head}.{loop}"
    return f"{named}?{query}" if query else named


def _in_a_process(load: CounterLoad, loop: str) -> CounterReport:
    command = [
        *(sys.executable, "-m", "hostsmith.actors.cli", "loadtest", "--workload", "counter"),
        *("--loop", loop, "--store", load.store, "--json"),
        *("--aggregates", str(load.aggregates), "--commands", str(load.commands)),
        *("--concurrency", str(load.concurrency)),
    ]
    done = subprocess.run(command, capture_output=True, check=False)
    if done.returncode:
        raise ValueError(f"the counter on {loop} failed: {done.stderr.decode()[-500:]}")
    return msgspec.json.decode(done.stdout.strip().splitlines()[-1], type=CounterReport)


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return math.nan
    index = min(len(sorted_values) - 1, int(fraction * len(sorted_values)))
    return sorted_values[index]


async def _closed_loop(
    load: CounterLoad, send: Callable[[int], object]
) -> tuple[float, list[float]]:
    """Run the commands through `send(i)` from K clients; return (seconds, latencies)."""
    latencies: list[float] = []
    clock = time.perf_counter

    async def client(first: int) -> None:
        record = latencies.append
        for i in range(first, load.commands, load.concurrency):
            started = clock()
            await send(i)  # type: ignore[misc]
            record(clock() - started)

    started = clock()
    async with anyio.create_task_group() as tasks:
        for k in range(min(load.concurrency, load.commands)):
            tasks.start_soon(client, k)
    return clock() - started, latencies


async def bare_baseline(load: CounterLoad) -> float:
    """Round trips per second through the bare async library running this task."""
    if current_parking().name == "asyncio":
        return await bare_asyncio_baseline(load)
    return await bare_trio_baseline(load)


async def bare_asyncio_baseline(load: CounterLoad) -> float:
    """Round trips per second through bare asyncio, with the same shape of load."""
    inboxes: list[asyncio.Queue[tuple[int, asyncio.Event, list[int]]]] = []

    async def echo(outbox: asyncio.Queue[tuple[int, asyncio.Event, list[int]]]) -> None:
        while True:
            value, done, box = await outbox.get()
            box.append(value)
            done.set()

    async def ask(i: int) -> int:
        done, box = asyncio.Event(), list[int]()
        await inboxes[i % load.aggregates].put((i, done, box))
        await done.wait()
        return box[0]

    async with anyio.create_task_group() as tasks:
        for _ in range(load.aggregates):
            inbox = asyncio.Queue[tuple[int, asyncio.Event, list[int]]](64)
            inboxes.append(inbox)
            tasks.start_soon(echo, inbox)
        elapsed, _ = await _closed_loop(load, ask)
        tasks.cancel_scope.cancel()
    return load.commands / elapsed


async def bare_trio_baseline(load: CounterLoad) -> float:
    """Round trips per second through bare trio, with the same shape of load."""
    inboxes: list[trio.MemorySendChannel[tuple[int, trio.Event, list[int]]]] = []

    async def echo(outbox: trio.MemoryReceiveChannel[tuple[int, trio.Event, list[int]]]) -> None:
        async for value, done, box in outbox:
            box.append(value)
            done.set()

    async def ask(i: int) -> int:
        done, box = trio.Event(), list[int]()
        await inboxes[i % load.aggregates].send((i, done, box))
        await done.wait()
        return box[0]

    async with trio.open_nursery() as nursery:
        for _ in range(load.aggregates):
            inbox, outbox = trio.open_memory_channel[tuple[int, trio.Event, list[int]]](64)
            inboxes.append(inbox)
            nursery.start_soon(echo, outbox)
        elapsed, _ = await _closed_loop(load, ask)
        nursery.cancel_scope.cancel()
    return load.commands / elapsed


async def run_counter(load: CounterLoad) -> CounterReport:
    # The baseline is measured before and after the engine and averaged: on
    # a shared machine the CPU's speed drifts within seconds, and a single
    # measurement on one side made the ratio swing by a tenth.
    baseline_before = await bare_baseline(load)
    async with (
        open_store(load.store) as store,
        open_runtime(
            store, kinds=[COUNTER], max_resident=max(load.aggregates, 1), idle_timeout=math.inf
        ) as runtime,
    ):
        refs = [runtime.get(COUNTER, str(n)) for n in range(load.aggregates)]
        async with anyio.create_task_group() as tasks:  # activate (replay) before timing
            for ref in refs:
                tasks.start_soon(ref.state)
        stats = runtime.journal.stats
        transactions_before, appends_before = stats.transactions, stats.appends
        command = Increment()
        elapsed, latencies = await _closed_loop(
            load, lambda i: refs[i % load.aggregates].execute(command)
        )
        transactions = stats.transactions - transactions_before
        appends = stats.appends - appends_before
    baseline = (baseline_before + await bare_baseline(load)) / 2
    latencies.sort()
    rate = load.commands / elapsed
    return CounterReport(
        loop=current_parking().name,
        store=load.store,
        aggregates=load.aggregates,
        commands=load.commands,
        concurrency=load.concurrency,
        elapsed_s=round(elapsed, 3),
        commands_per_s=round(rate, 1),
        p50_ms=round(percentile(latencies, 0.50) * 1e3, 3),
        p90_ms=round(percentile(latencies, 0.90) * 1e3, 3),
        p99_ms=round(percentile(latencies, 0.99) * 1e3, 3),
        max_ms=round(latencies[-1] * 1e3, 3) if latencies else math.nan,
        transactions=transactions,
        mean_batch_size=round(appends / transactions, 1) if transactions else 0.0,
        baseline_ask_per_s=round(baseline, 1),
        ratio_to_baseline=round(rate / baseline, 3),
    )


def resident_set_bytes() -> int:
    """This process's resident set size (Linux /proc; elsewhere the peak)."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


async def _activate_all(store_url: str, aggregates: int, traced: bool) -> tuple[int, int]:
    """Make `aggregates` live aggregates with one command each; return (growth, live)."""
    async with (
        open_store(store_url) as store,
        open_runtime(
            store, kinds=[COUNTER], max_resident=aggregates, idle_timeout=math.inf
        ) as runtime,
    ):
        command = Increment()
        gc.collect()
        if traced:
            tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0] if traced else resident_set_bytes()
        step = 1000
        for start in range(0, aggregates, step):
            async with trio.open_nursery() as nursery:
                for n in range(start, min(start + step, aggregates)):
                    nursery.start_soon(runtime.get(COUNTER, str(n)).execute, command)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0] if traced else resident_set_bytes()
        if traced:
            tracemalloc.stop()
        return after - before, max(runtime.registry.resident, 1)


async def run_resident_memory(store_url: str, aggregates: int) -> MemoryReport:
    """Memory held per live, idle aggregate, measured twice.

    `rss_bytes_per_aggregate` is the growth of the whole process, so it also
    counts the store's caches (SQLite's page cache is not on the Python
    heap) and the allocator's slack. `python_bytes_per_aggregate` counts the
    Python heap alone (tracemalloc, in a second run on a second store, since
    tracing inflates the process's own size): the actor, its task, mailbox,
    state and bookkeeping.
    """
    rss_growth, live = await _activate_all(store_url, aggregates, traced=False)
    heap_growth, _ = await _activate_all(_second_store(store_url), aggregates, traced=True)
    return MemoryReport(
        store=store_url,
        aggregates=live,
        rss_bytes_per_aggregate=round(rss_growth / live),
        python_bytes_per_aggregate=round(heap_growth / live),
    )


def _second_store(store_url: str) -> str:
    if store_url.startswith("sqlite:"):
        path, _, query = store_url.partition("?")
        return f"{path}.traced" + (f"?{query}" if query else "")
    return store_url
