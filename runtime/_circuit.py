"""A circuit breaker: stop calling what keeps failing, then probe.

A remote dependency that is down should not be hammered by every caller at
once, each waiting out its own timeout. The breaker counts consecutive
failures; past `failure_threshold` it *opens*, and calls fail at once with
`CircuitOpen` (which says when the next probe will be let through). After
`reset_timeout` seconds it is *half-open*: up to `half_open_probes` calls
go through; one success closes it, one failure opens it again for another
`reset_timeout`.

Which exceptions count is the caller's choice (`counts_as_failure`): a
permanent error such as "no such image" says nothing about the service's
health and should not open the circuit; a throttle or a timeout does.

Time comes from the async library's clock, so tests drive it with `autojump_clock`. The
breaker never sleeps; it only looks at the time. State changes are reported
to an optional listener (logs and metrics hook in there).
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

from hostsmith.runtime import _backend
from hostsmith.runtime._errors import RuntimeFault

P = ParamSpec("P")
T = TypeVar("T")


class CircuitState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitOpen(RuntimeFault):
    def __init__(self, name: str, failures: int, retry_in: float) -> None:
        self.name = name
        self.retry_in = retry_in
        super().__init__(
            f"circuit {name!r} is open after {failures} consecutive failures; "
            f"not calling it for another {retry_in:.3g}s"
        )


def _every_exception(_: BaseException) -> bool:
    return True


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
        half_open_probes: int = 1,
        counts_as_failure: Callable[[BaseException], bool] = _every_exception,
        on_change: Callable[[CircuitBreaker, CircuitState], None] | None = None,
    ) -> None:
        if failure_threshold < 1 or half_open_probes < 1 or reset_timeout <= 0:
            raise ValueError(
                "a circuit breaker needs failure_threshold >= 1, half_open_probes >= 1 "
                "and reset_timeout > 0"
            )
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self.half_open_probes = half_open_probes
        self.counts_as_failure = counts_as_failure
        self.on_change = on_change
        self.failures = 0  # consecutive, since the last success
        self.rejected = 0  # calls refused while open
        self._state = CircuitState.CLOSED
        self._opened_at = 0.0
        self._probes = 0  # probes in flight while half-open

    @property
    def state(self) -> CircuitState:
        if (
            self._state is CircuitState.OPEN
            and _backend.LOW.now() >= self._opened_at + self.reset_timeout
        ):
            self._move(CircuitState.HALF_OPEN)
        return self._state

    async def call(
        self, function: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Call `function` through the breaker."""
        with self.guard():
            return await function(*args, **kwargs)

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Wrap one call: refused at once while open, its outcome recorded after."""
        state = self.state
        if state is CircuitState.OPEN or (
            state is CircuitState.HALF_OPEN and self._probes >= self.half_open_probes
        ):
            self.rejected += 1
            retry_in = max(0.0, self._opened_at + self.reset_timeout - _backend.LOW.now())
            raise CircuitOpen(self.name, self.failures, retry_in)
        probing = state is CircuitState.HALF_OPEN
        if probing:
            self._probes += 1
        try:
            yield
        except BaseException as failure:
            if isinstance(failure, Exception) and self.counts_as_failure(failure):
                self._failed()
            elif probing:
                self._probes -= 1  # cancelled or not the service's fault: probe again
                probing = False
            raise
        else:
            self._succeeded()
        finally:
            if probing and self._probes:
                self._probes -= 1

    def _failed(self) -> None:
        self.failures += 1
        if self._state is CircuitState.HALF_OPEN or self.failures >= self.failure_threshold:
            self._opened_at = _backend.LOW.now()
            self._move(CircuitState.OPEN)

    def _succeeded(self) -> None:
        self.failures = 0
        if self._state is not CircuitState.CLOSED:
            self._move(CircuitState.CLOSED)

    def _move(self, state: CircuitState) -> None:
        if state is self._state:
            return
        self._state = state
        if state is not CircuitState.HALF_OPEN:
            self._probes = 0
        if self.on_change is not None:
            self.on_change(self, state)
