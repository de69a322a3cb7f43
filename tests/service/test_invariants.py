"""The proof's checks catch what they are there to catch: each is shown a planted violation.

The simulation and the crash suite pass only if these checks find nothing,
so each check is tested here against a log or a cloud that breaks its rule,
and against one that keeps it.
"""

from __future__ import annotations

import pathlib

import msgspec

from hostsmith.actors.hostfactory import (
    RECONCILER,
    REQUEST,
    AcquireOpened,
    DriftActedOn,
    Machine,
    MachinesLaunched,
    RequestSettled,
    Template,
)
from hostsmith.actors.proof import check_acknowledged, check_cloud, check_log, check_reconciler
from hostsmith.actors.providers.sim import SimProvider, SimSettings
from hostsmith.runtime import StoredEvent

ATTRIBUTES = {"type": ("String", "X86_64"), "ncpus": ("Numeric", "1"), "nram": ("Numeric", "1024")}
TEMPLATE = Template(template_id="T", max_number=10, attributes=ATTRIBUTES)


def logged(*streams_and_events: tuple[str, msgspec.Struct]) -> list[StoredEvent]:
    """A log holding these request events, versions and positions in order."""
    versions: dict[str, int] = {}
    log = []
    for position, (stream, event) in enumerate(streams_and_events, start=1):
        versions[stream] = versions.get(stream, 0) + 1
        type_name, schema_version, data = REQUEST.events.encode(event)
        log.append(
            StoredEvent(
                stream, versions[stream], position, f"e{position}", type_name, data, schema_version
            )
        )
    return log


def opened(count: int) -> AcquireOpened:
    return AcquireOpened(template_id="T", count=count, deadline=100.0, opened_at=0.0)


def launched(*machine_ids: str) -> MachinesLaunched:
    machines = tuple(Machine(machine_id=i, name=f"{i}.sim.internal") for i in machine_ids)
    return MachinesLaunched(machines=machines, final=True)


def test_an_acknowledged_request_missing_from_the_log_is_caught() -> None:
    log = logged(("request-req-1", opened(1)))
    assert check_acknowledged(log, ["req-1"], settled=False) == []
    assert check_acknowledged(log, ["req-1", "req-lost"], settled=False) == [
        "acknowledged req-lost is not in the log"
    ]


def test_an_acknowledged_request_that_never_settled_is_caught_once_the_run_is_calm() -> None:
    log = logged(("request-req-1", opened(1)))
    assert check_acknowledged(log, ["req-1"], settled=True) == [
        "acknowledged req-1 never finished (pending)"
    ]


def test_a_gap_and_a_repeated_event_id_are_caught() -> None:
    log = logged(("request-req-1", opened(1)), ("request-req-1", launched("i-1")))
    assert check_log(log) == []
    gap = msgspec.structs.replace(log[1], version=3)
    again = msgspec.structs.replace(log[1], stream="request-req-2", version=1)
    assert check_log([log[0], gap, again]) == [
        "request-req-1: version 3 where 2 was due",
        "event id e2 written twice",
    ]


async def test_machines_made_twice_or_left_running_are_caught(tmp_path: pathlib.Path) -> None:
    cloud_path = tmp_path / "sim.db"
    cloud = SimProvider(cloud_path, SimSettings(latency=0.0), clock=lambda: 0.0)
    try:
        made = await cloud.provision("req-1", TEMPLATE, 2)
    finally:
        cloud.close()
    ids = [m.machine_id for m in made.machines]
    kept = logged(("request-req-1", opened(2)), ("request-req-1", launched(*ids)))
    assert check_cloud(cloud_path, kept, now=10.0, all_gone=False) == []
    assert check_cloud(cloud_path, kept, now=10.0, all_gone=True) == [
        "req-1: 2 machines never terminated"
    ]
    too_many = logged(("request-req-1", opened(1)), ("request-req-1", launched(*ids)))
    assert check_cloud(cloud_path, too_many, now=10.0, all_gone=False) == [
        "req-1: 2 machines for 1 asked"
    ]
    twice = [*kept, *logged(("request-req-2", opened(1)), ("request-req-2", launched(ids[0])))]
    assert check_cloud(cloud_path, twice, now=10.0, all_gone=False) == [
        f"machine {ids[0]} launched by request-req-1 and request-req-2"
    ]


async def test_drift_is_exempt_from_the_count_but_not_from_being_gone_and_neighbours_are_not_counted(
    tmp_path: pathlib.Path,
) -> None:
    cloud_path = tmp_path / "sim.db"
    cloud = SimProvider(cloud_path, SimSettings(latency=0.0), clock=lambda: 0.0)
    neighbour = SimProvider(
        cloud_path, SimSettings(latency=0.0), clock=lambda: 0.0, installation_id="hs-neighbour"
    )
    try:
        cloud.launch_outside("req-lost", TEMPLATE, 2)  # drift: asked by no request
        neighbour.launch_outside("req-theirs", TEMPLATE, 3)  # not this installation's
    finally:
        cloud.close()
        neighbour.close()
    assert check_cloud(cloud_path, [], now=10.0, all_gone=False) == [
        "req-lost: 2 machines for 0 asked"
    ]
    lost = frozenset({"req-lost"})
    assert check_cloud(cloud_path, [], now=10.0, all_gone=False, outside=lost) == []
    assert check_cloud(cloud_path, [], now=10.0, all_gone=True, outside=lost) == [
        "req-lost: 2 machines never terminated"
    ]


def test_a_live_machine_or_one_terminated_twice_by_the_reconciler_is_caught() -> None:
    def acted(machine_id: str) -> tuple[str, msgspec.Struct]:
        return ("reconcile-sim", DriftActedOn(resource_id=machine_id, action="terminated", at=1.0))

    def encoded(log: list[tuple[str, msgspec.Struct]]) -> list[StoredEvent]:
        events = []
        for position, (stream, event) in enumerate(log, start=1):
            kind = RECONCILER if stream.startswith("reconcile-") else REQUEST
            type_name, schema_version, data = kind.events.encode(event)
            events.append(StoredEvent(stream, position, position, f"e{position}", type_name, data, schema_version))  # fmt: skip
        return events

    held = [("request-req-1", opened(1)), ("request-req-1", launched("i-held"))]
    assert check_reconciler(encoded([*held, acted("i-orphan")])) == []
    assert check_reconciler(encoded([*held, acted("i-held")])) == [
        "the reconciler terminated i-held, which the log holds live"
    ]
    assert check_reconciler(encoded([acted("i-orphan"), acted("i-orphan")])) == [
        "the reconciler terminated i-orphan 2 times"
    ]
    # Found by the crash suite: a machine still pending when its request timed out was
    # never delivered; a crash cut its settlement's terminate short, and the reconciler
    # ended the leak. That is no live machine terminated.
    timed_out = ("request-req-1", RequestSettled("timeout", "timed out"))
    assert check_reconciler(encoded([*held, timed_out, acted("i-held")])) == []
