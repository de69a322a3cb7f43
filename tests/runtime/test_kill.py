"""Durability across a real SIGKILL: every acknowledged event survives.

A child process appends through the SQLite journal and prints each
acknowledgement. The test kills it with SIGKILL mid-stream, reopens the file
and checks that every acknowledged command's event is stored, that versions
are contiguous and that no event id repeats.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys

import pytest

from hostsmith.stores import open_store
from tests.conftest import url_for

CHILD = os.path.join(os.path.dirname(__file__), os.pardir, "support", "kill_child.py")


def acked(line: str) -> list[str]:
    return [line.split()[1]] if line.startswith("ack ") and line.endswith("\n") else []


def run_and_kill(url: str, kill_after: int) -> set[str]:
    acknowledged: set[str] = set()
    with subprocess.Popen(
        [sys.executable, CHILD, url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdout is not None
        for line in child.stdout:
            acknowledged.update(acked(line))
            if len(acknowledged) >= kill_after:
                child.send_signal(signal.SIGKILL)
                break
        # Lines written before the kill were acknowledged too; a line cut off
        # by the kill is not an acknowledgement.
        for line in child.stdout:
            acknowledged.update(acked(line))
        child.kill()
        errors = child.stderr.read() if child.stderr else ""
    assert child.returncode == -signal.SIGKILL, errors
    return acknowledged


@pytest.mark.slow
@pytest.mark.parametrize("kill_after", [300, 3000])
@pytest.mark.parametrize("backend", ["sqlite", "json-single", "json-split"])
async def test_every_acknowledged_event_survives_sigkill(
    tmp_path, kill_after: int, backend: str
) -> None:  # type: ignore[no-untyped-def]
    url = url_for(backend, tmp_path)
    acknowledged = run_and_kill(url, kill_after)
    assert len(acknowledged) >= kill_after

    async with open_store(url) as store:
        stored = await store.read_all(limit=10**7)

    stored_commands = {event.causation_id for event in stored}
    assert acknowledged <= stored_commands, sorted(acknowledged - stored_commands)[:5]
    assert len({event.event_id for event in stored}) == len(stored)
    versions = collections.defaultdict(list)
    for event in stored:
        versions[event.stream].append(event.version)
    for stream, seen in versions.items():
        assert seen == list(range(1, len(seen) + 1)), stream
    assert [event.position for event in stored] == list(range(1, len(stored) + 1))
