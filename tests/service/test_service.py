"""The Host Factory service end to end in one process, on virtual time and the simulated cloud."""

from __future__ import annotations

import pathlib
from collections.abc import Sequence
from typing import Any, TypeVar

import msgspec
import pytest
import trio
import trio.testing

from hostsmith.actors.errors import HostFactoryError, PermanentProviderError
from hostsmith.actors.hostfactory import (
    CAPACITY,
    MACHINE,
    RECONCILER,
    REQUEST,
    AvailableTemplates,
    MachineRef,
    RequestAccepted,
    RequestStatusEntry,
    RequestStatuses,
    Reserve,
    ReturnRequests,
    Template,
)
from hostsmith.actors.proof import seeded_randomness
from hostsmith.actors.providers import Gateway, GatewayPolicy
from hostsmith.actors.providers.sim import SimProvider, SimSettings
from hostsmith.actors.service import HostFactory, ReadModelSettings, RequestSettings
from hostsmith.runtime import AskTimeout, CircuitState, open_runtime
from hostsmith.runtime.testing import FaultyStore, MemoryStore
from tests.support.hostfactory_shapes import conforms
from tests.support.virtual_time import epoch

T = TypeVar("T")

ATTRIBUTES = {"type": ("String", "X86_64"), "ncpus": ("Numeric", "1"), "nram": ("Numeric", "1024")}
TEMPLATES = {
    "OnDemand": Template(template_id="OnDemand", max_number=100, attributes=ATTRIBUTES),
    "Spot": Template(
        template_id="Spot", max_number=10, attributes=ATTRIBUTES, price_type="spot", fleet_role="r"
    ),
    "Broken": Template(
        template_id="Broken", max_number=5, attributes=ATTRIBUTES, image_id="ami-bad1"
    ),
}


class CheckedHostFactory(HostFactory):
    """The service itself, with every answer checked against Host Factory's shapes on its way out."""

    async def get_available_templates(self) -> AvailableTemplates:
        return checked("getAvailableTemplates", await super().get_available_templates())

    async def request_machines(self, template_id: str, count: int) -> RequestAccepted:
        return checked("requestMachines", await super().request_machines(template_id, count))

    async def request_return_machines(self, machines: Sequence[MachineRef]) -> RequestAccepted:
        return checked("requestReturnMachines", await super().request_return_machines(machines))

    async def get_request_status(self, request_ids: Sequence[str]) -> RequestStatuses:
        return checked("getRequestStatus", await super().get_request_status(request_ids))

    async def get_return_requests(self, machines: Sequence[MachineRef]) -> ReturnRequests:
        return checked("getReturnRequests", await super().get_return_requests(machines))


def checked(command: str, answer: T) -> T:
    conforms(command, msgspec.to_builtins(answer))
    return answer


async def start_service(
    tmp_path: pathlib.Path,
    nursery: trio.Nursery,
    store: MemoryStore | FaultyStore | None = None,
    cloud_class: type[SimProvider] = SimProvider,
    read_models: ReadModelSettings | None = None,
    **sim: Any,
) -> HostFactory:
    runtime_cm = open_runtime(
        store or MemoryStore(), kinds=[CAPACITY, REQUEST, MACHINE, RECONCILER], wall_clock=epoch
    )
    runtime = await nursery_enter(nursery, runtime_cm)
    cloud = cloud_class(tmp_path / "sim.db", SimSettings(**sim), clock=epoch)
    gateway = Gateway(
        cloud, GatewayPolicy(call_timeout=5.0, attempts=6, failure_threshold=5, reset_timeout=30.0)
    )
    service = CheckedHostFactory(
        runtime,
        gateway,
        dict(TEMPLATES),
        RequestSettings(timeout=600, poll_interval=2),
        clock=epoch,
        read_models=read_models,
    )
    await nursery.start(service.run)
    return service


async def nursery_enter(nursery: trio.Nursery, manager: Any) -> Any:
    """Run an async context manager for the nursery's lifetime; return what it yields."""

    async def hold(task_status: trio.TaskStatus[Any]) -> None:
        async with manager as value:
            task_status.started(value)
            await trio.sleep_forever()

    return await nursery.start(hold)


async def acquired(service: HostFactory, template_id: str, count: int) -> list[MachineRef]:
    """Machines of a completed acquire request, as Host Factory names them back."""
    asked = await service.request_machines(template_id, count)
    done = await wait_for_status(service, asked.request_id, "complete")
    return [MachineRef(m.name, m.machine_id) for m in done.machines]


async def wait_for_status(
    service: HostFactory, request_id: str, status: str, limit: float = 3600
) -> RequestStatusEntry:
    with trio.fail_after(limit):
        while True:
            (entry,) = (await service.get_request_status([request_id])).requests
            if entry.status == status:
                return entry
            await trio.sleep(1)


async def test_acquire_and_return_three_machines(tmp_path, nursery_, autojump_clock) -> None:  # type: ignore[no-untyped-def]
    service = await start_service(tmp_path, nursery_)
    asked = await service.request_machines("OnDemand", 3)
    assert asked.message == "Request VM success."
    assert asked.request_id.startswith("req-")

    done = await wait_for_status(service, asked.request_id, "complete")
    assert [m.result for m in done.machines] == ["succeed"] * 3
    assert all(m.name.endswith(".sim.internal") and m.private_ip_address for m in done.machines)
    templates = {t.template_id: t for t in (await service.get_available_templates()).templates}
    assert templates["OnDemand"].available_number == 97

    returned = await service.request_return_machines(
        [MachineRef(m.name, m.machine_id) for m in done.machines]
    )
    assert returned.request_id.startswith("ret-")
    finished = await wait_for_status(service, returned.request_id, "complete")
    assert [m.result for m in finished.machines] == ["succeed"] * 3
    await trio.testing.wait_all_tasks_blocked()
    capacity = await service.runtime.get(CAPACITY, "OnDemand").state()
    assert (capacity.reserved, capacity.in_use) == ({}, 0)


async def test_an_unknown_request_id_gets_its_own_error_entry(
    tmp_path, nursery_, autojump_clock
) -> None:  # type: ignore[no-untyped-def]
    service = await start_service(tmp_path, nursery_)
    answer = await service.get_request_status(["req-nope", "garbage"])
    assert [(r.request_id, r.status, r.message) for r in answer.requests] == [
        ("req-nope", "complete_with_error", "request req-nope is unknown"),
        ("garbage", "complete_with_error", "request garbage is unknown"),
    ]


async def test_max_number_holds_under_200_racing_requests(
    tmp_path, nursery_, autojump_clock
) -> None:  # type: ignore[no-untyped-def]
    service = await start_service(tmp_path, nursery_)
    granted, refused = [], []

    async def ask() -> None:
        try:
            granted.append((await service.request_machines("Spot", 1)).request_id)
        except HostFactoryError as refusal:
            refused.append(str(refusal))

    async with trio.open_nursery() as racers:
        for _ in range(200):
            racers.start_soon(ask)
    assert len(granted) == 10
    assert set(refused) == {"template Spot has 0 of 10 machines available; cannot provision 1"}


async def test_every_request_completes_at_a_30_percent_transient_failure_rate(
    tmp_path, nursery_, autojump_clock
) -> None:  # type: ignore[no-untyped-def]
    service = await start_service(tmp_path, nursery_, failure_rate=0.3, seed=3)
    ids = [(await service.request_machines("OnDemand", 2)).request_id for _ in range(20)]
    for request_id in ids:
        await wait_for_status(service, request_id, "complete")
    assert service.gateway.retries > 0


async def test_a_permanent_error_fails_the_request_with_the_providers_message(
    tmp_path, nursery_, autojump_clock
) -> None:  # type: ignore[no-untyped-def]
    service = await start_service(tmp_path, nursery_)
    request_id = (await service.request_machines("Broken", 1)).request_id
    entry = await wait_for_status(service, request_id, "complete_with_error")
    assert entry.message == "InvalidAMIID.NotFound: The image id '[ami-bad1]' does not exist"


class BuggyOnce(SimProvider):
    """A provider that raises outside the error tree once: a bug, not a cloud failure."""

    bugs = 1

    async def describe(self, machine_ids: Sequence[str]) -> Any:
        if self.bugs:
            self.bugs -= 1
            raise KeyError("a provider bug")
        return await super().describe(machine_ids)


async def test_a_provider_bug_is_logged_and_neither_stops_the_service_nor_the_request(
    tmp_path, nursery_, autojump_clock, caplog
) -> None:  # type: ignore[no-untyped-def]
    service = await start_service(tmp_path, nursery_, cloud_class=BuggyOnce)
    request_id = (await service.request_machines("OnDemand", 2)).request_id
    entry = await wait_for_status(service, request_id, "complete")
    assert len(entry.machines) == 2
    (logged,) = [r for r in caplog.records if "unexpected error" in r.getMessage()]
    assert logged.getMessage() == f"request {request_id}: unexpected error; will try again"
    assert logged.exc_info is not None
    assert "a provider bug" in str(logged.exc_info[1])


class NoAccess(SimProvider):
    """A cloud whose credentials are gone."""

    async def check_access(self) -> None:
        raise PermanentProviderError("no credentials for this cloud")


async def test_an_acquire_the_cloud_cannot_serve_is_refused_before_anything_is_recorded(
    tmp_path, nursery_, autojump_clock
) -> None:  # type: ignore[no-untyped-def]
    store = MemoryStore()
    service = await start_service(tmp_path, nursery_, store, cloud_class=NoAccess)
    before = await store.read_all(0, 10_000)
    with pytest.raises(PermanentProviderError, match=r"^no credentials for this cloud$"):
        await service.request_machines("OnDemand", 2)
    assert await store.read_all(0, 10_000) == before
    assert (await service.get_available_templates()).templates[0].available_number == 100


async def test_a_sustained_outage_opens_the_circuit_and_it_recovers(
    tmp_path, nursery_, autojump_clock, caplog
) -> None:  # type: ignore[no-untyped-def]
    service = await start_service(tmp_path, nursery_, failure_rate=1.0)
    request_id = (await service.request_machines("OnDemand", 1)).request_id
    await trio.sleep(20)
    assert service.gateway.breaker.state is CircuitState.OPEN
    assert "circuit provider:sim is now open after 5 consecutive failures" in caplog.text
    calls_while_open = service.gateway.provider.calls  # type: ignore[attr-defined]
    await trio.sleep(25)
    assert service.gateway.provider.calls - calls_while_open <= 2  # type: ignore[attr-defined]

    service.gateway.provider.settings = SimSettings()  # type: ignore[attr-defined]  # the outage ends
    await wait_for_status(service, request_id, "complete")
    assert service.gateway.breaker.state is CircuitState.CLOSED


async def test_bad_requests_are_refused_with_a_clear_message(
    tmp_path, nursery_, autojump_clock
) -> None:  # type: ignore[no-untyped-def]
    service = await start_service(tmp_path, nursery_)
    with pytest.raises(
        HostFactoryError, match=r"^unknown templateId 'Nope' \(known: Broken, OnDemand, Spot\)$"
    ):
        await service.request_machines("Nope", 1)
    with pytest.raises(HostFactoryError, match=r"^machineCount must be at least 1, not 0$"):
        await service.request_machines("OnDemand", 0)
    with pytest.raises(
        HostFactoryError,
        match=r"^template OnDemand has 100 of 100 machines available; cannot provision 101$",
    ):
        await service.request_machines("OnDemand", 101)
    with pytest.raises(
        HostFactoryError, match=r"^none of these hosts was provisioned by hostsmith: i-unknown$"
    ):
        await service.request_return_machines([MachineRef("", "i-unknown")])


async def test_a_reclaimed_spot_machine_is_listed_with_its_grace_period(
    tmp_path, nursery_, autojump_clock
) -> None:  # type: ignore[no-untyped-def]
    service = await start_service(
        tmp_path, nursery_, spot_reclaim_rate=1.0, spot_lifetime=400, reclaim_notice=120
    )
    held = await acquired(service, "Spot", 2)
    with trio.fail_after(4000):
        while not (answer := await service.get_return_requests(held)).requests:  # noqa: ASYNC110 - Host Factory polls
            await trio.sleep(5)
    first = answer.requests[0]
    assert first.machine in {m.name for m in held}
    assert 0 <= first.grace_period <= 120


async def test_a_host_held_by_host_factory_that_hostsmith_has_no_record_of_is_let_go(
    tmp_path, nursery_, autojump_clock
) -> None:  # type: ignore[no-untyped-def]
    """IBM's provider reports such a host with gracePeriod 0, so that Host Factory releases it."""
    service = await start_service(tmp_path, nursery_)
    (ours,) = await acquired(service, "OnDemand", 1)
    lost = [MachineRef("ip-10-9-9-9.lost.internal", "i-lost"), MachineRef("only-a-name", "")]
    before = len(await service.runtime.journal.store.read_all(0, 100_000))
    answer = await service.get_return_requests([ours, *lost])
    assert [(r.machine, r.grace_period) for r in answer.requests] == [
        ("ip-10-9-9-9.lost.internal", 0),
        ("only-a-name", 0),
    ]
    assert len(await service.runtime.journal.store.read_all(0, 100_000)) == before  # asks only


async def test_a_request_provisions_from_its_template_as_it_was_when_it_opened(
    tmp_path, nursery_, autojump_clock
) -> None:  # type: ignore[no-untyped-def]
    """An edit of the templates file never breaks a request already open (issue 12)."""
    service = await start_service(tmp_path, nursery_)
    asked = await service.request_machines("OnDemand", 2)
    del service.templates["OnDemand"]  # the admin removed it before the driver's first step
    done = await wait_for_status(service, asked.request_id, "complete")
    assert [m.result for m in done.machines] == ["succeed", "succeed"]


async def test_racing_returns_of_one_machine_both_succeed_and_it_is_returned_once(
    tmp_path, nursery_, autojump_clock
) -> None:  # type: ignore[no-untyped-def]
    """Host Factory may repeat a return; the repeat is answered, never refused (issue 12)."""
    service = await start_service(tmp_path, nursery_)
    first, second = await acquired(service, "OnDemand", 2)
    answers: list[RequestAccepted] = []

    async def give_back(machines: list[MachineRef]) -> None:
        answers.append(await service.request_return_machines(machines))

    async with trio.open_nursery() as racers:
        racers.start_soon(give_back, [first, second])
        racers.start_soon(give_back, [second])
    returned_by: dict[str, list[str]] = {}
    for answer in {a.request_id for a in answers}:
        finished = await wait_for_status(service, answer, "complete")
        for machine in finished.machines:
            returned_by.setdefault(machine.machine_id, []).append(answer)
    # each machine is in exactly one return, and both calls were answered
    assert sorted(returned_by) == sorted([first.machine_id, second.machine_id])
    assert all(len(returns) == 1 for returns in returned_by.values())
    (second_by,) = returned_by[second.machine_id]
    assert any(second_by in a.message or a.request_id == second_by for a in answers)
    capacity = await service.runtime.get(CAPACITY, "OnDemand").state()
    assert capacity.reserved == {}  # both machines' capacity given back, once


async def three_racing_returns(
    service: HostFactory, machines: list[MachineRef]
) -> list[RequestAccepted]:
    """Three returns at once, over overlapping halves of `machines`: their answers."""
    answers: list[RequestAccepted] = []

    async def give_back(chosen: list[MachineRef]) -> None:
        answers.append(await service.request_return_machines(chosen))

    async with trio.open_nursery() as racers:
        racers.start_soon(give_back, machines[:60])
        racers.start_soon(give_back, machines[30:])
        racers.start_soon(give_back, machines[::2])
    return answers


async def test_racing_bulk_returns_give_each_of_many_machines_back_exactly_once(
    tmp_path, nursery_, autojump_clock
) -> None:  # type: ignore[no-untyped-def]
    """A return's claims go out together (issue 14); three racing returns over
    overlapping halves of 90 machines still return each machine once."""
    service = await start_service(tmp_path, nursery_)
    machines = await acquired(service, "OnDemand", 90)
    answers = await three_racing_returns(service, machines)
    returned_by: dict[str, list[str]] = {}
    for answer in {a.request_id for a in answers}:
        finished = await wait_for_status(service, answer, "complete")
        for machine in finished.machines:
            returned_by.setdefault(machine.machine_id, []).append(answer)
    assert sorted(returned_by) == sorted(m.machine_id for m in machines)
    assert all(len(returns) == 1 for returns in returned_by.values())
    capacity = await service.runtime.get(CAPACITY, "OnDemand").state()
    assert capacity.reserved == {}


async def test_a_repeated_return_is_answered_with_the_first_returns_id(
    tmp_path, nursery_, autojump_clock
) -> None:  # type: ignore[no-untyped-def]
    service = await start_service(tmp_path, nursery_)
    held = await acquired(service, "OnDemand", 1)
    first = await service.request_return_machines(held)
    during = await service.request_return_machines(held)  # while the first is under way
    await wait_for_status(service, first.request_id, "complete")
    after = await service.request_return_machines(held)  # and once it is done
    assert during.request_id == after.request_id == first.request_id
    assert after.message == f"Delete VM success. Returned by {first.request_id}: {held[0].name}."


async def test_a_batch_with_unknown_hosts_returns_the_known_ones_and_names_the_rest(
    tmp_path, nursery_, autojump_clock
) -> None:  # type: ignore[no-untyped-def]
    service = await start_service(tmp_path, nursery_)
    (ours,) = await acquired(service, "OnDemand", 1)
    answer = await service.request_return_machines([ours, MachineRef("ghost", "i-ghost")])
    assert (
        answer.message
        == "Delete VM success. Not provisioned by hostsmith, so not returned: i-ghost."
    )
    finished = await wait_for_status(service, answer.request_id, "complete")
    assert [m.machine_id for m in finished.machines] == [ours.machine_id]
    with pytest.raises(
        HostFactoryError, match=r"^none of these hosts was provisioned by hostsmith: i-ghost$"
    ):
        await service.request_return_machines([MachineRef("ghost", "i-ghost")])


async def test_capacity_reserved_by_a_request_that_never_opened_is_given_back_at_restart(
    tmp_path, autojump_clock
) -> None:  # type: ignore[no-untyped-def]
    store = MemoryStore()
    async with open_runtime(store, kinds=[CAPACITY, REQUEST, MACHINE]) as runtime:
        # As if the daemon died between reserving and opening the request.
        await runtime.get(CAPACITY, "Spot").execute(Reserve("req-lost", 4, 10, at=epoch()))
    await trio.sleep(120)
    async with trio.open_nursery() as nursery:
        service = await start_service(tmp_path, nursery, store)
        templates = {t.template_id: t for t in (await service.get_available_templates()).templates}
        assert templates["Spot"].available_number == 10
        nursery.cancel_scope.cancel()


class SlowToOpen(FaultyStore):
    """Takes `delay` seconds over the first append that opens a request, then is quick."""

    def __init__(self, delay: float) -> None:
        super().__init__(MemoryStore())
        self.open_delay = delay

    async def append_batch(self, requests):  # type: ignore[no-untyped-def]
        if self.open_delay and any(r.stream.startswith("request-req-") for r in requests):
            delay, self.open_delay = self.open_delay, 0.0
            await trio.sleep(delay)
        return await super().append_batch(requests)


async def test_an_open_that_times_out_but_lands_is_cancelled_and_gives_capacity_back(
    tmp_path, nursery_, autojump_clock
) -> None:  # type: ignore[no-untyped-def]
    store = SlowToOpen(delay=15.0)  # past the 10 s ask timeout; the write still lands
    service = await start_service(tmp_path, nursery_, store)
    with pytest.raises(AskTimeout):
        await service.request_machines("OnDemand", 3)
    (opened,) = [e.stream for e in await store.read_all(0, 1000) if e.type == "AcquireOpened"]
    request_id = opened.removeprefix("request-")
    entry = await wait_for_status(service, request_id, "complete_with_error")
    assert "failed; cancelled" in entry.message
    await trio.sleep(60)  # the driver settles it and gives back what it held
    capacity = await service.runtime.get(CAPACITY, "OnDemand").state()
    assert (capacity.reserved, capacity.in_use) == ({}, 0)


async def test_a_return_that_times_out_lets_a_later_return_take_its_machines(
    tmp_path, nursery_, autojump_clock
) -> None:  # type: ignore[no-untyped-def]
    service = await start_service(tmp_path, nursery_)
    machines = await acquired(service, "OnDemand", 2)
    service.gateway.provider.settings = SimSettings(failure_rate=1.0)  # type: ignore[attr-defined]
    stuck = (await service.request_return_machines(machines)).request_id
    gave_up = await wait_for_status(service, stuck, "complete_with_error", limit=7200)
    assert "timed out after 600s" in gave_up.message

    service.gateway.provider.settings = SimSettings()  # type: ignore[attr-defined]  # the outage ends
    again = (await service.request_return_machines(machines)).request_id  # not refused
    finished = await wait_for_status(service, again, "complete")
    assert [m.result for m in finished.machines] == ["succeed"] * 2
    await trio.testing.wait_all_tasks_blocked()
    capacity = await service.runtime.get(CAPACITY, "OnDemand").state()
    assert (capacity.reserved, capacity.in_use) == ({}, 0)


async def test_machines_returned_the_moment_their_request_is_complete_are_taken(
    tmp_path, nursery_, autojump_clock
) -> None:  # type: ignore[no-untyped-def]
    """Each machine's record is made before its request reports it: a return sent as
    soon as a request is `complete` was refused as "not provisioned by hostsmith"
    while the records lagged (found by the HTTP load test at 1,000 clients)."""
    store = FaultyStore(delay=0.005)  # each batch takes 5 ms: records take time to land
    service = await start_service(tmp_path, nursery_, store, boot_time=0.0)
    asked = await service.request_machines("OnDemand", 60)
    with trio.fail_after(600):
        while True:  # Host Factory at its most eager: polling at every chance
            (entry,) = (await service.get_request_status([asked.request_id])).requests
            if entry.status == "complete":
                break
            await trio.sleep(0.001)
    returned = await service.request_return_machines(
        [MachineRef(m.name, m.machine_id) for m in entry.machines]
    )
    finished = await wait_for_status(service, returned.request_id, "complete")
    assert len(finished.machines) == 60
    assert [m.result for m in finished.machines] == ["succeed"] * 60


SCHEDULES = 30


def test_racing_bulk_returns_succeed_under_many_seeded_schedules(tmp_path: pathlib.Path) -> None:
    """The racing returns above, under trio's seeded scheduler, one seed per schedule.

    Whether three racing returns settle who takes which machine depends on how
    their claims interleave: with claims that never yield to each other, about
    one schedule in five had all three give up ("safe to send it again"). Each
    schedule here must end with every return answered.
    """

    async def race(folder: pathlib.Path) -> int:
        async with trio.open_nursery() as nursery:
            service = await start_service(folder, nursery)
            machines = await acquired(service, "OnDemand", 90)
            answers = await three_racing_returns(service, machines)
            nursery.cancel_scope.cancel()
        return len(answers)

    answered = {}
    for seed in range(SCHEDULES):
        folder = tmp_path / str(seed)
        folder.mkdir()
        with seeded_randomness(seed):
            answered[seed] = trio.run(
                race, folder, clock=trio.testing.MockClock(autojump_threshold=0)
            )
    assert answered == dict.fromkeys(range(SCHEDULES), 3)
