"""The runtime: one journal, one registry of aggregates, under one supervisor.

`open_runtime(store, kinds=[...])` is how a program embeds hostsmith's
engine. Inside the `async with` block it can reach any aggregate by id, spawn
plain actors and run subscriptions; leaving the block shuts everything down
in order: subscriptions and plain actors first, then the aggregates (which
finish their queued commands), then the journal (which commits what is
queued). The store itself belongs to the caller, who opened it.

The root supervisor uses `REST_FOR_ONE`: the journal is started first, so if
it ever had to be restarted, everything that writes through it would be
restarted after it. Nothing here is global; two runtimes in one process are
independent.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any, Generic, TypeVar

from anyio.abc import TaskStatus

from hostsmith.runtime import _backend
from hostsmith.runtime._actor import (
    DEFAULT_ASK_TIMEOUT,
    DEFAULT_MAILBOX_CAPACITY,
    Actor,
    ActorRef,
    Mailbox,
    run_actor,
)
from hostsmith.runtime._aggregate import AggregateActor, AggregateKind, Committed, Inspect
from hostsmith.runtime._deadlines import Deadlines
from hostsmith.runtime._envelope import wrap
from hostsmith.runtime._journal import Journal
from hostsmith.runtime._registry import Registry
from hostsmith.runtime._reply import Reply
from hostsmith.runtime._store import EventStore
from hostsmith.runtime._subscription import Handler, Subscription
from hostsmith.runtime._supervisor import (
    ChildSpec,
    Restart,
    RestartPolicy,
    Strategy,
    Supervisor,
    open_supervisor,
)

S = TypeVar("S")
C = TypeVar("C")


class AggregateRef(Generic[S, C]):
    """Typed address of one aggregate: execute commands, inspect state."""

    __slots__ = ("_ref", "_touch")

    def __init__(self, ref: ActorRef, touch: Callable[[float], None]) -> None:
        self._ref = ref
        self._touch = touch

    @property
    def name(self) -> str:
        return self._ref.name

    async def execute(
        self,
        command: C,
        *,
        timeout: float = DEFAULT_ASK_TIMEOUT,
        command_id: str | None = None,
        correlation_id: str | None = None,
    ) -> Committed:
        """Run `command`; returns once its events are durable.

        Pass the same `command_id` when retrying after a timeout: the command
        is then applied at most once.
        """
        now = _backend.LOW.now()
        self._touch(now)
        actor = self._ref.mailbox.actor
        if isinstance(actor, AggregateActor) and actor.idle:
            # The aggregate is idle: decide in this task, no queue, no task
            # switch (see _aggregate's docstring for why this is still safe).
            deadline = now + timeout
            reply = Reply()
            envelope = wrap(
                command,
                deadline=deadline,
                reply=reply,
                command_id=command_id,
                correlation_id=correlation_id,
            )
            reply.started = True
            await actor.execute_here(envelope)
            done: Committed = await self._ref.wait_reply(reply, deadline, timeout)
            return done
        result: Committed = await self._ref.ask(
            command, timeout=timeout, command_id=command_id, correlation_id=correlation_id
        )
        return result

    async def state(self, *, timeout: float = DEFAULT_ASK_TIMEOUT) -> S:
        """The aggregate's current state, as its actor sees it."""
        self._touch(_backend.LOW.now())
        actor = self._ref.mailbox.actor
        if isinstance(actor, AggregateActor) and actor.idle:
            await _backend.LOW.checkpoint()
            current: S = actor.state
            return current
        state: S = await self._ref.ask(Inspect(_identity), timeout=timeout)
        return state


def _identity(value: Any) -> Any:
    return value


class Runtime:
    def __init__(
        self,
        journal: Journal,
        registry: Registry,
        supervisor: Supervisor,
        wall_clock: Callable[[], float],
        rng: random.Random | None = None,
    ) -> None:
        self.rng = rng or random.Random()
        self.journal = journal
        self.registry = registry
        self.supervisor = supervisor
        self.wall_clock = wall_clock
        self._kinds: dict[str, AggregateKind[Any, Any, Any]] = {}

    def register(self, kind: AggregateKind[S, C, Any]) -> None:
        """Host aggregates of `kind` (activated on first use)."""
        self._kinds[kind.name] = kind
        journal, wall_clock, rng = self.journal, self.wall_clock, self.rng
        self.registry.register(
            kind.name, lambda id_: AggregateActor(kind, id_, journal, wall_clock, rng)
        )

    def get(self, kind: AggregateKind[S, C, Any], aggregate_id: str) -> AggregateRef[S, C]:
        """The aggregate's address; activates it (replaying its log) if it is not live."""
        registry, name = self.registry, kind.name
        return AggregateRef(
            registry.ref(name, aggregate_id),
            functools.partial(registry.touch, (name, aggregate_id)),
        )

    async def spawn(
        self,
        name: str,
        make_actor: Callable[[], Actor],
        *,
        restart: Restart = Restart.PERMANENT,
        mailbox_capacity: int = DEFAULT_MAILBOX_CAPACITY,
    ) -> ActorRef:
        """Start a plain actor under the root supervisor; a restart keeps its mailbox."""
        mailbox = Mailbox(mailbox_capacity)

        async def run(task_status: TaskStatus[Any]) -> None:
            task_status.started()
            await run_actor(make_actor(), mailbox, name)

        await self.supervisor.start(
            ChildSpec(name=name, run=run, restart=restart, stop=mailbox.close)
        )
        return ActorRef(name, mailbox, deadlines=self.registry.deadlines)

    async def subscribe(
        self,
        name: str,
        handler: Handler,
        *,
        batch_size: int = 500,
        poll_interval: float = 1.0,
        durable: bool = True,
        after: int = 0,
    ) -> Subscription:
        """Run `handler` over the global log from the checkpoint `name`, then live.

        `durable=False` is for in-memory views: no checkpoint in the store; the
        subscription starts `after` the position the view already reflects (0: all).
        """
        subscription = Subscription(
            self.journal,
            name,
            handler,
            batch_size=batch_size,
            poll_interval=poll_interval,
            durable=durable,
            after=after,
        )
        await self.supervisor.start(ChildSpec(name=f"subscription:{name}", run=subscription.run))
        return subscription


@asynccontextmanager
async def open_runtime(
    store: EventStore,
    *,
    kinds: Iterable[AggregateKind[Any, Any, Any]] = (),
    max_resident: int = 100_000,
    idle_timeout: float = 600.0,
    mailbox_capacity: int = DEFAULT_MAILBOX_CAPACITY,
    max_batch: int = 512,
    wall_clock: Callable[[], float] = time.time,
    rng: random.Random | None = None,
) -> AsyncIterator[Runtime]:
    """Run the engine over `store` for the duration of the block, on trio or asyncio
    (whichever runs it: the hot path's seam is chosen here, see `_backend`)."""
    with _backend.running_on_this_library():
        async with _open_runtime(
            store,
            kinds=kinds,
            max_resident=max_resident,
            idle_timeout=idle_timeout,
            mailbox_capacity=mailbox_capacity,
            max_batch=max_batch,
            wall_clock=wall_clock,
            rng=rng,
        ) as runtime:
            yield runtime


@asynccontextmanager
async def _open_runtime(
    store: EventStore,
    *,
    kinds: Iterable[AggregateKind[Any, Any, Any]],
    max_resident: int,
    idle_timeout: float,
    mailbox_capacity: int,
    max_batch: int,
    wall_clock: Callable[[], float],
    rng: random.Random | None,
) -> AsyncIterator[Runtime]:
    journal = Journal(store, max_batch=max_batch)
    deadlines = Deadlines()
    rng = rng or random.Random()
    registry = Registry(
        rng=rng,
        max_resident=max_resident,
        idle_timeout=idle_timeout,
        mailbox_capacity=mailbox_capacity,
        deadlines=deadlines,
    )
    policy = RestartPolicy(strategy=Strategy.REST_FOR_ONE)
    async with open_supervisor("runtime", policy, rng=rng) as supervisor:
        await supervisor.start(ChildSpec(name="deadlines", run=deadlines.run))
        await supervisor.start(ChildSpec(name="journal", run=journal.run, stop=journal.close))
        await supervisor.start(ChildSpec(name="aggregates", run=registry.run, stop=registry.close))
        runtime = Runtime(journal, registry, supervisor, wall_clock, rng)
        for kind in kinds:
            runtime.register(kind)
        yield runtime
