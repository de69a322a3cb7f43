"""The reconciler on the simulated cloud, in process, on virtual time.

Drift is made as it happens to a real cloud: a host terminated in the
console (`terminate_outside`), machines launched and then forgotten with a
lost data dir (`launch_outside`), another installation's machines in the
same account. After a pass, the log and the cloud agree, every finding and
action is an event, and nothing of an open request or of another
installation is touched.
"""

from __future__ import annotations

import pathlib

import trio

from hostsmith.actors.hostfactory import RECONCILER
from hostsmith.actors.providers.sim import SimProvider, SimSettings
from hostsmith.actors.service import HostFactory, Reconciler, ReconcileSettings
from hostsmith.runtime.testing import MemoryStore
from tests.service.test_service import TEMPLATES, acquired, start_service, wait_for_status
from tests.support.virtual_time import epoch


def reconciler(service: HostFactory, **settings: object) -> Reconciler:
    return Reconciler(
        service.runtime,
        service.gateway,
        service.projections,
        ReconcileSettings(**settings),  # type: ignore[arg-type]
        clock=epoch,
    )


def cloud_of(service: HostFactory) -> SimProvider:
    provider = service.gateway.provider
    assert isinstance(provider, SimProvider)
    return provider


async def states(service: HostFactory) -> dict[str, str]:
    return {m.machine_id: m.state for m in await cloud_of(service).inventory()}


async def stream_events(store: MemoryStore) -> list[str]:
    return [e.type for e in await store.read_all(0, 100_000) if e.stream == "reconcile-sim"]


async def test_a_host_terminated_behind_hostsmiths_back_is_recorded_and_reported_to_host_factory(
    tmp_path: pathlib.Path, nursery_: trio.Nursery, autojump_clock: trio.abc.Clock
) -> None:
    store = MemoryStore()
    service = await start_service(tmp_path, nursery_, store)
    held = await acquired(service, "OnDemand", 3)
    cloud_of(service).terminate_outside([held[0].machine_id])
    await trio.sleep(120)  # the cloud takes its time to shut it down

    done = await reconciler(service).reconcile()

    assert [(f.kind, f.resource_id) for f in done.findings] == [("ghost", held[0].machine_id)]
    assert [(a.kind, a.action) for a in done.actions] == [("ghost", "recorded terminated")]
    # Host Factory hears of it at its next getReturnRequests, at once
    notices = (await service.get_return_requests(held)).requests
    assert [(n.machine, n.grace_period) for n in notices] == [(held[0].name, 0)]
    assert await stream_events(store) == ["DriftFound", "DriftActedOn"]
    # the log now agrees with the cloud: the next pass finds nothing
    again = await reconciler(service).reconcile()
    assert again.findings == []
    assert again.actions == []


async def test_machines_of_a_lost_data_dir_are_reported_then_terminated_after_their_grace(
    tmp_path: pathlib.Path, nursery_: trio.Nursery, autojump_clock: trio.abc.Clock
) -> None:
    store = MemoryStore()
    service = await start_service(tmp_path, nursery_, store)
    kept = await acquired(service, "OnDemand", 2)
    lost = cloud_of(service).launch_outside("req-from-a-lost-data-dir", TEMPLATES["OnDemand"], 2)

    reporting = reconciler(service)  # the default: report only
    first = await reporting.reconcile()
    assert sorted(f.resource_id for f in first.findings) == sorted(lost)
    assert {f.kind for f in first.findings} == {"orphan"}
    assert first.actions == []
    assert (await reporting.reconcile()).actions == []
    assert await stream_events(store) == ["DriftFound", "DriftFound"]  # found once, not per pass

    terminating = reconciler(service, terminate_orphans=True, orphan_grace=600)
    assert (await terminating.reconcile()).actions == []  # within its grace
    await trio.sleep(600)
    acted = await terminating.reconcile()
    assert sorted(a.resource_id for a in acted.actions) == sorted(lost)
    await trio.sleep(60)
    now = await states(service)
    assert {now[m] for m in lost} == {"terminated"}
    assert {now[m.machine_id] for m in kept} == {"running"}  # Host Factory's hosts untouched
    assert terminating.actions_total == {"orphan": 2}


async def test_a_dry_run_changes_nothing(
    tmp_path: pathlib.Path, nursery_: trio.Nursery, autojump_clock: trio.abc.Clock
) -> None:
    store = MemoryStore()
    service = await start_service(tmp_path, nursery_, store)
    held = await acquired(service, "OnDemand", 1)
    lost = cloud_of(service).launch_outside("req-lost", TEMPLATES["OnDemand"], 1)
    cloud_of(service).terminate_outside([held[0].machine_id])
    await trio.sleep(120)
    before = len(await store.read_all(0, 100_000))

    would = await reconciler(service, terminate_orphans=True, orphan_grace=0).reconcile(
        dry_run=True
    )

    assert sorted(a.action for a in would.actions) == ["recorded terminated", "terminated"]
    assert len(await store.read_all(0, 100_000)) == before
    assert (await states(service))[lost[0]] == "running"


async def test_another_installations_machines_are_never_listed_nor_touched(
    tmp_path: pathlib.Path, nursery_: trio.Nursery, autojump_clock: trio.abc.Clock
) -> None:
    service = await start_service(tmp_path, nursery_)
    neighbour = SimProvider(
        tmp_path / "sim.db", SimSettings(), clock=epoch, installation_id="hs-neighbour"
    )
    try:
        theirs = neighbour.launch_outside("req-theirs", TEMPLATES["OnDemand"], 3)
        done = await reconciler(service, terminate_orphans=True, orphan_grace=0).reconcile()
        assert done.findings == []
        assert done.actions == []
        await trio.sleep(120)  # booted, and not shut down by anyone
        assert {m.machine_id: m.state for m in await neighbour.inventory()} == dict.fromkeys(
            theirs, "running"
        )
    finally:
        neighbour.close()


async def test_a_machine_of_a_request_still_provisioning_is_left_alone(
    tmp_path: pathlib.Path, nursery_: trio.Nursery, autojump_clock: trio.abc.Clock
) -> None:
    service = await start_service(tmp_path, nursery_)
    asked = await service.request_machines("OnDemand", 2)
    # the cloud has launched for it, but the request has not recorded anything yet
    early = cloud_of(service).launch_outside(asked.request_id, TEMPLATES["OnDemand"], 2)
    done = await reconciler(service, terminate_orphans=True, orphan_grace=0).reconcile()
    assert [f for f in done.findings if f.resource_id in early] == []
    state = await service.runtime.get(RECONCILER, "sim").state()
    assert state.open == {}
    # and the request takes them as its own (the cloud's launch is idempotent per request)
    (entry,) = (await service.get_request_status([asked.request_id])).requests
    await trio.sleep(30)
    (entry,) = (await service.get_request_status([asked.request_id])).requests
    assert sorted(m.machine_id for m in entry.machines) == sorted(early)


async def test_a_launch_stuck_pending_is_terminated_and_its_request_completes_with_another(
    tmp_path: pathlib.Path, nursery_: trio.Nursery, autojump_clock: trio.abc.Clock
) -> None:
    store = MemoryStore()
    service = await start_service(tmp_path, nursery_, store, boot_time=60.0)
    asked = await service.request_machines("OnDemand", 3)
    await trio.sleep(10)  # launched and recorded, still booting
    (entry,) = (await service.get_request_status([asked.request_id])).requests
    stuck = entry.machines[0].machine_id
    cloud_of(service).stick_outside([stuck])
    checking = reconciler(service, pending_timeout=180)
    assert [f.kind for f in (await checking.reconcile()).findings] == []  # not yet
    await trio.sleep(180)

    done = await checking.reconcile()

    assert [(f.kind, f.resource_id) for f in done.findings] == [("stuck", stuck)]
    assert [a.action for a in done.actions] == ["terminated, replacement launched"]
    entry = await wait_for_status(service, asked.request_id, "complete")
    results = {m.machine_id: (m.result, m.message) for m in entry.machines}
    assert results.pop(stuck) == (
        "fail",
        f"never finished booting; terminated and replaced: {done.findings[0].detail}",
    )
    assert [result for result, _ in results.values()] == ["succeed"] * 3  # one a replacement
    await trio.sleep(60)
    assert (await states(service))[stuck] == "terminated"
    assert (await checking.reconcile()).findings == []  # the cloud and the log agree
    assert await stream_events(store) == ["DriftFound", "DriftActedOn"]
