"""Supervisors: a nursery that restarts its children, and knows when to give up.

A supervisor owns one task group. Each child runs in a cancel scope of its
own inside it (unless it opts out, see `ChildSpec.own_scope`), wrapped so
that a child's exception is caught and judged here rather than tearing the
nursery down. What happens next follows Erlang/OTP,
whose vocabulary is used on purpose:

- *restart type*, per child: `PERMANENT` children are always restarted,
  `TRANSIENT` ones only when they failed, `TEMPORARY` ones never;
- *strategy*, per supervisor: `ONE_FOR_ONE` restarts the failed child only,
  `ONE_FOR_ALL` stops and restarts every child, `REST_FOR_ONE` stops and
  restarts the failed child and every child started after it;
- *restart intensity*: more than `max_restarts` restarts within `within`
  seconds means restarting does not help. The supervisor then stops all its
  children and raises `SupervisorEscalated` to its parent;
- restarts back off exponentially, with jitter from an injectable `Random` so
  that runs are reproducible under a seed;
- shutdown is ordered: children are stopped one at a time in reverse start
  order, each first asked nicely (`ChildSpec.stop`) and cancelled once the
  grace period is over.

Children started with `await supervisor.start(spec)` have run up to their
`task_status.started()`; `start_soon` is for children started from
synchronous code (actor activation).
"""

from __future__ import annotations

import enum
import logging
import random
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.abc import TaskStatus

from hostsmith.runtime import _backend
from hostsmith.runtime._backend import TaskGroupLike
from hostsmith.runtime._errors import SupervisorEscalated

log = logging.getLogger("hostsmith.runtime.supervisor")


class Strategy(enum.Enum):
    ONE_FOR_ONE = "one_for_one"
    ONE_FOR_ALL = "one_for_all"
    REST_FOR_ONE = "rest_for_one"


class Restart(enum.Enum):
    PERMANENT = "permanent"
    TRANSIENT = "transient"
    TEMPORARY = "temporary"


ChildRun = Callable[[Any], Awaitable[None]]
"""Runs the child; called with a task status whose `started()` it may call."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChildSpec:
    """How to run, restart and stop one child."""

    name: str
    run: ChildRun
    restart: Restart = Restart.PERMANENT
    stop: Callable[[], None] | None = None
    """Asks the child to finish on its own; it is cancelled after the grace period."""
    own_scope: bool = True
    """Run the child in a cancel scope of its own, so that it can be cancelled
    alone. The scope and trio's bookkeeping for it cost about 800 bytes, which
    matters for the hundred thousand aggregate actors of one registry; those
    always end when asked (their mailbox closes), so they set this False. A
    child without a scope is never cancelled alone: stopping it waits until it
    ends, and at shutdown one that outlives its grace period is cancelled with
    the whole supervisor."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RestartPolicy:
    strategy: Strategy = Strategy.ONE_FOR_ONE
    max_restarts: int = 3
    within: float = 5.0
    backoff_initial: float = 0.01
    backoff_max: float = 1.0
    jitter: float = 0.25
    grace: float = 5.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Delay before the `attempt`-th restart within the intensity window (1-based)."""
        delay = min(self.backoff_max, self.backoff_initial * 2.0 ** (attempt - 1))
        return delay * (1 + self.jitter * (2 * rng.random() - 1))


class _Child:
    __slots__ = ("_done", "finished", "scope", "spec", "stopping")

    def __init__(self, spec: ChildSpec) -> None:
        self.spec = spec
        self.scope = anyio.CancelScope() if spec.own_scope else None
        self.finished = False
        self._done: anyio.Event | None = None  # made only when someone waits
        # Set when the supervisor itself stops the child: its exit is then
        # expected and must not count as a failure or trigger a restart.
        self.stopping = False

    def mark_finished(self) -> None:
        self.finished = True
        if self._done is not None:
            self._done.set()

    async def wait_finished(self) -> None:
        if not self.finished:
            if self._done is None:
                self._done = anyio.Event()
            await self._done.wait()


class Supervisor:
    def __init__(
        self,
        name: str,
        nursery: TaskGroupLike,
        policy: RestartPolicy,
        rng: random.Random,
    ) -> None:
        self.name = name
        self.policy = policy
        self.restarts = 0
        self._nursery = nursery
        self._rng = rng
        # Insertion order is start order; a restarted child keeps its place.
        self._children: dict[str, _Child] = {}
        self._recent_restarts: deque[float] = deque()
        self._restart_lock = anyio.Lock()
        self._closing = False

    @property
    def children(self) -> list[str]:
        return list(self._children)

    def __len__(self) -> int:
        return len(self._children)

    async def start(self, spec: ChildSpec) -> Any:
        """Start a child and wait until it reports `task_status.started(value)`.

        A child that fails before reporting is handled like any failure (see
        the restart policy); `start` then returns None.
        """
        child = self._register(spec)
        return await self._nursery.start(self._run, child)

    def start_soon(self, spec: ChildSpec) -> None:
        """Start a child from synchronous code; it runs at the next scheduling point."""
        self._nursery.start_soon(self._run, self._register(spec), name=spec.name)

    def _register(self, spec: ChildSpec) -> _Child:
        if self._closing:
            raise RuntimeError(f"supervisor {self.name!r} is shutting down")
        if spec.name in self._children:
            raise ValueError(f"supervisor {self.name!r} already has a child named {spec.name!r}")
        child = self._children[spec.name] = _Child(spec)
        return child

    async def stop_child(self, name: str) -> None:
        """Stop one child for good (it is not restarted)."""
        child = self._children.get(name)
        if child is not None:
            await self._stop(child)
            self._children.pop(name, None)

    async def shutdown(self) -> None:
        """Stop every child, newest first, each within the grace period."""
        self._closing = True
        for child in reversed(list(self._children.values())):
            await self._stop(child)
        self._children.clear()

    async def _stop(self, child: _Child) -> None:
        child.stopping = True
        if child.spec.stop is not None:
            child.spec.stop()
            with anyio.move_on_after(self.policy.grace):
                await child.wait_finished()
        if child.scope is not None:
            child.scope.cancel()
        elif self._closing and not child.finished:
            log.warning(
                "%s: %s did not stop within %ss; it is cancelled with the supervisor",
                self.name,
                child.spec.name,
                self.policy.grace,
            )
            return
        await child.wait_finished()

    async def _run(
        self, child: _Child, task_status: TaskStatus[Any] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        failure: Exception | None = None
        status = _StartedOnce(task_status)
        with child.scope or _NO_SCOPE:
            try:
                await child.spec.run(status)
            except Exception as exc:
                failure = exc
        # A child that failed (or returned) before it started still counts as
        # started: its fate is now the restart policy's, not the starter's.
        status.started()
        child.mark_finished()
        if child.stopping or self._children.get(child.spec.name) is not child:
            return
        restart = child.spec.restart
        if restart is Restart.TEMPORARY or (restart is Restart.TRANSIENT and failure is None):
            del self._children[child.spec.name]
            if failure is not None:
                log.warning(
                    "%s: temporary child %s failed: %r", self.name, child.spec.name, failure
                )
            return
        await self._restart(child, failure)

    async def _restart(self, failed: _Child, failure: Exception | None) -> None:
        now = _backend.LOW.now()
        window = self._recent_restarts
        while window and window[0] <= now - self.policy.within:
            window.popleft()
        if len(window) >= self.policy.max_restarts:
            log.error(
                "%s: child %s failed again (%r); restart intensity exceeded, escalating",
                self.name,
                failed.spec.name,
                failure,
            )
            escalation = SupervisorEscalated(
                self.name, failed.spec.name, self.policy.max_restarts, self.policy.within
            )
            raise escalation from failure
        window.append(now)
        self.restarts += 1
        log.warning("%s: restarting %s after %r", self.name, failed.spec.name, failure)
        delay = self.policy.backoff(len(window), self._rng)
        if self.policy.strategy is Strategy.ONE_FOR_ONE:
            await anyio.sleep(delay)
            await self._relaunch([failed])
            return
        # Stopping and restarting a group must not interleave with another
        # group restart, or a child could be started twice.
        async with self._restart_lock:
            group = self._affected(failed)
            for sibling in reversed(group):
                if sibling is not failed:
                    await self._stop(sibling)
            await anyio.sleep(delay)
            await self._relaunch(group)

    async def _relaunch(self, group: list[_Child]) -> None:
        # One at a time, each up to its `started()`, so that a child can rely
        # on the ones before it, exactly as on the first start.
        for member in group:
            if self._closing:
                return
            fresh = self._children[member.spec.name] = _Child(member.spec)
            await self._nursery.start(self._run, fresh, name=member.spec.name)

    def _affected(self, failed: _Child) -> list[_Child]:
        members = list(self._children.values())
        if self.policy.strategy is Strategy.ONE_FOR_ALL:
            return members
        return members[members.index(failed) :]


_NO_SCOPE = nullcontext()


class _StartedOnce:
    """A task status that forwards the first `started()` and ignores the rest."""

    __slots__ = ("_inner", "_started")

    def __init__(self, inner: TaskStatus[Any]) -> None:
        self._inner = inner
        self._started = False

    def started(self, value: Any = None) -> None:
        if not self._started:
            self._started = True
            self._inner.started(value)


@asynccontextmanager
async def open_supervisor(
    name: str,
    policy: RestartPolicy | None = None,
    *,
    rng: random.Random | None = None,
) -> AsyncIterator[Supervisor]:
    """Open a supervisor; leaving the block shuts its children down in order.

    If a child exceeds the restart intensity the block is cancelled and
    `SupervisorEscalated` is raised from the nursery's exception group.
    """
    try:
        # On whichever library runs it, inside a runtime or on its own.
        with _backend.running_on_this_library() as low:
            async with low.open_task_group() as nursery:
                supervisor = Supervisor(
                    name, nursery, policy or RestartPolicy(), rng or random.Random()
                )
                yield supervisor
                await supervisor.shutdown()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        escalations = group.subgroup(SupervisorEscalated)
        if escalations is not None:
            raise _first_leaf(escalations) from group
        if len(group.exceptions) == 1 and not isinstance(group.exceptions[0], BaseExceptionGroup):
            # A lone failure (usually from the body of the block) is raised as
            # itself, so that callers can catch it by its own type.
            raise group.exceptions[0]  # noqa: B904 - the group is its __context__
        raise


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first: BaseException = group
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    return first
