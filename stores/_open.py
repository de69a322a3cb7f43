"""Choosing a backend from a store URL.

The scheme picks the backend: the built-in ones are listed here, and any
other package can add one through the `hostsmith.stores` entry-point group
(a name mapped to an `open_*(url)` async context manager). The lookup is
done when a store is opened, by the caller that wires the application, never
at import time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from importlib.metadata import entry_points
from typing import cast
from urllib.parse import SplitResult, urlsplit

from hostsmith.runtime import EventStore, StoreOpenError
from hostsmith.stores._dynamodb import create_table, open_dynamodb_store
from hostsmith.stores._json import open_json_store
from hostsmith.stores._memory import open_memory_store
from hostsmith.stores._postgres import init_postgres_store, open_postgres_store
from hostsmith.stores._sqlite import open_sqlite_store

Opener = Callable[[SplitResult], AbstractAsyncContextManager[EventStore]]

BUILT_IN: dict[str, Opener] = {
    "memory": open_memory_store,
    "sqlite": open_sqlite_store,
    "json": open_json_store,
    "dynamodb": open_dynamodb_store,
    "postgresql": open_postgres_store,
    "postgres": open_postgres_store,
}

EXAMPLES = (
    "memory://, sqlite:///path/to/events.db, json:///path/to/dir?layout=single|split, "
    "dynamodb://TABLE?region=REGION, postgresql://USER@HOST:PORT/DATABASE"
)


def find_opener(scheme: str) -> Opener | None:
    if scheme in BUILT_IN:
        return BUILT_IN[scheme]
    for entry in entry_points(group="hostsmith.stores"):
        if entry.name == scheme:
            return cast(Opener, entry.load())
    return None


async def init_store(url: str) -> bool:
    """Create what the store `url` names needs (a DynamoDB table, PostgreSQL's tables);
    False if it was there.

    Safe to run again. A store that needs no set-up is opened and closed,
    which checks the URL and creates its files.
    """
    parts = urlsplit(url)
    if parts.scheme == "dynamodb":
        return await create_table(parts)
    if parts.scheme in ("postgresql", "postgres"):
        return await init_postgres_store(parts)
    async with open_store(url):
        return False


@asynccontextmanager
async def open_store(url: str) -> AsyncIterator[EventStore]:
    """Open the event store that `url` names, and close it when the block ends."""
    parts = urlsplit(url)
    if not parts.scheme or "://" not in url:
        raise StoreOpenError(f"{url!r} is not a store URL: use one of {EXAMPLES}")
    opener = find_opener(parts.scheme)
    if opener is None:
        raise StoreOpenError(
            f"unknown store scheme {parts.scheme!r} in {url!r}: use one of {EXAMPLES}"
        )
    async with opener(parts) as store:
        yield store
