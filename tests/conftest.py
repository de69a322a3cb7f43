"""Shared fixtures: every store backend, opened fresh for each test, and a moto server.

`store_url` is parametrized over the backends, so a test that takes it (or
`store`) runs once per backend: this is how the contract suite covers every
store with one body of tests. SQLite files live in pytest's `tmp_path`;
DynamoDB is a real moto server on 127.0.0.1, started once per session on a
free port and reset between tests, each test on a table of its own;
PostgreSQL is a real server of its own, started once per session (a
throwaway cluster), each test on a database of its own.
"""

from __future__ import annotations

import inspect
import os
import pathlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest

from hostsmith.runtime import EventStore
from hostsmith.stores import init_store, open_store
from tests.support.moto_process import moto_server_process
from tests.support.postgres_server import new_database, postgres_server

ROOT = pathlib.Path(__file__).resolve().parent.parent
BACKENDS = ["memory", "sqlite", "json-single", "json-split", "dynamodb", "postgresql"]
MOTO: dict[str, str] = {}
POSTGRES: dict[str, str] = {}


def url_for(backend: str, tmp_path) -> str:  # type: ignore[no-untyped-def]
    if backend == "memory":
        return "memory://"
    if backend == "sqlite":
        return f"sqlite://{tmp_path}/events.db"
    if backend.startswith("json-"):
        return f"json://{tmp_path}/log?layout={backend.removeprefix('json-')}"
    if backend == "dynamodb":
        assert MOTO, "the dynamodb backend needs the moto_server fixture"
        return f"dynamodb://events-{uuid.uuid4().hex[:12]}?region=us-east-1&endpoint={MOTO['endpoint']}"
    if backend == "postgresql":
        assert POSTGRES, "the postgresql backend needs the postgres fixture"
        return new_database(POSTGRES["server"])
    raise AssertionError(backend)


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """A real PostgreSQL server of its own on a free loopback port, for the session."""
    with postgres_server() as server:
        POSTGRES["server"] = server
        try:
            yield server
        finally:
            POSTGRES.clear()


def needs_server(request: pytest.FixtureRequest, backend: str) -> None:
    """Start (or reset) the server a backend lives on, if it has one."""
    if backend == "dynamodb":
        request.getfixturevalue("moto")
    elif backend == "postgresql":
        request.getfixturevalue("postgres")


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A real moto server on a free loopback port, in its own process, with throwaway credentials."""
    saved = {
        k: os.environ.get(k)
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
    }
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1"
    )
    try:
        with moto_server_process() as endpoint:
            MOTO["endpoint"] = endpoint
            yield endpoint
    finally:
        MOTO.clear()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def moto(moto_server: str) -> str:
    """The moto server, reset to empty for this test."""
    httpx.post(f"{moto_server}/moto-api/reset")
    return moto_server


async def prepare(url: str) -> str:
    """Create what a backend needs before it can be opened (a DynamoDB table)."""
    if url.startswith("dynamodb:"):
        await init_store(url)
    return url


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    needs_server(request, request.param)
    return url_for(request.param, tmp_path)


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[EventStore]:
    async with open_store(await prepare(store_url)) as opened:
        yield opened


@pytest.fixture
def reopen(store_url: str) -> Callable[[], object]:
    """Open the same store again (a new connection to the same file)."""
    return lambda: open_store(store_url)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--quick",
        action="store_true",
        default=False,
        help="Run every test at smaller sizes (fewer seeds, examples, events and kills): "
        "the developer's loop. CI runs the full sizes.",
    )


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run every async test on trio (as pytest-trio's trio mode does), except those
    marked `anyio`: anyio's plugin runs those, on trio and on asyncio."""
    for item in items:
        function = getattr(item, "obj", None)
        inner = getattr(getattr(function, "hypothesis", None), "inner_test", function)
        if (
            inspect.iscoroutinefunction(inner)
            and item.get_closest_marker("anyio") is None
            and item.get_closest_marker("trio") is None
        ):
            item.add_marker(pytest.mark.trio)


@pytest.fixture(params=["trio", "asyncio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """The backends a test marked `anyio` runs on: both, always."""
    return str(request.param)


def pytest_configure(config: pytest.Config) -> None:
    # The fuzz tests take their number of examples from the profile.
    from hypothesis import HealthCheck, settings

    checks = [HealthCheck.too_slow]
    settings.register_profile("full", max_examples=300, deadline=None, suppress_health_check=checks)
    settings.register_profile("quick", max_examples=30, deadline=None, suppress_health_check=checks)
    settings.load_profile("quick" if config.getoption("--quick") else "full")


@pytest.fixture(scope="session")
def quick(request: pytest.FixtureRequest) -> bool:
    """True under `--quick`: size the test down, but still run all of it."""
    return bool(request.config.getoption("--quick"))
