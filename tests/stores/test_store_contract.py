"""The journal contract, shipped as `hostsmith.stores.testing`, run against each of our backends,
on trio and on asyncio (anyio's plugin; `anyio_backend` in conftest names both)."""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import pytest

from hostsmith.runtime import EventStore
from hostsmith.stores import open_store
from hostsmith.stores.testing import StoreContract
from tests.conftest import BACKENDS, needs_server, prepare, url_for


@pytest.mark.anyio
class TestEveryBackend(StoreContract):
    """`store` comes from conftest, parametrized over every backend."""

    @pytest.fixture(params=[b for b in BACKENDS if b != "memory"])  # memory:// keeps nothing
    async def open_durable_store(
        self, request: pytest.FixtureRequest, tmp_path: pathlib.Path
    ) -> Callable[[], AbstractAsyncContextManager[EventStore]]:
        needs_server(request, request.param)
        url = await prepare(url_for(request.param, tmp_path))
        return lambda: open_store(url)
