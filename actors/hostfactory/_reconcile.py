"""Reconciliation, pure: the cloud's machines against the log's, and the drift between them.

A provider's cloud and hostsmith's log can disagree: a host terminated
from outside, a machine launched for a request the log forgot (a lost data
dir), a fleet that added one back. `find_drift` compares one listing of
the cloud (`CloudMachine`s under this installation's tag) with the log's
live machines and names each disagreement:

- an **orphan** is a machine the cloud runs that no live request holds:
  its request settled without it, or the log never heard of it;
- a **ghost** is a machine the log holds as live that the cloud reports
  terminated, or no longer lists.

Two rules keep it from seeing drift where there is only timing: a machine
of a request still open is never an orphan (the driver may not have
recorded it yet), and a machine launched after the listing began is never
a ghost (the listing could not have seen it).

Every finding, and what was done about it, is an event of the provider's
`reconcile` stream (`RECONCILER`), so `hostsmith events` shows why a host
went away. The stream also remembers when an orphan was first seen, which
is what its grace period counts from, across restarts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import msgspec

from hostsmith.actors.hostfactory._requests import MachineState
from hostsmith.runtime import AggregateKind, EventRegistry

DriftKind = Literal["orphan", "ghost"]

LAUNCH_MARGIN = 60.0
"""Seconds before a listing within which a machine launched is not yet taken for a ghost."""


class CloudMachine(msgspec.Struct, frozen=True, kw_only=True):
    """A machine as the cloud lists it, with the tags hostsmith gave it."""

    machine_id: str
    name: str
    request_id: str
    state: MachineState
    launched_at: float


class LiveMachine(msgspec.Struct, frozen=True, kw_only=True):
    """A machine the log holds as live: launched by `request_id`, not yet gone."""

    machine_id: str
    name: str
    request_id: str
    launched_at: float


class Finding(msgspec.Struct, frozen=True, kw_only=True):
    kind: DriftKind
    machine_id: str
    name: str
    request_id: str
    detail: str


_ALIVE: frozenset[MachineState] = frozenset({"pending", "running"})


def find_drift(
    cloud: Sequence[CloudMachine],
    live: Mapping[str, LiveMachine],
    open_requests: set[str],
    listed_at: float,
) -> list[Finding]:
    """The drift between one listing of the cloud and the log's live machines."""
    findings = []
    listed = {machine.machine_id: machine for machine in cloud}
    for machine in cloud:
        if machine.state not in _ALIVE or machine.machine_id in live:
            continue
        if machine.request_id in open_requests:
            continue  # its request may not have recorded it yet
        why = (
            f"launched for {machine.request_id}, which does not hold it"
            if machine.request_id
            else "it carries no request id"
        )
        findings.append(
            Finding(
                kind="orphan",
                machine_id=machine.machine_id,
                name=machine.name,
                request_id=machine.request_id,
                detail=f"the cloud runs it ({machine.state}) but no live request holds it: {why}",
            )
        )
    for held in live.values():
        seen = listed.get(held.machine_id)
        if seen is not None and seen.state != "terminated":
            continue
        if seen is None and held.launched_at >= listed_at - LAUNCH_MARGIN:
            continue  # launched as the listing began: it may simply not be in it
        findings.append(
            Finding(
                kind="ghost",
                machine_id=held.machine_id,
                name=held.name,
                request_id=held.request_id,
                detail=(
                    "the cloud reports it terminated"
                    if seen is not None
                    else "the cloud no longer lists it"
                )
                + f"; {held.request_id} holds it as live",
            )
        )
    return findings


# -- the reconcile stream -------------------------------------------------------


class RecordFindings(msgspec.Struct, frozen=True):
    """The findings of one pass: new ones are recorded, vanished ones cleared."""

    findings: tuple[Finding, ...]
    at: float


class RecordAction(msgspec.Struct, frozen=True, kw_only=True):
    machine_id: str
    action: str
    at: float


class DriftFound(msgspec.Struct, frozen=True, tag=True):
    finding: Finding
    at: float


class DriftCleared(msgspec.Struct, frozen=True, tag=True):
    """The drift is gone by itself (the machine came back into the log, or left the cloud)."""

    machine_id: str
    at: float


class DriftActedOn(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    machine_id: str
    action: str
    at: float


class OpenFinding(msgspec.Struct, frozen=True):
    finding: Finding
    first_seen: float


class Reconciliation(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    open: dict[str, OpenFinding] = {}
    """Machine id -> the drift found on it and not yet acted on or cleared."""
    acted: int = 0


def decide(state: Reconciliation, command: Any) -> Sequence[msgspec.Struct]:
    if isinstance(command, RecordFindings):
        found = {f.machine_id: f for f in command.findings}
        events: list[msgspec.Struct] = [
            DriftCleared(machine_id, command.at)
            for machine_id in state.open
            if machine_id not in found
        ]
        events += [
            DriftFound(finding, command.at)
            for machine_id, finding in found.items()
            if machine_id not in state.open or state.open[machine_id].finding.kind != finding.kind
        ]
        return events
    if isinstance(command, RecordAction):
        return [DriftActedOn(machine_id=command.machine_id, action=command.action, at=command.at)]
    raise TypeError(f"not a reconcile command: {command!r}")


def evolve(state: Reconciliation, event: Any) -> Reconciliation:
    replace = msgspec.structs.replace
    if isinstance(event, DriftFound):
        found = OpenFinding(event.finding, event.at)
        return replace(state, open={**state.open, event.finding.machine_id: found})
    if isinstance(event, DriftCleared | DriftActedOn):
        left = {k: v for k, v in state.open.items() if k != event.machine_id}
        acted = state.acted + isinstance(event, DriftActedOn)
        return replace(state, open=left, acted=acted)
    raise TypeError(f"not a reconcile event: {event!r}")


RECONCILER = AggregateKind(
    name="reconcile",
    initial=lambda name: Reconciliation(name=name),
    decide=decide,
    evolve=evolve,
    events=EventRegistry(DriftFound, DriftCleared, DriftActedOn),
    state_type=Reconciliation,
)
