"""The test kit: fakes to pass in as parameters, never to patch in.

- `MemoryStore`: the reference event store, in memory.
- `FaultyStore`: wraps any store and fails, delays or rejects on command,
  for testing what the engine does when storage misbehaves.
- `EventCapture`: wraps any store and records every event that was
  committed, decoded or not, for asserting on what a command produced.
- `settle()`: wait until every task is blocked (with `autojump_clock` this
  is how a test lets the system run to quiescence without sleeping).

Time in tests is trio's virtual clock (`autojump_clock` from pytest-trio, or
`trio.testing.MockClock`), so timeouts and idle passivation are exact and
instant. The kit itself is anyio, so it also serves tests run on asyncio.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from hostsmith.runtime._errors import ConflictError
from hostsmith.runtime._events import EventRegistry
from hostsmith.runtime._memory import MemoryStore
from hostsmith.runtime._store import (
    Appended,
    AppendOutcome,
    AppendRequest,
    EventStore,
    Snapshot,
    StoredEvent,
)

__all__ = ["Chances", "EventCapture", "FaultyStore", "MemoryStore", "settle"]


class _Forwarding:
    """Passes every protocol call to `inner`; subclasses override what they watch."""

    def __init__(self, inner: EventStore) -> None:
        self.inner = inner

    async def append_batch(self, requests: Sequence[AppendRequest]) -> list[AppendOutcome]:
        return await self.inner.append_batch(requests)

    async def read(self, stream: str, after_version: int = 0) -> list[StoredEvent]:
        return await self.inner.read(stream, after_version)

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[StoredEvent]:
        return await self.inner.read_all(after_position, limit)

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        await self.inner.save_snapshot(snapshot)

    async def load_snapshot(self, stream: str) -> Snapshot | None:
        return await self.inner.load_snapshot(stream)

    async def save_checkpoint(self, name: str, position: int) -> None:
        await self.inner.save_checkpoint(name, position)

    async def checkpoints(self) -> dict[str, int]:
        return await self.inner.checkpoints()

    async def load_checkpoint(self, name: str) -> int:
        return await self.inner.load_checkpoint(name)

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass(frozen=True, kw_only=True, slots=True)
class Chances:
    """How often a chaotic `FaultyStore` misbehaves, per batch (or per request for conflicts)."""

    failure: float = 0.0
    conflict: float = 0.0
    lost_ack: float = 0.0
    max_delay: float = 0.0
    """Each batch takes a random share of this many seconds."""
    stall: float = 0.0
    """The chance that a batch takes `stall_for` seconds instead (past an ask's timeout)."""
    stall_for: float = 15.0


class FaultyStore(_Forwarding):
    """A store that misbehaves on command.

    - `fail_next_appends(n)`: the next n batches raise `OSError` (nothing written);
    - `conflict_next_appends(n)`: the next n requests are refused as conflicts
      (nothing written), as if another writer had got there first;
    - `delay`: seconds each batch takes (virtual time in tests);
    - `fail_reads`: every `read` raises `OSError`.
    - `fail_next_log_reads(n)`: the next n `read_all` calls raise `OSError`
      (a subscription's reader failing, and its supervisor restarting it).
    - `failing`: while set to an exception, every batch raises it (nothing
      written), as a full disk does until space is freed; set it back to None
      to heal the store.

    Given `chaos` (a seeded `random.Random` and `Chances`), it also misbehaves
    at random, reproducibly: that is the deterministic simulation's journal.
    A lost acknowledgement writes the batch and then raises, as a store does
    when the disk took the write but the answer never came back.
    """

    def __init__(
        self,
        inner: EventStore | None = None,
        *,
        delay: float = 0.0,
        chaos: tuple[random.Random, Chances] | None = None,
    ) -> None:
        super().__init__(inner if inner is not None else MemoryStore())
        self.delay = delay
        self.chaos = chaos
        self.fail_reads = False
        self.failing: Exception | None = None
        self._failures = 0
        self._conflicts = 0
        self._log_read_failures = 0
        self.batches = 0
        self.injected: dict[str, int] = {"failure": 0, "conflict": 0, "lost-ack": 0, "stall": 0}

    def fail_next_appends(self, count: int = 1) -> None:
        self._failures += count

    def conflict_next_appends(self, count: int = 1) -> None:
        self._conflicts += count

    def fail_next_log_reads(self, count: int = 1) -> None:
        self._log_read_failures += count

    def _roll(self, fault: str) -> bool:
        if self.chaos is None:
            return False
        rng, chances = self.chaos
        if rng.random() < getattr(chances, fault.replace("-", "_")):
            self.injected[fault] += 1
            return True
        return False

    async def append_batch(self, requests: Sequence[AppendRequest]) -> list[AppendOutcome]:
        self.batches += 1
        delay = self.delay
        if self.chaos is not None:
            delay += self.chaos[0].random() * self.chaos[1].max_delay
            if self._roll("stall"):
                delay += self.chaos[1].stall_for
        if delay:
            await anyio.sleep(delay)
        if self.failing is not None:
            raise self.failing
        if self._failures or self._roll("failure"):
            self._failures = max(0, self._failures - 1)
            raise OSError("injected write failure")
        outcomes: list[AppendOutcome | None] = []
        passed: list[AppendRequest] = []
        for request in requests:
            if self._conflicts or self._roll("conflict"):
                self._conflicts = max(0, self._conflicts - 1)
                actual = request.expected_version + 1
                outcomes.append(ConflictError(request.stream, request.expected_version, actual))
            else:
                outcomes.append(None)
                passed.append(request)
        written = iter(await self.inner.append_batch(passed) if passed else [])
        if self._roll("lost-ack"):
            raise OSError("injected lost acknowledgement (the batch was written)")
        return [outcome if outcome is not None else next(written) for outcome in outcomes]

    async def read(self, stream: str, after_version: int = 0) -> list[StoredEvent]:
        if self.fail_reads:
            raise OSError("injected read failure")
        return await super().read(stream, after_version)

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[StoredEvent]:
        if self._log_read_failures:
            self._log_read_failures -= 1
            raise OSError("injected read failure (of the log)")
        return await super().read_all(after_position, limit)


class EventCapture(_Forwarding):
    """Records every event committed through it, in commit order, and every read."""

    def __init__(self, inner: EventStore | None = None) -> None:
        super().__init__(inner if inner is not None else MemoryStore())
        self.committed: list[tuple[str, Any]] = []  # (stream, NewEvent)
        self.reads: list[tuple[str, int]] = []  # (stream, after_version)

    async def read(self, stream: str, after_version: int = 0) -> list[StoredEvent]:
        self.reads.append((stream, after_version))
        return await self.inner.read(stream, after_version)

    async def append_batch(self, requests: Sequence[AppendRequest]) -> list[AppendOutcome]:
        outcomes = await self.inner.append_batch(requests)
        for request, outcome in zip(requests, outcomes, strict=True):
            if isinstance(outcome, Appended) and not outcome.duplicate:
                self.committed.extend((request.stream, event) for event in request.events)
        return outcomes

    def decoded(self, registry: EventRegistry, stream: str | None = None) -> list[Any]:
        """The captured events as typed objects, optionally for one stream."""
        return [
            registry.decode(event.type, event.schema_version, event.data)
            for name, event in self.committed
            if stream is None or name == stream
        ]


async def settle() -> None:
    """Let every task run until all are blocked (virtual time does not move)."""
    await anyio.wait_all_tasks_blocked()
