"""The reconciler: one pass lists the cloud, compares it with the log, and acts on the drift.

`Reconciler.run` is the daemon's: a pass every `reconcile.interval`
seconds, supervised like the request driver (a failed pass is logged and
the next one comes). `Reconciler.reconcile` is one pass, which
`hostsmith reconcile` runs by hand, `dry_run` to act on nothing.

A pass: note the machines the log holds live (only those can be ghosts),
list the cloud (`Gateway.inventory` and `Gateway.groups`: only this
installation's), then read the log from the projections again (after the
listing, so that whatever the listing shows has either its record or an
open request), find the drift (`find_drift`, pure), record it on the
provider's reconcile stream, and act:

- a **ghost** is recorded as terminated on its request and its machine
  record; Host Factory then hears of it through getReturnRequests
  (`gracePeriod` 0) and returns it, which gives its capacity back;
- an **orphan** is reported (a warning, an event) and, with
  `reconcile.terminate_orphans`, terminated once `reconcile.orphan_grace`
  has passed since it was first found (the stream remembers when);
- a **stuck** launch is marked failed on its request, which launches a
  replacement (`ReplaceStuck`), and then terminated;
- a **leak** (a fleet, group or launch template nothing live needs) is
  deleted, its machines left to the orphans' rule;
- **fleet** drift is mended by setting the group's target to what the
  log's live machines add up to, terminating none of them.

Nothing is acted on without its finding recorded first, and every action
is an event after it is done: a pass killed half way leaves findings that
the next pass acts on again, and every action is harmless to repeat (the
provider's terminate, delete and resize are idempotent, and a request
replaces a machine once).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import msgspec
import trio

from hostsmith.actors.errors import ProviderError
from hostsmith.actors.hostfactory import (
    MACHINE,
    RECONCILER,
    REQUEST,
    CloudGroup,
    DriftFound,
    Finding,
    LiveMachine,
    LogView,
    Machine,
    Reconciliation,
    RecordAction,
    RecordFindings,
    RecordMachineState,
    RecordStates,
    ReplaceStuck,
    StateChange,
    find_drift,
)
from hostsmith.actors.providers import Gateway
from hostsmith.actors.service._projections import Projections
from hostsmith.actors.service._settings import ReconcileSettings
from hostsmith.runtime import Runtime, RuntimeFault

log = logging.getLogger("hostsmith.reconcile")

GONE_MESSAGE = "gone from the cloud (found by the reconciler)"
STUCK_MESSAGE = "never finished booting; terminated and replaced"


class Action(msgspec.Struct, frozen=True, kw_only=True):
    kind: str
    resource_id: str
    action: str


class ReconcilePass(msgspec.Struct, kw_only=True):
    """What one pass found, and did (or, in a dry run, would do)."""

    provider: str
    dry_run: bool
    cloud_machines: int
    cloud_groups: int
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
                log.warning("reconcile pass failed; next in %gs: %s", every, trouble)
            except Exception:
                log.exception("reconcile pass failed; next one in %gs", every)

    async def reconcile(self, *, dry_run: bool = False) -> ReconcilePass:
        live_before = frozenset(machine.machine_id for _, machine in self._live_machines())
        machines = await self.gateway.inventory()
        groups = await self.gateway.groups()
        listed_at = self.clock()
        seen = self._log_view(live_before)
        findings = find_drift(
            machines,
            groups,
            seen,
            listed_at=listed_at,
            pending_timeout=self.settings.pending_timeout,
        )
        done = ReconcilePass(
            provider=self.stream_name,
            dry_run=dry_run,
            cloud_machines=len(machines),
            cloud_groups=len(groups),
            live_machines=len(seen.live),
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
                    log.warning("%s %s (%s): %s", new.kind, new.resource_id, new.name, new.detail)
        state: Reconciliation = await stream.state()
        by_id = {group.group_id: group for group in groups}
        for finding in findings:
            action = await self._act(finding, state, by_id, dry_run)
            if action is not None:
                done.actions.append(action)
        return done

    def _log_view(self, live_before: frozenset[str] | None = None) -> LogView:
        """The log's live machines, and its open requests."""
        open_requests = {
            request_id: frozenset(request.machines)
            for request_id, request in self.projections.requests.items()
            if request.kind == "acquire" and not request.settled
        }
        live = {
            machine.machine_id: LiveMachine(
                machine_id=machine.machine_id,
                name=machine.name,
                request_id=request_id,
                launched_at=float(machine.launchtime),
            )
            for request_id, machine in self._live_machines()
        }
        return LogView(live=live, open_requests=open_requests, live_before_listing=live_before)

    def _live_machines(self) -> Iterator[tuple[str, Machine]]:
        """(request id, machine) for each machine the log holds live.

        Live: running, or pending in a request still open. A machine still pending
        when its request settled (a timeout) was never delivered; its settlement
        terminates it, and if a crash cut that short, the cloud's copy is an orphan
        (as the projections hold: such a request is forgotten with its machines)."""
        latest = self.projections.machines
        for request_id, request in self.projections.requests.items():
            if request.kind != "acquire":
                continue
            for machine in request.machines.values():
                news = latest.get(machine.machine_id, machine)
                if news.state == "running" or (news.state == "pending" and not request.settled):
                    yield request_id, machine

    async def _act(
        self,
        finding: Finding,
        state: Reconciliation,
        groups: dict[str, CloudGroup],
        dry_run: bool,
    ) -> Action | None:
        kind, resource_id = finding.kind, finding.resource_id
        if kind == "orphan" and not self._orphan_due(finding, state):
            return None  # reported only: the finding and its warning are the report
        what = f"target set to {finding.count:g}" if kind == "fleet" else _ACTIONS[kind]
        action = Action(kind=kind, resource_id=resource_id, action=what)
        if dry_run:
            return action
        if kind == "ghost":
            gone = StateChange(resource_id, "terminated", GONE_MESSAGE)
            await self.runtime.get(REQUEST, finding.request_id).execute(RecordStates((gone,)))
            await self.runtime.get(MACHINE, resource_id).execute(RecordMachineState("terminated"))
        elif kind == "orphan":
            await self.gateway.terminate([resource_id])
        elif kind == "stuck":
            # The request first (it fails the machine and launches another), then the cloud:
            # killed in between, the next pass finds it stuck again and terminates it.
            await self.runtime.get(REQUEST, finding.request_id).execute(
                ReplaceStuck((resource_id,), f"{STUCK_MESSAGE}: {finding.detail}")
            )
            await self.runtime.get(MACHINE, resource_id).execute(RecordMachineState("failed"))
            await self.gateway.terminate([resource_id])
        elif kind == "leak":
            await self.gateway.delete_group(groups[resource_id])
        else:
            await self.gateway.resize_group(groups[resource_id], finding.count)
        await self._record(action)
        return action

    def _orphan_due(self, finding: Finding, state: Reconciliation) -> bool:
        """Whether an orphan is to be terminated now: if configured, and its grace is over."""
        if not self.settings.terminate_orphans:
            return False
        found = state.open.get(finding.resource_id)
        first_seen = found.first_seen if found is not None else self.clock()
        return self.clock() - first_seen >= self.settings.orphan_grace

    async def _record(self, action: Action) -> None:
        await self.runtime.get(RECONCILER, self.stream_name).execute(
            RecordAction(resource_id=action.resource_id, action=action.action, at=self.clock())
        )
        self.actions_total[action.kind] = self.actions_total.get(action.kind, 0) + 1
        log.warning("%s %s: %s", action.kind, action.resource_id, action.action)


_ACTIONS = {
    "ghost": "recorded terminated",
    "orphan": "terminated",
    "stuck": "terminated, replacement launched",
    "leak": "deleted",
}
