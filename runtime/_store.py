"""The event store protocol: the one seam between the engine and storage.

Everything that crosses it is a frozen msgspec record, encoded once by the
engine. A backend never sees a domain object and never needs to import one.

The protocol is small on purpose, so that every backend (memory, SQLite,
JSON files, DynamoDB) can pass one shared contract suite:

- `append_batch(requests)` writes many independent appends in *one*
  transaction and reports an outcome per request. This is what makes group
  commit possible: the journal hands a store everything that is pending, and
  one fsync makes all of it durable. Each request is atomic on its own; a
  request that conflicts is reported and written not at all, without failing
  its neighbours.
- `read(stream, after_version)` and `read_all(after_position, limit)`: the
  global position is the commit order, and a reader is never shown position
  N+1 before N is readable.
- snapshots and subscription checkpoints, so that a copy of a store
  (migration) is a copy of everything.

Idempotency: an event id is unique across the store. A request whose event
ids are all stored already is a no-op that reports the stored positions with
`duplicate=True`; a request that mixes stored and new ids is refused with
`DuplicateEventError`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import msgspec

from hostsmith.runtime._errors import ConflictError, DuplicateEventError, JournalError


class NewEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An event ready to be written: the payload is already encoded."""

    event_id: str
    type: str
    data: bytes
    schema_version: int = 1
    correlation_id: str = ""
    causation_id: str = ""
    recorded_at: float = 0.0

    def stored_at(self, stream: str, version: int, position: int) -> StoredEvent:
        """This event as a store holds it, at `version` of `stream` and `position` in the log."""
        return StoredEvent(
            stream,
            version,
            position,
            self.event_id,
            self.type,
            self.data,
            self.schema_version,
            self.correlation_id,
            self.causation_id,
            self.recorded_at,
        )


class StoredEvent(msgspec.Struct, frozen=True):
    """An event as the store holds it, with its place in the stream and the log.

    Positional fields, in this order, so a backend can build one from a row.
    """

    stream: str
    version: int
    position: int
    event_id: str
    type: str
    data: bytes
    schema_version: int = 1
    correlation_id: str = ""
    causation_id: str = ""
    recorded_at: float = 0.0

    def as_new(self) -> NewEvent:
        """The same event, ready to be appended elsewhere (a migration copies it so)."""
        return NewEvent(
            event_id=self.event_id,
            type=self.type,
            data=self.data,
            schema_version=self.schema_version,
            correlation_id=self.correlation_id,
            causation_id=self.causation_id,
            recorded_at=self.recorded_at,
        )


class AppendRequest(msgspec.Struct, frozen=True):
    stream: str
    expected_version: int
    events: tuple[NewEvent, ...]


class Appended(msgspec.Struct, frozen=True):
    """A successful append: the stream's new version and each event's position."""

    stream: str
    version: int
    positions: tuple[int, ...]
    duplicate: bool = False


class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    stream: str
    version: int
    state: bytes
    schema_version: int = 1
    recorded_at: float = 0.0


AppendOutcome = Appended | JournalError


class EventStore(Protocol):
    """What a storage backend implements. See the module docstring for the rules."""

    async def append_batch(self, requests: Sequence[AppendRequest]) -> list[AppendOutcome]: ...

    async def read(self, stream: str, after_version: int = 0) -> list[StoredEvent]: ...

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[StoredEvent]: ...

    async def save_snapshot(self, snapshot: Snapshot) -> None: ...

    async def load_snapshot(self, stream: str) -> Snapshot | None: ...

    async def save_checkpoint(self, name: str, position: int) -> None: ...

    async def load_checkpoint(self, name: str) -> int: ...

    async def checkpoints(self) -> dict[str, int]:
        """Every saved checkpoint, by name (a migration copies them all)."""
        ...

    async def aclose(self) -> None: ...


def plan_appends(
    requests: Sequence[AppendRequest],
    *,
    version_of: Callable[[str], int],
    position_of: Callable[[str], int | None],
    first_position: int,
) -> tuple[list[AppendOutcome], list[StoredEvent]]:
    """Decide a batch against a store's current state: the outcome of each request,
    and the events to write, with their versions and positions.

    The rules of the module docstring, in one place for every store that can
    see its whole state before writing (memory, JSON files, DynamoDB after one
    consistent read). Requests are decided in order, each against the ones
    before it in the same batch.
    """
    versions: dict[str, int] = {}
    pending: dict[str, int] = {}  # event id -> position, within this batch
    position = first_position
    outcomes: list[AppendOutcome] = []
    written: list[StoredEvent] = []
    for request in requests:
        stream = request.stream
        ids = [event.event_id for event in request.events]
        known = [pending.get(i) or position_of(i) for i in ids]
        actual = versions[stream] if stream in versions else version_of(stream)
        if ids and all(p is not None for p in known):
            stored_at = tuple(p for p in known if p is not None)
            outcomes.append(Appended(stream, actual, stored_at, duplicate=True))
            continue
        if any(p is not None for p in known):
            repeated = [i for i, p in zip(ids, known, strict=True) if p is not None]
            outcomes.append(DuplicateEventError(stream, repeated))
            continue
        if actual != request.expected_version:
            outcomes.append(ConflictError(stream, request.expected_version, actual))
            continue
        positions = []
        for new in request.events:
            actual += 1
            written.append(new.stored_at(stream, actual, position))
            pending[new.event_id] = position
            positions.append(position)
            position += 1
        versions[stream] = actual
        outcomes.append(Appended(stream, actual, tuple(positions)))
    return outcomes, written


async def append(
    store: EventStore, stream: str, expected_version: int, events: Sequence[NewEvent]
) -> Appended:
    """Append to one stream directly, raising the request's error if it has one."""
    (outcome,) = await store.append_batch([AppendRequest(stream, expected_version, tuple(events))])
    if isinstance(outcome, JournalError):
        raise outcome
    return outcome
