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
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

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


class Projections:
    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.requests: dict[str, Request] = {}
        """Every request the log holds, but those forgotten after their retention."""
        self.owner_of_machine: dict[str, str] = {}
        """Machine id -> the acquire request that launched it.
        Invariant: the owner is in `requests` (they are forgotten together)."""
        self.machine_by_name: dict[str, Machine] = {}
        """Host name -> the machine's latest news, from whichever request touched it last."""
        self.correlation_of: dict[str, str] = {}
        """Request id -> the correlation id of the call that opened it."""
        self.pending_claims: dict[str, tuple[str, float]] = {}
        """Machine id -> (the return that claimed it, when), until that return opens.
        A claim whose return never opens is stale; the settlement sweep releases it."""
        self.settled_at: dict[str, float] = {}
        """Request id -> when the projection saw it settle.
        Invariant: in settle order, so `forget_settled` can stop at the first newer one."""

    def apply(self, events: Sequence[StoredEvent]) -> list[str]:
        """Apply events from the log; return the ids of requests that opened in them."""
        opened: list[str] = []
        decode = REQUEST.events.decode
        for stored in events:
            if stored.type in _CLAIM_EVENTS:
                self._apply_claim(stored)
                continue
            if not stored.stream.startswith("request-"):
                continue
            request_id = stored.stream.removeprefix("request-")
            event = decode(stored.type, stored.schema_version, stored.data)
            state = self.requests.get(request_id) or Request(request_id=request_id)
            state = self.requests[request_id] = REQUEST.evolve(state, event)
            if isinstance(event, MachinesLaunched):
                for machine in event.machines:
                    self.owner_of_machine[machine.machine_id] = request_id
            # A machine's latest news is in whichever request touched it last.
            for machine in state.machines.values():
                self.machine_by_name[machine.name] = machine
            if state.settled and request_id not in self.settled_at:
                self.settled_at[request_id] = self.clock()
            if isinstance(event, ReturnOpened):
                for machine in event.machines:
                    if self.pending_claims.get(machine.machine_id, ("",))[0] == request_id:
                        del self.pending_claims[machine.machine_id]
            if isinstance(event, AcquireOpened | ReturnOpened):
                self.correlation_of[request_id] = stored.correlation_id
                opened.append(request_id)
        return opened

    def _apply_claim(self, stored: StoredEvent) -> None:
        machine_id = stored.stream.removeprefix("machine-")
        event = MACHINE.events.decode(stored.type, stored.schema_version, stored.data)
        if isinstance(event, ReturnClaimed):
            self.pending_claims[machine_id] = (event.return_request_id, self.clock())
        elif self.pending_claims.get(machine_id, ("",))[0] == event.return_request_id:
            del self.pending_claims[machine_id]

    def find(self, ref: MachineRef) -> Machine | None:
        """The machine Host Factory names, by id or else by host name; None if unknown."""
        if ref.machine_id and ref.machine_id in self.owner_of_machine:
            owner = self.requests[self.owner_of_machine[ref.machine_id]]
            return owner.machines.get(ref.machine_id)
        return self.machine_by_name.get(ref.name) if ref.name else None

    def unsettled(self) -> Iterator[str]:
        return (request_id for request_id, state in self.requests.items() if not state.settled)

    def forget_settled(self, cutoff: float) -> int:
        """Drop from the projections requests settled before `cutoff`; return how many.

        An acquire request stays while any of its machines is not yet terminated
        (Host Factory may still return them). Its machines go with it.
        """
        gone = 0
        for request_id, settled_at in list(self.settled_at.items()):
            if settled_at >= cutoff:
                break  # settle order: the rest are newer
            state = self.requests[request_id]
            latest = [self.machine_by_name.get(m.name, m) for m in state.machines.values()]
            if state.kind == "acquire" and any(m.state not in _GONE for m in latest):
                continue
            del self.settled_at[request_id], self.requests[request_id]
            self.correlation_of.pop(request_id, None)
            if state.kind == "acquire":
                for machine in state.machines.values():
                    self.owner_of_machine.pop(machine.machine_id, None)
                    if self.machine_by_name.get(machine.name, machine).machine_id == (
                        machine.machine_id
                    ):
                        self.machine_by_name.pop(machine.name, None)
            gone += 1
        return gone
