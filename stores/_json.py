"""The JSON-lines event store: a log you can read with `less`, durable with fsync.

`json:///DIR?layout=single` keeps every event in `DIR/events.jsonl`;
`layout=split` keeps one file per aggregate type (`DIR/request.jsonl`,
`DIR/template.jsonl`, …), the type being the stream name up to its first
`-`. Each line is one event: stream, version, position, id, type, schema
version, time, correlation and causation ids, and the event's own JSON as
`data` (embedded, not quoted, so the file stays readable). Snapshots go to
`snapshots.jsonl` (the last line for a stream wins) and checkpoints to
`checkpoints.json`, replaced atomically.

Why it is built this way:
- The whole log is indexed in memory when the store opens (a `MemoryStore`
  is the index), so reads cost nothing and appends only write. This is the
  store for small deployments and for people who want to see their data;
  SQLite is the one for big logs.
- Each batch is written with one `write` per file and fsynced before anyone
  is answered. Batches are written one at a time, so after a crash at most
  the last, unacknowledged batch can be incomplete.
- On open, the tail is checked. A torn last line, or events past a gap in
  the positions (a batch that reached only some files of a split layout),
  were never acknowledged: they are reported and moved to `<file>.torn`
  beside the log, never silently dropped. A bad line anywhere else stops
  the open with an error naming file:line, and nothing is rewritten.
- Event data must be JSON (every hostsmith event is); it is stored as is,
  byte for byte.
"""

from __future__ import annotations

import logging
import os
import pathlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar
from urllib.parse import SplitResult

import anyio
import msgspec

from hostsmith.runtime import (
    AppendOutcome,
    AppendRequest,
    MemoryStore,
    Snapshot,
    StoredEvent,
    StoreOpenError,
    plan_appends,
)
from hostsmith.stores._url import url_options

log = logging.getLogger("hostsmith.stores.json")
T = TypeVar("T")


class Line(msgspec.Struct, kw_only=True):
    """One event as a line of the log: a `StoredEvent`'s fields, with the payload as JSON."""

    stream: str
    version: int
    position: int
    event_id: str = msgspec.field(name="id")
    type: str
    schema_version: int = 1
    recorded_at: float = msgspec.field(default=0.0, name="time")
    correlation_id: str = ""
    causation_id: str = ""
    data: msgspec.Raw = msgspec.Raw(b"{}")


class SnapshotLine(msgspec.Struct, kw_only=True):
    stream: str
    version: int
    schema_version: int = 1
    time: float = 0.0
    state: msgspec.Raw


_encoder = msgspec.json.Encoder()
_line_decoder = msgspec.json.Decoder(Line)
_snapshot_decoder = msgspec.json.Decoder(SnapshotLine)


def _to_line(event: StoredEvent) -> bytes:
    fields = msgspec.structs.asdict(event)
    fields["data"] = msgspec.Raw(event.data)
    return _encoder.encode(Line(**fields)) + b"\n"


def _from_line(line: Line) -> StoredEvent:
    fields = msgspec.structs.asdict(line)
    fields["data"] = bytes(line.data)
    return StoredEvent(**fields)


class JsonStore:
    def __init__(self, directory: pathlib.Path, layout: str) -> None:
        self.directory = directory
        self.layout = layout
        self.transactions = 0
        self._index = MemoryStore()
        self._snapshots: dict[str, Snapshot] = {}
        self._checkpoints: dict[str, int] = {}
        self._limiter = anyio.CapacityLimiter(1)

    def file_for(self, stream: str) -> pathlib.Path:
        if self.layout == "single":
            return self.directory / "events.jsonl"
        kind = stream.split("-", 1)[0] or "events"
        return self.directory / f"{kind}.jsonl"

    async def _call(self, function: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(function, *args, limiter=self._limiter)

    # -- appends -------------------------------------------------------------

    async def append_batch(self, requests: Sequence[AppendRequest]) -> list[AppendOutcome]:
        return await self._call(self._append_batch, requests)

    def _append_batch(self, requests: Sequence[AppendRequest]) -> list[AppendOutcome]:
        index = self._index
        outcomes, written = plan_appends(
            requests,
            version_of=index.version_of,
            position_of=index.position_of,
            first_position=index.last_position + 1,
        )
        if written:
            self._write(written)  # durable first; only then visible
            for event in written:
                index.add(event)
        self.transactions += 1
        return outcomes

    def _write(self, events: list[StoredEvent]) -> None:
        by_file: dict[pathlib.Path, list[bytes]] = {}
        for event in events:
            by_file.setdefault(self.file_for(event.stream), []).append(_to_line(event))
        for path, lines in by_file.items():
            _append_durably(path, b"".join(lines))

    # -- reads -----------------------------------------------------------------

    async def read(self, stream: str, after_version: int = 0) -> list[StoredEvent]:
        return await self._index.read(stream, after_version)

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[StoredEvent]:
        return await self._index.read_all(after_position, limit)

    # -- snapshots and checkpoints ---------------------------------------------

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        line = _encoder.encode(
            SnapshotLine(
                stream=snapshot.stream,
                version=snapshot.version,
                schema_version=snapshot.schema_version,
                time=snapshot.recorded_at,
                state=msgspec.Raw(snapshot.state),
            )
        )
        await self._call(_append_durably, self.directory / "snapshots.jsonl", line + b"\n")
        self._snapshots[snapshot.stream] = snapshot

    async def load_snapshot(self, stream: str) -> Snapshot | None:
        await anyio.lowlevel.checkpoint()
        return self._snapshots.get(stream)

    async def save_checkpoint(self, name: str, position: int) -> None:
        self._checkpoints[name] = position
        data = _encoder.encode(self._checkpoints)
        await self._call(_replace_durably, self.directory / "checkpoints.json", data)

    async def checkpoints(self) -> dict[str, int]:
        await anyio.lowlevel.checkpoint()
        return dict(self._checkpoints)

    async def load_checkpoint(self, name: str) -> int:
        await anyio.lowlevel.checkpoint()
        return self._checkpoints.get(name, 0)

    async def aclose(self) -> None:
        await anyio.lowlevel.checkpoint()

    # -- opening ---------------------------------------------------------------

    def load(self) -> None:
        events: list[StoredEvent] = []
        for path in sorted(self.directory.glob("*.jsonl")):
            if path.name == "snapshots.jsonl":
                continue
            events.extend(_from_line(line) for line in _read_lines(path, _line_decoder))
        events.sort(key=lambda event: event.position)
        complete = 0
        while complete < len(events) and events[complete].position == complete + 1:
            complete += 1
        if complete < len(events):
            self._set_aside(events[complete:])
        for event in events[:complete]:
            self._index.add(event)
        snapshots = self.directory / "snapshots.jsonl"
        if snapshots.exists():
            for line in _read_lines(snapshots, _snapshot_decoder):
                self._snapshots[line.stream] = Snapshot(
                    stream=line.stream,
                    version=line.version,
                    state=bytes(line.state),
                    schema_version=line.schema_version,
                    recorded_at=line.time,
                )
        checkpoints = self.directory / "checkpoints.json"
        if checkpoints.exists():
            try:
                self._checkpoints = msgspec.json.decode(
                    checkpoints.read_bytes(), type=dict[str, int]
                )
            except msgspec.DecodeError as error:
                raise StoreOpenError(f"{checkpoints} is not valid: {error}") from None

    def _set_aside(self, unacknowledged: list[StoredEvent]) -> None:
        """Events past a gap belong to a batch that was never acknowledged."""
        by_file: dict[pathlib.Path, set[int]] = {}
        for event in unacknowledged:
            by_file.setdefault(self.file_for(event.stream), set()).add(event.position)
        for path, positions in by_file.items():
            keep: list[bytes] = []
            drop: list[bytes] = []
            for raw in path.read_bytes().splitlines(keepends=True):
                (drop if _line_decoder.decode(raw).position in positions else keep).append(raw)
            _append_durably(path.with_name(path.name + ".torn"), b"".join(drop))
            _replace_durably(path, b"".join(keep))
            log.warning(
                "%s: set aside %d event(s) of a batch that was never acknowledged, in %s",
                path,
                len(drop),
                path.name + ".torn",
            )


def _read_lines(path: pathlib.Path, decoder: msgspec.json.Decoder[Any]) -> list[Any]:
    """Decode every line; recover a torn last line; refuse a bad line elsewhere."""
    data = path.read_bytes()
    lines = data.split(b"\n")
    parsed = []
    for number, raw in enumerate(lines, start=1):
        if not raw:
            continue
        is_last = number == len(lines)  # no newline after it: the write did not finish
        try:
            parsed.append(decoder.decode(raw))
        except msgspec.DecodeError as error:
            if is_last or (number == len(lines) - 1 and not lines[-1]):
                torn = path.with_name(path.name + ".torn")
                _append_durably(torn, raw + b"\n")
                _truncate_durably(path, len(data) - len(raw) - (0 if is_last else 1))
                log.warning(
                    "%s:%d: a torn last line (an append that was never acknowledged) was "
                    "moved to %s",
                    path,
                    number,
                    torn.name,
                )
                break
            raise StoreOpenError(
                f"{path}:{number}: corrupt event line ({error}); the file was not changed: "
                "repair or remove that line"
            ) from None
        if is_last:  # a complete record with its newline missing: also torn
            torn = path.with_name(path.name + ".torn")
            _append_durably(torn, raw + b"\n")
            _truncate_durably(path, len(data) - len(raw))
            parsed.pop()
            log.warning(
                "%s:%d: a last line without its newline was moved to %s", path, number, torn.name
            )
    return parsed


def _append_durably(path: pathlib.Path, data: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        size = os.fstat(descriptor).st_size
        try:
            written = os.write(descriptor, data)
            if written != len(data):
                raise OSError(f"short write to {path}: {written} of {len(data)} bytes")
            os.fsync(descriptor)
        except OSError:
            os.ftruncate(descriptor, size)  # leave no partial line behind
            raise
    finally:
        os.close(descriptor)


def _truncate_durably(path: pathlib.Path, size: int) -> None:
    descriptor = os.open(path, os.O_WRONLY)
    try:
        os.ftruncate(descriptor, size)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _replace_durably(path: pathlib.Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(descriptor, data)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _open_directory(raw: str, layout: str) -> JsonStore:
    directory = pathlib.Path(os.path.normpath(raw))
    try:
        if directory.exists() and not directory.is_dir():
            raise StoreOpenError(f"JSON store path {directory} is a file, not a directory")
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as error:
        raise StoreOpenError(
            f"cannot use JSON store directory {directory}: {error.strerror}"
        ) from None
    store = JsonStore(directory, layout)
    store.load()
    return store


@asynccontextmanager
async def open_json_store(url: SplitResult) -> AsyncIterator[JsonStore]:
    raw = url.netloc + url.path
    if not raw or raw == "/":
        raise StoreOpenError(
            f"store URL {url.geturl()!r} names no directory: use json:///path/to/dir"
        )
    options = url_options(url, "JSON", ("layout",))
    layout = options.get("layout", "single")
    if layout not in {"single", "split"}:
        raise StoreOpenError(f"layout={layout!r} in the JSON store URL is not one of single, split")
    store = await anyio.to_thread.run_sync(_open_directory, raw, layout)
    try:
        yield store
    finally:
        await store.aclose()
