"""The reconciler: one pass lists the cloud, compares it with the log, and acts on the drift.

`Reconciler.run` is the daemon's: a pass every `reconcile.interval`
seconds, supervised like the request driver (a failed pass is logged and
the next one comes). `Reconciler.reconcile` is one pass, which
`hostsmith reconcile` runs by hand, `dry_run` to act on nothing.

A pass: list the cloud first (`Gateway.inventory`: only this
installation's machines), then read the log's live machines from the
projections (after the listing, so that a machine the listing shows has
either its record or an open request), find the drift (`find_drift`,
pure), record it on the provider's reconcile stream, and act:

- a **ghost** is recorded as terminated on its request and its machine
  record; Host Factory then hears of it through getReturnRequests
  (`gracePeriod` 0) and returns it, which gives its capacity back;
- an **orphan** is reported (a warning, an event) and, with
  `reconcile.terminate_orphans`, terminated once `reconcile.orphan_grace`
  has passed since it was first found (the stream remembers when).

Nothing is acted on without its finding recorded first, and every action
is an event after it is done: a pass killed half way leaves findings that
the next pass acts on, and terminating a machine twice is harmless (the
provider's terminate is idempotent).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import msgspec
import trio

from hostsmith.actors.errors import ProviderError
from hostsmith.actors.hostfactory import (
    MACHINE,
    RECONCILER,
    REQUEST,
    DriftFound,
    Finding,
    LiveMachine,
    Reconciliation,
    RecordAction,
    RecordFindings,
    RecordMachineState,
    RecordStates,
    StateChange,
    find_drift,
)
from hostsmith.actors.providers import Gateway
from hostsmith.actors.service._projections import Projections
from hostsmith.actors.service._settings import ReconcileSettings
from hostsmith.runtime import Runtime, RuntimeFault

log = logging.getLogger("hostsmith.reconcile")

GONE_MESSAGE = "gone from the cloud (found by the reconciler)"


class Action(msgspec.Struct, frozen=True, kw_only=True):
    kind: str
    machine_id: str
    action: str


class ReconcilePass(msgspec.Struct, kw_only=True):
    """What one pass found, and did (or, in a dry run, would do)."""

    provider: str
    dry_run: bool
    cloud_machines: int
    live_machines: int
    findings: list[Finding]
    actions: list[Action]


class Reconciler:
    def __init__(
        self,
        runtime: Runtime,
        gateway: Gateway,
        projections: Projections,
        settings: ReconcileSettings,
        *,
        clock: Callable[[], float],
    ) -> None:
        self.runtime = runtime
        self.gateway = gateway
        self.projections = projections
        self.settings = settings
        self.clock = clock
        self.findings_total: dict[str, int] = {}
        """Findings recorded since start, by kind (the metrics' counters)."""
        self.actions_total: dict[str, int] = {}
        """Actions taken since start, by kind."""

    @property
    def stream_name(self) -> str:
        return self.gateway.provider.name

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """A pass every `interval` seconds, for as long as the daemon runs."""
        task_status.started()
        if not self.gateway.lists_inventory:
            log.info("the %s provider cannot list its machines: no reconciling", self.stream_name)
            return
        every = self.settings.interval
        while True:
            await trio.sleep(every)
            try:
                await self.reconcile()
            except (RuntimeFault, ProviderError, trio.TooSlowError) as trouble:
                # The cloud or the store in trouble: this pass waits for the next.
                log.warning(
                    "reconcile pass failed; next in %gs: %s", self.settings.interval, trouble
                )
            except Exception:
                log.exception("reconcile pass failed; next one in %gs", every)

    async def reconcile(self, *, dry_run: bool = False) -> ReconcilePass:
        cloud = await self.gateway.inventory()
        listed_at = self.clock()
        live, open_requests = self._live_machines()
        findings = find_drift(cloud, live, open_requests, listed_at)
        done = ReconcilePass(
            provider=self.stream_name,
            dry_run=dry_run,
            cloud_machines=len(cloud),
            live_machines=len(live),
            findings=findings,
            actions=[],
        )
        stream = self.runtime.get(RECONCILER, self.stream_name)
        if not dry_run:
            committed = await stream.execute(RecordFindings(tuple(findings), self.clock()))
            for event in committed.events:
                if isinstance(event, DriftFound):
                    new = event.finding
                    self.findings_total[new.kind] = self.findings_total.get(new.kind, 0) + 1
                    log.warning("%s %s (%s): %s", new.kind, new.machine_id, new.name, new.detail)
        state: Reconciliation = await stream.state()
        for finding in findings:
            action = await self._act(finding, state, dry_run)
            if action is not None:
                done.actions.append(action)
        return done

    def _live_machines(self) -> tuple[dict[str, LiveMachine], set[str]]:
        """The log's live machines (those of acquire requests, not gone), and open requests."""
        live: dict[str, LiveMachine] = {}
        open_requests: set[str] = set()
        latest = self.projections.machine_by_name
        for request_id, request in self.projections.requests.items():
            if not request.settled:
                open_requests.add(request_id)
            if request.kind != "acquire":
                continue
            for machine in request.machines.values():
                news = latest.get(machine.name, machine)
                if news.machine_id == machine.machine_id and news.state in ("pending", "running"):
                    live[machine.machine_id] = LiveMachine(
                        machine_id=machine.machine_id,
                        name=machine.name,
                        request_id=request_id,
                        launched_at=float(machine.launchtime),
                    )
        return live, open_requests

    async def _act(self, finding: Finding, state: Reconciliation, dry_run: bool) -> Action | None:
        if finding.kind == "ghost":
            action = Action(
                kind="ghost", machine_id=finding.machine_id, action="recorded terminated"
            )
            if not dry_run:
                gone = StateChange(finding.machine_id, "terminated", GONE_MESSAGE)
                await self.runtime.get(REQUEST, finding.request_id).execute(RecordStates((gone,)))
                await self.runtime.get(MACHINE, finding.machine_id).execute(
                    RecordMachineState("terminated")
                )
                await self._record(action)
            return action
        if not self.settings.terminate_orphans:
            return None  # reported only: the finding and its warning are the report
        found = state.open.get(finding.machine_id)
        first_seen = found.first_seen if found is not None else self.clock()
        if self.clock() - first_seen < self.settings.orphan_grace:
            return None
        action = Action(kind="orphan", machine_id=finding.machine_id, action="terminated")
        if not dry_run:
            await self.gateway.terminate([finding.machine_id])
            await self._record(action)
        return action

    async def _record(self, action: Action) -> None:
        await self.runtime.get(RECONCILER, self.stream_name).execute(
            RecordAction(machine_id=action.machine_id, action=action.action, at=self.clock())
        )
        self.actions_total[action.kind] = self.actions_total.get(action.kind, 0) + 1
        log.warning("%s %s: %s", action.kind, action.machine_id, action.action)
