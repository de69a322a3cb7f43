"""Fuzzing Host Factory's inputs: any bytes get an answer or a clear message, never a crash.

Hypothesis generates raw bytes, arbitrary JSON, and near-valid inputs for
each of the five calls. Every input must either succeed or raise
`HostFactoryError` with a message, and a refused input must write nothing.
"""

from __future__ import annotations

import json
import pathlib
import tempfile
import time
from typing import Any

import msgspec
import trio
from hypothesis import given, strategies as st

from hostsmith.actors.errors import HostFactoryError
from hostsmith.actors.hostfactory import CAPACITY, COMMANDS, MACHINE, REQUEST, Template
from hostsmith.actors.providers import Gateway
from hostsmith.actors.providers.sim import SimProvider, SimSettings
from hostsmith.actors.server import Api
from hostsmith.actors.service import (
    Application,
    Config,
    HostFactory,
    Reconciler,
    Server,
    answer,
)
from hostsmith.runtime import open_runtime
from hostsmith.runtime.testing import MemoryStore
from tests.support.hostfactory_shapes import conforms, refuses

ATTRIBUTES = {"type": ("String", "X86_64"), "ncpus": ("Numeric", "1"), "nram": ("Numeric", "1024")}
TEMPLATES = {"T": Template(template_id="T", max_number=5, attributes=ATTRIBUTES)}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
counts = (
    st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=5)
    | st.none()
)
template_ids = st.sampled_from(["T", "t", "", "T " * 3]) | st.text(max_size=70)
near_valid = st.one_of(
    st.builds(
        lambda t, n: {"template": {"templateId": t, "machineCount": n}}, template_ids, counts
    ),
    st.builds(
        lambda ids: {"requests": [{"requestId": i} for i in ids]},
        st.lists(st.text(max_size=40), max_size=3),
    ),
    st.builds(lambda i: {"requests": {"requestId": i}}, st.text(max_size=40) | st.integers()),
    st.builds(
        lambda names: {"machines": [{"name": n, "machineId": m} for n, m in names]},
        st.lists(st.tuples(st.text(max_size=30), st.text(max_size=30)), max_size=3),
    ),
)
bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    near_valid.map(lambda v: json.dumps(v).encode()),
)


async def serve_one(command: str, body: bytes) -> tuple[Any, str | None, int, int]:
    """Answer one call on a fresh service; returns (answer, refusal, events before, after)."""
    store = MemoryStore()
    with tempfile.TemporaryDirectory() as directory:
        cloud = SimProvider(pathlib.Path(directory) / "sim.db", SimSettings(latency=0.0))
        try:
            async with open_runtime(store, kinds=[CAPACITY, REQUEST, MACHINE]) as runtime:
                service = HostFactory(runtime, Gateway(cloud), TEMPLATES)
                before = len(await store.read_all(0, 10_000))
                try:
                    result, refusal = await answer(service, command, body), None
                except HostFactoryError as error:
                    result, refusal = None, str(error)
                after = len(await store.read_all(0, 10_000))
        finally:
            cloud.close()
    return result, refusal, before, after


@given(command=st.sampled_from(COMMANDS), body=bodies)
def test_any_input_gets_an_answer_or_a_clear_refusal_and_refusals_write_nothing(
    command: str, body: bytes
) -> None:
    result, refusal, before, after = trio.run(serve_one, command, body)
    if refusal is not None:
        assert refusal.strip(), "a refusal must say why"
        assert "Traceback" not in refusal
        assert after == before, (
            f"{command} was refused ({refusal}) but wrote {after - before} events"
        )
    else:
        conforms(command, msgspec.to_builtins(result))  # what Host Factory receives, exactly


async def call_api(method: str, path: str, body: bytes, chunks: int) -> tuple[int, bytes, int, int]:
    """One HTTP call straight into the ASGI app; returns (status, body, events before, after)."""
    store = MemoryStore()
    with tempfile.TemporaryDirectory() as directory:
        cloud = SimProvider(pathlib.Path(directory) / "sim.db", SimSettings(latency=0.0))
        config = Config(data_dir=directory, server=Server(max_body=2048))
        try:
            async with open_runtime(store, kinds=[CAPACITY, REQUEST, MACHINE]) as runtime:
                gateway = Gateway(cloud)
                service = HostFactory(runtime, gateway, TEMPLATES)
                reconciler = Reconciler(
                    runtime, gateway, service.projections, config.reconcile, clock=time.time
                )
                api = Api(Application(config, runtime, service, gateway, reconciler))
                size = max(1, len(body) // chunks + 1)
                parts = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
                messages = [
                    {"type": "http.request", "body": part, "more_body": n < len(parts) - 1}
                    for n, part in enumerate(parts)
                ]
                sent: list[dict[str, Any]] = []

                async def receive() -> dict[str, Any]:
                    return messages.pop(0) if messages else {"type": "http.disconnect"}

                async def send(message: dict[str, Any]) -> None:
                    sent.append(message)

                before = len(await store.read_all(0, 10_000))
                await api(
                    {"type": "http", "method": method, "path": path, "headers": []}, receive, send
                )
                after = len(await store.read_all(0, 10_000))
        finally:
            cloud.close()
    return sent[0]["status"], sent[1]["body"], before, after


@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
    path=st.sampled_from(
        [f"/api/v1/{c}" for c in COMMANDS]
        + ["/api/v1/", "/api/v1/nope", "/", "/healthz", "/x/../api/v1/requestMachines"]
    ),
    body=bodies | st.binary(min_size=2049, max_size=5000),
    chunks=st.integers(min_value=1, max_value=4),
)
def test_any_http_call_gets_json_and_a_known_status(
    method: str, path: str, body: bytes, chunks: int
) -> None:
    status, payload, before, after = trio.run(call_api, method, path, body, chunks)
    assert status in {200, 400, 404, 405, 413}
    answer_json = json.loads(payload)
    if status != 200:
        refuses(answer_json)
        assert after == before
    elif path.removeprefix("/api/v1/") in COMMANDS:
        conforms(path.removeprefix("/api/v1/"), answer_json)
