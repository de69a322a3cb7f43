"""Supervisors: restart types, strategies, intensity, backoff and ordered shutdown.

All on trio's virtual clock: restarts back off in virtual seconds, so the
tests can state exactly when things happen.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest
import trio
import trio.testing

from hostsmith.runtime import (
    ChildSpec,
    Restart,
    RestartPolicy,
    Strategy,
    SupervisorEscalated,
    open_supervisor,
)


class Boom(Exception):
    pass


class Child:
    """A controllable child: counts starts, fails or exits when told."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log
        self.starts = 0
        self.fail_next = trio.Event()

    async def run(self, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        self.starts += 1
        self.log.append(f"start {self.name}")
        self.fail_next = trio.Event()
        task_status.started()
        try:
            await self.fail_next.wait()
            raise Boom(self.name)
        finally:
            self.log.append(f"stop {self.name}")

    def spec(self, restart: Restart = Restart.PERMANENT) -> ChildSpec:
        return ChildSpec(name=self.name, run=self.run, restart=restart)


def policy(strategy: Strategy = Strategy.ONE_FOR_ONE, **overrides: Any) -> RestartPolicy:
    settings: dict[str, Any] = {
        "max_restarts": 3,
        "within": 10.0,
        "backoff_initial": 0.1,
        "jitter": 0.0,
    }
    settings.update(overrides)
    return RestartPolicy(strategy=strategy, **settings)


async def test_a_failed_child_is_restarted_within_the_intensity(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    child = Child("a", log)
    async with open_supervisor("sup", policy()) as supervisor:
        await supervisor.start(child.spec())
        for _ in range(3):
            child.fail_next.set()
            await trio.sleep(1)
        assert child.starts == 4
        assert supervisor.restarts == 3


async def test_restarts_back_off_exponentially(autojump_clock: trio.testing.MockClock) -> None:
    starts: list[float] = []

    async def flaky(task_status: trio.TaskStatus[Any]) -> None:
        starts.append(trio.current_time())
        task_status.started()
        raise Boom("again")

    with pytest.raises(SupervisorEscalated):
        async with open_supervisor("sup", policy(max_restarts=3)) as supervisor:
            supervisor.start_soon(ChildSpec(name="flaky", run=flaky))
            await trio.sleep_forever()

    gaps = [round(b - a, 6) for a, b in itertools.pairwise(starts)]
    assert gaps == [0.1, 0.2, 0.4]


def test_jitter_comes_from_the_injected_random() -> None:
    rule = RestartPolicy(backoff_initial=1.0, backoff_max=10.0, jitter=0.5)
    first = [rule.backoff(n, random.Random(7)) for n in (1, 2, 3)]
    again = [rule.backoff(n, random.Random(7)) for n in (1, 2, 3)]
    assert first == again
    assert all(0.5 <= d / 2 ** (n - 1) <= 1.5 for n, d in zip((1, 2, 3), first, strict=True))


async def test_beyond_the_intensity_the_supervisor_escalates(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    child, bystander = Child("a", log), Child("b", log)

    with pytest.raises(
        SupervisorEscalated,
        match=r"^supervisor 'sup' gave up: child 'a' failed more than 2 times within 10s$",
    ) as raised:
        async with open_supervisor("sup", policy(max_restarts=2)) as supervisor:
            await supervisor.start(child.spec())
            await supervisor.start(bystander.spec())
            for _ in range(3):
                child.fail_next.set()
                await trio.sleep(1)
            await trio.sleep_forever()

    assert isinstance(raised.value.__cause__, BaseExceptionGroup)
    assert log[-1] in {"stop a", "stop b"}
    assert "stop b" in log


async def test_old_restarts_fall_out_of_the_window(autojump_clock: trio.testing.MockClock) -> None:
    child = Child("a", [])
    async with open_supervisor("sup", policy(max_restarts=1, within=5.0)) as supervisor:
        await supervisor.start(child.spec())
        for _ in range(4):
            child.fail_next.set()
            await trio.sleep(6)  # each failure is alone in its window
        assert child.starts == 5


async def test_transient_children_are_restarted_only_after_failing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    runs = 0

    async def finishes(task_status: trio.TaskStatus[Any]) -> None:
        nonlocal runs
        runs += 1
        task_status.started()

    async with open_supervisor("sup", policy()) as supervisor:
        await supervisor.start(ChildSpec(name="t", run=finishes, restart=Restart.TRANSIENT))
        await trio.sleep(1)
        assert runs == 1
        assert supervisor.children == []


async def test_temporary_children_are_never_restarted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    child = Child("tmp", [])
    async with open_supervisor("sup", policy()) as supervisor:
        await supervisor.start(child.spec(Restart.TEMPORARY))
        child.fail_next.set()
        await trio.sleep(1)
        assert child.starts == 1
        assert supervisor.restarts == 0


async def test_one_for_all_restarts_every_child(autojump_clock: trio.testing.MockClock) -> None:
    log: list[str] = []
    a, b, c = Child("a", log), Child("b", log), Child("c", log)
    async with open_supervisor("sup", policy(Strategy.ONE_FOR_ALL)) as supervisor:
        for child in (a, b, c):
            await supervisor.start(child.spec())
        log.clear()
        b.fail_next.set()
        await trio.sleep(1)
        assert (a.starts, b.starts, c.starts) == (2, 2, 2)
        # siblings stop newest first, then all start again in order
        assert log == ["stop b", "stop c", "stop a", "start a", "start b", "start c"]


async def test_rest_for_one_restarts_the_failed_child_and_those_started_after_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    a, b, c = Child("a", log), Child("b", log), Child("c", log)
    async with open_supervisor("sup", policy(Strategy.REST_FOR_ONE)) as supervisor:
        for child in (a, b, c):
            await supervisor.start(child.spec())
        log.clear()
        b.fail_next.set()
        await trio.sleep(1)
        assert (a.starts, b.starts, c.starts) == (1, 2, 2)
        assert log == ["stop b", "stop c", "start b", "start c"]


async def test_shutdown_is_ordered_and_waits_for_the_grace_period(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []

    def stubborn(name: str, cleanup: float) -> ChildSpec:
        stop_asked = trio.Event()

        async def run(task_status: trio.TaskStatus[Any]) -> None:
            task_status.started()
            await stop_asked.wait()
            log.append(f"{name} asked at {trio.current_time():g}")
            await trio.sleep(cleanup)
            log.append(f"{name} finished at {trio.current_time():g}")

        return ChildSpec(name=name, run=run, stop=stop_asked.set)

    async with open_supervisor("sup", policy(grace=5.0)) as supervisor:
        await supervisor.start(stubborn("first", cleanup=1.0))
        await supervisor.start(stubborn("second", cleanup=60.0))

    # the second (newest) child is asked first, and cancelled at the grace period
    assert log == ["second asked at 0", "first asked at 5", "first finished at 6"]


async def test_a_child_without_its_own_scope_is_waited_for_then_cancelled_at_shutdown(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    stop_asked = trio.Event()

    async def slow_to_stop(task_status: trio.TaskStatus[Any]) -> None:
        task_status.started()
        try:
            await stop_asked.wait()
            await trio.sleep(8.0)
            log.append(f"ended at {trio.current_time():g}")
        except trio.Cancelled:
            log.append(f"cancelled at {trio.current_time():g}")
            raise

    def spec(name: str) -> ChildSpec:
        return ChildSpec(name=name, run=slow_to_stop, stop=stop_asked.set, own_scope=False)

    async with open_supervisor("sup", policy(grace=5.0)) as supervisor:
        await supervisor.start(spec("alone"))
        # Stopping it alone cannot cancel it, so it is waited for past the grace.
        await supervisor.stop_child("alone")
        assert log == ["ended at 8"]
        stop_asked = trio.Event()
        await supervisor.start(spec("at shutdown"))
    # At shutdown it is cancelled with the supervisor once the grace is over.
    assert log == ["ended at 8", "cancelled at 13"]
