"""Host Factory requests: states, settlement and the Host Factory view, from pure functions."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec
import pytest

from hostsmith.actors.hostfactory import (
    REQUEST,
    CheckDeadline,
    Machine,
    OpenAcquire,
    OpenReturn,
    RecordFailure,
    RecordLaunched,
    RecordStates,
    ReplaceStuck,
    Request,
    StateChange,
    to_host_factory,
)
from hostsmith.runtime import Rejected, open_runtime
from hostsmith.runtime.testing import MemoryStore

decide, evolve = REQUEST.decide, REQUEST.evolve


def run(commands: Iterable[Any], request_id: str = "req-1") -> Request:
    """Decide and evolve each command in turn, as the aggregate's actor does."""
    state = Request(request_id=request_id)
    for command in commands:
        for event in decide(state, command):
            state = evolve(state, event)
    return state


def machine(n: int, state: str = "pending", message: str = "") -> Machine:
    return Machine(
        machine_id=f"i-{n}",
        name=f"ip-10-0-0-{n}.sim.internal",
        state=state,  # type: ignore[arg-type]
        private_ip=f"10.0.0.{n}",
        launchtime=1_700_000_000 + n,
        message=message,
    )


OPEN = OpenAcquire(template_id="T", count=3, deadline=1600.0, opened_at=1000.0)


def test_an_acquire_is_running_until_every_machine_runs_then_complete() -> None:
    launched = run([OPEN, RecordLaunched(machines=(machine(1), machine(2), machine(3)))])
    assert to_host_factory(launched).status == "running"
    assert [m.result for m in to_host_factory(launched).machines] == ["executing"] * 3

    done = run(
        [
            OPEN,
            RecordLaunched(machines=(machine(1), machine(2), machine(3))),
            RecordStates((StateChange("i-1", "running"), StateChange("i-2", "running"))),
            RecordStates((StateChange("i-3", "running"),)),
        ]
    )
    view = to_host_factory(done)
    assert done.status == "completed"
    assert view.status == "complete"
    assert msgspec.to_builtins(view.machines[0]) == {  # the wire names, exactly
        "machineId": "i-1",
        "name": "ip-10-0-0-1.sim.internal",
        "result": "succeed",
        "status": "running",
        "privateIpAddress": "10.0.0.1",
        "publicIpAddress": "",
        "launchtime": 1_700_000_001,
        "message": "",
    }


def test_a_partial_fulfilment_settles_with_an_error_and_says_why() -> None:
    some = (machine(1, "running"), machine(2, "failed", "capacity exhausted"))
    waiting = run([OPEN, RecordLaunched(machines=some, final=False)])
    assert waiting.status == "in_progress"  # the provider may still launch more

    state = run([OPEN, RecordLaunched(machines=some, final=True)])
    view = to_host_factory(state)
    assert state.status == "partial"
    assert view.status == "complete_with_error"
    assert view.message == "1 of 3 machines done: capacity exhausted"
    assert [m.result for m in view.machines] == ["succeed", "fail"]
    assert view.machines[1].message == "capacity exhausted"


def test_a_stuck_machine_is_failed_and_replaced_by_a_launch_of_its_own() -> None:
    launched = RecordLaunched(machines=(machine(1, "running"), machine(2, "running"), machine(3)))
    stuck = ReplaceStuck(("i-3",), "never finished booting")
    state = run([OPEN, launched, stuck])
    assert (state.status, state.launch, state.launches_final, state.short) == (
        "in_progress",
        1,
        False,
        1,
    )
    assert state.machines["i-3"].state == "failed"
    # replacing it again (a pass killed half way, run again) changes nothing
    assert decide(state, stuck) == []
    # nor does a look at the cloud taken before it was replaced (the driver's, racing)
    assert decide(state, RecordStates((StateChange("i-3", "pending"),))) == []
    # the first launch's report, retried late, cannot close the replacement launch
    state = run([OPEN, launched, stuck, launched])
    assert (state.status, state.launches_final) == ("in_progress", False)

    replacement = RecordLaunched(machines=(machine(4),), launch=1)
    done = run([OPEN, launched, stuck, replacement, RecordStates((StateChange("i-4", "running"),))])
    view = to_host_factory(done)
    assert done.status == "completed"
    assert view.status == "complete"
    assert {m.machine_id: m.result for m in view.machines} == {
        "i-1": "succeed",
        "i-2": "succeed",
        "i-3": "fail",
        "i-4": "succeed",
    }
    assert view.machines[2].message == "never finished booting"


def test_a_settled_request_replaces_nothing() -> None:
    settled = run([OPEN, RecordFailure("refused")])
    assert decide(settled, ReplaceStuck(("i-1",), "stuck")) == []


def test_a_provider_refusal_fails_the_request_with_its_message() -> None:
    state = run([OPEN, RecordFailure("InvalidAMIID.NotFound: ami-123 does not exist")])
    assert state.status == "failed"
    assert to_host_factory(state).message == "InvalidAMIID.NotFound: ami-123 does not exist"


def test_the_deadline_times_the_request_out_once() -> None:
    early = run(
        [
            OPEN,
            RecordLaunched(machines=(machine(1, "running"),), final=False),
            CheckDeadline(1599.0),
        ]
    )
    assert early.status == "in_progress"
    late = run(
        [
            OPEN,
            RecordLaunched(machines=(machine(1, "running"),), final=False),
            CheckDeadline(1600.0),
        ]
    )
    assert late.status == "timeout"
    assert late.message == "timed out after 600s with 1 of 3 machines done"
    assert decide(late, CheckDeadline(1700.0)) == []


def test_reports_after_settling_are_recorded_but_do_not_change_the_status() -> None:
    state = run(
        [
            OPEN,
            RecordLaunched(machines=(machine(1),), final=False),
            CheckDeadline(2000.0),
            RecordLaunched(machines=(machine(2), machine(3))),
            RecordStates((StateChange("i-2", "running"),)),
        ]
    )
    assert state.status == "timeout"
    assert sorted(state.machines) == ["i-1", "i-2", "i-3"]  # no machine is forgotten


def test_a_return_completes_when_every_machine_is_terminated() -> None:
    returning = OpenReturn(machines=(machine(1), machine(2)), deadline=1600.0, opened_at=1000.0)
    state = run([returning, RecordStates((StateChange("i-1", "shutting-down"),))], "ret-1")
    assert to_host_factory(state).status == "running"
    assert [m.result for m in to_host_factory(state).machines] == ["executing", "executing"]

    state = run(
        [
            returning,
            RecordStates((StateChange("i-1", "terminated"), StateChange("i-2", "terminated"))),
        ],
        "ret-1",
    )
    assert to_host_factory(state).status == "complete"
    assert [m.result for m in to_host_factory(state).machines] == ["succeed", "succeed"]


def test_opening_twice_the_same_way_is_a_retry_and_otherwise_refused() -> None:
    state = run([OPEN])
    assert decide(state, OPEN) == []
    with pytest.raises(Rejected, match=r"^request req-1 exists already$"):
        decide(state, OpenAcquire(template_id="T", count=4, deadline=1.0, opened_at=1.0))


def test_bad_opens_are_refused() -> None:
    with pytest.raises(Rejected, match=r"^machineCount must be at least 1, not 0$"):
        run([OpenAcquire(template_id="T", count=0, deadline=1.0, opened_at=0.0)])
    with pytest.raises(Rejected, match=r"^requestReturnMachines needs at least one machine$"):
        run([OpenReturn(machines=(), deadline=1.0, opened_at=0.0)])


def test_an_unknown_request_is_reported_as_host_factory_expects() -> None:
    assert msgspec.to_builtins(to_host_factory(Request(request_id="req-nope"))) == {
        "requestId": "req-nope",
        "status": "complete_with_error",
        "message": "request req-nope is unknown",
        "machines": [],
    }
    with pytest.raises(Rejected, match=r"^request req-nope is unknown$"):
        decide(Request(request_id="req-nope"), RecordFailure("x"))


async def test_a_request_survives_passivation_with_its_deadline() -> None:
    store = MemoryStore()
    async with open_runtime(store, kinds=[REQUEST]) as runtime:
        await runtime.get(REQUEST, "req-9").execute(OPEN)
    async with open_runtime(store, kinds=[REQUEST]) as runtime:  # a restart: replayed from the log
        request = runtime.get(REQUEST, "req-9")
        assert (await request.state()).deadline == 1600.0
        await request.execute(CheckDeadline(1600.0))
        assert (await request.state()).status == "timeout"
