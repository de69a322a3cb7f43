"""The SQLite event store: stdlib sqlite3 on one worker thread, WAL, group commit.

Why it is built this way:
- sqlite3 blocks, and the event loop must never block. Every call runs on the store's
  own worker thread (`_worker.WorkerThread`), in order, so the connection
  is used by one thread and calls are serialized. (aiosqlite cannot run
  under trio: it awaits asyncio futures. This is the same thread-plus-queue
  design, done natively.)
- One `append_batch` is one `BEGIN IMMEDIATE … COMMIT`, so all the appends
  the journal gathered share one fsync. WAL mode lets readers carry on while
  it commits. `synchronous=FULL` (the default) makes a commit survive power
  loss; `?synchronous=normal` trades that for speed and still survives a
  killed process. `?worker=inline` runs the queries on the event loop's thread
  instead, for runs on virtual time (see `_worker.InlineWorker`).
- The unique key `(stream, version)` is the concurrency guard, and
  `event_id` is unique. The table itself is keyed by position (the rowid),
  so it grows only at its end: a batch over a thousand streams then dirties
  a few table pages plus the index leaves, instead of a thousand table
  pages, which halves the cost of a commit (measured while building it).
  The fast path checks every stream's version in one query (or a cache,
  see `_stream_versions`), assigns positions and inserts the rows with a few
  multi-row `INSERT`s (see `_insert` for why not `executemany`). If the
  insert hits a uniqueness constraint (a duplicate event id), the whole
  transaction is rolled back and redone carefully, request by request.
- New files use 4 KiB pages, SQLite's own default. A batch touches one
  index leaf per stream it appends to. On a fresh file many streams share a
  leaf, and 16 KiB pages made commits about a third cheaper; but once the
  streams are long, each stream's tail has a leaf of its own, and a commit
  writes a page per stream: 500 streams cost 8 MB of WAL in 16 KiB pages,
  2 MB in 4 KiB ones. Measured (batches of 500 appends over 1,000 streams):
  16 KiB pages fell from 83k events/s on a fresh file to 20k by 800,000
  events; 4 KiB pages from 76k to 38-45k. The counter workload, 200,000
  commands at a time on one growing file: 16 KiB 45k, 35k, 24k, 18k
  commands/s; 4 KiB 33k, 25k, 31k, 31k. A daemon lives on a big file.
- Positions are assigned inside the write transaction, which SQLite holds
  exclusively, so position order is commit order and `read_all` never sees
  a gap that is later filled.
- The file is checked before anything is written to it: a file that is not
  SQLite, or a SQLite database that is not a hostsmith store, is refused
  with an error naming it, and left exactly as it was.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import SplitResult

import anyio

from hostsmith.runtime import (
    Appended,
    AppendOutcome,
    AppendRequest,
    ConflictError,
    DuplicateEventError,
    Snapshot,
    StoredEvent,
    StoreOpenError,
)
from hostsmith.stores._url import url_options
from hostsmith.stores._worker import InlineWorker, WorkerThread

T = TypeVar("T")

APPLICATION_ID = 0x48534D54  # "HSMT": marks a file as a hostsmith event store
SCHEMA_VERSION = 1
SQLITE_HEADER = b"SQLite format 3\x00"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    position       INTEGER PRIMARY KEY,
    stream         TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    event_id       TEXT    NOT NULL UNIQUE,
    type           TEXT    NOT NULL,
    data           BLOB    NOT NULL,
    schema_version INTEGER NOT NULL,
    correlation_id TEXT    NOT NULL,
    causation_id   TEXT    NOT NULL,
    recorded_at    REAL    NOT NULL,
    UNIQUE (stream, version)
);
CREATE TABLE IF NOT EXISTS snapshots (
    stream         TEXT    PRIMARY KEY,
    version        INTEGER NOT NULL,
    state          BLOB    NOT NULL,
    schema_version INTEGER NOT NULL,
    recorded_at    REAL    NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (
    name     TEXT    PRIMARY KEY,
    position INTEGER NOT NULL
) WITHOUT ROWID;
"""

_COLUMNS = (
    "stream, version, position, event_id, type, data, schema_version, "
    "correlation_id, causation_id, recorded_at"
)
_INSERT = f"INSERT INTO events ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
# Read back with data as a blob even if someone stored it as text by hand.
_SELECTED = _COLUMNS.replace("data,", "CAST(data AS BLOB),")
_STREAM_VERSIONS = (
    "SELECT value, (SELECT max(version) FROM events WHERE stream = value) FROM json_each(?)"
)
_VERSION_CACHE_LIMIT = 1_000_000
_PAGE_SIZE = 4096  # for new files only: an existing file keeps its own
_CHECKPOINT_BYTES = 40 * 1024 * 1024
_SYNCHRONOUS = {"full": "FULL", "normal": "NORMAL", "off": "OFF", "extra": "EXTRA"}

Row = tuple[str, int, int, str, str, bytes, int, str, str, float]


class SQLiteStore:
    def __init__(
        self, connection: sqlite3.Connection, path: Path, worker: WorkerThread | InlineWorker
    ) -> None:
        self.path = path
        self.transactions = 0
        self._db = connection
        self._worker = worker
        self._closed = False
        # What this connection wrote last: each stream's version and the next
        # free position. Valid while `PRAGMA data_version` stays the same.
        self._versions: dict[str, int] = {}
        self._next_free: int | None = None
        self._data_version = -1

    async def _call(self, function: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise StoreOpenError(f"the SQLite store {self.path} is closed")
        return await self._worker.run(function, *args)

    # -- appends -------------------------------------------------------------

    async def append_batch(self, requests: Sequence[AppendRequest]) -> list[AppendOutcome]:
        return await self._call(self._append_batch, requests)

    def _append_batch(self, requests: Sequence[AppendRequest]) -> list[AppendOutcome]:
        try:
            outcomes = self._in_transaction(self._write_fast, requests)
        except sqlite3.IntegrityError:
            outcomes = self._in_transaction(self._write_careful, requests)
            self._forget_written()  # the careful path does not maintain it
        self.transactions += 1
        return outcomes

    def _in_transaction(
        self,
        write: Callable[[Sequence[AppendRequest]], list[AppendOutcome]],
        requests: Sequence[AppendRequest],
    ) -> list[AppendOutcome]:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            outcomes = write(requests)
            db.execute("COMMIT")
        except BaseException:
            # First, whatever happens next: the cache may hold versions that were
            # never committed, and memory must equal the log (a full disk once
            # left every later append conflicting until a restart).
            self._forget_written()
            if db.in_transaction:  # SQLite rolls back by itself on some errors (a full disk)
                db.execute("ROLLBACK")
            raise
        return outcomes

    def _forget_written(self) -> None:
        self._versions.clear()
        self._next_free = None

    def _next_position(self) -> int:
        if self._next_free is not None:
            return self._next_free
        (last,) = self._db.execute("SELECT coalesce(max(position), 0) FROM events").fetchone()
        return int(last) + 1

    def _stream_versions(self, streams: set[str]) -> dict[str, int]:
        """Current versions of `streams`, from the cache where it is still valid.

        The cache holds what this connection wrote. `PRAGMA data_version`
        changes when any *other* connection commits, and then the cache is
        dropped; inside our write transaction nobody else can commit.
        """
        (data_version,) = self._db.execute("PRAGMA data_version").fetchone()
        if data_version != self._data_version or len(self._versions) > _VERSION_CACHE_LIMIT:
            self._forget_written()
            self._data_version = data_version
        cache = self._versions
        missing = [stream for stream in streams if stream not in cache]
        if missing:
            rows = self._db.execute(_STREAM_VERSIONS, (json.dumps(missing),))
            cache.update((stream, version or 0) for stream, version in rows)
        return cache

    def _write_fast(self, requests: Sequence[AppendRequest]) -> list[AppendOutcome]:
        db = self._db
        versions = self._stream_versions({request.stream for request in requests})
        position = self._next_position()
        rows: list[Row] = []
        outcomes: list[AppendOutcome] = []
        for request in requests:
            actual = versions[request.stream]
            if actual != request.expected_version:
                # A retried append comes with a stale version: it is a
                # duplicate, not a conflict, if its events are stored already.
                outcomes.append(self._refuse(request, actual))
                continue
            outcome, position = plan_rows(request, actual, position, rows)
            versions[request.stream] = outcome.version
            outcomes.append(outcome)
        _insert(db, rows)
        self._next_free = position
        return outcomes

    def _write_careful(self, requests: Sequence[AppendRequest]) -> list[AppendOutcome]:
        db = self._db
        position = self._next_position()
        outcomes: list[AppendOutcome] = []
        for request in requests:
            (actual,) = db.execute(
                "SELECT coalesce(max(version), 0) FROM events WHERE stream = ?", (request.stream,)
            ).fetchone()
            refusal = self._duplicate(request, actual)
            if refusal is None and actual != request.expected_version:
                refusal = ConflictError(request.stream, request.expected_version, actual)
            if refusal is not None:
                outcomes.append(refusal)
                continue
            rows: list[Row] = []
            outcome, position = plan_rows(request, actual, position, rows)
            db.executemany(_INSERT, rows)
            outcomes.append(outcome)
        return outcomes

    def _refuse(self, request: AppendRequest, actual: int) -> AppendOutcome:
        duplicate = self._duplicate(request, actual)
        if duplicate is not None:
            return duplicate
        return ConflictError(request.stream, request.expected_version, actual)

    def _duplicate(self, request: AppendRequest, actual: int) -> AppendOutcome | None:
        """The outcome for a request some of whose event ids are stored, else None."""
        if not request.events:
            return None
        ids = [event.event_id for event in request.events]
        found = dict(
            self._db.execute(
                "SELECT event_id, position FROM events "
                "WHERE event_id IN (SELECT value FROM json_each(?))",
                (json.dumps(ids),),
            ).fetchall()
        )
        if not found:
            return None
        if len(found) < len(ids):
            return DuplicateEventError(request.stream, [i for i in ids if i in found])
        positions = tuple(int(found[i]) for i in ids)
        return Appended(request.stream, actual, positions, duplicate=True)

    # -- reads -----------------------------------------------------------------

    async def read(self, stream: str, after_version: int = 0) -> list[StoredEvent]:
        return await self._call(self._read, stream, after_version)

    def _read(self, stream: str, after_version: int) -> list[StoredEvent]:
        rows = self._db.execute(
            f"SELECT {_SELECTED} FROM events WHERE stream = ? AND version > ? ORDER BY version",
            (stream, after_version),
        )
        return list(itertools.starmap(StoredEvent, rows))  # 2.5x a list comprehension

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[StoredEvent]:
        return await self._call(self._read_all, after_position, limit)

    def _read_all(self, after_position: int, limit: int) -> list[StoredEvent]:
        rows = self._db.execute(
            f"SELECT {_SELECTED} FROM events WHERE position > ? ORDER BY position LIMIT ?",
            (after_position, limit),
        )
        return list(itertools.starmap(StoredEvent, rows))  # 2.5x a list comprehension

    # -- snapshots and checkpoints ---------------------------------------------

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        await self._call(
            self._db.execute,
            "INSERT OR REPLACE INTO snapshots "
            "(stream, version, state, schema_version, recorded_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (
                snapshot.stream,
                snapshot.version,
                snapshot.state,
                snapshot.schema_version,
                snapshot.recorded_at,
            ),
        )

    async def load_snapshot(self, stream: str) -> Snapshot | None:
        return await self._call(self._load_snapshot, stream)

    def _load_snapshot(self, stream: str) -> Snapshot | None:
        row = self._db.execute(
            "SELECT version, state, schema_version, recorded_at FROM snapshots WHERE stream = ?",
            (stream,),
        ).fetchone()
        if row is None:
            return None
        version, state, schema_version, recorded_at = row
        return Snapshot(
            stream=stream,
            version=version,
            state=state,
            schema_version=schema_version,
            recorded_at=recorded_at,
        )

    async def save_checkpoint(self, name: str, position: int) -> None:
        await self._call(
            self._db.execute,
            "INSERT OR REPLACE INTO checkpoints (name, position) VALUES (?, ?)",
            (name, position),
        )

    async def checkpoints(self) -> dict[str, int]:
        rows = await self._call(
            lambda: self._db.execute("SELECT name, position FROM checkpoints").fetchall()
        )
        return {str(name): int(position) for name, position in rows}

    async def load_checkpoint(self, name: str) -> int:
        return await self._call(self._load_checkpoint, name)

    def _load_checkpoint(self, name: str) -> int:
        row = self._db.execute(
            "SELECT position FROM checkpoints WHERE name = ?", (name,)
        ).fetchone()
        return int(row[0]) if row is not None else 0

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._worker.stop(self._db.close)


_ROWS_PER_INSERT = 500  # x 10 columns: well under SQLite's 32,766 parameters


@functools.cache
def _insert_statement(rows: int) -> str:
    return _INSERT + ", (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)" * (rows - 1)


def _insert(db: sqlite3.Connection, rows: list[Row]) -> None:
    """Insert `rows` with one statement per 500 rows.

    sqlite3 releases the GIL around every statement step and must take it
    back afterwards. `executemany` steps once per row, and while the loop's
    thread is busy each of those take-backs waits for the GIL switch
    interval: measured, a 1,000-row batch went from 6 ms to seconds. One
    step per 500 rows takes the GIL back twice.
    """
    for start in range(0, len(rows), _ROWS_PER_INSERT):
        chunk = rows[start : start + _ROWS_PER_INSERT]
        db.execute(_insert_statement(len(chunk)), list(itertools.chain.from_iterable(chunk)))


def plan_rows(
    request: AppendRequest, version: int, position: int, rows: list[Row]
) -> tuple[Appended, int]:
    """Add the rows for `request` to `rows`; return its outcome and the next position.
    (The PostgreSQL store's rows are the same.)"""
    positions = []
    stream = request.stream
    for event in request.events:
        version += 1
        rows.append(
            (
                stream,
                version,
                position,
                event.event_id,
                event.type,
                event.data,
                event.schema_version,
                event.correlation_id,
                event.causation_id,
                event.recorded_at,
            )
        )
        positions.append(position)
        position += 1
    return Appended(stream, version, tuple(positions)), position


# -- opening -------------------------------------------------------------------


def sqlite_path(url: SplitResult) -> Path:
    """`sqlite:///abs/path.db` is absolute; `sqlite://./rel.db` is relative."""
    raw = url.netloc + url.path
    if not raw or raw == "/":
        raise StoreOpenError(
            f"store URL {url.geturl()!r} names no file: use sqlite:///absolute/path/events.db"
        )
    return Path(os.path.normpath(raw))


def connect(path: Path, *, synchronous: str = "full") -> sqlite3.Connection:
    """Open (creating if needed) a hostsmith SQLite store, refusing foreign files untouched."""
    mode = _SYNCHRONOUS.get(synchronous.lower())
    if mode is None:
        raise StoreOpenError(
            f"synchronous={synchronous!r} in the SQLite store URL is not one of "
            f"{', '.join(_SYNCHRONOUS)}"
        )
    _check_file(path)
    try:
        # Create it private (0600) before SQLite does, with the umask's mode.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except (sqlite3.Error, OSError) as failure:
        raise StoreOpenError(f"cannot open SQLite store {path}: {failure}") from failure
    try:
        _check_owner(db, path)
        db.execute(f"PRAGMA page_size={_PAGE_SIZE}")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={mode}")
        db.execute("PRAGMA busy_timeout=10000")
        db.execute("PRAGMA cache_size=-65536")
        # Checkpoint the WAL every ~40 MB rather than every 1,000 pages: a
        # checkpoint copies pages back into the database and syncs, off the
        # commit path less often.
        (page_size,) = db.execute("PRAGMA page_size").fetchone()
        db.execute(f"PRAGMA wal_autocheckpoint={_CHECKPOINT_BYTES // page_size}")
        db.executescript(_SCHEMA)
        db.execute(f"PRAGMA application_id={APPLICATION_ID}")
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    except sqlite3.Error as failure:
        db.close()
        raise StoreOpenError(f"cannot use SQLite store {path}: {failure}") from failure
    except BaseException:
        db.close()
        raise
    return db


def _check_file(path: Path) -> None:
    try:
        if path.is_dir():
            raise StoreOpenError(f"SQLite store path {path} is a directory, not a file")
        if path.exists():
            with path.open("rb") as handle:
                header = handle.read(len(SQLITE_HEADER))
            if header and header != SQLITE_HEADER:
                raise StoreOpenError(
                    f"{path} is not a SQLite database (it starts with {header[:16]!r}); "
                    "it was left untouched: point the store URL at a new or hostsmith file"
                )
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as failure:
        raise StoreOpenError(
            f"cannot use SQLite store path {path}: {failure.strerror or failure}"
        ) from failure


def _check_owner(db: sqlite3.Connection, path: Path) -> None:
    (application_id,) = db.execute("PRAGMA application_id").fetchone()
    if application_id == APPLICATION_ID:
        (version,) = db.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise StoreOpenError(
                f"{path} holds store schema v{version}, newer than this hostsmith "
                f"understands (v{SCHEMA_VERSION}): upgrade hostsmith"
            )
        return
    tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    if tables:
        raise StoreOpenError(
            f"{path} is a SQLite database but not a hostsmith event store "
            f"(it has tables {', '.join(tables[:5])}); it was left untouched"
        )


@asynccontextmanager
async def open_sqlite_store(url: SplitResult) -> AsyncIterator[SQLiteStore]:
    path = sqlite_path(url)
    options = url_options(url, "SQLite", ("synchronous", "worker"))
    kind = options.get("worker", "thread")
    if kind not in ("thread", "inline"):
        raise StoreOpenError(
            f"worker={kind!r} in SQLite store URL {url.geturl()!r} is not one of: thread, "
            "inline (inline runs queries on the event loop's thread, for runs on virtual time)"
        )
    name = f"hostsmith-sqlite {path.name}"
    worker = InlineWorker(name) if kind == "inline" else WorkerThread(name)
    try:
        connection = await worker.run(
            lambda: connect(path, synchronous=options.get("synchronous", "full"))
        )
    except BaseException:
        await worker.stop()
        raise
    store = SQLiteStore(connection, path, worker)
    try:
        yield store
    finally:
        with anyio.CancelScope(shield=True):
            await store.aclose()
