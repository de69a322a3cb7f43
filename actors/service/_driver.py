"""The driver: a process manager that sees every open request through on the provider.

The projections name each request as it opens; the driver starts one task
per unsettled request, which provisions (or terminates) through the
provider gateway, records what the cloud reports on the request aggregate,
checks the request's deadline, and settles its capacity once it is done.
Because it learns of requests from the log, a daemon that restarts after a
crash catches up and resumes every request that was not settled;
provisioning is idempotent per request id, so resuming never creates
machines twice.

One step (`step`) is the unit both ways of driving share: the daemon's
tasks take one every `poll_interval`, and a one-shot command (`hostsmith
hf` in process) takes one for each request it is asked about (`advance`).
Every step is idempotent, so a step that failed halfway is simply taken
again.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Sequence

import trio

from hostsmith.actors.errors import PermanentProviderError, ProviderError
from hostsmith.actors.hostfactory import (
    MACHINE,
    REQUEST,
    CheckDeadline,
    Machine,
    RecordFailure,
    RecordLaunch,
    RecordLaunched,
    RecordMachineState,
    RecordStates,
    Request,
    StateChange,
    Template,
)
from hostsmith.actors.providers import Gateway, Provisioned
from hostsmith.actors.service._projections import Projections
from hostsmith.actors.service._settlement import CONCURRENT_CLAIMS, Settlement, each_at_once
from hostsmith.runtime import CircuitOpen, Runtime, RuntimeFault, correlation

log = logging.getLogger("hostsmith.service")

RECORDERS_PER_REQUEST = 32
"""Machine records one request writes at once (a 1,000-machine request, in shared commits)."""


class Driver:
    def __init__(
        self,
        runtime: Runtime,
        gateway: Gateway,
        templates: dict[str, Template],
        projections: Projections,
        settlement: Settlement,
        *,
        poll_interval: float,
        clock: Callable[[], float],
    ) -> None:
        self.runtime = runtime
        self.gateway = gateway
        self.templates = templates
        self.projections = projections
        self.settlement = settlement
        self.poll_interval = poll_interval
        self.clock = clock
        self._nursery: trio.Nursery | None = None
        """Where request tasks run; None for a one-shot command, which only `advance`s."""
        self._driving: set[str] = set()
        """Request ids with a task. Invariant: at most one task per request."""
        self._unrecorded: dict[str, tuple[int, Provisioned]] = {}
        """What the cloud made for a request (and which launch), kept until recorded."""
        self._recording = trio.CapacityLimiter(CONCURRENT_CLAIMS)
        """How a request's machines are recorded: a few at once per request, and at most
        `CONCURRENT_CLAIMS` over every request, so that a burst of hundreds of requests
        records in shared commits without crowding out Host Factory's calls or holding
        a task per machine (a 100,000-host burst's calls waited seconds then)."""

    def start(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery

    def drive(self, request_id: str) -> None:
        """See this request through in a task of its own (once), if the driver has started."""
        if self._nursery is not None and request_id not in self._driving:
            self._driving.add(request_id)
            self._nursery.start_soon(self._see_through, request_id)

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
                await self.step(request_id, state)
                state = await request.state()
            if state.settled:
                await self.settlement.settle(state)

    async def step(self, request_id: str, state: Request) -> bool:
        """One step on an unsettled request: provision or poll, then check its deadline.

        A permanent refusal fails the request; transient trouble is logged and
        left for the next step. True when the request should be looked at
        again at once (it failed, or it is settled now).
        """
        request = self.runtime.get(REQUEST, request_id)
        try:
            await self._provision_or_poll(request_id, state)
        except PermanentProviderError as refusal:
            await request.execute(RecordFailure(str(refusal)))
            return True
        except (ProviderError, CircuitOpen, trio.TooSlowError) as trouble:
            log.warning("request %s: the provider is in trouble: %s", request_id, trouble)
        await request.execute(CheckDeadline(self.clock()))
        after: Request = await request.state()
        return after.settled

    async def _see_through(self, request_id: str) -> None:
        # The driver's provider calls and events belong to the call that
        # opened the request, so they carry its correlation id.
        with correlation(self.projections.correlation_of.get(request_id) or request_id):
            await self._see_through_correlated(request_id)

    async def _see_through_correlated(self, request_id: str) -> None:
        request = self.runtime.get(REQUEST, request_id)
        records_checked = False  # machine records may lag their request (a failed step)
        try:
            while True:
                try:
                    state = await request.state()
                    if request_id in self._unrecorded:
                        await self._record_unrecorded(request_id, state.template_id)
                        state = await request.state()
                    if not records_checked and state.kind == "acquire":
                        machines = state.machines.values()
                        await self._record_launches(request_id, state.template_id, machines)
                        records_checked = True
                    if state.settled:
                        await self.settlement.settle(state)
                        return
                    if await self.step(request_id, state):
                        continue
                except (RuntimeFault, ProviderError, trio.TooSlowError) as trouble:
                    # The journal, an aggregate or the cloud failed this step; every
                    # step is idempotent, so the next pass simply does it again.
                    log.warning("request %s: will try again: %s", request_id, trouble)
                    records_checked = False
                    await trio.sleep(self.poll_interval)
                    continue
                except Exception:
                    # A bug, or a provider that raised outside the error tree: one
                    # request's trouble must not stop the daemon and every other
                    # request with it. Logged in full; the step is tried again.
                    log.exception("request %s: unexpected error; will try again", request_id)
                    records_checked = False
                    await trio.sleep(self.poll_interval)
                    continue
                await trio.sleep(self._pause(state))
        finally:
            self._driving.discard(request_id)

    def _pause(self, state: Request) -> float:
        left = state.deadline - self.clock()
        return max(0.0, min(self.poll_interval, left if math.isfinite(left) else math.inf))

    async def _provision_or_poll(self, request_id: str, state: Request) -> None:
        request = self.runtime.get(REQUEST, request_id)
        if state.kind == "acquire" and not state.launches_final:
            # As the request opened; older requests recorded only its id.
            template = state.template or self.templates.get(state.template_id)
            if template is None:
                await request.execute(
                    RecordFailure(f"template {state.template_id!r} is no longer configured")
                )
                return
            # The first launch asks for them all; a replacement, for those it is short.
            count = state.count if state.launch == 0 else state.short
            provisioned = (
                await self.gateway.provision(request_id, template, count, launch=state.launch)
                if count
                else Provisioned(())
            )
            # The request must learn of every machine the cloud made, even if it
            # settled meanwhile (it terminates what it never delivered): kept here
            # until it is recorded.
            self._unrecorded[request_id] = (state.launch, provisioned)
            await self._record_unrecorded(request_id, state.template_id)
            return
        goal = "running" if state.kind == "acquire" else "terminated"
        waiting = [m.machine_id for m in state.machines.values() if m.state not in (goal, "failed")]
        if not waiting:
            return
        if state.kind == "return":
            await self.gateway.terminate(waiting)
        changes = await self.gateway.describe(waiting)
        if changes:

            async def record(_: int, change: StateChange) -> None:
                await self.runtime.get(MACHINE, change.machine_id).execute(
                    RecordMachineState(change.state)
                )

            await each_at_once(
                record, changes, workers=RECORDERS_PER_REQUEST, shared=self._recording
            )
            await request.execute(RecordStates(tuple(changes)))

    async def _record_unrecorded(self, request_id: str, template_id: str) -> None:
        """Record what the cloud made: each machine's own record, then the request.

        In that order, so that no machine is ever reported to Host Factory
        (through its request) before it has the record a return claims: a
        return sent the moment a request was `complete` was refused as "not
        provisioned by hostsmith" while the records lagged.
        """
        unrecorded = self._unrecorded.get(request_id)
        if unrecorded is not None:
            launch, provisioned = unrecorded
            await self._record_launches(request_id, template_id, provisioned.machines)
            await self.runtime.get(REQUEST, request_id).execute(
                RecordLaunched(
                    machines=provisioned.machines, final=provisioned.final, launch=launch
                )
            )
            del self._unrecorded[request_id]

    async def _record_launches(
        self, request_id: str, template_id: str, machines: Iterable[Machine]
    ) -> None:
        """Give each machine its own record (idempotent), which returns need; together."""

        async def record(_: int, machine: Machine) -> None:
            await self.runtime.get(MACHINE, machine.machine_id).execute(
                RecordLaunch(request_id=request_id, template_id=template_id, name=machine.name),
                command_id=f"{request_id}/launch/{machine.machine_id}",
            )

        await each_at_once(
            record, list(machines), workers=RECORDERS_PER_REQUEST, shared=self._recording
        )
