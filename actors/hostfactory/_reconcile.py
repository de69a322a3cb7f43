"""Reconciliation, pure: what the cloud holds against what the log says, and the drift between.

A provider's cloud and hostsmith's log can disagree: a host terminated
from outside, a machine launched for a request the log forgot (a lost data
dir), a launch that never boots, a fleet that added one back, a fleet left
behind. `find_drift` compares one listing of the cloud (`CloudMachine`s
and `CloudGroup`s under this installation's tag) with the log (`LogView`)
and names each disagreement:

- an **orphan** is a machine the cloud runs that no live request holds:
  its request settled without it, or the log never heard of it;
- a **ghost** is a machine the log holds as live that the cloud reports
  terminated, or no longer lists;
- a **stuck** launch is a machine of an open request that is still
  pending `pending_timeout` seconds after it was launched;
- a **leak** is a fleet, Auto Scaling group or launch template of a
  request that is settled (or forgotten) and holds no live machine;
- **fleet** drift is a group that keeps its own count (a `maintain` fleet,
  an Auto Scaling group) whose target is not what the log's live machines
  add up to: the group would add machines back, or take some away. The
  count is of instances, each weighed as the group weighs its type, never
  of capacity units alone.

Three rules keep it from seeing drift where there is only timing: nothing
of a request still open is an orphan, a leak or fleet drift (its driver
may not have recorded it yet); a machine is a ghost only if the log held
it before the listing began (one recorded while the cloud was being
listed may be missing from the listing); and nothing launched or made
within `LAUNCH_MARGIN` of the listing is a ghost or a leak (a cloud's
listing is eventually consistent, and the log a daemon reads may lag).

Every finding, and what was done about it, is an event of the provider's
`reconcile` stream (`RECONCILER`), so `hostsmith events` shows why a host
went away. The stream also remembers when an orphan was first seen, which
is what its grace period counts from, across restarts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec

from hostsmith.actors.hostfactory._requests import MachineState
from hostsmith.runtime import AggregateKind, EventRegistry

DriftKind = Literal["orphan", "ghost", "stuck", "leak", "fleet"]
GroupKind = Literal["ec2-fleet", "spot-fleet", "asg", "launch-template"]

LAUNCH_MARGIN = 60.0
"""Seconds before a listing within which what was launched or made is not yet drift."""


class CloudMachine(msgspec.Struct, frozen=True, kw_only=True):
    """A machine as the cloud lists it, with the tags hostsmith gave it."""

    machine_id: str
    name: str
    request_id: str
    state: MachineState
    launched_at: float
    instance_type: str = ""
    """What a fleet weighs it by (`CloudGroup.weights`); empty where there are no types."""


class CloudGroup(msgspec.Struct, frozen=True, kw_only=True):
    """A fleet, group or launch template the cloud holds for one of hostsmith's requests."""

    group_id: str
    """The fleet's or spot fleet request's id, the group's name, the launch template's id."""
    kind: GroupKind
    request_id: str
    created_at: float
    maintains: bool = False
    """It launches machines by itself to keep its target (a maintain fleet, an ASG)."""
    target: float = 0.0
    """The capacity it keeps, in its own units."""
    weights: dict[str, float] = {}
    """Instance type -> the units one such instance counts for (a type not here: 1)."""


class LiveMachine(msgspec.Struct, frozen=True, kw_only=True):
    """A machine the log holds as live: launched by `request_id`, not yet gone."""

    machine_id: str
    name: str
    request_id: str
    launched_at: float


@dataclass(frozen=True)
class LogView:
    """What the log holds that reconciling compares with the cloud."""

    live: Mapping[str, LiveMachine]
    """Machine id -> the machine, for every machine the log holds as live."""
    open_requests: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """Each open request's id -> the ids of the machines it has recorded."""
    live_before_listing: frozenset[str] | None = None
    """The machines the log held as live before the listing began, which the listing
    must show; only those can be ghosts (None: every live machine)."""


class Finding(msgspec.Struct, frozen=True, kw_only=True):
    kind: DriftKind
    resource_id: str
    """The machine's id; a fleet's, group's or launch template's for leaks and fleet drift."""
    name: str
    request_id: str
    detail: str
    count: float = 0.0
    """For fleet drift: the target the log's live machines add up to, in the group's units."""


_ALIVE: frozenset[MachineState] = frozenset({"pending", "running"})


def find_drift(
    machines: Sequence[CloudMachine],
    groups: Sequence[CloudGroup],
    log: LogView,
    *,
    listed_at: float,
    pending_timeout: float,
) -> list[Finding]:
    """The drift between one listing of the cloud and the log."""
    return [
        *_orphans(machines, log),
        *_ghosts(machines, log, listed_at),
        *_stuck(machines, log, listed_at, pending_timeout),
        *_groups_adrift(groups, machines, log, listed_at),
    ]


def _orphans(machines: Sequence[CloudMachine], log: LogView) -> list[Finding]:
    findings = []
    for machine in machines:
        if machine.state not in _ALIVE or machine.machine_id in log.live:
            continue
        if machine.request_id in log.open_requests:
            continue  # its request may not have recorded it yet
        why = (
            f"launched for {machine.request_id}, which does not hold it"
            if machine.request_id
            else "it carries no request id"
        )
        findings.append(
            Finding(
                kind="orphan",
                resource_id=machine.machine_id,
                name=machine.name,
                request_id=machine.request_id,
                detail=f"the cloud runs it ({machine.state}) but no live request holds it: {why}",
            )
        )
    return findings


def _ghosts(machines: Sequence[CloudMachine], log: LogView, listed_at: float) -> list[Finding]:
    findings = []
    listed = {machine.machine_id: machine for machine in machines}
    before = log.live_before_listing
    for held in log.live.values():
        seen = listed.get(held.machine_id)
        if seen is not None and seen.state != "terminated":
            continue
        if seen is None and (
            (before is not None and held.machine_id not in before)
            or held.launched_at >= listed_at - LAUNCH_MARGIN
        ):
            continue  # recorded as the listing ran, or just launched: it may not be in it yet
        findings.append(
            Finding(
                kind="ghost",
                resource_id=held.machine_id,
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


def _stuck(
    machines: Sequence[CloudMachine], log: LogView, listed_at: float, pending_timeout: float
) -> list[Finding]:
    return [
        Finding(
            kind="stuck",
            resource_id=machine.machine_id,
            name=machine.name,
            request_id=machine.request_id,
            detail=(
                f"still pending {listed_at - machine.launched_at:.0f} s after its launch "
                f"(reconcile.pending_timeout is {pending_timeout:g} s)"
            ),
        )
        for machine in machines
        if machine.state == "pending"
        and machine.launched_at <= listed_at - pending_timeout
        and machine.machine_id in log.open_requests.get(machine.request_id, ())
    ]


def _groups_adrift(
    groups: Sequence[CloudGroup],
    machines: Sequence[CloudMachine],
    log: LogView,
    listed_at: float,
) -> list[Finding]:
    types = {machine.machine_id: machine.instance_type for machine in machines}
    live_by_request: dict[str, list[str]] = {}
    for held in log.live.values():
        live_by_request.setdefault(held.request_id, []).append(held.machine_id)
    findings = []
    for group in groups:
        if group.request_id in log.open_requests:
            continue  # still provisioning: its machines may not be recorded yet
        held_ids = live_by_request.get(group.request_id, [])
        if not held_ids:
            if group.created_at > listed_at - LAUNCH_MARGIN:
                continue  # made as the listing began: the log read may lag it
            findings.append(
                Finding(
                    kind="leak",
                    resource_id=group.group_id,
                    name=group.kind,
                    request_id=group.request_id,
                    detail=(
                        f"a {group.kind} left behind: {group.request_id or 'no request'} "
                        "is settled or unknown and holds no live machine"
                    ),
                )
            )
            continue
        if not group.maintains:
            continue
        wanted = sum(group.weights.get(types.get(m, ""), 1.0) for m in held_ids)
        if abs(group.target - wanted) < 1e-9:
            continue
        findings.append(
            Finding(
                kind="fleet",
                resource_id=group.group_id,
                name=group.kind,
                request_id=group.request_id,
                detail=(
                    f"the {group.kind} keeps {group.target:g} units but the log holds "
                    f"{len(held_ids)} live machines of {group.request_id}, {wanted:g} units"
                ),
                count=wanted,
            )
        )
    return findings


# -- the reconcile stream -------------------------------------------------------


class RecordFindings(msgspec.Struct, frozen=True):
    """The findings of one pass: new ones are recorded, vanished ones cleared."""

    findings: tuple[Finding, ...]
    at: float


class RecordAction(msgspec.Struct, frozen=True, kw_only=True):
    resource_id: str
    action: str
    at: float


class DriftFound(msgspec.Struct, frozen=True, tag=True):
    finding: Finding
    at: float


class DriftCleared(msgspec.Struct, frozen=True, tag=True):
    """The drift is gone by itself (the machine came back into the log, or left the cloud;
    the group was deleted, or its count mended)."""

    resource_id: str
    at: float


class DriftActedOn(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    resource_id: str
    action: str
    at: float


class OpenFinding(msgspec.Struct, frozen=True):
    finding: Finding
    first_seen: float


class Reconciliation(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    open: dict[str, OpenFinding] = {}
    """Resource id -> the drift found on it and not yet acted on or cleared."""
    acted: int = 0


def decide(state: Reconciliation, command: Any) -> Sequence[msgspec.Struct]:
    if isinstance(command, RecordFindings):
        found = {f.resource_id: f for f in command.findings}
        events: list[msgspec.Struct] = [
            DriftCleared(resource_id, command.at)
            for resource_id in state.open
            if resource_id not in found
        ]
        events += [
            DriftFound(finding, command.at)
            for resource_id, finding in found.items()
            if resource_id not in state.open or state.open[resource_id].finding.kind != finding.kind
        ]
        return events
    if isinstance(command, RecordAction):
        return [DriftActedOn(resource_id=command.resource_id, action=command.action, at=command.at)]
    raise TypeError(f"not a reconcile command: {command!r}")


def evolve(state: Reconciliation, event: Any) -> Reconciliation:
    replace = msgspec.structs.replace
    if isinstance(event, DriftFound):
        found = OpenFinding(event.finding, event.at)
        return replace(state, open={**state.open, event.finding.resource_id: found})
    if isinstance(event, DriftCleared | DriftActedOn):
        left = {k: v for k, v in state.open.items() if k != event.resource_id}
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
