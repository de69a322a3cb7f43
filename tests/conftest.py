"""Shared fixtures: every store backend, opened fresh for each test.

`store_url` is parametrized over the backends, so a test that takes it (or
`store`) runs once per backend: this is how the contract suite covers every
store with one body of tests. SQLite files live in pytest's `tmp_path`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from hostsmith.runtime import EventStore
from hostsmith.stores import open_store

BACKENDS = ["memory", "sqlite", "json-single", "json-split"]


def url_for(backend: str, tmp_path) -> str:  # type: ignore[no-untyped-def]
    if backend == "memory":
        return "memory://"
    if backend == "sqlite":
        return f"sqlite://{tmp_path}/events.db"
    if backend.startswith("json-"):
        return f"json://{tmp_path}/log?layout={backend.removeprefix('json-')}"
    raise AssertionError(backend)


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    return url_for(request.param, tmp_path)


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[EventStore]:
    async with open_store(store_url) as opened:
        yield opened


@pytest.fixture
def reopen(store_url: str) -> Callable[[], object]:
    """Open the same store again (a new connection to the same file)."""
    return lambda: open_store(store_url)
