"""Shared fixtures: every store backend, opened fresh for each test, and a moto server.

`store_url` is parametrized over the backends, so a test that takes it (or
`store`) runs once per backend: this is how the contract suite covers every
store with one body of tests. SQLite files live in pytest's `tmp_path`;
DynamoDB is a real moto server on 127.0.0.1, started once per session on a
free port and reset between tests, each test on a table of its own.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from hostsmith.runtime import EventStore
from hostsmith.stores import init_store, open_store

BACKENDS = ["memory", "sqlite", "json-single", "json-split", "dynamodb"]
MOTO: dict[str, str] = {}


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
    raise AssertionError(backend)


def serial_moto_server(port: int) -> Any:
    """moto's `ThreadedMotoServer`, answering one request at a time.

    moto's DynamoDB is not safe under concurrent requests: a
    `TransactWriteItems` works on a copy of the table and puts its copy back,
    so two at once can undo each other's committed writes, which the real
    service never does (the two-daemon test caught it). Serving one request
    at a time makes moto linearizable, like the service it stands in for.
    """
    from moto.moto_server.threaded_moto_server import MotoRequestHandler, ThreadedMotoServer
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    class SerialMotoServer(ThreadedMotoServer):
        def _server_entry(self) -> None:
            app = DomainDispatcherApplication(create_backend_app)
            one_at_a_time = threading.Lock()

            def serial(environ: Any, start_response: Any) -> Any:
                with one_at_a_time:
                    return list(app(environ, start_response))

            self._server = make_server(
                self._ip_address, self._port, serial, True, request_handler=MotoRequestHandler
            )
            self._server_ready_event.set()
            self._server.serve_forever()

    return SerialMotoServer(ip_address="127.0.0.1", port=port, verbose=False)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A real moto server on a free loopback port, with throwaway credentials."""
    from moto import settings as moto_settings

    # Behave like AWS where it matters to our error messages: an unknown
    # image is refused, not launched.
    moto_settings.ENABLE_AMI_VALIDATION = True

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = serial_moto_server(port)
    server.start()
    saved = {
        k: os.environ.get(k)
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
    }
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1"
    )
    MOTO["endpoint"] = f"http://127.0.0.1:{port}"
    try:
        yield MOTO["endpoint"]
    finally:
        server.stop()
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
    if request.param == "dynamodb":
        request.getfixturevalue("moto")
    return url_for(request.param, tmp_path)


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[EventStore]:
    async with open_store(await prepare(store_url)) as opened:
        yield opened


@pytest.fixture
def reopen(store_url: str) -> Callable[[], object]:
    """Open the same store again (a new connection to the same file)."""
    return lambda: open_store(store_url)
