"""Activation: one live actor per aggregate id, made on demand and put away when idle.

`Registry.ref(kind, id)` returns the address of the aggregate's actor. If it
is not live, it is activated: a mailbox is made, a task is started under the
registry's supervisor, and the actor rebuilds its state from the log before
it takes its first message (messages queue meanwhile).

Live actors are kept in least-recently-used order, and they leave in two ways:
- *passivation*: a sweeper puts away actors that have been idle longer than
  `idle_timeout`;
- *eviction*: activating one more than `max_resident` puts away the least
  recently used.

Putting an actor away closes its mailbox for new messages. It finishes what
is already queued, then its task ends. A sender that still holds the old
address finds the mailbox closed and is handed a fresh activation, so
passivation is invisible to callers. The fresh incarnation waits for the old
one to finish before it replays, so one process never runs two incarnations
of one aggregate at a time.

An actor that crashes is restarted by the supervisor on the *same* mailbox,
so queued messages survive the crash; the new incarnation replays the log.
"""

from __future__ import annotations

import functools
import itertools
import math
import random
from collections import OrderedDict
from collections.abc import Callable

import anyio
from anyio.abc import TaskStatus

from hostsmith.runtime import _backend
from hostsmith.runtime._actor import ActorRef, Incarnation, Mailbox
from hostsmith.runtime._deadlines import Deadlines
from hostsmith.runtime._errors import ActorCrashed, ActorStopped, RuntimeFault
from hostsmith.runtime._supervisor import (
    ChildSpec,
    Restart,
    RestartPolicy,
    Supervisor,
    open_supervisor,
)

IncarnationFactory = Callable[[str], Incarnation]
Key = tuple[str, str]


class _Resident:
    __slots__ = ("done", "finished", "key", "last_active", "mailbox", "name", "previous")

    def __init__(
        self, key: Key, name: str, mailbox: Mailbox, now: float, previous: _Resident | None
    ) -> None:
        self.key = key
        self.name = name
        self.mailbox = mailbox
        self.last_active = now
        # The incarnation that was still retiring when this one was made: this
        # one starts only after it has finished (one writer per aggregate).
        self.previous = previous
        self.done = False
        self.finished: anyio.Event | None = None  # made only when someone waits


class Registry:
    def __init__(
        self,
        *,
        max_resident: int = 100_000,
        idle_timeout: float = 600.0,
        mailbox_capacity: int = 64,
        restart_policy: RestartPolicy | None = None,
        deadlines: Deadlines | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if max_resident < 1:
            raise ValueError(f"max_resident must be at least 1, not {max_resident}")
        self.max_resident = max_resident
        self.deadlines = deadlines
        self.rng = rng or random.Random()  # restart jitter; seeded for reproducible runs
        self.idle_timeout = idle_timeout
        self.mailbox_capacity = mailbox_capacity
        # Generous: a store outage crashes every aggregate that was writing at
        # once, and each of those restarts is expected and harmless.
        self.restart_policy = restart_policy or RestartPolicy(max_restarts=1000, within=1.0)
        self.passivated = 0
        self.evicted = 0
        self._factories: dict[str, IncarnationFactory] = {}
        self._live: OrderedDict[Key, _Resident] = OrderedDict()
        self._retiring: dict[Key, _Resident] = {}
        self._supervisor: Supervisor | None = None
        self._closing = False
        self._all_finished = anyio.Event()
        self._sweeping = anyio.CancelScope()
        self._incarnations = itertools.count(1)

    def register(self, kind_name: str, factory: IncarnationFactory) -> None:
        """Host actors of `kind_name`, made by `factory(id)` on activation."""
        if kind_name in self._factories:
            raise ValueError(f"kind {kind_name!r} is registered already")
        self._factories[kind_name] = factory

    @property
    def restarts(self) -> int:
        """How many times crashed actors have been restarted."""
        return self._supervisor.restarts if self._supervisor is not None else 0

    @property
    def queued_messages(self) -> int:
        """Messages waiting in the mailboxes of live actors."""
        return sum(len(resident.mailbox) for resident in self._live.values())

    @property
    def resident(self) -> int:
        return len(self._live)

    def is_live(self, kind_name: str, aggregate_id: str) -> bool:
        return (kind_name, aggregate_id) in self._live

    def ref(self, kind_name: str, aggregate_id: str) -> ActorRef:
        if kind_name not in self._factories:
            known = ", ".join(sorted(self._factories)) or "none"
            raise KeyError(f"no aggregate kind {kind_name!r} is registered (registered: {known})")
        key = (kind_name, aggregate_id)
        return ActorRef(
            f"{kind_name}/{aggregate_id}",
            self._activate(key),
            lambda: self._activate(key),
            self.deadlines,
        )

    def touch(self, key: Key, now: float) -> None:
        """Note a use at `now` of the actor at `key` (kind, id): most recently used, not idle."""
        resident = self._live.get(key)
        if resident is not None:
            self._live.move_to_end(key)
            resident.last_active = now

    def _activate(self, key: Key) -> Mailbox:
        resident = self._live.get(key)
        if resident is not None:
            self._live.move_to_end(key)
            resident.last_active = _backend.LOW.now()
            return resident.mailbox
        if self._closing or self._supervisor is None:
            raise ActorStopped(f"{key[0]}/{key[1]}")
        resident = _Resident(
            key,
            f"{key[0]}/{key[1]}",
            Mailbox(self.mailbox_capacity),
            _backend.LOW.now(),
            self._retiring.get(key),
        )
        self._live[key] = resident
        self._supervisor.start_soon(
            ChildSpec(
                # One aggregate can have a retiring and a new incarnation at
                # once, so the child's name carries the incarnation number.
                name=f"{resident.name}#{next(self._incarnations)}",
                run=functools.partial(self._run, resident),
                restart=Restart.TRANSIENT,
                stop=resident.mailbox.close,
                own_scope=False,
            )
        )
        while len(self._live) > self.max_resident:
            _, oldest = self._live.popitem(last=False)
            self._retire(oldest)
            self.evicted += 1
        return resident.mailbox

    def _retire(self, resident: _Resident) -> None:
        self._retiring[resident.key] = resident
        resident.mailbox.close()

    async def _run(self, resident: _Resident, task_status: object = None) -> None:
        previous, resident.previous = resident.previous, None
        if previous is not None and not previous.done:
            if previous.finished is None:
                previous.finished = anyio.Event()
            await previous.finished.wait()
        incarnation = self._factories[resident.key[0]](resident.key[1])
        try:
            await incarnation.serve(resident.mailbox)
        except Exception as failure:
            if not incarnation.recovered:
                # An aggregate that cannot be rebuilt (a corrupt or unreadable
                # stream) must not take its neighbours down: its callers get
                # the error, and the next message tries the activation again.
                self._fail_activation(resident, failure)
                return
            raise
        # The mailbox was closed and drained: this incarnation is over.
        self._finished(resident)

    def _finished(self, resident: _Resident) -> None:
        resident.done = True
        if self._live.get(resident.key) is resident:
            del self._live[resident.key]
        if self._retiring.get(resident.key) is resident:
            del self._retiring[resident.key]
        if resident.finished is not None:
            resident.finished.set()
        if self._closing and not self._live and not self._retiring:
            self._all_finished.set()

    def _fail_activation(self, resident: _Resident, failure: Exception) -> None:
        error = (
            failure if isinstance(failure, RuntimeFault) else ActorCrashed(resident.name, failure)
        )
        _fail_queued(resident, error)
        self._finished(resident)

    def passivate_idle(self) -> int:
        """Put away every actor idle for longer than `idle_timeout`; returns how many."""
        cutoff = _backend.LOW.now() - self.idle_timeout
        count = 0
        while self._live:
            key, oldest = next(iter(self._live.items()))
            if oldest.last_active > cutoff:
                break
            del self._live[key]
            self._retire(oldest)
            count += 1
        self.passivated += count
        return count

    async def run(self, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Host the actors until `close()`; sweeps for idle actors meanwhile."""
        try:
            async with open_supervisor(
                "aggregates", self.restart_policy, rng=self.rng
            ) as supervisor:
                self._supervisor = supervisor
                task_status.started()
                self._sweeping = anyio.CancelScope()
                if math.isfinite(self.idle_timeout) and not self._closing:
                    with self._sweeping:
                        while True:
                            await anyio.sleep(self.idle_timeout / 4)
                            self.passivate_idle()
                await self._all_finished.wait()
        finally:
            self._supervisor = None
            for resident in [*self._live.values(), *self._retiring.values()]:
                _fail_queued(resident, ActorStopped(resident.name))
            self._live.clear()
            self._retiring.clear()

    def close(self) -> None:
        """Put every actor away; `run` returns once they have all finished."""
        self._closing = True
        self._sweeping.cancel()
        while self._live:
            _, resident = self._live.popitem(last=False)
            self._retire(resident)
        if not self._retiring:
            self._all_finished.set()


def _fail_queued(resident: _Resident, error: Exception) -> None:
    """Close the mailbox and answer everything still queued with `error`."""
    resident.mailbox.close()
    while True:
        try:
            envelope = resident.mailbox.receive_nowait()
        except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
            return
        if envelope.reply is not None:
            envelope.reply.set_error(error)
