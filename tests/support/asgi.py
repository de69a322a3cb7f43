"""Call the daemon's ASGI app in process, as hypercorn would, on the test's own clock."""

from __future__ import annotations

import json
from typing import Any

import trio

from hostsmith.actors.server import Api


async def call(api: Api, method: str, path: str, payload: Any = None) -> tuple[int, dict[str, Any]]:
    """One HTTP exchange with `api`: the status and the parsed JSON body."""
    body = b"" if payload is None else json.dumps(payload).encode()
    sent: list[dict[str, Any]] = []
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if delivered:
            await trio.sleep_forever()
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [(b"content-type", b"application/json")],
    }
    await api(scope, receive, send)
    start, body_message = sent
    return start["status"], json.loads(body_message["body"])


async def post(api: Api, command: str, payload: Any) -> tuple[int, dict[str, Any]]:
    """A Host Factory call, as its script would post it."""
    return await call(api, "POST", f"/api/v1/{command}", payload)
