"""What must hold in a store after any crash, fault or schedule: the checks, read off the log.

The deterministic simulation and the crash suite both end by reading the
whole event log and the sim cloud's file and asking the same questions.
They read the log itself, not the service's answers, so a check does not
trust the code it checks:

- every acknowledged request id has its request in the log (nothing
  acknowledged was lost), and, once the run has calmed down, it has settled;
- every stream's versions run 1, 2, 3, ... with no gap, and no event id
  appears twice (nothing duplicated);
- no machine was provisioned twice: the cloud holds at most the requested
  count per request, and no machine was launched into two requests;
- optionally, every machine in the cloud is gone (terminated or reclaimed);
- the reconciler terminated no machine twice, and none the log holds live
  (a machine of an acquire request, running or booting, that no return took).
"""

from __future__ import annotations

import pathlib
import sqlite3
from collections.abc import Iterable

import msgspec

from hostsmith.actors.hostfactory import (
    RECONCILER,
    REQUEST,
    AcquireOpened,
    DriftActedOn,
    DriftFound,
    MachinesLaunched,
    MachinesReplaced,
    Request,
)
from hostsmith.runtime import EventStore, StoredEvent


async def read_everything(store: EventStore) -> list[StoredEvent]:
    events: list[StoredEvent] = []
    while batch := await store.read_all(events[-1].position if events else 0, 10_000):
        events += batch
    return events


def requests_in(events: Iterable[StoredEvent]) -> dict[str, Request]:
    """Every request's state, replayed from the log."""
    states: dict[str, Request] = {}
    decode = REQUEST.events.decode
    for event in events:
        if event.stream.startswith("request-"):
            request_id = event.stream.removeprefix("request-")
            state = states.get(request_id) or Request(request_id=request_id)
            states[request_id] = REQUEST.evolve(
                state, decode(event.type, event.schema_version, event.data)
            )
    return states


def check_acknowledged(
    events: list[StoredEvent], acknowledged: Iterable[str], *, settled: bool
) -> list[str]:
    states = requests_in(events)
    found = []
    for request_id in acknowledged:
        state = states.get(request_id)
        if state is None or state.kind is None:
            found.append(f"acknowledged {request_id} is not in the log")
        elif settled and not state.settled:
            found.append(f"acknowledged {request_id} never finished ({state.status})")
    return found


def check_log(events: list[StoredEvent]) -> list[str]:
    found = []
    last: dict[str, int] = {}
    seen_ids: set[str] = set()
    for event in events:
        expected = last.get(event.stream, 0) + 1
        if event.version != expected:
            found.append(f"{event.stream}: version {event.version} where {expected} was due")
        last[event.stream] = event.version
        if event.event_id in seen_ids:
            found.append(f"event id {event.event_id} written twice")
        seen_ids.add(event.event_id)
    return found


def check_cloud(
    cloud_path: pathlib.Path,
    events: list[StoredEvent],
    *,
    now: float,
    all_gone: bool,
    outside: frozenset[str] = frozenset(),
) -> list[str]:
    """No machine provisioned twice; with `all_gone`, every machine terminated or reclaimed.

    Only the machines of the installation the log names are counted (untagged ones
    when it names none, as in the simulation);
    `outside` names requests (or launches: `req-…/readded`) whose machines were
    launched behind hostsmith's back (drift), which no request asked for but which
    must be gone all the same. A request may launch as many as it asked for and as
    many more as it replaced (stuck launches), over all its launches."""
    found = []
    owner: dict[str, str] = {}
    asked: dict[str, int] = {}
    decode = REQUEST.events.decode
    for event in events:
        if event.type not in ("MachinesLaunched", "AcquireOpened", "MachinesReplaced"):
            continue
        decoded = decode(event.type, event.schema_version, event.data)
        request_id = event.stream.removeprefix("request-")
        if isinstance(decoded, AcquireOpened):
            asked[request_id] = decoded.count
        elif isinstance(decoded, MachinesReplaced):
            asked[request_id] += len(decoded.machine_ids)
        elif isinstance(decoded, MachinesLaunched):
            for machine in decoded.machines:
                first = owner.setdefault(machine.machine_id, event.stream)
                if first != event.stream:
                    found.append(
                        f"machine {machine.machine_id} launched by {first} and {event.stream}"
                    )
    with sqlite3.connect(f"file:{cloud_path}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT token, count(*), "
            "sum(terminate_at IS NULL AND (reclaim_at IS NULL OR reclaim_at > ?)) "
            "FROM instances WHERE installation = ? GROUP BY token",
            (now, _installation_named(events)),
        ).fetchall()
    counted: dict[str, tuple[int, int]] = {}  # request (or outside launch) -> launched, alive
    for token, launched, alive in rows:
        key = token if token in outside else token.partition("/")[0]
        before = counted.get(key, (0, 0))
        counted[key] = (before[0] + launched, before[1] + alive)
    for key, (launched, alive) in counted.items():
        if key not in outside and launched > asked.get(key, 0):
            found.append(f"{key}: {launched} machines for {asked.get(key, 0)} asked")
        if all_gone and alive:
            found.append(f"{key}: {alive} machines never terminated")
    return found


def drift_found(events: Iterable[StoredEvent]) -> set[tuple[str, str]]:
    """(kind, resource id) of every drift the reconciler recorded."""
    decode = RECONCILER.events.decode
    return {
        (found.finding.kind, found.finding.resource_id)
        for event in events
        if event.type == "DriftFound"
        for found in (decode(event.type, event.schema_version, event.data),)
        if isinstance(found, DriftFound)
    }


def terminated_by_reconciler(events: Iterable[StoredEvent]) -> list[str]:
    """The machine ids the reconciler terminated (orphans, stuck launches), in log order
    (a repeat each time)."""
    decode = RECONCILER.events.decode
    return [
        acted.resource_id
        for event in events
        if event.type == "DriftActedOn"
        for acted in (decode(event.type, event.schema_version, event.data),)
        if isinstance(acted, DriftActedOn) and acted.action.startswith("terminated")
    ]


def check_reconciler(events: list[StoredEvent]) -> list[str]:
    """The reconciler terminated nothing twice, and nothing the log holds as live."""
    terminated: dict[str, int] = {}
    for machine_id in terminated_by_reconciler(events):
        terminated[machine_id] = terminated.get(machine_id, 0) + 1
    states = requests_in(events)
    returned = {m for r in states.values() if r.kind == "return" for m in r.machines}
    live = {  # running, or pending in a request still open (as the reconciler has it)
        machine.machine_id
        for state in states.values()
        if state.kind == "acquire"
        for machine in state.machines.values()
        if (machine.state == "running" or (machine.state == "pending" and not state.settled))
        and machine.machine_id not in returned
    }
    found = [f"the reconciler terminated {m} {n} times" for m, n in terminated.items() if n > 1]
    found += [f"the reconciler terminated {m}, which the log holds live" for m in sorted(
        set(terminated) & live
    )]  # fmt: skip
    return found


def _installation_named(events: list[StoredEvent]) -> str:
    named = next((e for e in events if e.stream == "installation"), None)
    return str(msgspec.json.decode(named.data)["installation_id"]) if named else ""


def fingerprint_parts(event: StoredEvent) -> bytes:
    """What of an event belongs to a run's trace (ids and times differ per process)."""
    return msgspec.json.encode((event.stream, event.version, event.type)) + event.data
