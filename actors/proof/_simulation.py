"""Deterministic simulation: the service on virtual time, under faults, replayed from a seed.

`simulate(seed, workdir)` builds the in-process service (runtime, Host
Factory service and its driver) on the `sim` cloud and a chaotic journal
(`FaultyStore` over `MemoryStore`: failed writes, conflicts, lost
acknowledgements, slow batches, and stalls past an ask's timeout). A few
simulated Host Factory clients run their cycle through it while the faults
rain down. Then the journal calms
down, whatever machines are still out are returned, and the run checks what
must hold after any schedule and any fault:

- every acknowledged request id is known to hostsmith and settled;
- every stream's versions run 1, 2, 3, ... with no gap, and event ids are unique;
- no simulated machine was provisioned twice: the cloud holds at most the
  requested count per request, and no machine belongs to two requests;
- every machine is terminated, and all capacity is given back;
- drift (some seeds): launches that never finish booting, in the storm;
  after it, Host Factory's hosts terminated behind hostsmith's back,
  machines and a fleet tagged as ours that no request holds (a lost data
  dir), a maintain fleet that adds machines back after Host Factory got
  its hosts, and another installation's machines in the same cloud. The
  reconciler must find every ghost, orphan, stuck launch, leaked fleet and
  drifted fleet; terminate only orphans and stuck launches (never a host
  of a request, never the neighbour's); replace the stuck launches (every
  request still completes or settles by its deadline); and leave no fleet
  behind. The daemon's own passes run all along, in the storm too.

Why it is deterministic: everything that could vary comes from the seed.
Time is trio's `MockClock` (autojump, so an idle hour costs nothing); the
sim cloud draws from a hash of its seed; the journal's faults, the runtime's
jitter and the minted request ids come from `random.Random` streams named
after the seed; and trio's scheduler is switched to the deterministic,
seeded order it keeps for Hypothesis. The trace is the log itself: each
event's stream, version, type and data, in commit order (event ids,
correlation ids and timestamps differ per process and are left out). Its
digest is the run's fingerprint, so "same seed, same trace" is checked by
comparing two digests, and `hostsmith simulate --seed N` replays any run.
"""

from __future__ import annotations

import hashlib
import math
import pathlib
import random
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import msgspec
import trio
import trio.testing
from trio._core import _run as trio_scheduler  # the scheduler's seeded mode (see above)

from hostsmith.actors.errors import ProviderError
from hostsmith.actors.hostfactory import (
    CAPACITY,
    MACHINE,
    Machine,
    MachineRecord,
    Template,
)
from hostsmith.actors.proof._invariants import (
    check_acknowledged,
    check_cloud,
    check_log,
    drift_found,
    fingerprint_parts,
    read_everything,
    terminated_by_reconciler,
)
from hostsmith.actors.proof.loadtest import (
    CallFailed,
    HostFactoryCall,
    Recorder,
    calls_into,
    host_factory_client,
)
from hostsmith.actors.providers import GatewayPolicy
from hostsmith.actors.providers.sim import SimProvider, SimSettings
from hostsmith.actors.service import (
    Application,
    Config,
    Reconciler,
    ReconcileSettings,
    RequestSettings,
    load_templates,
    open_service,
)
from hostsmith.runtime import RuntimeFault, StoredEvent
from hostsmith.runtime.testing import Chances, FaultyStore, MemoryStore

EPOCH = 1_767_225_600.0  # 2026-01-01, so event times read as dates
CALM_LIMIT = 6 * 3600.0
"""Virtual seconds the calm phase may take to settle everything before that is a failure."""


class Scenario(msgspec.Struct, frozen=True, kw_only=True):
    """What one seed sets up: the workload, the cloud and the journal's faults."""

    seed: int
    clients: int
    cycles: int
    machines: int
    template_id: str
    sim: SimSettings
    chances: dict[str, float]
    drift: Drift

    @classmethod
    def from_seed(cls, seed: int, template_ids: list[str]) -> Scenario:
        draw = random.Random(f"{seed}/scenario")
        return cls(
            seed=seed,
            clients=draw.randint(1, 6),
            cycles=draw.randint(1, 3),
            machines=draw.randint(1, 6),
            template_id=draw.choice(template_ids),
            sim=SimSettings(
                seed=seed,
                latency=draw.choice([0.01, 0.1, 0.5]),
                boot_time=draw.uniform(1, 90),
                shutdown_time=draw.uniform(1, 30),
                capacity=draw.randint(4, 40),
                failure_rate=draw.choice([0.0, 0.05, 0.2]),
                spot_reclaim_rate=draw.choice([0.0, 0.2]),
                spot_lifetime=300.0,
                reclaim_notice=60,
                forget_after=math.inf,  # the checks count every machine ever launched
            ),
            chances={
                "failure": draw.choice([0.0, 0.02, 0.1]),
                "conflict": draw.choice([0.0, 0.05, 0.2]),
                "lost_ack": draw.choice([0.0, 0.02, 0.1]),
                "max_delay": draw.choice([0.0, 0.01, 0.3]),
                "stall": draw.choice([0.0, 0.0, 0.02]),
            },
            # drawn last, so that the seeds' other draws are those they always had
            drift=Drift(
                ghosts=draw.choice([0, 0, 1, 2]),
                orphans=draw.choice([0, 0, 1, 3]),
                neighbours=draw.choice([0, 1, 2]),
                stuck_rate=draw.choice([0.0, 0.0, 0.1]),
                readded=draw.choice([0, 0, 1, 2]),
            ),
        )

    @property
    def cloud(self) -> SimSettings:
        """The simulated cloud's settings, with the drift that happens at launch."""
        return msgspec.structs.replace(self.sim, stuck_rate=self.drift.stuck_rate)


class Drift(msgspec.Struct, frozen=True, kw_only=True):
    """What happens to the cloud behind hostsmith's back, once the storm is over."""

    ghosts: int
    """Running hosts of Host Factory's, terminated in the console."""
    orphans: int
    """Machines tagged as this installation's for a request the log never heard of."""
    neighbours: int
    """Machines of another installation, in the same cloud."""
    stuck_rate: float = 0.0
    """The share of launches that never finish booting (in the storm, too)."""
    readded: int = 0
    """Machines a maintain fleet adds back after Host Factory got its hosts (ORB #76)."""

    @property
    def any(self) -> bool:
        return bool(self.ghosts or self.orphans or self.neighbours or self.readded)


class Outcome(msgspec.Struct, kw_only=True):
    seed: int
    fingerprint: str
    events: int
    acknowledged: int
    failed_calls: int
    injected: dict[str, int]
    virtual_seconds: float
    violations: list[str]

    @property
    def clean(self) -> bool:
        return not self.violations


def repro_command(seed: int) -> str:
    return f"hostsmith simulate --seed {seed}"


def simulate(seed: int, workdir: pathlib.Path) -> Outcome:
    """Run one seed to the end (synchronously: it owns its trio run and clock)."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = Config(
        data_dir=str(workdir),
        requests=RequestSettings(timeout=600.0, poll_interval=2.0, retention=900.0),
        gateway=GatewayPolicy(max_concurrent=4, call_timeout=10.0, attempts=4, reset_timeout=20.0),
        reconcile=ReconcileSettings(
            interval=60.0, terminate_orphans=True, orphan_grace=60.0, pending_timeout=120.0
        ),
    )
    scenario = Scenario.from_seed(seed, sorted(load_templates(config.templates_path)))
    clock = trio.testing.MockClock(autojump_threshold=0)
    with seeded_randomness(seed):
        return trio.run(_simulate, scenario, config, workdir, clock=clock)


@contextmanager
def seeded_randomness(seed: int) -> Iterator[None]:
    """Seed trio's scheduler (in its deterministic mode) and the `random` module
    (stamina draws its retry jitter there), and put both back afterwards."""
    saved = (
        trio_scheduler._ALLOW_DETERMINISTIC_SCHEDULING,
        trio_scheduler._r.getstate(),
        random.getstate(),
    )
    trio_scheduler._ALLOW_DETERMINISTIC_SCHEDULING = True  # type: ignore[misc]
    trio_scheduler._r.seed(f"{seed}/scheduler")
    random.seed(f"{seed}/jitter")
    try:
        yield
    finally:
        trio_scheduler._ALLOW_DETERMINISTIC_SCHEDULING = saved[0]  # type: ignore[misc]
        trio_scheduler._r.setstate(saved[1])
        random.setstate(saved[2])


def _epoch() -> float:
    return EPOCH + trio.current_time()


async def _simulate(scenario: Scenario, config: Config, workdir: pathlib.Path) -> Outcome:
    seed = scenario.seed
    log = MemoryStore()
    journal = FaultyStore(
        log, chaos=(random.Random(f"{seed}/journal"), Chances(**scenario.chances))
    )
    cloud_path = workdir / "sim-cloud.db"
    cloud_path.unlink(missing_ok=True)
    cloud = SimProvider(cloud_path, scenario.cloud, clock=_epoch)
    minted = random.Random(f"{seed}/ids")
    outside: set[str] = set()
    """Launches of machines behind hostsmith's back (drift)."""
    templates = load_templates(config.templates_path)
    templates[MAINTAIN] = _maintain_fleet(templates)
    recorder = Recorder()
    violations: list[str] = []
    try:
        async with open_service(
            config,
            journal,
            cloud,
            templates,
            clock=_epoch,
            rng=random.Random(f"{seed}/runtime"),
            new_request_id=lambda prefix: f"{prefix}-{minted.getrandbits(64):016x}",
        ) as application:
            call = calls_into(application.service)
            async with trio.open_nursery() as clients:
                for _ in range(scenario.clients):
                    clients.start_soon(_client, recorder, call, scenario)
            journal.chaos = None  # the storm is over: now everything must settle
            with trio.move_on_after(CALM_LIMIT) as calm:
                violations += await _drift(application, call, cloud, scenario, outside)
                violations += await _host_factory_quirks(application, call, recorder)
                await _return_leftovers(application, call)
            if calm.cancelled_caught:
                violations.append(f"not settled {CALM_LIMIT:.0f} s after the faults stopped")
            violations += await _check(application, recorder, cloud, log, frozenset(outside))
    except Exception:  # a crash is a finding, reported with its seed
        violations.append("crashed:\n" + traceback.format_exc())
    finally:
        cloud.close()
    events = await read_everything(log)
    return Outcome(
        seed=seed,
        fingerprint=_fingerprint(events),
        events=len(events),
        acknowledged=len(recorder.acknowledged),
        failed_calls=sum(recorder.errors.values()),
        injected=journal.injected,
        virtual_seconds=round(trio.current_time(), 3),
        violations=violations,
    )


async def _client(recorder: Recorder, call: HostFactoryCall, scenario: Scenario) -> None:
    await host_factory_client(
        recorder,
        call,
        template_id=scenario.template_id,
        machines=scenario.machines,
        cycles=scenario.cycles,
        poll_interval=5.0,
        poll_limit=400,
    )


STILL_OUT = frozenset({"running", "shutting-down", "stopping", "stopped"})
LOST = {"name": "ip-10-255-0-1.lost.internal", "machineId": "i-lost-by-the-provider"}
"""A host Host Factory holds that hostsmith never had (or lost with a data dir)."""


async def _host_factory_quirks(
    application: Application, call: HostFactoryCall, recorder: Recorder
) -> list[str]:
    """What a real Host Factory also does, checked once the storm is over.

    It asks about a host hostsmith has no record of (which must be reported
    with gracePeriod 0), returns running hosts together with that lost one
    (the known ones are returned, the lost one named), and repeats that
    return (answered with the first return's id, never refused).
    """
    found: list[str] = []

    async def call_until_answered(command: str, payload: dict[str, Any]) -> dict[str, Any]:
        return await _until_answered(call, command, payload)

    try:
        notices = await call_until_answered("getReturnRequests", {"machines": [LOST]})
        if notices["requests"] != [{"machine": LOST["name"], "gracePeriod": 0}]:
            found.append(f"a lost host was not let go: {notices['requests']}")
        running = [m for m, _ in application.service.machines() if m.state == "running"][:2]
        if not running:
            return found
        held = [{"name": m.name, "machineId": m.machine_id} for m in running]
        first = await call_until_answered("requestReturnMachines", {"machines": [*held, LOST]})
        recorder.acknowledged.append(first["requestId"])
        if LOST["machineId"] not in first["message"]:
            found.append(f"a partial return did not name the lost host: {first['message']}")
        again = await call_until_answered("requestReturnMachines", {"machines": held})
        if again["requestId"] != first["requestId"]:
            found.append(f"a repeated return got {again['requestId']}, not {first['requestId']}")
    except CallFailed as failure:
        found.append(f"Host Factory's quirks were refused after the storm: {failure}")
    return found


NEIGHBOUR = "hs-neighbour"
MAINTAIN = "OnDemand-Maintain-Fleet"
"""A template whose machines a maintain fleet keeps: the drift's own (Host Factory's
clients use the example templates)."""


def _maintain_fleet(templates: dict[str, Template]) -> Template:
    on_demand = next(t for t in templates.values() if t.price_type == "ondemand")
    return msgspec.structs.replace(
        on_demand, template_id=MAINTAIN, provider_api="EC2Fleet", fleet_type="maintain"
    )


async def _until_answered(
    call: HostFactoryCall, command: str, payload: dict[str, Any]
) -> dict[str, Any]:
    """As Host Factory does: a call that failed for a passing reason (a write the storm
    left stalled, a claim not yet opened) is made again; only a refusal is a finding."""
    while True:
        try:
            return await call(command, payload)
        except CallFailed as failure:
            if failure.kind == "refused":
                raise
            await trio.sleep(30)


async def _until_settled(call: HostFactoryCall, request_id: str) -> None:
    """Polled, as Host Factory polls, until the request is no longer running."""
    ask = {"requests": [{"requestId": request_id}]}
    while True:
        status = await _until_answered(call, "getRequestStatus", ask)
        if status["requests"][0]["status"] != "running":
            return
        await trio.sleep(5)


async def _drift(
    application: Application,
    call: HostFactoryCall,
    cloud: SimProvider,
    scenario: Scenario,
    outside: set[str],
) -> list[str]:
    """Drift behind hostsmith's back, a reconcile pass, and what must hold after it."""
    drift = scenario.drift
    if not drift.any:
        return []
    found: list[str] = []
    service = application.service
    template = service.templates[scenario.template_id]
    ghosts: list[Machine] = []  # Host Factory's hosts: running, and no return for them
    for machine, _ in service.machines():
        if machine.state != "running" or len(ghosts) == drift.ghosts:
            continue
        try:
            record: MachineRecord = await application.runtime.get(
                MACHINE, machine.machine_id
            ).state()
        except RuntimeFault:  # a write the storm left stalled: not this one, then
            continue
        if not record.returned_by:
            ghosts.append(machine)
    cloud.terminate_outside([m.machine_id for m in ghosts])
    lost_request = f"req-lost-{scenario.seed}"
    outside.add(lost_request)
    maintain = service.templates[MAINTAIN]
    orphans = cloud.launch_outside(lost_request, maintain, drift.orphans) if drift.orphans else []
    lost_fleets = {g.group_id for g in cloud.fleets() if g.request_id == lost_request}
    readded, drifted = await _fleet_adds_back(call, cloud, drift.readded, outside)
    calm = msgspec.structs.replace(scenario.sim, spot_reclaim_rate=0.0)  # theirs stay up
    neighbour = SimProvider(cloud.path, calm, clock=_epoch, installation_id=NEIGHBOUR)
    try:
        theirs = neighbour.launch_outside("req-neighbour", template, drift.neighbours)
        await trio.sleep(scenario.sim.shutdown_time + 1)  # the ghosts are gone by now
        reconciler = application.reconciler
        await _reconcile_until_done(reconciler)
        await trio.sleep(reconciler.settings.orphan_grace)
        await _reconcile_until_done(reconciler)
        # found by these passes, or by the daemon's own: every finding is in the log
        seen = drift_found(await application.runtime.journal.read("reconcile-sim"))
        missed = [m.machine_id for m in ghosts if ("ghost", m.machine_id) not in seen]
        alive = {m.machine_id for m in cloud.listing() if m.state in ("pending", "running")}
        missed += [m for m in [*orphans, *readded] if ("orphan", m) not in seen and m in alive]
        missed += [f for f in lost_fleets if ("leak", f) not in seen]
        missed += [f for f in drifted if ("fleet", f) not in seen]
        if missed:
            found.append(f"drift not found: {missed}")
        touched = [machine_id for _, machine_id in seen if machine_id in theirs]
        if touched:
            found.append(f"another installation's machines were found as drift: {touched}")
        if any(m.state not in ("pending", "running") for m in neighbour.listing()):
            found.append("another installation's machines were terminated")
        # Host Factory hears of the ghosts at its next getReturnRequests, and returns them
        held = [{"name": m.name, "machineId": m.machine_id} for m in ghosts]
        if held:
            notices = await _until_answered(call, "getReturnRequests", {"machines": held})
            listed = {notice["machine"] for notice in notices["requests"]}
            if listed != {m.name for m in ghosts}:
                found.append(f"ghosts not reported to Host Factory: {held}, listed {listed}")
            returned = await _until_answered(call, "requestReturnMachines", {"machines": held})
            await _until_settled(call, returned["requestId"])
    finally:
        neighbour.close()
    return found


async def _fleet_adds_back(
    call: HostFactoryCall, cloud: SimProvider, count: int, outside: set[str]
) -> tuple[list[str], list[str]]:
    """Host Factory gets hosts of a maintain fleet, then the fleet adds `count` back (its
    target raised behind hostsmith's back); the machines added, and the fleet's id."""
    if not count:
        return [], []
    asked = {"template": {"templateId": MAINTAIN, "machineCount": 2}}
    request_id = (await _until_answered(call, "requestMachines", asked))["requestId"]
    await _until_settled(call, request_id)
    outside.add(f"{request_id}/readded")
    added = cloud.readd_outside(request_id, count)
    fleets = [g.group_id for g in cloud.fleets() if g.request_id == request_id]
    return added, fleets if added else []


async def _reconcile_until_done(reconciler: Reconciler) -> None:
    """A pass, again after a pause if the cloud or the store was in trouble (as the daemon's)."""
    while True:
        try:
            await reconciler.reconcile()
            return
        except (ProviderError, RuntimeFault, trio.TooSlowError):
            await trio.sleep(30)


async def _return_leftovers(application: Application, call: HostFactoryCall) -> None:
    """Return every machine still out, until every request has settled and
    every reservation is given back (orphans are released by the service itself).

    As Host Factory does, a machine whose return gave up before it was
    terminated (it may be shutting down) is returned again."""
    service = application.service
    while True:
        running = [m for m, _ in service.machines() if m.state in STILL_OUT]
        unsettled = [r for r in service.requests() if not r.settled]
        try:
            reserved = [
                (await application.runtime.get(CAPACITY, template_id).state()).reserved
                for template_id in service.templates
            ]
        except RuntimeFault:  # a write stalled in the storm may still hold the ledger up
            reserved = [{"(not known yet)": 1}]
        if not running and not unsettled and not any(reserved):
            return
        for machine in running:
            try:
                await call(
                    "requestReturnMachines",
                    {"machines": [{"name": machine.name, "machineId": machine.machine_id}]},
                )
            except CallFailed:
                pass  # already claimed by a return in flight, or refused: look again later
        await trio.sleep(30)


async def _check(
    application: Application,
    recorder: Recorder,
    cloud: SimProvider,
    log: MemoryStore,
    outside: frozenset[str],
) -> list[str]:
    events = await read_everything(log)
    found = check_acknowledged(events, recorder.acknowledged, settled=True)
    found += check_log(events)
    found += check_cloud(cloud.path, events, now=_epoch(), all_gone=True, outside=outside)
    found += _terminated_only_drift(cloud, events, outside)
    left = [f"{g.group_id} of {g.request_id}" for g in cloud.fleets()]
    if left:
        found.append(f"fleets left behind: {left}")
    for template_id in application.service.templates:
        capacity = await application.runtime.get(CAPACITY, template_id).state()
        if capacity.reserved:
            found.append(f"capacity of {template_id} still reserved: {capacity.reserved}")
    return found


def _terminated_only_drift(
    cloud: SimProvider, events: list[StoredEvent], outside: frozenset[str]
) -> list[str]:
    """Every machine the reconciler terminated, in the storm or after it, was drift: made
    behind hostsmith's back, or a launch that never booted; never a host of a request,
    never another installation's."""
    terminated = terminated_by_reconciler(events)
    launches, stuck = cloud.launches(terminated), cloud.stuck()
    stray = sorted(m for m in terminated if launches.get(m) not in outside and m not in stuck)
    return [f"the reconciler terminated machines that were not drift: {stray}"] if stray else []


def _fingerprint(events: list[StoredEvent]) -> str:
    digest = hashlib.sha256()
    for event in events:
        digest.update(fingerprint_parts(event))
    return digest.hexdigest()[:16]


def run_seeds(seeds: range, workdir: pathlib.Path, *, twice: bool = False) -> Iterator[Outcome]:
    """Simulate each seed in turn; with `twice`, run each again and flag a differing trace."""
    for seed in seeds:
        outcome = simulate(seed, workdir / str(seed))
        if twice:
            again = simulate(seed, workdir / f"{seed}-again")
            if again.fingerprint != outcome.fingerprint:
                outcome.violations.append(
                    f"not deterministic: trace {outcome.fingerprint} then {again.fingerprint}"
                )
        yield outcome
