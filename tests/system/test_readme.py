"""The README's embedding examples are real code: this runs them.

The trio example runs twice on a real SQLite file. The asyncio example,
an ASGI app, is served by hypercorn on asyncio on a free loopback port and
called over HTTP: a deposit, the same deposit retried with its idempotency
key (applied once), a refused one, and after a restart of the app on the
same file, the balance it left.
"""

from __future__ import annotations

import asyncio
import pathlib
import re
from typing import Any

import anyio
import httpx
import pytest

from hostsmith.actors.proof import free_port

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def examples() -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    assert len(blocks) == 2, "the README has two Python examples: trio, then asyncio"
    return blocks


def run_examples(count: int) -> dict[str, Any]:
    """The first `count` examples, each in the namespace the ones before it left."""
    namespace: dict[str, Any] = {"__name__": "readme_example"}
    for source in examples()[:count]:
        exec(compile(source, "README.md", "exec"), namespace)
    return namespace


async def test_the_trio_example_runs_and_replays_its_events(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    main = run_examples(1)["main"]
    url = f"sqlite://{tmp_path}/example.db"

    first = await main(url)
    second = await main(url)

    assert (first, second) == (42, 72)  # the second run's "pay-42" was applied already
    assert capsys.readouterr().out.splitlines() == [
        "version 1, balance 42",
        "version 3, balance 72",
    ]


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_asyncio_example_serves_commands_over_http(
    tmp_path: pathlib.Path, anyio_backend: str
) -> None:
    serve_bank = run_examples(2)["serve_bank"]
    url = f"sqlite://{tmp_path}/bank.db"

    async def deposit(amount: int, key: str | None = None) -> tuple[int, dict[str, Any]]:
        return await served(serve_bank, url, amount, key)

    assert await deposit(7, "pay-7") == (200, {"version": 1, "balance": 7})
    assert await deposit(7, "pay-7") == (200, {"version": 1, "balance": 7})  # a retry
    status, refused = await deposit(-1)
    assert status == 400
    assert refused == {"error": "deposit a positive amount, not -1"}
    assert await deposit(5) == (200, {"version": 2, "balance": 12})


async def served(
    serve_bank: Any, url: str, amount: int, key: str | None
) -> tuple[int, dict[str, Any]]:
    """Start the example's server, make one call, and stop it (a restart each call)."""
    port, shutdown = free_port(), asyncio.Event()
    headers = {"Idempotency-Key": key} if key else {}
    async with anyio.create_task_group() as server:
        server.start_soon(serve_bank, url, port, shutdown)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(200):  # bounded: until the server listens
                try:
                    answer = await client.post(
                        "/accounts/bob", json={"amount": amount}, headers=headers
                    )
                    break
                except httpx.ConnectError:
                    await anyio.sleep(0.02)
            else:
                raise AssertionError(f"the example's server did not listen on port {port}")
        shutdown.set()
    return answer.status_code, answer.json()
