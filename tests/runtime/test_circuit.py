"""The circuit breaker: open after repeated failures, probe, close again."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from hostsmith.runtime import CircuitBreaker, CircuitOpen, CircuitState


class Outage(Exception):
    pass


class NoSuchImage(Exception):
    pass


class Service:
    """A fake remote service that fails while `down` and counts its calls."""

    def __init__(self) -> None:
        self.down = False
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        await trio.sleep(0.1)
        if self.down:
            raise Outage("service unavailable")
        return "ok"


async def trip(circuit: CircuitBreaker, service: Service) -> None:
    """Fail three calls in a row: enough to open the test breaker."""
    service.down = True
    for _ in range(3):
        with pytest.raises(Outage):
            await circuit.call(service)


def breaker(**options: object) -> CircuitBreaker:
    return CircuitBreaker("cloud", failure_threshold=3, reset_timeout=10.0, **options)  # type: ignore[arg-type]


async def test_repeated_failures_open_the_circuit_and_spare_the_service(
    autojump_clock: trio.testing.MockClock,
) -> None:
    service, circuit = Service(), breaker()
    await trip(circuit, service)
    assert circuit.state is CircuitState.OPEN

    for _ in range(100):
        with pytest.raises(
            CircuitOpen,
            match=r"^circuit 'cloud' is open after 3 consecutive failures; not calling it for another 10s$",
        ):
            await circuit.call(service)
    assert service.calls == 3
    assert circuit.rejected == 100


async def test_after_the_reset_timeout_one_probe_goes_through_and_closes_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    service, changes = Service(), []
    circuit = breaker(on_change=lambda b, state: changes.append((trio.current_time(), state)))
    await trip(circuit, service)
    service.down = False
    await trio.sleep(10)
    assert circuit.state is CircuitState.HALF_OPEN

    assert await circuit.call(service) == "ok"

    assert circuit.state is CircuitState.CLOSED
    assert [state for _, state in changes] == [
        CircuitState.OPEN,
        CircuitState.HALF_OPEN,
        CircuitState.CLOSED,
    ]


async def test_a_failed_probe_opens_it_for_another_period(
    autojump_clock: trio.testing.MockClock,
) -> None:
    service, circuit = Service(), breaker()
    await trip(circuit, service)
    await trio.sleep(10)
    with pytest.raises(Outage):
        await circuit.call(service)
    assert circuit.state is CircuitState.OPEN
    await trio.sleep(9.8)
    assert circuit.state is CircuitState.OPEN
    await trio.sleep(0.2)
    assert circuit.state is CircuitState.HALF_OPEN


async def test_only_as_many_probes_as_allowed_go_through_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    service, circuit = Service(), breaker(half_open_probes=2)
    await trip(circuit, service)
    service.down = False
    await trio.sleep(10)
    outcomes: list[str] = []

    async def attempt() -> None:
        try:
            outcomes.append(await circuit.call(service))
        except CircuitOpen:
            outcomes.append("refused")

    calls_before = service.calls
    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(attempt)
    assert sorted(outcomes) == ["ok", "ok", "refused", "refused", "refused"]
    assert service.calls - calls_before == 2


async def test_errors_that_are_not_the_services_fault_leave_it_closed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    circuit = breaker(counts_as_failure=lambda error: not isinstance(error, NoSuchImage))

    async def bad_request() -> None:
        raise NoSuchImage("ami-123 does not exist")

    for _ in range(10):
        with pytest.raises(NoSuchImage):
            await circuit.call(bad_request)
    assert circuit.state is CircuitState.CLOSED
    assert circuit.failures == 0


async def test_a_success_resets_the_count_of_consecutive_failures(
    autojump_clock: trio.testing.MockClock,
) -> None:
    service, circuit = Service(), breaker()
    for _ in range(5):
        service.down = True
        for _ in range(2):
            with pytest.raises(Outage):
                await circuit.call(service)
        service.down = False
        await circuit.call(service)
    assert circuit.state is CircuitState.CLOSED


def test_nonsense_settings_are_refused() -> None:
    with pytest.raises(ValueError, match=r"failure_threshold >= 1"):
        CircuitBreaker("x", failure_threshold=0)
