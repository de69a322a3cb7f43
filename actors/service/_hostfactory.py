"""The Host Factory service: the five calls, and the driver that sees requests through.

`HostFactory` answers Host Factory's calls with plain dicts in Host
Factory's JSON shapes (HOSTFACTORY.md); the HTTP API and the `hf` command
only move those dicts around.

Requests are seen through by a driver, a process manager: a subscription
over the event log notices every request that is opened, and one task per
unsettled request provisions (or terminates) through the provider gateway,
records what the cloud reports on the request aggregate, and arms the
request's deadline. Because the driver learns about requests from the log,
a daemon that restarts after a crash catches up from the log and resumes
every request that was not settled; provisioning is idempotent per request
id, so resuming never creates machines twice.

Capacity: a request reserves its machines on the template's capacity
aggregate before it is opened (that is where `maxNumber` is enforced), and
gives back what it did not get when it settles. A return request gives the
returned machines' capacity back to the requests that acquired them.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Annotated, Any

import msgspec
import trio

from hostsmith.actors.errors import PermanentProviderError, ProviderError, Refused
from hostsmith.actors.hostfactory import (
    CAPACITY,
    MACHINE,
    REQUEST,
    AcquireOpened,
    CheckDeadline,
    ClaimReturn,
    Machine,
    MachineRef,
    MachinesLaunched,
    OpenAcquire,
    OpenReturn,
    RecordFailure,
    RecordLaunch,
    RecordLaunched,
    RecordMachineState,
    RecordStates,
    Release,
    ReleaseReturn,
    Request,
    Reserve,
    ReturnClaimed,
    ReturnOpened,
    Template,
    to_host_factory,
)
from hostsmith.actors.providers import Gateway, Provisioned
from hostsmith.runtime import (
    CircuitOpen,
    Rejected,
    Runtime,
    RuntimeFault,
    StoredEvent,
    correlation,
)

log = logging.getLogger("hostsmith.service")


_GONE = frozenset({"terminated", "failed", "pending"})
"""Machine states of a settled acquire request that Host Factory will not return
(a machine still pending when its request settled was terminated by hostsmith)."""
_CLAIM_EVENTS = frozenset({"ReturnClaimed", "ReturnReleased"})
ORPHAN_AGE = 60.0
"""Seconds after which a reservation without its request is taken to be orphaned."""


class RequestSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The `[requests]` section of the config file."""

    timeout: Annotated[float, msgspec.Meta(gt=0)] = 1800.0
    """Seconds an acquire or return request may take before it times out."""
    poll_interval: Annotated[float, msgspec.Meta(gt=0)] = 5.0
    """Seconds between the driver's looks at the cloud for one request."""
    retention: Annotated[float, msgspec.Meta(gt=0)] = 3600.0
    """Seconds a settled request stays in memory for Host Factory's status polls.

    After that it is forgotten by the projections (once none of its machines is
    still running) and read back from the log if anyone asks, so the service's
    memory follows the hosts in play, not the history."""


def random_request_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4()}"


class HostFactory:
    def __init__(
        self,
        runtime: Runtime,
        gateway: Gateway,
        templates: dict[str, Template],
        settings: RequestSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
        new_request_id: Callable[[str], str] = random_request_id,
    ) -> None:
        self.runtime = runtime
        self.gateway = gateway
        self.templates = templates
        self.settings = settings or RequestSettings()
        self.clock = clock
        self.new_request_id = new_request_id
        # Projections, rebuilt from the log at start by the subscription.
        self.requests: dict[str, Request] = {}
        self.owner_of_machine: dict[str, str] = {}  # machine id -> acquire request id
        self.machine_by_name: dict[str, Machine] = {}
        self.correlation_of: dict[str, str] = {}  # request id -> the call that opened it
        self.pending_claims: dict[str, tuple[str, float]] = {}  # machine -> (return, when)
        self.settled_at: dict[str, float] = {}  # request id -> when the projection saw it settle
        self._driving: set[str] = set()
        self._unrecorded: dict[str, Provisioned] = {}  # what the cloud made, not yet recorded
        self._nursery: trio.Nursery | None = None

    # -- the five Host Factory calls --------------------------------------------

    async def get_available_templates(self) -> dict[str, Any]:
        listed = []
        for template in self.templates.values():
            capacity = await self.runtime.get(CAPACITY, template.template_id).state()
            entry = msgspec.to_builtins(template)
            entry["attributes"] = {k: list(v) for k, v in template.attributes.items()}
            entry["availableNumber"] = capacity.available(template.limit)
            listed.append(entry)
        return {"templates": listed, "message": "Get available templates success."}

    async def request_machines(self, template_id: str, count: int) -> dict[str, Any]:
        template = self.templates.get(template_id)
        if template is None:
            known = ", ".join(sorted(self.templates)) or "none are configured"
            raise Refused(f"unknown templateId {template_id!r} (known: {known})")
        request_id = self.new_request_id("req")
        now = self.clock()
        try:
            await self.runtime.get(CAPACITY, template_id).execute(
                Reserve(request_id, count, template.limit, at=now),
                command_id=f"{request_id}/reserve",
            )
        except Rejected as rejection:
            raise Refused(str(rejection)) from None
        try:
            await self.runtime.get(REQUEST, request_id).execute(
                OpenAcquire(
                    template_id=template_id,
                    count=count,
                    deadline=now + self.settings.timeout,
                    opened_at=now,
                ),
                command_id=f"{request_id}/open",
            )
        except BaseException:
            with trio.CancelScope(shield=True):
                await self._abandon(request_id, template_id, count)
            raise
        return {"requestId": request_id, "message": "Request VM success."}

    async def _abandon(self, request_id: str, template_id: str, count: int) -> None:
        """Undo a requestMachines whose caller got an error, so nothing runs unseen.

        The open may have been applied after all (a timeout, a lost
        acknowledgement); the request's mailbox is in order, so its state read
        now shows the outcome. An opened request is failed (its driver then
        terminates whatever it launched and gives the capacity back); one never
        opened gives its reservation back here.
        """
        request = self.runtime.get(REQUEST, request_id)
        if (await request.state()).kind is None:
            await self._release(request_id, template_id, count)
            return
        await request.execute(
            RecordFailure("the requestMachines call that opened it failed; cancelled"),
            command_id=f"{request_id}/abandon",
        )

    async def request_return_machines(self, machines: Sequence[MachineRef]) -> dict[str, Any]:
        if not machines:
            raise Refused("requestReturnMachines needs at least one machine")
        known = []
        for ref in machines:
            machine = self._find(ref)
            if machine is None:
                raise Refused(
                    f"machine {ref.machine_id or ref.name!r} was not provisioned by hostsmith"
                )
            known.append(machine)
        request_id = self.new_request_id("ret")
        await self._claim(request_id, known)
        now = self.clock()
        request = self.runtime.get(REQUEST, request_id)
        try:
            await request.execute(
                OpenReturn(
                    machines=tuple(known),
                    deadline=now + self.settings.timeout,
                    opened_at=now,
                ),
                command_id=f"{request_id}/open",
            )
        except BaseException:
            with trio.CancelScope(shield=True):
                # A lost acknowledgement may have opened it after all; if so it
                # goes on (the driver finds it in the log) and keeps its claims.
                if (await request.state()).kind is None:
                    await self._unclaim(request_id, known)
            raise
        return {"requestId": request_id, "message": "Delete VM success."}

    async def _claim(self, request_id: str, machines: Sequence[Machine]) -> None:
        """Claim every machine for this return, or none of them."""
        tried: list[Machine] = []
        try:
            for machine in machines:
                tried.append(machine)  # before: a claim can be stored yet go unacknowledged
                await self.runtime.get(MACHINE, machine.machine_id).execute(
                    ClaimReturn(request_id), command_id=f"{request_id}/claim/{machine.machine_id}"
                )
        except BaseException as failure:
            with trio.CancelScope(shield=True):
                await self._unclaim(request_id, tried)
            if isinstance(failure, Rejected):
                raise Refused(str(failure)) from None
            raise

    async def _unclaim(self, request_id: str, machines: Sequence[Machine]) -> None:
        """Release this return's claims (a no-op on machines it does not hold)."""
        for machine in machines:
            await self.runtime.get(MACHINE, machine.machine_id).execute(
                ReleaseReturn(request_id), command_id=f"{request_id}/unclaim/{machine.machine_id}"
            )

    async def get_request_status(self, request_ids: Sequence[str]) -> dict[str, Any]:
        answers = []
        for request_id in request_ids:
            state = self.requests.get(request_id)
            if state is None and request_id.startswith(("req-", "ret-")):
                state = await self.runtime.get(REQUEST, request_id).state()
            answers.append(to_host_factory(state or Request(request_id=request_id)))
        return {"requests": answers, "message": ""}

    async def get_return_requests(self, machines: Sequence[MachineRef]) -> dict[str, Any]:
        held = {m.machine_id: m for m in (self._find(ref) for ref in machines) if m is not None}
        notices = {n.machine_id: n for n in await self.gateway.reclaim_notices()}
        gone = []
        if held:
            for change in await self.gateway.describe(list(held)):
                if change.state == "terminated" and change.machine_id not in notices:
                    gone.append(change.machine_id)
        listed = [
            {"machine": held[machine_id].name, "gracePeriod": notice.grace_period}
            for machine_id, notice in notices.items()
            if machine_id in held
        ]
        listed += [{"machine": held[machine_id].name, "gracePeriod": 0} for machine_id in gone]
        return {"message": "Machines to return.", "requests": listed}

    def _find(self, ref: MachineRef) -> Machine | None:
        if ref.machine_id and ref.machine_id in self.owner_of_machine:
            owner = self.requests[self.owner_of_machine[ref.machine_id]]
            return owner.machines.get(ref.machine_id)
        return self.machine_by_name.get(ref.name) if ref.name else None

    # -- projections and the driver ---------------------------------------------

    async def run(
        self, drive: bool = True, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Rebuild the projections from the log; then, if `drive`, see requests through."""
        async with trio.open_nursery() as nursery:
            subscription = await self.runtime.subscribe(
                "hostfactory-projections", self._apply, poll_interval=1.0, durable=False
            )
            await subscription.caught_up.wait()
            if drive:
                self._nursery = nursery
                await self._release_orphans()
                for request_id, state in self.requests.items():
                    if not state.settled:
                        self._drive(request_id)
            task_status.started()
            while True:
                await trio.sleep(min(self.settings.retention / 4, ORPHAN_AGE))
                self.forget_settled(self.clock() - self.settings.retention)
                if drive:
                    try:
                        await self._release_orphans()
                        await self._release_stale_claims()
                    except RuntimeFault as trouble:
                        log.warning("could not release orphaned reservations yet: %s", trouble)

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

    async def _release_orphans(self) -> None:
        """Give back capacity reserved by requests that never opened (a crash between the two).

        Only reservations older than `ORPHAN_AGE` count, so a requestMachines in
        flight in another process is not mistaken for one.
        """
        cutoff = self.clock() - ORPHAN_AGE
        for template_id in self.templates:
            capacity = await self.runtime.get(CAPACITY, template_id).state()
            for request_id, count in capacity.reserved.items():
                if (
                    request_id not in self.requests
                    and capacity.reserved_at.get(request_id, 0) < cutoff
                ):
                    log.warning(
                        "releasing %d machines reserved by %s, which never opened",
                        count,
                        request_id,
                    )
                    await self._release(request_id, template_id, count, by="orphan")

    async def advance(self, request_ids: Sequence[str]) -> None:
        """Take one step on each of these unsettled requests (for one-shot commands)."""
        for request_id in request_ids:
            if not request_id.startswith(("req-", "ret-")):
                continue
            request = self.runtime.get(REQUEST, request_id)
            state = await request.state()
            if state.kind is None:
                continue
            if not state.settled:
                try:
                    await self._step(request_id, state)
                except PermanentProviderError as refusal:
                    await request.execute(RecordFailure(str(refusal)))
                except (ProviderError, CircuitOpen, trio.TooSlowError) as trouble:
                    log.warning("request %s: the provider is in trouble: %s", request_id, trouble)
                await request.execute(CheckDeadline(self.clock()))
                state = await request.state()
            if state.settled:
                await self._settle_capacity(state)

    async def _apply(self, events: Sequence[StoredEvent]) -> None:
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
                self._drive(request_id)

    def _apply_claim(self, stored: StoredEvent) -> None:
        machine_id = stored.stream.removeprefix("machine-")
        event = MACHINE.events.decode(stored.type, stored.schema_version, stored.data)
        if isinstance(event, ReturnClaimed):
            self.pending_claims[machine_id] = (event.return_request_id, self.clock())
        elif self.pending_claims.get(machine_id, ("",))[0] == event.return_request_id:
            del self.pending_claims[machine_id]

    async def _release_stale_claims(self) -> None:
        """Release claims by return requests that never opened (a failure between the two)."""
        cutoff = self.clock() - ORPHAN_AGE
        for machine_id, (request_id, claimed_at) in list(self.pending_claims.items()):
            if claimed_at < cutoff and request_id not in self.requests:
                log.warning(
                    "releasing %s, claimed by %s, which never opened", machine_id, request_id
                )
                await self.runtime.get(MACHINE, machine_id).execute(
                    ReleaseReturn(request_id), command_id=f"{request_id}/unclaim/{machine_id}"
                )

    def _drive(self, request_id: str) -> None:
        if self._nursery is not None and request_id not in self._driving:
            self._driving.add(request_id)
            self._nursery.start_soon(self._see_through, request_id)

    async def _see_through(self, request_id: str) -> None:
        # The driver's provider calls and events belong to the call that
        # opened the request, so they carry its correlation id.
        with correlation(self.correlation_of.get(request_id) or request_id):
            await self._see_through_correlated(request_id)

    async def _see_through_correlated(self, request_id: str) -> None:
        request = self.runtime.get(REQUEST, request_id)
        records_checked = False  # machine records may lag their request (a failed step)
        try:
            while True:
                try:
                    if request_id in self._unrecorded:
                        await self._record_unrecorded(request_id)
                    state = await request.state()
                    if not records_checked and state.kind == "acquire":
                        machines = state.machines.values()
                        await self._record_launches(request_id, state.template_id, machines)
                        records_checked = True
                    if state.settled:
                        await self._settle_capacity(state)
                        return
                    try:
                        await self._step(request_id, state)
                    except PermanentProviderError as refusal:
                        await request.execute(RecordFailure(str(refusal)))
                        continue
                    except (ProviderError, CircuitOpen, trio.TooSlowError) as trouble:
                        log.warning(
                            "request %s: the provider is in trouble: %s", request_id, trouble
                        )
                    await request.execute(CheckDeadline(self.clock()))
                    if (await request.state()).settled:
                        continue
                except (RuntimeFault, ProviderError, trio.TooSlowError) as trouble:
                    # The journal, an aggregate or the cloud failed this step; every
                    # step is idempotent, so the next pass simply does it again.
                    log.warning("request %s: will try again: %s", request_id, trouble)
                    records_checked = False
                    await trio.sleep(self.settings.poll_interval)
                    continue
                await trio.sleep(self._pause(state))
        finally:
            self._driving.discard(request_id)

    def _pause(self, state: Request) -> float:
        left = state.deadline - self.clock()
        return max(0.0, min(self.settings.poll_interval, left if math.isfinite(left) else math.inf))

    async def _step(self, request_id: str, state: Request) -> None:
        request = self.runtime.get(REQUEST, request_id)
        if state.kind == "acquire" and not state.launches_final:
            template = self.templates.get(state.template_id)
            if template is None:
                await request.execute(
                    RecordFailure(f"template {state.template_id!r} is no longer configured")
                )
                return
            provisioned = await self.gateway.provision(request_id, template, state.count)
            # The request first: it is what settles, and what terminates machines
            # it never delivered, so it must learn of every machine the cloud made,
            # even if it settled meanwhile (kept here until it is recorded).
            self._unrecorded[request_id] = provisioned
            await self._record_unrecorded(request_id)
            await self._record_launches(request_id, state.template_id, provisioned.machines)
            return
        goal = "running" if state.kind == "acquire" else "terminated"
        waiting = [m.machine_id for m in state.machines.values() if m.state not in (goal, "failed")]
        if not waiting:
            return
        if state.kind == "return":
            await self.gateway.terminate(waiting)
        changes = await self.gateway.describe(waiting)
        if changes:
            for change in changes:
                await self.runtime.get(MACHINE, change.machine_id).execute(
                    RecordMachineState(change.state)
                )
            await request.execute(RecordStates(tuple(changes)))

    async def _record_unrecorded(self, request_id: str) -> None:
        provisioned = self._unrecorded.get(request_id)
        if provisioned is not None:
            await self.runtime.get(REQUEST, request_id).execute(
                RecordLaunched(machines=provisioned.machines, final=provisioned.final)
            )
            del self._unrecorded[request_id]

    async def _record_launches(
        self, request_id: str, template_id: str, machines: Iterable[Machine]
    ) -> None:
        """Give each machine its own record (idempotent), which returns need."""
        for machine in machines:
            await self.runtime.get(MACHINE, machine.machine_id).execute(
                RecordLaunch(request_id=request_id, template_id=template_id, name=machine.name),
                command_id=f"{request_id}/launch/{machine.machine_id}",
            )

    async def _settle_capacity(self, state: Request) -> None:
        if state.kind == "acquire":
            # Machines still booting when the request gave up (a timeout) were never
            # delivered, so Host Factory will never return them: hostsmith does.
            undelivered = [m.machine_id for m in state.machines.values() if m.state == "pending"]
            if undelivered:
                await self.gateway.terminate(undelivered)
            running = sum(1 for m in state.machines.values() if m.state == "running")
            await self._release(state.request_id, state.template_id, state.count - running)
            return
        per_owner: dict[str, int] = {}
        for machine in state.machines.values():
            owner = self.owner_of_machine.get(machine.machine_id)
            if owner is not None and machine.state == "terminated":
                per_owner[owner] = per_owner.get(owner, 0) + 1
        for owner, count in per_owner.items():
            owner_state = self.requests.get(owner)
            if owner_state is not None:
                await self._release(owner, owner_state.template_id, count, by=state.request_id)
        # A return that gave up (a timeout) lets go of the machines it did not
        # see terminate, so that a later return can take them and finish the job.
        unfinished = [m for m in state.machines.values() if m.state != "terminated"]
        if unfinished:
            await self._unclaim(state.request_id, unfinished)

    async def _release(self, request_id: str, template_id: str, count: int, by: str = "") -> None:
        if count > 0:
            await self.runtime.get(CAPACITY, template_id).execute(
                Release(request_id, count), command_id=f"{request_id}/release/{by or 'settle'}"
            )
