"""Settlement: capacity given back, return claims taken and released, and the sweeps.

Capacity is reserved on the template's ledger before a request opens
(that is where `maxNumber` holds), so every way a request can end must give
back what it did not deliver: an acquire request that settles returns what
never ran; a return request gives the returned machines' capacity back to
the requests that launched them; a requestMachines whose caller got an
error gives back its reservation (or fails its request, if it opened after
all). Every release carries a command id derived from the request, so
doing it twice is harmless, and a step that failed is simply done again.

A crash between reserving and opening (or between claiming machines and
opening the return) leaves a reservation or a claim that no request owns.
The sweeps find those once they are older than `ORPHAN_AGE` (so a call in
flight in another process is not mistaken for one) and release them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import trio

from hostsmith.actors.errors import Refused
from hostsmith.actors.hostfactory import (
    CAPACITY,
    MACHINE,
    REQUEST,
    ClaimReturn,
    Machine,
    RecordFailure,
    Release,
    ReleaseReturn,
    Request,
)
from hostsmith.actors.providers import Gateway
from hostsmith.actors.service._projections import Projections
from hostsmith.runtime import Rejected, Runtime

log = logging.getLogger("hostsmith.service")

ORPHAN_AGE = 60.0
"""Seconds after which a reservation without its request is taken to be orphaned."""
CONCURRENT_CLAIMS = 512
"""Machine commands of one call or one step in flight at once (the journal's batch is 512
appends)."""

Item = TypeVar("Item")


async def each_at_once(
    step: Callable[[int, Item], Awaitable[None]],
    items: Sequence[Item],
    *,
    workers: int = CONCURRENT_CLAIMS,
    shared: trio.CapacityLimiter | None = None,
) -> None:
    """`step(i, item)` for every item (one per machine), `workers` at once.

    Each machine is its own aggregate, so commands to many machines go out
    together and the journal commits them in shared transactions. The
    workers take the items in turn (not a task per item: a burst of 100,000
    machines would be 100,000 tasks). `shared` bounds the steps in flight
    across every caller that passes it (the request driver's, over all its
    requests at once).
    """
    indexes = iter(range(len(items)))  # shared by the workers: each index is taken once
    # Every step passes a limiter, and so a checkpoint: racing returns' claims take
    # turns. Without it, three racing returns all gave up ("safe to send it again")
    # in about one run in seven of the racing-returns test.
    slots = shared or trio.CapacityLimiter(workers)

    async def worker() -> None:
        for index in indexes:
            async with slots:
                await step(index, items[index])

    async with trio.open_nursery() as nursery:
        for _ in range(min(workers, len(items))):
            nursery.start_soon(worker)


def _nth(attempt: int) -> str:
    """The command-id part for a claim's attempt: none for the first (ids as they always were)."""
    return f"-{attempt}" if attempt else ""


def _first(failure: BaseException, kind: type[Rejected]) -> Rejected | None:
    """The first `kind` in `failure`, looking through exception groups."""
    if isinstance(failure, kind):
        return failure
    if isinstance(failure, BaseExceptionGroup):
        for inner in failure.exceptions:
            if (found := _first(inner, kind)) is not None:
                return found
    return None


@dataclass(frozen=True, slots=True)
class Settlement:
    runtime: Runtime
    gateway: Gateway
    projections: Projections
    clock: Callable[[], float]

    async def release(self, request_id: str, template_id: str, count: int, by: str = "") -> None:
        if count > 0:
            await self.runtime.get(CAPACITY, template_id).execute(
                Release(request_id, count), command_id=f"{request_id}/release/{by or 'settle'}"
            )

    async def abandon(self, request_id: str, template_id: str, count: int) -> None:
        """Undo a requestMachines whose caller got an error, so nothing runs unseen.

        The open may have been applied after all (a timeout, a lost
        acknowledgement); the request's mailbox is in order, so its state read
        now shows the outcome. An opened request is failed (its driver then
        terminates whatever it launched and gives the capacity back); one never
        opened gives its reservation back here.
        """
        request = self.runtime.get(REQUEST, request_id)
        if (await request.state()).kind is None:
            await self.release(request_id, template_id, count)
            return
        await request.execute(
            RecordFailure("the requestMachines call that opened it failed; cancelled"),
            command_id=f"{request_id}/abandon",
        )

    async def claim(
        self, request_id: str, machines: Sequence[Machine], attempt: int = 0
    ) -> tuple[list[Machine], dict[str, list[Machine]]]:
        """Claim these machines for this return: (those claimed, those held by other returns).

        A machine another return holds (in progress, or done) stays with it.
        If a claim fails, every claim this call made is released again.

        Each machine is its own aggregate, so the claims go out together (up to
        `CONCURRENT_CLAIMS` at once) and the journal commits them in shared
        transactions: a return of thousands of hosts costs a few commits, not
        one round trip per host. Racing returns stay correct because each
        machine's claim is decided by that machine's actor alone. A return that
        lets go and claims again does so as a new `attempt` (its own command ids,
        or the runtime would take the claim for a repeat of the first).
        """
        holders: list[str] = [""] * len(machines)

        async def claim_one(index: int, machine: Machine) -> None:
            record = self.runtime.get(MACHINE, machine.machine_id)
            committed = await record.execute(
                ClaimReturn(request_id),
                command_id=f"{request_id}/claim{_nth(attempt)}/{machine.machine_id}",
            )
            holder = request_id
            if not committed.events:
                holder = (await record.state()).returned_by or request_id
            holders[index] = holder

        try:
            await each_at_once(claim_one, machines)
        except BaseException as failure:
            with trio.CancelScope(shield=True):
                # every machine: a claim can be stored yet go unacknowledged
                await self.unclaim(request_id, machines, attempt)
            rejected = _first(failure, Rejected)
            if rejected is not None:
                raise Refused(str(rejected)) from None
            raise
        claimed: list[Machine] = []
        held: dict[str, list[Machine]] = {}
        for machine, holder in zip(machines, holders, strict=True):
            if holder == request_id:
                claimed.append(machine)
            else:
                held.setdefault(holder, []).append(machine)
        return claimed, held

    async def unclaim(
        self, request_id: str, machines: Sequence[Machine], attempt: int = 0, why: str = ""
    ) -> None:
        """Release this return's claims (a no-op on machines it does not hold).

        Undoing an `attempt`'s claims, or for another reason (`why`): each has
        command ids of its own, so that none is taken for a repeat of another.
        """
        step = why or f"unclaim{_nth(attempt)}"

        async def unclaim_one(_: int, machine: Machine) -> None:
            await self.runtime.get(MACHINE, machine.machine_id).execute(
                ReleaseReturn(request_id), command_id=f"{request_id}/{step}/{machine.machine_id}"
            )

        await each_at_once(unclaim_one, machines)

    async def settle(self, state: Request) -> None:
        """Give back what a settled request holds and no longer needs."""
        if state.kind == "acquire":
            # Machines still booting when the request gave up (a timeout) were never
            # delivered, so Host Factory will never return them: hostsmith does.
            undelivered = [m.machine_id for m in state.machines.values() if m.state == "pending"]
            if undelivered:
                await self.gateway.terminate(undelivered)
            running = sum(1 for m in state.machines.values() if m.state == "running")
            await self.release(state.request_id, state.template_id, state.count - running)
            return
        per_owner: dict[str, int] = {}
        for machine in state.machines.values():
            owner = self.projections.owner_of_machine.get(machine.machine_id)
            if owner is not None and machine.state == "terminated":
                per_owner[owner] = per_owner.get(owner, 0) + 1
        for owner, count in per_owner.items():
            owner_state = self.projections.requests.get(owner)
            if owner_state is not None:
                await self.release(owner, owner_state.template_id, count, by=state.request_id)
        # A return that gave up (a timeout) lets go of the machines it did not
        # see terminate, so that a later return can take them and finish the job.
        unfinished = [m for m in state.machines.values() if m.state != "terminated"]
        if unfinished:
            await self.unclaim(state.request_id, unfinished, why="let-go")

    async def release_orphans(self, template_ids: Iterable[str]) -> None:
        """Give back capacity reserved by requests that never opened (a crash between the two).

        Only reservations older than `ORPHAN_AGE` count, so a requestMachines in
        flight in another process is not mistaken for one.
        """
        cutoff = self.clock() - ORPHAN_AGE
        for template_id in template_ids:
            capacity = await self.runtime.get(CAPACITY, template_id).state()
            for request_id, count in capacity.reserved.items():
                if (
                    request_id not in self.projections.requests
                    and capacity.reserved_at.get(request_id, 0) < cutoff
                ):
                    # Not in the projections: never opened, or settled and forgotten
                    # with every machine gone (terminated behind hostsmith's back and
                    # never returned); the log says which.
                    opened = (await self.runtime.get(REQUEST, request_id).state()).kind
                    why = "which never opened" if opened is None else "whose machines are gone"
                    log.warning("releasing %d machines reserved by %s, %s", count, request_id, why)
                    await self.release(request_id, template_id, count, by="orphan")

    async def release_stale_claims(self) -> None:
        """Release claims by return requests that never opened (a failure between the two)."""
        cutoff = self.clock() - ORPHAN_AGE
        for machine_id, (request_id, claimed_at) in list(self.projections.pending_claims.items()):
            if claimed_at < cutoff and request_id not in self.projections.requests:
                log.warning(
                    "releasing %s, claimed by %s, which never opened", machine_id, request_id
                )
                await self.runtime.get(MACHINE, machine_id).execute(
                    ReleaseReturn(request_id), command_id=f"{request_id}/unclaim/{machine_id}"
                )
