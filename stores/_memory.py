"""`memory://`: the runtime's reference store, for tests and throwaway runs.

It lives in `hostsmith.runtime`, on its public surface (the runtime's test
kit builds on it too, and the runtime may not import this package); this
module only gives it a URL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import SplitResult

from hostsmith.runtime import MemoryStore


@asynccontextmanager
async def open_memory_store(url: SplitResult) -> AsyncIterator[MemoryStore]:
    store = MemoryStore()
    try:
        yield store
    finally:
        await store.aclose()
