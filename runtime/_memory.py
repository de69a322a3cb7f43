"""The in-memory event store: the reference implementation of the protocol.

It is what tests run on (through `hostsmith.runtime.testing`) and what
`memory://` opens. Because it is the simplest correct backend, the shared
contract suite is written against its behaviour first; every other backend
must be indistinguishable from it. Every method passes a checkpoint, so code
on top of it interleaves the way it would with real I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

import trio

from hostsmith.runtime._errors import ConflictError, DuplicateEventError
from hostsmith.runtime._store import (
    Appended,
    AppendOutcome,
    AppendRequest,
    Snapshot,
    StoredEvent,
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
        await trio.lowlevel.checkpoint()
        self.transactions += 1
        return [self._append_one(request) for request in requests]

    def _append_one(self, request: AppendRequest) -> AppendOutcome:
        stream = self._streams.get(request.stream, [])
        known = [self._positions_by_id.get(e.event_id) for e in request.events]
        if request.events and all(p is not None for p in known):
            stored_at = tuple(p for p in known if p is not None)
            return Appended(request.stream, len(stream), stored_at, duplicate=True)
        if any(p is not None for p in known):
            ids = [e.event_id for e, p in zip(request.events, known, strict=True) if p is not None]
            return DuplicateEventError(request.stream, ids)
        if len(stream) != request.expected_version:
            return ConflictError(request.stream, request.expected_version, len(stream))
        positions = []
        for offset, new in enumerate(request.events):
            stored = StoredEvent(
                stream=request.stream,
                version=request.expected_version + offset + 1,
                position=len(self._log) + 1,
                event_id=new.event_id,
                type=new.type,
                data=new.data,
                schema_version=new.schema_version,
                correlation_id=new.correlation_id,
                causation_id=new.causation_id,
                recorded_at=new.recorded_at,
            )
            self._log.append(stored)
            stream.append(stored)
            self._positions_by_id[new.event_id] = stored.position
            positions.append(stored.position)
        if stream:
            self._streams[request.stream] = stream
        return Appended(request.stream, len(stream), tuple(positions))

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
        await trio.lowlevel.checkpoint()
        return self._streams.get(stream, [])[after_version:]

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[StoredEvent]:
        await trio.lowlevel.checkpoint()
        return self._log[after_position : after_position + limit]

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        await trio.lowlevel.checkpoint()
        self._snapshots[snapshot.stream] = snapshot

    async def load_snapshot(self, stream: str) -> Snapshot | None:
        await trio.lowlevel.checkpoint()
        return self._snapshots.get(stream)

    async def save_checkpoint(self, name: str, position: int) -> None:
        await trio.lowlevel.checkpoint()
        self._checkpoints[name] = position

    async def checkpoints(self) -> dict[str, int]:
        await trio.lowlevel.checkpoint()
        return dict(self._checkpoints)

    async def load_checkpoint(self, name: str) -> int:
        await trio.lowlevel.checkpoint()
        return self._checkpoints.get(name, 0)

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


__all__ = ["MemoryStore"]
