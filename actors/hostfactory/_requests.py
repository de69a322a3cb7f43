"""Host Factory requests: one aggregate per acquire (`req-…`) or return (`ret-…`) request.

A request records what Host Factory asked for and what the cloud did about
it, and derives its Host Factory status from that alone. Its internal
status follows the origin plugin (HOSTFACTORY.md): `pending` and
`in_progress` are reported as `running`; `completed` as `complete`; and
`partial`, `failed`, `cancelled` and `timeout` as `complete_with_error`.

Why it is shaped this way:
- Everything here is pure. The provider gateway does the cloud calls and
  reports back with `RecordLaunched` and `RecordStates`; the request only
  decides what those reports mean. Tests drive it with plain values.
- The deadline is an event field (`deadline`, epoch seconds), so a request
  that is reactivated after a restart knows when it expires and the timer
  can be armed again from the log.
- A request settles once: when every machine it expects has reached an end
  state (running or failed for an acquire; terminated or failed for a
  return), or when its deadline passes.
- A machine stuck pending (the reconciler finds it) is marked failed and
  *replaced*: the request opens a new launch (`launch`, counted from 0)
  for as many machines as it is now short, and stays open for them until
  its deadline. Each launch is idempotent on its own (the provider keys it
  by request id and launch number), and a report of an earlier launch
  never closes a later one. Reports that arrive later are still
  recorded (a late machine must not be forgotten, or it would leak), but
  they do not change a settled status.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import msgspec

from hostsmith.actors.hostfactory._templates import Template
from hostsmith.actors.hostfactory._wire import (
    HostFactoryStatus,
    MachineResult,
    MachineStatus,
    RequestStatusEntry,
)
from hostsmith.runtime import AggregateKind, EventRegistry, Rejected

RequestKind = Literal["acquire", "return"]
Status = Literal["pending", "in_progress", "completed", "partial", "failed", "cancelled", "timeout"]
MachineState = Literal["pending", "running", "shutting-down", "terminated", "failed"]

SETTLED: frozenset[str] = frozenset({"completed", "partial", "failed", "cancelled", "timeout"})
HF_STATUS: dict[str, HostFactoryStatus] = {
    "pending": "running",
    "in_progress": "running",
    "completed": "complete",
    "partial": "complete_with_error",
    "failed": "complete_with_error",
    "cancelled": "complete_with_error",
    "timeout": "complete_with_error",
}


class Machine(msgspec.Struct, frozen=True, kw_only=True):
    machine_id: str
    name: str
    state: MachineState = "pending"
    private_ip: str = ""
    public_ip: str = ""
    launchtime: int = 0
    message: str = ""


class StateChange(msgspec.Struct, frozen=True):
    machine_id: str
    state: MachineState
    message: str = ""


# -- commands -------------------------------------------------------------------


class OpenAcquire(msgspec.Struct, frozen=True, kw_only=True):
    template_id: str
    count: int
    deadline: float
    opened_at: float
    template: Template | None = None
    """The template as it was when the request opened: the request provisions from
    it even if the templates file is edited meanwhile."""


class OpenReturn(msgspec.Struct, frozen=True, kw_only=True):
    machines: tuple[Machine, ...]
    deadline: float
    opened_at: float


class RecordLaunched(msgspec.Struct, frozen=True, kw_only=True):
    machines: tuple[Machine, ...]
    final: bool = True
    """True when the provider will launch no more for this request (it may be fewer)."""
    launch: int = 0
    """Which of the request's launches this reports (see `ReplaceStuck`)."""


class ReplaceStuck(msgspec.Struct, frozen=True):
    """These machines never booted and were terminated: fail them, and launch others."""

    machine_ids: tuple[str, ...]
    message: str


class RecordStates(msgspec.Struct, frozen=True):
    changes: tuple[StateChange, ...]


class RecordFailure(msgspec.Struct, frozen=True):
    message: str


class CheckDeadline(msgspec.Struct, frozen=True):
    now: float


# -- events ---------------------------------------------------------------------


class AcquireOpened(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    template_id: str
    count: int
    deadline: float
    opened_at: float
    template: Template | None = None  # None in events written before it was recorded


class ReturnOpened(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    machines: tuple[Machine, ...]
    deadline: float
    opened_at: float


class MachinesLaunched(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    machines: tuple[Machine, ...]
    final: bool


class MachinesReplaced(msgspec.Struct, frozen=True, tag=True, kw_only=True):
    machine_ids: tuple[str, ...]
    message: str
    launch: int
    """The launch that replaces them."""


class MachineStatesChanged(msgspec.Struct, frozen=True, tag=True):
    changes: tuple[StateChange, ...]


class RequestSettled(msgspec.Struct, frozen=True, tag=True):
    status: Status
    message: str = ""


# -- state ----------------------------------------------------------------------


class Request(msgspec.Struct, frozen=True, kw_only=True):
    request_id: str
    kind: RequestKind | None = None  # None until opened
    template_id: str = ""
    count: int = 0
    status: Status = "pending"
    message: str = ""
    deadline: float = 0.0
    opened_at: float = 0.0
    launches_final: bool = False
    """The current launch has reported all it will (an acquire provisions until then)."""
    launch: int = 0
    """The current launch: 0 the first; one more for each replacement of stuck machines."""
    replaced: frozenset[str] = frozenset()
    """Machines that were stuck and have been replaced (they stay listed, failed)."""
    machines: dict[str, Machine] = {}
    template: Template | None = None
    """What an acquire request provisions from, as it was when the request opened."""

    @property
    def settled(self) -> bool:
        return self.status in SETTLED

    @property
    def short(self) -> int:
        """How many machines an acquire still lacks, its replaced ones not counted."""
        return max(0, self.count - (len(self.machines) - len(self.replaced)))


def decide(state: Request, command: Any) -> Sequence[msgspec.Struct]:
    if isinstance(command, OpenAcquire | OpenReturn):
        return _open(state, command)
    if state.kind is None:
        raise Rejected(f"request {state.request_id} is unknown")
    if isinstance(command, RecordLaunched):
        new = tuple(m for m in command.machines if m.machine_id not in state.machines)
        # an earlier launch's report records its machines but cannot close a later launch
        final = command.final if command.launch == state.launch else state.launches_final
        if not new and final == state.launches_final:
            return []
        return _and_settle(state, MachinesLaunched(machines=new, final=final))
    if isinstance(command, ReplaceStuck):
        stuck = tuple(
            machine_id
            for machine_id in command.machine_ids
            if machine_id in state.machines and machine_id not in state.replaced
        )
        if state.kind != "acquire" or state.settled or not stuck:
            return []
        return [
            MachinesReplaced(machine_ids=stuck, message=command.message, launch=state.launch + 1)
        ]
    if isinstance(command, RecordStates):
        changes = tuple(
            c
            for c in command.changes
            if c.machine_id in state.machines
            and c.machine_id not in state.replaced  # failed for good, whatever a look saw
            and (state.machines[c.machine_id].state, state.machines[c.machine_id].message)
            != (c.state, c.message)
        )
        return _and_settle(state, MachineStatesChanged(changes)) if changes else []
    if isinstance(command, RecordFailure):
        if state.settled:
            return []
        return [RequestSettled("failed", command.message)]
    if isinstance(command, CheckDeadline):
        if state.settled or command.now < state.deadline:
            return []
        ready = sum(1 for m in state.machines.values() if m.state == _goal(state))
        expected = state.count if state.kind == "acquire" else len(state.machines)
        return [
            RequestSettled(
                "timeout",
                f"timed out after {state.deadline - state.opened_at:g}s with {ready} of "
                f"{expected} machines done",
            )
        ]
    raise TypeError(f"not a request command: {command!r}")


def _open(state: Request, command: OpenAcquire | OpenReturn) -> Sequence[msgspec.Struct]:
    if state.kind is not None:
        if _same_open(state, command):
            return []  # the same open, retried
        raise Rejected(f"request {state.request_id} exists already")
    if isinstance(command, OpenAcquire):
        if command.count <= 0:
            raise Rejected(f"machineCount must be at least 1, not {command.count}")
        return [
            AcquireOpened(
                template_id=command.template_id,
                count=command.count,
                deadline=command.deadline,
                opened_at=command.opened_at,
                template=command.template,
            )
        ]
    if not command.machines:
        raise Rejected("requestReturnMachines needs at least one machine")
    return [
        ReturnOpened(
            machines=command.machines, deadline=command.deadline, opened_at=command.opened_at
        )
    ]


def _same_open(state: Request, command: OpenAcquire | OpenReturn) -> bool:
    if isinstance(command, OpenAcquire):
        return state.kind == "acquire" and (state.template_id, state.count) == (
            command.template_id,
            command.count,
        )
    return state.kind == "return" and set(state.machines) == {
        m.machine_id for m in command.machines
    }


def _goal(state: Request) -> MachineState:
    return "running" if state.kind == "acquire" else "terminated"


def _and_settle(state: Request, event: msgspec.Struct) -> list[msgspec.Struct]:
    """`event`, followed by the request's settlement if it brings one about."""
    events: list[msgspec.Struct] = [event]
    if state.settled:
        return events
    after = evolve(state, event)
    machines = list(after.machines.values())
    goal = _goal(after)
    done = sum(1 for m in machines if m.state == goal)
    failed = [
        m
        for m in machines
        if m.state == "failed" or (goal == "running" and m.state == "terminated")
    ]
    pending = len(machines) - done - len(failed)
    if after.kind == "acquire":
        if not after.launches_final and len(machines) - len(after.replaced) < after.count:
            return events
        expected = after.count
    else:
        expected = len(machines)
    if pending:
        return events
    if done == expected:
        events.append(RequestSettled("completed"))
    else:
        reasons = (
            "; ".join(sorted({m.message for m in failed if m.message}))
            or "the cloud provided fewer"
        )
        status: Status = "partial" if done else "failed"
        events.append(RequestSettled(status, f"{done} of {expected} machines done: {reasons}"))
    return events


def evolve(state: Request, event: Any) -> Request:
    replace = msgspec.structs.replace
    if isinstance(event, AcquireOpened):
        return replace(
            state,
            kind="acquire",
            template_id=event.template_id,
            count=event.count,
            deadline=event.deadline,
            opened_at=event.opened_at,
            template=event.template,
        )
    if isinstance(event, ReturnOpened):
        machines = {m.machine_id: replace(m, state="running") for m in event.machines}
        return replace(
            state,
            kind="return",
            count=len(machines),
            machines=machines,
            deadline=event.deadline,
            opened_at=event.opened_at,
            status="in_progress",
        )
    if isinstance(event, MachinesLaunched):
        machines = {**state.machines, **{m.machine_id: m for m in event.machines}}
        status: Status = "in_progress" if state.status == "pending" else state.status
        return replace(state, machines=machines, launches_final=event.final, status=status)
    if isinstance(event, MachinesReplaced):
        machines = dict(state.machines)
        for machine_id in event.machine_ids:
            machines[machine_id] = replace(
                machines[machine_id], state="failed", message=event.message
            )
        return replace(
            state,
            machines=machines,
            replaced=state.replaced | set(event.machine_ids),
            launch=event.launch,
            launches_final=False,
        )
    if isinstance(event, MachineStatesChanged):
        machines = dict(state.machines)
        for change in event.changes:
            machines[change.machine_id] = replace(
                machines[change.machine_id], state=change.state, message=change.message
            )
        return replace(state, machines=machines)
    if isinstance(event, RequestSettled):
        return replace(state, status=event.status, message=event.message)
    raise TypeError(f"not a request event: {event!r}")


_ACQUIRE_RESULTS: dict[str, MachineResult] = {"running": "succeed", "pending": "executing"}
_RETURN_RESULTS: dict[str, MachineResult] = {"terminated": "succeed", "failed": "fail"}


def machine_result(kind: RequestKind, machine: Machine) -> MachineResult:
    """A machine's Host Factory `result` within a request of `kind`."""
    if kind == "acquire":
        return _ACQUIRE_RESULTS.get(machine.state, "fail")
    return _RETURN_RESULTS.get(machine.state, "executing")


def to_host_factory(state: Request) -> RequestStatusEntry:
    """The request as one entry of getRequestStatus's `requests` list."""
    if state.kind is None:
        return RequestStatusEntry(
            request_id=state.request_id,
            status="complete_with_error",
            message=f"request {state.request_id} is unknown",
            machines=[],
        )
    machines = []
    for machine in state.machines.values():
        result = machine_result(state.kind, machine)
        message = machine.message or (f"machine is {machine.state}" if result == "fail" else "")
        machines.append(
            MachineStatus(
                machine_id=machine.machine_id,
                name=machine.name,
                result=result,
                status=machine.state,
                private_ip_address=machine.private_ip,
                public_ip_address=machine.public_ip,
                launchtime=machine.launchtime,
                message=message,
            )
        )
    return RequestStatusEntry(
        request_id=state.request_id,
        status=HF_STATUS[state.status],
        message=state.message,
        machines=machines,
    )


REQUEST = AggregateKind(
    name="request",
    initial=lambda request_id: Request(request_id=request_id),
    decide=decide,
    evolve=evolve,
    events=EventRegistry(
        AcquireOpened,
        ReturnOpened,
        MachinesLaunched,
        MachinesReplaced,
        MachineStatesChanged,
        RequestSettled,
    ),
    state_type=Request,
    snapshot_every=100,
)
