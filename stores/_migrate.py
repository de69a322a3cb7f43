"""Migration: copy one store into another, exactly, resumably, and prove it.

`migrate(source, target)` copies every event in global order, so the target
assigns the same positions the source has, and every event keeps its id,
stream and version. Then it copies snapshots and subscription checkpoints,
and verifies.

Why it is built this way:
- Resumable by construction. Before copying, the target's log is compared
  with the source's prefix of the same length: equal means "a previous run
  got this far", and copying resumes after it; different means the target
  holds other data, and the migration refuses, naming the first position
  that differs. A run killed mid-batch leaves at most a whole batch behind
  (appends are atomic), and event-id deduplication makes a repeated batch
  harmless.
- Events are appended with their expected versions, so the target's own
  concurrency checks guard the copy too. A target that can load in bulk
  (`BulkLoader`: DynamoDB, where a transaction holds only 32 events) is
  handed whole batches instead; its loader is interruptible in the same way.
- Verification reads both stores in full and compares counts and a SHA-256
  per stream over (version, id, type, schema version, data), and the global
  order. `verify(source, target)` alone is `--verify-only`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from hostsmith.runtime import (
    AppendRequest,
    EventStore,
    JournalError,
    StoredEvent,
    StoreOpenError,
)

Progress = Callable[[int, int], None]
"""Called with (events copied so far, events in all)."""


@runtime_checkable
class BulkLoader(Protocol):
    async def load_events(self, events: Sequence[StoredEvent]) -> None:
        """Write events that continue this store's log exactly, positions and all."""


class MigrationError(StoreOpenError):
    """The target cannot take the source's data, or the copy does not match."""


@dataclass(slots=True)
class Verification:
    events: int = 0
    streams: int = 0
    mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches


@dataclass(slots=True)
class MigrationReport:
    copied: int
    resumed_from: int
    snapshots: int
    checkpoints: int
    verification: Verification


def _identity(event: StoredEvent) -> tuple[str, int, int, str, str, int, bytes]:
    return (
        event.stream,
        event.version,
        event.position,
        event.event_id,
        event.type,
        event.schema_version,
        event.data,
    )


async def extent(store: EventStore, batch: int = 2000) -> tuple[int, int]:
    """(how many events, the last position) of a store, read through."""
    events = last = 0
    while read := await store.read_all(last, batch):
        events += len(read)
        last = read[-1].position
    return events, last


async def agreed_prefix(source: EventStore, target: EventStore, batch: int) -> int:
    """How many events the target already holds; refuse if they differ from the source's."""
    held = 0
    while theirs := await target.read_all(held, batch):
        ours = await source.read_all(held, len(theirs))
        for mine, other in zip(ours, theirs, strict=False):
            if _identity(mine) != _identity(other):
                raise MigrationError(
                    f"the target already holds different data: at position {other.position} it "
                    f"has {other.stream} v{other.version} ({other.event_id}), the source has "
                    f"{mine.stream} v{mine.version} ({mine.event_id}); migrate into an empty store"
                )
        if len(ours) < len(theirs):
            raise MigrationError(
                f"the target holds {theirs[-1].position} events or more, the source only "
                f"{held + len(ours)}: migrate into an empty store"
            )
        held = theirs[-1].position
    return held


async def migrate(
    source: EventStore,
    target: EventStore,
    *,
    batch: int = 2000,
    progress: Progress | None = None,
) -> MigrationReport:
    _, total = await extent(source, batch)
    done = resumed = await agreed_prefix(source, target, batch)
    if progress:
        progress(done, total)
    while events := await source.read_all(done, batch):
        if isinstance(target, BulkLoader):
            try:
                await target.load_events(events)
            except JournalError as refusal:
                raise MigrationError(f"the target refused part of the copy: {refusal}") from None
        else:
            for outcome in await target.append_batch(_as_requests(events)):
                if isinstance(outcome, JournalError):
                    raise MigrationError(f"the target refused part of the copy: {outcome}")
        done = events[-1].position
        if progress:
            progress(done, total)
    source_digest = await _digest(source, batch)  # read once: for snapshots and the check
    snapshots = 0
    for stream in sorted(source_digest[1]):
        snapshot = await source.load_snapshot(stream)
        if snapshot is not None:
            await target.save_snapshot(snapshot)
            snapshots += 1
    checkpoints = await source.checkpoints()
    for name, position in checkpoints.items():
        await target.save_checkpoint(name, position)
    verification = _compare(source_digest, await _digest(target, batch))
    return MigrationReport(done - resumed, resumed, snapshots, len(checkpoints), verification)


def _as_requests(events: list[StoredEvent]) -> list[AppendRequest]:
    """One append per run of consecutive events of one stream, in global order."""
    requests: list[AppendRequest] = []
    run: list[StoredEvent] = []
    for event in events:
        if run and run[-1].stream != event.stream:
            requests.append(_request(run))
            run = []
        run.append(event)
    if run:
        requests.append(_request(run))
    return requests


def _request(run: list[StoredEvent]) -> AppendRequest:
    return AppendRequest(
        run[0].stream,
        run[0].version - 1,
        tuple(e.as_new() for e in run),
    )


Digest = tuple[int, dict[str, tuple[int, str]], str]


async def _digest(store: EventStore, batch: int) -> Digest:
    """(event count, per stream (count, sha256), sha256 of the global order)."""
    per_stream: dict[str, hashlib._Hash] = {}
    counts: dict[str, int] = {}
    order = hashlib.sha256()
    position = 0
    while events := await store.read_all(position, batch):
        for event in events:
            digest = per_stream.setdefault(event.stream, hashlib.sha256())
            digest.update(
                f"{event.version}|{event.event_id}|{event.type}|{event.schema_version}|".encode()
            )
            digest.update(event.data)
            counts[event.stream] = counts.get(event.stream, 0) + 1
            order.update(f"{event.position}|{event.event_id}\n".encode())
        position = events[-1].position
    streams = {name: (counts[name], digest.hexdigest()) for name, digest in per_stream.items()}
    return position, streams, order.hexdigest()


async def verify(source: EventStore, target: EventStore, *, batch: int = 2000) -> Verification:
    """Compare two stores event for event (by count and checksum per stream, and global order)."""
    return _compare(await _digest(source, batch), await _digest(target, batch))


def _compare(source: Digest, target: Digest) -> Verification:
    source_count, source_streams, source_order = source
    target_count, target_streams, target_order = target
    mismatches = []
    if source_count != target_count:
        mismatches.append(f"the source has {source_count} events, the target {target_count}")
    for stream in sorted(source_streams.keys() | target_streams.keys()):
        mine, theirs = source_streams.get(stream), target_streams.get(stream)
        if mine is None or theirs is None:
            where = "target" if mine is None else "source"
            mismatches.append(f"stream {stream!r} exists only in the {where}")
        elif mine[0] != theirs[0]:
            mismatches.append(
                f"stream {stream!r} has {mine[0]} events in the source, {theirs[0]} in the target"
            )
        elif mine[1] != theirs[1]:
            mismatches.append(
                f"stream {stream!r} differs: same {mine[0]} events, different content"
            )
    if not mismatches and source_order != target_order:
        mismatches.append("the global order of events differs")
    return Verification(source_count, len(source_streams), mismatches)
