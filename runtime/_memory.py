"""The in-memory event store: the reference implementation of the protocol.

It is what tests run on (through `hostsmith.runtime.testing`) and what
`memory://` opens. Because it is the simplest correct backend, the shared
contract suite is written against its behaviour first; every other backend
must be indistinguishable from it. Every method passes a checkpoint, so code
on top of it interleaves the way it would with real I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

import anyio

from hostsmith.runtime._store import (
    AppendOutcome,
    AppendRequest,
    Snapshot,
    StoredEvent,
    plan_appends,
)


class MemoryStore:
    def __init__(self) -> None:
        self._log: list[StoredEvent] = []  # position N lives at index N-1
        self._streams: dict[str, list[StoredEvent]] = {}
        self._positions_by_id: dict[str, int] = {}
        self._snapshots: dict[str, Snapshot] = {}
        self._checkpoints: dict[str, int] = {}
        self.transactions = 0

    async def append_batch(self, requests: Sequence[AppendRequest]) -> list[AppendOutcome]:
        await anyio.lowlevel.checkpoint()
        self.transactions += 1
        outcomes, written = plan_appends(
            requests,
            version_of=self.version_of,
            position_of=self.position_of,
            first_position=self.last_position + 1,
        )
        for event in written:
            self.add(event)
        return outcomes

    # -- for stores that keep this as their in-memory index ----------------------

    def version_of(self, stream: str) -> int:
        return len(self._streams.get(stream, ()))

    def position_of(self, event_id: str) -> int | None:
        return self._positions_by_id.get(event_id)

    @property
    def last_position(self) -> int:
        return len(self._log)

    def add(self, stored: StoredEvent) -> None:
        """Index an event that is already durable elsewhere (positions must be in order)."""
        if stored.position != len(self._log) + 1:
            raise ValueError(f"event at position {stored.position} follows {len(self._log)}")
        self._log.append(stored)
        self._streams.setdefault(stored.stream, []).append(stored)
        self._positions_by_id[stored.event_id] = stored.position

    async def read(self, stream: str, after_version: int = 0) -> list[StoredEvent]:
        await anyio.lowlevel.checkpoint()
        return self._streams.get(stream, [])[after_version:]

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[StoredEvent]:
        await anyio.lowlevel.checkpoint()
        return self._log[after_position : after_position + limit]

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        await anyio.lowlevel.checkpoint()
        self._snapshots[snapshot.stream] = snapshot

    async def load_snapshot(self, stream: str) -> Snapshot | None:
        await anyio.lowlevel.checkpoint()
        return self._snapshots.get(stream)

    async def save_checkpoint(self, name: str, position: int) -> None:
        await anyio.lowlevel.checkpoint()
        self._checkpoints[name] = position

    async def checkpoints(self) -> dict[str, int]:
        await anyio.lowlevel.checkpoint()
        return dict(self._checkpoints)

    async def load_checkpoint(self, name: str) -> int:
        await anyio.lowlevel.checkpoint()
        return self._checkpoints.get(name, 0)

    async def aclose(self) -> None:
        await anyio.lowlevel.checkpoint()


__all__ = ["MemoryStore"]
