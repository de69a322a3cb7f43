"""The PostgreSQL event store: psycopg 3 on one worker thread, group commit in one transaction.

`postgresql://user@host:port/database` is the store most on-premises
sites that outgrow one daemon already run; several daemons share it as
they share a DynamoDB table.

Why it is built this way:
- psycopg's blocking connection on the store's own worker thread
  (`_worker.WorkerThread`), exactly as the SQLite store runs sqlite3: calls
  are serialized, the connection is used by one thread, and the loop never
  blocks. (psycopg's async connection runs on asyncio only.)
- One `append_batch` is one transaction, so every append the journal
  gathered shares one commit (one WAL flush on the server).
- Every writer takes one transaction-scoped advisory lock before it reads
  the last position, so writers commit one after another and position
  order is commit order: `read_all` never sees a gap that a slower writer
  fills later. The lock is held for the few milliseconds of one batch.
- `(stream, version)` and `event_id` are unique, the database's own
  guards. Inside the lock each request is checked first, for its event
  ids (a retried append is a duplicate, not a conflict) and then for its
  expected version, so a refused request costs no failed insert. Rows go in
  with `COPY`, the fastest way into PostgreSQL.
- Its tables are named `hostsmith_*`, so the database can hold others.
  They are made when the store is first opened (or by `hostsmith stores
  init`), under the same lock, so two daemons starting together do not race.
- The URL goes to libpq as it is: its query options (`sslmode`,
  `connect_timeout`, …) are libpq's, and libpq names a wrong one. A
  password in the URL is masked in every message made here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
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
from hostsmith.stores._sqlite import Row, plan_rows
from hostsmith.stores._worker import WorkerThread

T = TypeVar("T")

WRITE_LOCK = 0x48534D54  # "HSMT": the advisory lock every writer of a store takes
"""One key for every hostsmith store in a database: they share the tables."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS hostsmith_events (
    position       BIGINT           PRIMARY KEY,
    stream         TEXT             NOT NULL,
    version        BIGINT           NOT NULL,
    event_id       TEXT             NOT NULL UNIQUE,
    type           TEXT             NOT NULL,
    data           BYTEA            NOT NULL,
    schema_version INTEGER          NOT NULL,
    correlation_id TEXT             NOT NULL,
    causation_id   TEXT             NOT NULL,
    recorded_at    DOUBLE PRECISION NOT NULL,
    UNIQUE (stream, version)
);
CREATE TABLE IF NOT EXISTS hostsmith_snapshots (
    stream         TEXT             PRIMARY KEY,
    version        BIGINT           NOT NULL,
    state          BYTEA            NOT NULL,
    schema_version INTEGER          NOT NULL,
    recorded_at    DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS hostsmith_checkpoints (
    name     TEXT   PRIMARY KEY,
    position BIGINT NOT NULL
);
"""

_COLUMNS = (
    "stream, version, position, event_id, type, data, schema_version, "
    "correlation_id, causation_id, recorded_at"
)


class PostgresStore:
    def __init__(self, connection: Any, where: str, worker: WorkerThread) -> None:
        self.where = where
        """The URL with its password masked, for messages."""
        self.transactions = 0
        self._db = connection
        self._worker = worker
        self._closed = False

    async def _call(self, function: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise StoreOpenError(f"the PostgreSQL store {self.where} is closed")
        return await self._worker.run(function, *args)

    # -- appends -------------------------------------------------------------

    async def append_batch(self, requests: Sequence[AppendRequest]) -> list[AppendOutcome]:
        return await self._call(self._append_batch, requests)

    def _append_batch(self, requests: Sequence[AppendRequest]) -> list[AppendOutcome]:
        db = self._db
        with db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            streams = list({request.stream for request in requests})
            versions: dict[str, int] = dict(
                db.execute(
                    "SELECT stream, max(version) FROM hostsmith_events "
                    "WHERE stream = ANY(%s) GROUP BY stream",
                    (streams,),
                ).fetchall()
            )
            ids = [event.event_id for request in requests for event in request.events]
            stored: dict[str, int] = (
                dict(
                    db.execute(
                        "SELECT event_id, position FROM hostsmith_events WHERE event_id = ANY(%s)",
                        (ids,),
                    ).fetchall()
                )
                if ids
                else {}
            )
            (last,) = db.execute(
                "SELECT coalesce(max(position), 0) FROM hostsmith_events"
            ).fetchone()
            rows: list[Row] = []
            outcomes = [
                _decide(request, versions, stored, rows, last + 1 + len(rows))
                for request in requests
            ]
            if rows:
                with db.cursor().copy(f"COPY hostsmith_events ({_COLUMNS}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
        self.transactions += 1
        return outcomes

    # -- reads -----------------------------------------------------------------

    async def read(self, stream: str, after_version: int = 0) -> list[StoredEvent]:
        return await self._call(
            self._rows,
            f"SELECT {_COLUMNS} FROM hostsmith_events WHERE stream = %s AND version > %s "
            "ORDER BY version",
            (stream, after_version),
        )

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[StoredEvent]:
        return await self._call(
            self._rows,
            f"SELECT {_COLUMNS} FROM hostsmith_events WHERE position > %s "
            "ORDER BY position LIMIT %s",
            (after_position, limit),
        )

    def _rows(self, query: str, parameters: tuple[Any, ...]) -> list[StoredEvent]:
        return [StoredEvent(*row) for row in self._db.execute(query, parameters)]

    # -- snapshots and checkpoints ---------------------------------------------

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        await self._call(
            self._db.execute,
            "INSERT INTO hostsmith_snapshots (stream, version, state, schema_version, "
            "recorded_at) VALUES (%s, %s, %s, %s, %s) ON CONFLICT (stream) DO UPDATE SET "
            "version = excluded.version, state = excluded.state, "
            "schema_version = excluded.schema_version, recorded_at = excluded.recorded_at",
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
            "SELECT version, state, schema_version, recorded_at FROM hostsmith_snapshots "
            "WHERE stream = %s",
            (stream,),
        ).fetchone()
        if row is None:
            return None
        version, state, schema_version, recorded_at = row
        return Snapshot(
            stream=stream,
            version=version,
            state=bytes(state),
            schema_version=schema_version,
            recorded_at=recorded_at,
        )

    async def save_checkpoint(self, name: str, position: int) -> None:
        await self._call(
            self._db.execute,
            "INSERT INTO hostsmith_checkpoints (name, position) VALUES (%s, %s) "
            "ON CONFLICT (name) DO UPDATE SET position = excluded.position",
            (name, position),
        )

    async def checkpoints(self) -> dict[str, int]:
        rows = await self._call(
            lambda: self._db.execute("SELECT name, position FROM hostsmith_checkpoints").fetchall()
        )
        return {str(name): int(position) for name, position in rows}

    async def load_checkpoint(self, name: str) -> int:
        return await self._call(self._load_checkpoint, name)

    def _load_checkpoint(self, name: str) -> int:
        row = self._db.execute(
            "SELECT position FROM hostsmith_checkpoints WHERE name = %s", (name,)
        ).fetchone()
        return int(row[0]) if row is not None else 0

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._worker.stop(self._db.close)


def _decide(
    request: AppendRequest,
    versions: dict[str, int],
    stored: dict[str, int],
    rows: list[Row],
    position: int,
) -> AppendOutcome:
    """One request's outcome inside the batch; its rows are added to `rows` if it is appended.

    `versions` and `stored` (event id -> position) are kept up to date with what the
    batch appends, so a request later in the batch sees the earlier ones."""
    stream = request.stream
    actual = versions.get(stream, 0)
    ids = [event.event_id for event in request.events]
    found = [event_id for event_id in ids if event_id in stored]
    if found and len(found) < len(ids):
        return DuplicateEventError(stream, found)
    if found:  # a retry of an append that is stored already
        return Appended(stream, actual, tuple(stored[i] for i in ids), duplicate=True)
    if actual != request.expected_version:
        return ConflictError(stream, request.expected_version, actual)
    appended, _ = plan_rows(request, actual, position, rows)
    stored.update(zip(ids, appended.positions, strict=True))
    versions[stream] = appended.version
    return appended


# -- opening -------------------------------------------------------------------


def masked(url: SplitResult) -> str:
    """The URL with its password, if any, replaced by ***."""
    if url.password is None:
        return url.geturl()
    user = url.username or ""
    host = url.hostname or ""
    port = f":{url.port}" if url.port else ""
    return url._replace(netloc=f"{user}:***@{host}{port}").geturl()


def connect(url: SplitResult) -> tuple[Any, bool]:
    """A connection to the store's database with its tables made; True if it made them."""
    try:
        import psycopg
    except ImportError:
        raise StoreOpenError(
            "the PostgreSQL store needs psycopg: pip install 'hostsmith[postgres]'"
        ) from None
    where = masked(url)
    if not url.path.strip("/"):
        raise StoreOpenError(
            f"store URL {where!r} names no database: use postgresql://user@host:port/database"
        )
    try:
        db = psycopg.connect(url.geturl(), autocommit=True)
    except psycopg.Error as failure:
        reason = str(failure).strip().replace(url.password or "\0", "***")
        raise StoreOpenError(f"cannot connect to the PostgreSQL store {where}: {reason}") from None
    try:
        with db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            found = db.execute("SELECT to_regclass('hostsmith_events') IS NOT NULL").fetchone()
            existed = bool(found and found[0])
            db.execute(_SCHEMA)
    except psycopg.Error as failure:
        db.close()
        raise StoreOpenError(f"cannot use the PostgreSQL store {where}: {failure}") from None
    return db, not existed


async def init_postgres_store(url: SplitResult) -> bool:
    """Make the store's tables; False if they were there (safe to run again)."""
    db, made = await anyio.to_thread.run_sync(connect, url)
    db.close()
    return made


@asynccontextmanager
async def open_postgres_store(url: SplitResult) -> AsyncIterator[PostgresStore]:
    where = masked(url)
    worker = WorkerThread(f"hostsmith-postgres {url.hostname or 'local'}")
    try:
        connection, _ = await worker.run(connect, url)
    except BaseException:
        await worker.stop()
        raise
    store = PostgresStore(connection, where, worker)
    try:
        yield store
    finally:
        with anyio.CancelScope(shield=True):
            await store.aclose()
