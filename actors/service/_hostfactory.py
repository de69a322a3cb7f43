"""The Host Factory service: the five calls, over the projections, the driver and settlement.

`HostFactory` answers Host Factory's calls with the wire format's Structs
(`hostsmith.actors.hostfactory`), named as HOSTFACTORY.md names them; the
HTTP API and the `hf` command only encode them. It owns three collaborators, each in a
module of its own: the projections (`_projections`: what the log says about
requests and machines), the driver (`_driver`: seeing each open request
through on the provider) and settlement (`_settlement`: capacity given back,
return claims, and the sweeps for what a crash left half done).

Capacity: a request reserves its machines on the template's capacity
aggregate before it is opened (that is where `maxNumber` is enforced), and
gives back what it did not get when it settles. A return request gives the
returned machines' capacity back to the requests that acquired them.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
import trio

from hostsmith.actors.errors import Refused, TemplateError, Unavailable
from hostsmith.actors.hostfactory import (
    CAPACITY,
    MACHINE,
    REQUEST,
    AvailableTemplates,
    Machine,
    MachineRecord,
    MachineRef,
    OpenAcquire,
    OpenReturn,
    Request,
    RequestAccepted,
    RequestStatuses,
    Reserve,
    ReturnNotice,
    ReturnRequests,
    StateChange,
    Template,
    TemplateEntry,
    to_host_factory,
)
from hostsmith.actors.providers import Gateway, ReclaimNotice
from hostsmith.actors.service._checkpoint import Checkpointer, restore
from hostsmith.actors.service._driver import Driver
from hostsmith.actors.service._projections import Projections
from hostsmith.actors.service._settings import ReadModelSettings, RequestSettings
from hostsmith.actors.service._settlement import ORPHAN_AGE, Settlement
from hostsmith.runtime import Rejected, Runtime, RuntimeFault

log = logging.getLogger("hostsmith.service")


CLAIM_RACE_LIMIT = 5.0
"""Seconds a return waits for a racing return to open or let go of the hosts they share."""
CLAIM_RACE_PAUSE = 0.02
"""Seconds between a return's tries while it races another for the same hosts."""


def _return_notes(unknown: list[str], held: dict[str, list[Machine]]) -> str:
    """What a return's answer says about the hosts it did not take."""
    notes = ""
    if unknown:
        notes += f" Not provisioned by hostsmith, so not returned: {', '.join(unknown)}."
    for holder, machines in held.items():
        names = ", ".join(m.name or m.machine_id for m in machines)
        notes += f" Returned by {holder}: {names}."
    return notes


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
        templates_problem: TemplateError | None = None,
        read_models: ReadModelSettings | None = None,
    ) -> None:
        self.runtime = runtime
        self.gateway = gateway
        self.templates = templates
        self.settings = settings = settings or RequestSettings()
        self.clock = clock
        self.new_request_id = new_request_id
        self.templates_problem = templates_problem
        """Why the templates file could not be read, if it could not: the calls that need
        templates answer with it, and everything else goes on."""
        self.projections = Projections(clock)
        read_models = read_models or ReadModelSettings()
        self.checkpointer = Checkpointer(
            self.projections,
            runtime.journal.store,
            clock,
            every_events=read_models.checkpoint_events,
            every_seconds=read_models.checkpoint_seconds,
        )
        self.settlement = Settlement(runtime, gateway, self.projections, clock)
        self.driver = Driver(
            runtime,
            gateway,
            templates,
            self.projections,
            self.settlement,
            poll_interval=settings.poll_interval,
            clock=clock,
        )

    # -- the five Host Factory calls --------------------------------------------

    async def get_available_templates(self) -> AvailableTemplates:
        self._check_templates_file()
        listed = []
        for template in self.templates.values():
            capacity = await self.runtime.get(CAPACITY, template.template_id).state()
            available = capacity.available(template.limit)
            fields = msgspec.structs.asdict(template)
            listed.append(TemplateEntry(**fields, available_number=available))
        return AvailableTemplates(listed)

    async def request_machines(self, template_id: str, count: int) -> RequestAccepted:
        self._check_templates_file()
        template = self.templates.get(template_id)
        if template is None:
            known = ", ".join(sorted(self.templates)) or "none are configured"
            raise Refused(f"unknown templateId {template_id!r} (known: {known})")
        # Before anything is recorded: no "success" for a request the cloud cannot serve.
        await self.gateway.check_access()
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
                    template=template,
                ),
                command_id=f"{request_id}/open",
            )
        except BaseException:
            with trio.CancelScope(shield=True):
                await self.settlement.abandon(request_id, template_id, count)
            raise
        return RequestAccepted(request_id, "Request VM success.")

    async def request_return_machines(self, machines: Sequence[MachineRef]) -> RequestAccepted:
        """Return what can be returned; a repeat, or a host unknown here, is not an error.

        Hosts hostsmith does not know are named in the answer's message; hosts
        another return holds (in progress, or done) stay with it, and when
        nothing new is left to return the answer is that return's id.
        """
        if not machines:
            raise Refused("requestReturnMachines needs at least one machine")
        found: dict[str, Machine] = {}  # by id, in the order given: a host named twice once
        unknown: list[str] = []
        for ref in machines:
            machine = self.projections.find(ref) or await self._from_its_record(ref)
            if machine is None:
                unknown.append(ref.machine_id or ref.name)
            else:
                found.setdefault(machine.machine_id, machine)
        known = list(found.values())
        if not known:
            raise Refused(f"none of these hosts was provisioned by hostsmith: {', '.join(unknown)}")
        request_id = self.new_request_id("ret")
        known, held, attempt = await self._claim_racing(request_id, known)
        notes = _return_notes(unknown, held)
        if not known:  # every host is being (or was) returned by another request
            return RequestAccepted(next(iter(held)), f"Delete VM success.{notes}")
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
                    await self.settlement.unclaim(request_id, known, attempt)
            raise
        return RequestAccepted(request_id, f"Delete VM success.{notes}")

    async def _claim_racing(
        self, request_id: str, machines: list[Machine]
    ) -> tuple[list[Machine], dict[str, list[Machine]], int]:
        """Claim `machines` for this return, settling a race with returns not yet open.

        Returns those claimed, those other returns hold, and the attempt that
        claimed them (undoing the claims needs its command ids).

        A machine claimed by another return that has not opened is contested:
        that return is in flight (its claims go out together, as ours do) or
        a failure cut it short (the sweep releases its claims later). Neither
        can be named in our answer. So the return with the smaller id lets
        go of everything and tries again shortly, while the other keeps
        its claims and waits for the contested machines to come free or their
        holder to open: two racing returns never wait for each other, and each
        machine ends in exactly one return. A holder that neither opens nor
        lets go within `CLAIM_RACE_LIMIT` seconds makes this call unavailable:
        the caller sends the return again.
        """
        deadline = trio.current_time() + CLAIM_RACE_LIMIT
        attempt = 0
        while True:
            claimed, held = await self.settlement.claim(request_id, machines, attempt)
            unopened = {h: taken for h, taken in held.items() if await self.request(h) is None}
            if not unopened:
                return claimed, held, attempt
            if trio.current_time() >= deadline:
                with trio.CancelScope(shield=True):
                    await self.settlement.unclaim(request_id, claimed, attempt)
                holder, taken = next(iter(unopened.items()))
                names = ", ".join(m.name or m.machine_id for m in taken)
                raise Unavailable(
                    f"requestReturnMachines: {names} is being claimed by {holder}, which has "
                    "not opened yet; it is safe to send the return again"
                )
            if any(holder > request_id for holder in unopened):
                with trio.CancelScope(shield=True):
                    await self.settlement.unclaim(request_id, claimed, attempt)
                attempt += 1  # claimed again below: new command ids, or they would be repeats
            await trio.sleep(CLAIM_RACE_PAUSE)

    async def get_request_status(self, request_ids: Sequence[str]) -> RequestStatuses:
        answers = []
        for request_id in request_ids:
            state = await self.request(request_id)
            answers.append(to_host_factory(state or Request(request_id=request_id)))
        return RequestStatuses(answers)

    async def get_return_requests(self, machines: Sequence[MachineRef]) -> ReturnRequests:
        """Hosts Host Factory holds that the cloud is taking back, or that are gone.

        A host with no live record here (never ours, or lost with a data dir)
        is reported with `gracePeriod` 0 too, as IBM's provider does, so that
        Host Factory lets it go instead of holding it forever.
        """
        found = [(ref, self.projections.find(ref)) for ref in machines]
        held = {m.machine_id: m for _, m in found if m is not None}
        unrecorded = [
            ReturnNotice(ref.name or ref.machine_id, 0)
            for ref, machine in found
            if machine is None and not await self._has_live_record(ref)
        ]
        # The two questions to the cloud are asked together, and not batched with
        # the driver's looks: Host Factory is waiting for this answer.
        found_notices: list[ReclaimNotice] = []
        changes: list[StateChange] = []

        async def ask_notices() -> None:
            found_notices.extend(await self.gateway.reclaim_notices())

        async def ask_states() -> None:
            if held:
                changes.extend(await self.gateway.describe(list(held), share=False))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask_notices)
            nursery.start_soon(ask_states)
        notices = {n.machine_id: n for n in found_notices}
        gone = [
            change.machine_id
            for change in changes
            if change.state == "terminated" and change.machine_id not in notices
        ]
        listed = [
            ReturnNotice(held[machine_id].name, notice.grace_period)
            for machine_id, notice in notices.items()
            if machine_id in held
        ]
        listed += [ReturnNotice(held[machine_id].name, 0) for machine_id in gone]
        return ReturnRequests(listed + unrecorded)

    async def _from_its_record(self, ref: MachineRef) -> Machine | None:
        """A machine the projections forgot with its request (settled, and all its machines
        gone: a host terminated behind hostsmith's back), from its own record, which
        Host Factory may still return."""
        if not ref.machine_id:
            return None
        record: MachineRecord = await self.runtime.get(MACHINE, ref.machine_id).state()
        if not record.request_id:
            return None
        return Machine(machine_id=record.machine_id, name=record.name, state=record.state)

    async def _has_live_record(self, ref: MachineRef) -> bool:
        """Whether the machine's own record (the authority) says it is ours and not gone."""
        if not ref.machine_id:
            return False
        record: MachineRecord = await self.runtime.get(MACHINE, ref.machine_id).state()
        return bool(record.request_id) and record.state not in ("terminated", "failed")

    def _check_templates_file(self) -> None:
        if self.templates_problem is not None:
            raise TemplateError(str(self.templates_problem))

    # -- what the operator's commands ask ---------------------------------------

    async def request(self, request_id: str) -> Request | None:
        """One request as the log has it (from the projections while they hold it)."""
        state = self.projections.requests.get(request_id)
        if state is None and request_id.startswith(("req-", "ret-")):
            state = await self.runtime.get(REQUEST, request_id).state()
        return state if state is not None and state.kind is not None else None

    def requests(self) -> list[Request]:
        """The requests in the projections, newest first."""
        return sorted(self.projections.requests.values(), key=lambda r: r.opened_at, reverse=True)

    def machines(self) -> list[tuple[Machine, str]]:
        """Each machine in the projections, with the acquire request that launched it."""
        owner = self.projections.owner_of_machine
        return [(m, owner.get(m.machine_id, "")) for m in self.projections.machines.values()]

    async def advance(self, request_ids: Sequence[str]) -> None:
        """Take one step on each of these unsettled requests (for one-shot commands)."""
        await self.driver.advance(request_ids)

    def forget_settled(self, cutoff: float) -> int:
        return self.projections.forget_settled(cutoff)

    # -- running ----------------------------------------------------------------

    async def run(
        self, drive: bool = True, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Load the projections from their checkpoint and the log's tail; then, if `drive`,
        see requests through and checkpoint the projections as they move."""
        checkpointer = self.checkpointer
        if await restore(self.projections, self.runtime.journal.store):
            checkpointer.saved = self.projections.position
        async with trio.open_nursery() as nursery:
            subscription = await self.runtime.subscribe(
                "hostfactory-projections",
                self._apply,
                poll_interval=1.0,
                durable=False,
                after=self.projections.position,
            )
            await subscription.caught_up.wait()
            # By the log's times: what settled long ago is forgotten now, not in an hour.
            self.forget_settled(self.clock() - self.settings.retention)
            if drive:
                nursery.start_soon(checkpointer.run)
                self.driver.start(nursery)
                await self.settlement.release_orphans(self.templates)
                for request_id in list(self.projections.unsettled()):
                    self.driver.drive(request_id)
            elif self.projections.position - checkpointer.saved > checkpointer.every_events:
                await checkpointer.save()  # a long tail read: the next call starts after it
            task_status.started()
            while True:
                await trio.sleep(min(self.settings.retention / 4, ORPHAN_AGE))
                self.forget_settled(self.clock() - self.settings.retention)
                if drive:
                    try:
                        await self.settlement.release_orphans(self.templates)
                        await self.settlement.release_stale_claims()
                    except RuntimeFault as trouble:
                        log.warning("could not release orphaned reservations yet: %s", trouble)

    async def _apply(self, events: Sequence[Any]) -> None:
        opened = self.projections.apply(events)
        self.checkpointer.applied()
        for request_id in opened:
            self.driver.drive(request_id)
