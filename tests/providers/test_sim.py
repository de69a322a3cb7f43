"""The simulated cloud: realistic behaviour, and the same behaviour for the same seed."""

from __future__ import annotations

import pathlib

import pytest
import trio
import trio.testing

from hostsmith.actors.errors import PermanentProviderError, TransientProviderError
from hostsmith.actors.hostfactory import Template
from hostsmith.actors.providers.sim import SimProvider, SimSettings

ATTRIBUTES = {"type": ("String", "X86_64"), "ncpus": ("Numeric", "1"), "nram": ("Numeric", "1024")}
ON_DEMAND = Template(
    template_id="OnDemand", max_number=100, attributes=ATTRIBUTES, image_id="ami-1"
)
SPOT = Template(
    template_id="Spot", max_number=100, attributes=ATTRIBUTES, price_type="spot", fleet_role="role"
)
EPOCH = 1_700_000_000.0


def sim(path: pathlib.Path, **settings: object) -> SimProvider:
    return SimProvider(
        path / "cloud.db", SimSettings(**settings), clock=lambda: EPOCH + trio.current_time()
    )  # type: ignore[arg-type]


async def test_machines_boot_then_run_then_shut_down(
    tmp_path, autojump_clock: trio.testing.MockClock
) -> None:  # type: ignore[no-untyped-def]
    cloud = sim(tmp_path, boot_time=3.0, shutdown_time=2.0, latency=0.1)
    provisioned = await cloud.provision("req-1", ON_DEMAND, 2)
    ids = [m.machine_id for m in provisioned.machines]
    assert [m.state for m in provisioned.machines] == ["pending", "pending"]
    assert all(
        m.name.startswith("ip-10-") and m.name.endswith(".sim.internal")
        for m in provisioned.machines
    )
    assert all(
        m.name == f"ip-{m.private_ip.replace('.', '-')}.sim.internal" for m in provisioned.machines
    )

    await trio.sleep(3)
    assert {c.state for c in await cloud.describe(ids)} == {"running"}
    await cloud.terminate(ids)
    assert {c.state for c in await cloud.describe(ids)} == {"shutting-down"}
    await trio.sleep(2)
    assert {c.state for c in await cloud.describe(ids)} == {"terminated"}


async def test_provisioning_is_idempotent_per_request(
    tmp_path, autojump_clock: trio.testing.MockClock
) -> None:  # type: ignore[no-untyped-def]
    cloud = sim(tmp_path)
    first = await cloud.provision("req-1", ON_DEMAND, 3)
    again = await cloud.provision("req-1", ON_DEMAND, 3)
    assert [m.machine_id for m in again.machines] == [m.machine_id for m in first.machines]
    other_process = sim(tmp_path)  # one cloud, seen from another process
    assert [
        m.machine_id for m in (await other_process.provision("req-1", ON_DEMAND, 3)).machines
    ] == [m.machine_id for m in first.machines]


async def test_capacity_runs_out_and_requests_are_partly_fulfilled(
    tmp_path, autojump_clock: trio.testing.MockClock
) -> None:  # type: ignore[no-untyped-def]
    cloud = sim(tmp_path, capacity=5)
    assert len((await cloud.provision("req-1", ON_DEMAND, 3)).machines) == 3
    assert len((await cloud.provision("req-2", ON_DEMAND, 3)).machines) == 2
    with pytest.raises(TransientProviderError, match=r"^InsufficientInstanceCapacity"):
        await cloud.provision("req-3", ON_DEMAND, 1)


async def test_calls_fail_at_the_configured_rate_and_the_same_seed_fails_the_same_calls(
    tmp_path, autojump_clock: trio.testing.MockClock
) -> None:  # type: ignore[no-untyped-def]
    async def failures(cloud: SimProvider) -> list[int]:
        failed = []
        for n in range(200):
            try:
                await cloud.provision(f"req-{n}", ON_DEMAND, 1)
            except TransientProviderError:
                failed.append(n)
        return failed

    first = await failures(sim(tmp_path / "a", failure_rate=0.3, seed=7))
    second = await failures(sim(tmp_path / "b", failure_rate=0.3, seed=7))
    other_seed = await failures(sim(tmp_path / "c", failure_rate=0.3, seed=8))
    assert first == second
    assert first != other_seed
    assert 40 <= len(first) <= 80


async def test_a_bad_image_is_a_permanent_error_with_the_clouds_message(
    tmp_path, autojump_clock: trio.testing.MockClock
) -> None:  # type: ignore[no-untyped-def]
    bad = Template(template_id="Bad", max_number=1, attributes=ATTRIBUTES, image_id="ami-bad0")
    with pytest.raises(
        PermanentProviderError,
        match=r"^InvalidAMIID.NotFound: The image id '\[ami-bad0\]' does not exist$",
    ):
        await sim(tmp_path).provision("req-1", bad, 1)


async def test_spot_machines_are_reclaimed_with_notice(
    tmp_path, autojump_clock: trio.testing.MockClock
) -> None:  # type: ignore[no-untyped-def]
    cloud = sim(
        tmp_path, spot_reclaim_rate=1.0, spot_lifetime=600.0, reclaim_notice=120, boot_time=3.0
    )
    machines = (await cloud.provision("req-1", SPOT, 3)).machines

    seen: dict[str, int] = {}
    for _ in range(70):  # ten-second steps through the machines' whole life
        await trio.sleep(10)
        for notice in await cloud.reclaim_notices():
            seen.setdefault(notice.machine_id, notice.grace_period)
    assert set(seen) == {m.machine_id for m in machines}
    assert all(0 <= grace <= 120 for grace in seen.values())
    states = await cloud.describe([m.machine_id for m in machines])
    assert {c.state for c in states} == {"terminated"}
    assert {c.message for c in states} == {"reclaimed by the cloud (spot interruption)"}


MAINTAIN = Template(
    template_id="Maintain", max_number=100, attributes=ATTRIBUTES, fleet_type="maintain"
)


async def test_each_launch_of_a_request_is_idempotent_on_its_own(
    tmp_path: pathlib.Path, autojump_clock: trio.testing.MockClock
) -> None:
    cloud = sim(tmp_path)
    first = await cloud.provision("req-1", ON_DEMAND, 2)
    replacement = await cloud.provision("req-1", ON_DEMAND, 1, launch=1)
    again = await cloud.provision("req-1", ON_DEMAND, 1, launch=1)
    assert again == replacement
    ids = {m.machine_id for m in (*first.machines, *replacement.machines)}
    assert len(ids) == 3
    # every launch's machines are the request's
    assert {m.request_id for m in await cloud.inventory()} == {"req-1"}


async def test_a_stuck_machine_stays_pending_until_terminated(
    tmp_path: pathlib.Path, autojump_clock: trio.testing.MockClock
) -> None:
    cloud = sim(tmp_path, boot_time=3.0, shutdown_time=2.0)
    stuck, booting = (m.machine_id for m in (await cloud.provision("req-1", ON_DEMAND, 2)).machines)
    cloud.stick_outside([stuck])
    await trio.sleep(3600)
    assert {c.machine_id: c.state for c in await cloud.describe([stuck, booting])} == {
        stuck: "pending",
        booting: "running",
    }
    await cloud.terminate([stuck])
    await trio.sleep(2)
    assert [c.state for c in await cloud.describe([stuck])] == ["terminated"]


async def test_a_maintain_fleet_keeps_its_target_until_the_provider_lowers_it(
    tmp_path: pathlib.Path, autojump_clock: trio.testing.MockClock
) -> None:
    cloud = sim(tmp_path)
    machines = [m.machine_id for m in (await cloud.provision("req-1", MAINTAIN, 3)).machines]
    (fleet,) = await cloud.groups()
    assert (fleet.kind, fleet.request_id, fleet.maintains, fleet.target) == (
        "ec2-fleet",
        "req-1",
        True,
        3.0,
    )
    # a machine returned through the provider: the fleet keeps one fewer
    await cloud.terminate(machines[:1])
    assert [g.target for g in await cloud.groups()] == [2.0]
    # from outside (ORB #76's drift): the fleet adds one back and keeps it
    added = cloud.readd_outside("req-1", 1)
    assert len(added) == 1
    assert [g.target for g in await cloud.groups()] == [3.0]
    assert {m.machine_id for m in await cloud.inventory() if m.state == "pending"} == {
        *machines[1:],
        *added,
    }
    await cloud.resize_group(fleet, 2)
    assert [g.target for g in await cloud.groups()] == [2.0]
    # every machine returned: the fleet is deleted with the last
    await cloud.terminate([*machines[1:], *added])
    assert await cloud.groups() == []


async def test_deleting_a_fleet_leaves_its_machines_running(
    tmp_path: pathlib.Path, autojump_clock: trio.testing.MockClock
) -> None:
    cloud = sim(tmp_path, boot_time=1.0)
    machines = [m.machine_id for m in (await cloud.provision("req-1", MAINTAIN, 2)).machines]
    (fleet,) = await cloud.groups()
    await cloud.delete_group(fleet)
    await trio.sleep(5)
    assert await cloud.groups() == []
    assert {c.state for c in await cloud.describe(machines)} == {"running"}


async def test_a_machine_gone_for_an_hour_is_forgotten_as_ec2_forgets_it(
    tmp_path, autojump_clock: trio.testing.MockClock
) -> None:  # type: ignore[no-untyped-def]
    """Issue 22: every machine the simulated cloud ever ran stayed in its table, and each
    launch and listing read them all; what they cost now follows the machines in play."""
    cloud = sim(tmp_path, boot_time=1.0, shutdown_time=1.0, latency=0.0)
    first = [m.machine_id for m in (await cloud.provision("req-1", ON_DEMAND, 2)).machines]
    await trio.sleep(2)
    await cloud.terminate(first)
    await trio.sleep(1800)
    kept = [m.machine_id for m in (await cloud.provision("req-2", ON_DEMAND, 1)).machines]
    assert {m.machine_id for m in await cloud.inventory()} == {*first, *kept}  # within the hour
    await trio.sleep(1900)
    later = [m.machine_id for m in (await cloud.provision("req-3", ON_DEMAND, 1)).machines]
    assert {m.machine_id for m in await cloud.inventory()} == {*kept, *later}
    assert await cloud.describe(first) == []  # as EC2: an unknown id


async def test_no_two_live_machines_share_an_address_but_a_gone_ones_is_given_again(
    tmp_path, autojump_clock: trio.testing.MockClock
) -> None:  # type: ignore[no-untyped-def]
    cloud = sim(tmp_path, boot_time=1.0, shutdown_time=1.0, latency=0.0, capacity=100_000)
    first = (await cloud.provision("req-1", ON_DEMAND, 1)).machines[0]
    # the same draw again, as a hash collision would give it: the next free address
    assert cloud._free_address(bytes(map(int, first.private_ip.split(".")[1:])), 0.0) != (
        first.private_ip
    )
    await cloud.terminate([first.machine_id])
    await trio.sleep(2)
    assert cloud._free_address(bytes(map(int, first.private_ip.split(".")[1:])), 0.0) == (
        first.private_ip
    )
