"""Machines: one aggregate per cloud machine, the authority on who may return it.

A machine's details live in the request that acquired it (that is what
getRequestStatus reports), but one question belongs to the machine itself:
which return request, if any, is taking it down. Two return requests that
race for the same machine must not both succeed, so each return first
claims its machines here, one aggregate per machine deciding alone; a
machine claimed by another return request refuses, and the caller gets a
message naming that request.

The aggregate also keeps the machine's latest known state, which the
request driver records as the cloud reports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from hostsmith.actors.hostfactory._requests import MachineState
from hostsmith.runtime import AggregateKind, EventRegistry, Rejected


class RecordLaunch(msgspec.Struct, frozen=True, kw_only=True):
    request_id: str
    template_id: str
    name: str


class RecordMachineState(msgspec.Struct, frozen=True):
    state: MachineState


class ClaimReturn(msgspec.Struct, frozen=True):
    return_request_id: str


class ReleaseReturn(msgspec.Struct, frozen=True):
    return_request_id: str


class MachineLaunched(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    request_id: str
    template_id: str
    name: str


class MachineStateRecorded(msgspec.Struct, frozen=True, tag=True):
    state: MachineState


class ReturnClaimed(msgspec.Struct, frozen=True, tag=True):
    return_request_id: str


class ReturnReleased(msgspec.Struct, frozen=True, tag=True):
    return_request_id: str


class MachineRecord(msgspec.Struct, frozen=True, kw_only=True):
    machine_id: str
    request_id: str = ""  # empty until launched
    template_id: str = ""
    name: str = ""
    state: MachineState = "pending"
    returned_by: str = ""


def decide(state: MachineRecord, command: Any) -> Sequence[msgspec.Struct]:
    if isinstance(command, RecordLaunch):
        if state.request_id:
            return []
        return [
            MachineLaunched(
                request_id=command.request_id, template_id=command.template_id, name=command.name
            )
        ]
    if not state.request_id:
        raise Rejected(f"machine {state.machine_id!r} was not provisioned by hostsmith")
    if isinstance(command, RecordMachineState):
        return [MachineStateRecorded(command.state)] if command.state != state.state else []
    if isinstance(command, ClaimReturn):
        # Held by another return already: not an error (Host Factory repeats
        # returns); the claim is simply not made, and `returned_by` says whose it is.
        if state.returned_by:
            return []
        return [ReturnClaimed(command.return_request_id)]
    if isinstance(command, ReleaseReturn):
        if state.returned_by != command.return_request_id:
            return []
        return [ReturnReleased(command.return_request_id)]
    raise TypeError(f"not a machine command: {command!r}")


def evolve(state: MachineRecord, event: Any) -> MachineRecord:
    replace = msgspec.structs.replace
    if isinstance(event, MachineLaunched):
        return replace(
            state, request_id=event.request_id, template_id=event.template_id, name=event.name
        )
    if isinstance(event, MachineStateRecorded):
        return replace(state, state=event.state)
    if isinstance(event, ReturnClaimed):
        return replace(state, returned_by=event.return_request_id)
    if isinstance(event, ReturnReleased):
        return replace(state, returned_by="")
    raise TypeError(f"not a machine event: {event!r}")


MACHINE = AggregateKind(
    name="machine",
    initial=lambda machine_id: MachineRecord(machine_id=machine_id),
    decide=decide,
    evolve=evolve,
    events=EventRegistry(MachineLaunched, MachineStateRecorded, ReturnClaimed, ReturnReleased),
    state_type=MachineRecord,
)
