"""Two daemons on one shared store (DynamoDB, PostgreSQL): concurrent commands to one
aggregate lose nothing.

Both daemons take Host Factory requests for the same template at the same
time, so both append to that template's capacity ledger, one aggregate.
Each daemon's actor holds its own copy of the ledger; when the other daemon
has appended meanwhile, the conditional write fails, and the actor reloads
and decides again. Every acknowledged request must then have exactly one
reservation, and the ledger's versions must run without a gap.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import httpx
import pytest
import trio

from hostsmith.actors.hostfactory import CAPACITY
from hostsmith.actors.proof.loadtest import templates_with_room
from hostsmith.stores import open_store
from tests.conftest import needs_server, prepare, url_for
from tests.support.daemon import Daemon

TEMPLATE = "OnDemand-Minimal-Template-VM"
PER_DAEMON = 8
# The ledger is what is under test, so the requests' drivers are kept quiet:
# moto copies the whole table in every transaction, and a driver polling the
# cloud ten times a second would crowd the ledger's writes out.
QUIET_DRIVER = """
[requests]
poll_interval = 5.0
[sim]
latency = 0.005
boot_time = 60.0
"""


def config_for(directory: pathlib.Path, data_dir: pathlib.Path, store: str) -> pathlib.Path:
    directory.mkdir(parents=True, exist_ok=True)
    # room for every request: each one must be reserved
    templates = templates_with_room(directory / "templates.json", 1000)
    config = directory / "hostsmith.toml"
    config.write_text(
        f'data_dir = "{data_dir}"\nstore = "{store}"\ntemplates = "{templates}"\n{QUIET_DRIVER}'
    )
    return config


@pytest.mark.slow
def conflicts_seen(daemon: Daemon) -> float:
    """The daemon's count of appends that lost to another writer, from its /metrics."""
    metrics = httpx.get(f"{daemon.url}/metrics").text
    (line,) = [
        m for m in metrics.splitlines() if m.startswith("hostsmith_journal_conflicts_total ")
    ]
    return float(line.split()[1])


@pytest.mark.parametrize("backend", ["dynamodb", "postgresql"])
def test_two_daemons_on_one_store_lose_no_update(
    tmp_path: pathlib.Path, backend: str, request: pytest.FixtureRequest
) -> None:
    needs_server(request, backend)
    store = trio.run(prepare, url_for(backend, tmp_path))
    # Each daemon claims its own data dir (one daemon per data dir); the store is shared.
    daemons = [
        Daemon(config_for(tmp_path / name, tmp_path / name / "data", store)).start()
        for name in ("a", "b")
    ]
    try:
        asks = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "hostsmith.actors.cli",
                    "hf",
                    "requestMachines",
                    "--url",
                    daemons[n % 2].url,
                    "-d",
                    json.dumps({"template": {"templateId": TEMPLATE, "machineCount": 1}}),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for n in range(2 * PER_DAEMON)
        ]
        answers = [ask.communicate(timeout=120) for ask in asks]
        conflicts = sum(conflicts_seen(daemon) for daemon in daemons)
    finally:
        codes = [daemon.stop() for daemon in daemons]
    assert codes == [0, 0], [daemon.logs() for daemon in daemons]
    failed = [answer for ask, answer in zip(asks, answers, strict=True) if ask.returncode]
    assert not failed, (failed, [daemon.logs()[-4000:] for daemon in daemons])
    # the race happened: some append lost to the other daemon and was decided again
    assert conflicts > 0
    acknowledged = {json.loads(out)["requestId"] for out, _ in answers}
    assert len(acknowledged) == 2 * PER_DAEMON

    async def ledger() -> list[tuple[int, str, str]]:
        async with open_store(store) as events:
            stored = await events.read(CAPACITY.stream(TEMPLATE))
        return [(e.version, e.type, json.loads(e.data)["request_id"]) for e in stored]

    entries = trio.run(ledger)
    assert [version for version, _, _ in entries] == list(range(1, len(entries) + 1))
    reserved = [request for _, kind, request in entries if kind == "CapacityReserved"]
    assert sorted(reserved) == sorted(acknowledged)  # each exactly once
