"""Calls made the way Host Factory makes them, for the tests that play Host Factory.

A new process per call, the input in a file (`-f FILE`), Host Factory's
environment and a current directory of its own; the answer must be one JSON
document on stdout, in Host Factory's shapes, and never a traceback.
"""

from __future__ import annotations

import itertools
import json
import pathlib
import subprocess
from collections.abc import Callable
from typing import Any

from tests.support.hostfactory_shapes import answers

Call = Callable[[str, Any], tuple[int, dict[str, Any]]]
_numbers = itertools.count()


def script_caller(
    scripts: pathlib.Path, *, environment: dict[str, str], cwd: pathlib.Path, inputs: pathlib.Path
) -> Call:
    """A `call(command, payload)` that runs `scripts/<command>.sh -f FILE` as Host Factory does.

    `payload` is JSON-encoded, or written as it is when it is a string (for
    malformed input). Returns (exit status, answer).
    """

    def call(command: str, payload: Any) -> tuple[int, dict[str, Any]]:
        given = inputs / f"hf_in_{next(_numbers)}.json"
        given.write_text(payload if isinstance(payload, str) else json.dumps(payload))
        done = subprocess.run(
            [scripts / f"{command}.sh", "-f", given],
            capture_output=True,
            text=True,
            cwd=cwd,
            env=environment,
            check=False,
        )
        assert "Traceback" not in done.stderr, done.stderr
        answer: dict[str, Any] = json.loads(done.stdout)  # always one JSON document on stdout
        answers(command, done.returncode, answer)
        return done.returncode, answer

    return call


def succeeding(call: Call) -> Callable[[str, Any], dict[str, Any]]:
    """The same calls, each of which must succeed; returns the answer alone."""

    def call_ok(command: str, payload: Any) -> dict[str, Any]:
        status, answer = call(command, payload)
        assert status == 0, answer
        return answer

    return call_ok


def settled(call: Call, request_id: str, polls: int = 100) -> dict[str, Any]:
    """Poll getRequestStatus until the request is no longer running; its entry."""
    for _ in range(polls):
        status, answer = call("getRequestStatus", {"requests": [{"requestId": request_id}]})
        assert status == 0, answer
        entry: dict[str, Any] = answer["requests"][0]
        if entry["status"] != "running":
            return entry
    raise AssertionError(f"{request_id} never settled")
