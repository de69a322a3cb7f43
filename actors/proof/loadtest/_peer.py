"""The peer to beat, measured by us: the `eventsourcing` library on the counter workload.

`hostsmith loadtest --workload counter` is compared with the most used
Python event-sourcing library doing the same work in the same session:
A aggregates, C commands spread round-robin over them, each command loading
its aggregate (from the library's aggregate cache), recording one event and
saving it durably to SQLite. eventsourcing is synchronous, so its commands
run one after another; the figure is what a program built on it gets.

Absolute figures on a shared machine drift from run to run, so `just bench`
runs this beside our own workload and the ratio is what is reported. The
library is an optional dependency (the `bench` extra), imported only here.
"""

from __future__ import annotations

import os
import pathlib
import tempfile
import time
from typing import Any

import msgspec

from hostsmith.actors.errors import ConfigError


class PeerReport(msgspec.Struct, kw_only=True):
    peer: str = "eventsourcing"
    store: str
    aggregates: int
    commands: int
    elapsed_s: float
    commands_per_s: float
    p50_ms: float
    p99_ms: float


def run_peer_eventsourcing(directory: str, aggregates: int, commands: int) -> PeerReport:
    """The counter workload on eventsourcing's SQLite persistence, timed per command."""
    try:
        from eventsourcing.application import Application
        from eventsourcing.domain import Aggregate, event
    except ImportError:
        raise ConfigError(
            "the peer workload needs eventsourcing: pip install 'hostsmith[bench]'"
        ) from None

    class Counter(Aggregate):
        def __init__(self, name: str) -> None:
            self.name = name
            self.value = 0

        @event("Incremented")
        def increment(self, by: int) -> None:
            self.value += by

    path = pathlib.Path(directory or tempfile.mkdtemp()) / "peer-eventsourcing.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    settings: dict[str, Any] = {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": os.fspath(path),
        "AGGREGATE_CACHE_MAXSIZE": str(aggregates * 2),
    }
    application: Application[Any] = Application(env=settings)
    ids = []
    for n in range(aggregates):
        counter = Counter(f"c{n}")
        application.save(counter)
        ids.append(counter.id)
    latencies = []
    began = time.perf_counter()
    for n in range(commands):
        started = time.perf_counter()
        counter = application.repository.get(ids[n % aggregates])
        counter.increment(1)
        application.save(counter)
        latencies.append(time.perf_counter() - started)
    elapsed = time.perf_counter() - began
    latencies.sort()
    return PeerReport(
        store=f"sqlite://{path}",
        aggregates=aggregates,
        commands=commands,
        elapsed_s=round(elapsed, 3),
        commands_per_s=round(commands / elapsed, 1),
        p50_ms=round(latencies[len(latencies) // 2] * 1e3, 3),
        p99_ms=round(latencies[int(len(latencies) * 0.99)] * 1e3, 3),
    )
