"""The projections: requests and machines as the log tells them, ready for Host Factory's polls.

getRequestStatus and getReturnRequests are polled about every 30 s for
every open request, and the operator's listings read everything; asking an
aggregate per request and per machine would wake thousands of actors for
each poll. So the service keeps read models, fed by a subscription over the
event log: rebuilt from the log when the service starts, then following it.
They are never a cache with a lifetime: what they hold is what the log
says, at most one subscription poll behind. Memory follows the hosts in
play: a settled request is forgotten once its retention has passed and none
of its machines is still out, and read back from the log if anyone asks.

Applying events is synchronous and pure bookkeeping; it names the requests
that just opened, and the service hands those to its driver.

Why the rest is built this way:
- The projections keep the last log position they applied (`position`) and
  skip anything at or below it, so a subscription that replays a batch (a
  restart after a read error, a snapshot older than the tail it is fed)
  never applies an event twice, nor drives a request again.
- Every time they keep (when a request settled, when a claim was made) is
  the time in the log (`recorded_at`), never when this process read it: a
  daemon started on a month of history forgets at once what settled long
  ago, instead of holding the whole history for one retention.
- Their whole state, with its position, is one msgspec Struct
  (`ProjectionsState`), saved in the store as a snapshot of its own
  (`READ_MODEL`, `READ_MODEL_SCHEMA`) by the service, so that a start
  loads it and reads only the log's tail (`_checkpoint`).
- Dicts never give memory back as keys leave them, so once forgetting has
  halved what they held at their peak they are copied afresh.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import msgspec

from hostsmith.actors.hostfactory import (
    MACHINE,
    REQUEST,
    AcquireOpened,
    Machine,
    MachineRef,
    MachinesLaunched,
    Request,
    ReturnClaimed,
    ReturnOpened,
)
from hostsmith.runtime import StoredEvent

_GONE = frozenset({"terminated", "failed", "pending"})
"""Machine states of a settled acquire request that Host Factory will not return
(a machine still pending when its request settled was terminated by hostsmith)."""
_CLAIM_EVENTS = frozenset({"ReturnClaimed", "ReturnReleased"})
_COMPACT_ABOVE = 1024
"""Dicts are copied afresh once they hold half their peak, if that peak was above this."""


class ProjectionsState(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the projections hold, as of `position`: what a read-model snapshot saves."""

    position: int
    requests: list[Request]
    owner_of_machine: dict[str, str]
    machines: dict[str, Machine]
    machine_by_name: dict[str, str]
    correlation_of: dict[str, str]
    pending_claims: dict[str, tuple[str, float]]
    settled_at: dict[str, float]


class Projections:
    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.position = 0
        """The last log position applied. Invariant: every event at or below it is in
        what follows, and none above it."""
        self.requests: dict[str, Request] = {}
        """Every request the log holds, but those forgotten after their retention."""
        self.owner_of_machine: dict[str, str] = {}
        """Machine id -> the acquire request that launched it.
        Invariant: the owner is in `requests` (they are forgotten together)."""
        self.machines: dict[str, Machine] = {}
        """Machine id -> its latest news, from whichever request touched it last.
        Invariant: exactly the machines of the acquire requests in `requests`."""
        self.machine_by_name: dict[str, str] = {}
        """Host name -> the id of the newest machine of that name (a cloud reuses the
        private addresses that names are made of, so a name is no machine's identity)."""
        self.correlation_of: dict[str, str] = {}
        """Request id -> the correlation id of the call that opened it."""
        self.pending_claims: dict[str, tuple[str, float]] = {}
        """Machine id -> (the return that claimed it, when), until that return opens.
        A claim whose return never opens is stale; the settlement sweep releases it."""
        self.settled_at: dict[str, float] = {}
        """Request id -> when it settled, by the log.
        Invariant: in log order, so `forget_settled` can stop at the first newer one
        (times from two daemons' clocks may be a little out of order: a request is
        then forgotten one sweep late, never early)."""
        self._peak = 0

    def apply(self, events: Sequence[StoredEvent]) -> list[str]:
        """Apply events from the log; return the ids of requests that opened in them.

        Events at or below `position` were applied already, and are skipped.
        """
        opened: list[str] = []
        decode = REQUEST.events.decode
        for stored in events:
            if stored.position <= self.position:
                continue
            self.position = stored.position
            if stored.type in _CLAIM_EVENTS:
                self._apply_claim(stored)
                continue
            if not stored.stream.startswith("request-"):
                continue
            request_id = stored.stream.removeprefix("request-")
            event = decode(stored.type, stored.schema_version, stored.data)
            state = self.requests.get(request_id)
            if state is None:
                if not isinstance(event, AcquireOpened | ReturnOpened):
                    continue  # news of a request forgotten after its retention
                state = Request(request_id=request_id)
            state = self.requests[request_id] = REQUEST.evolve(state, event)
            if isinstance(event, MachinesLaunched):
                for machine in event.machines:
                    self.owner_of_machine[machine.machine_id] = request_id
            # A machine's latest news is in whichever request touched it last.
            for machine in state.machines.values():
                if state.kind == "acquire" or machine.machine_id in self.machines:
                    self.machines[machine.machine_id] = machine
                    self.machine_by_name[machine.name] = machine.machine_id
            if state.settled and request_id not in self.settled_at:
                self.settled_at[request_id] = self._time_of(stored)
            if isinstance(event, ReturnOpened):
                for machine in event.machines:
                    if self.pending_claims.get(machine.machine_id, ("",))[0] == request_id:
                        del self.pending_claims[machine.machine_id]
            if isinstance(event, AcquireOpened | ReturnOpened):
                self.correlation_of[request_id] = stored.correlation_id
                opened.append(request_id)
        self._peak = max(self._peak, len(self.requests))
        return opened

    def _time_of(self, stored: StoredEvent) -> float:
        """When the event happened, by the log (events written without a time: now)."""
        return stored.recorded_at or self.clock()

    def _apply_claim(self, stored: StoredEvent) -> None:
        machine_id = stored.stream.removeprefix("machine-")
        event = MACHINE.events.decode(stored.type, stored.schema_version, stored.data)
        if isinstance(event, ReturnClaimed):
            self.pending_claims[machine_id] = (event.return_request_id, self._time_of(stored))
        elif self.pending_claims.get(machine_id, ("",))[0] == event.return_request_id:
            del self.pending_claims[machine_id]

    def find(self, ref: MachineRef) -> Machine | None:
        """The machine Host Factory names, by id or else by host name; None if unknown."""
        if ref.machine_id and ref.machine_id in self.owner_of_machine:
            owner = self.requests[self.owner_of_machine[ref.machine_id]]
            return owner.machines.get(ref.machine_id)
        machine_id = self.machine_by_name.get(ref.name) if ref.name else None
        return self.machines.get(machine_id) if machine_id else None

    def unsettled(self) -> Iterator[str]:
        return (request_id for request_id, state in self.requests.items() if not state.settled)

    def forget_settled(self, cutoff: float) -> int:
        """Drop from the projections requests settled before `cutoff`; return how many.

        An acquire request stays while any of its machines is not yet terminated
        (Host Factory may still return them). Its machines go with it.
        """
        due = []
        for request_id, settled_at in self.settled_at.items():
            if settled_at >= cutoff:
                break  # settle order: the rest are newer
            due.append(request_id)
        gone = 0
        for request_id in due:
            state = self.requests[request_id]
            latest = [self.machines.get(m.machine_id, m) for m in state.machines.values()]
            if state.kind == "acquire" and any(m.state not in _GONE for m in latest):
                continue
            del self.settled_at[request_id], self.requests[request_id]
            self.correlation_of.pop(request_id, None)
            if state.kind == "acquire":
                for machine in state.machines.values():
                    self.owner_of_machine.pop(machine.machine_id, None)
                    self.machines.pop(machine.machine_id, None)
                    if self.machine_by_name.get(machine.name) == machine.machine_id:
                        del self.machine_by_name[machine.name]
            gone += 1
        if self._peak > _COMPACT_ABOVE and len(self.requests) < self._peak // 2:
            self._compact()
        return gone

    def _compact(self) -> None:
        """Copy every dict afresh: a dict keeps the room of its largest size."""
        self.requests = dict(self.requests)
        self.owner_of_machine = dict(self.owner_of_machine)
        self.machines = dict(self.machines)
        self.machine_by_name = dict(self.machine_by_name)
        self.correlation_of = dict(self.correlation_of)
        self.pending_claims = dict(self.pending_claims)
        self.settled_at = dict(self.settled_at)
        self._peak = len(self.requests)

    # -- a snapshot of it all ----------------------------------------------------

    def state(self) -> ProjectionsState:
        return ProjectionsState(
            position=self.position,
            requests=list(self.requests.values()),
            owner_of_machine=self.owner_of_machine,
            machines=self.machines,
            machine_by_name=self.machine_by_name,
            correlation_of=self.correlation_of,
            pending_claims=self.pending_claims,
            settled_at=self.settled_at,
        )

    def load(self, state: ProjectionsState) -> None:
        """Hold exactly `state` (what a snapshot saved), replacing whatever was held."""
        self.position = state.position
        self.requests = {request.request_id: request for request in state.requests}
        self.owner_of_machine = dict(state.owner_of_machine)
        self.machines = dict(state.machines)
        self.machine_by_name = dict(state.machine_by_name)
        self.correlation_of = dict(state.correlation_of)
        self.pending_claims = dict(state.pending_claims)
        self.settled_at = dict(state.settled_at)
        self._peak = len(self.requests)
