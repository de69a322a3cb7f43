"""Event-sourced aggregates: pure `decide` and `evolve`, run by an actor.

An aggregate kind is three pure pieces, plus the event types it records:

- `initial(id) -> state`
- `decide(state, command) -> events`, which raises `Rejected` to refuse;
- `evolve(state, event) -> state`.

`AggregateActor` is the I/O around them. A command is decided against the
current state, its events are handed to the journal, and *when the journal
reports them durable* the state evolves and the caller is answered. Until
then the aggregate is busy and takes no other command, so every decision
sees every event before it.

Why it is built this way:
- State moves in the journal's completion callback, not in a task that waits
  for it. No task has to stay parked on the write, a caller that gives up
  (deadline, cancel) cannot make memory diverge from the log, and there is
  no task switch per command between the journal and the aggregate.
- When the aggregate is idle and its mailbox is empty, the caller decides
  in its own task (`execute`) instead of waking the actor's task: the
  command is still decided alone against the latest state, because the
  aggregate is marked busy until the events are durable. When the aggregate
  is busy, commands queue in the bounded mailbox and the actor's task takes
  them one at a time. Either way there is one writer.
- Commands that queued while a write was under way are decided in turn,
  each against the state the ones before it leave, and written as one
  append (`batch_limit`): a hot aggregate pays one durable write per
  batch, not per command, and every caller still gets exactly the answer
  it would have had one at a time. A batch that conflicts is taken apart
  and its commands run again alone.
- Anything unusual is follow-up work for the actor's own task, which may
  await: on a version conflict it reads what it missed and decides again
  (a bounded number of times); on a duplicate it catches up and answers
  from the log; on a failed write the caller gets the error, the actor
  raises, and its supervisor restarts it, replaying the log.
- A command carries an id, and its events record it (causation id, and
  event ids `<command id>.<n>`). A recent command is answered from memory
  without deciding again; an older one is caught by the store's event-id
  deduplication. Either way it is applied once.

Snapshots are optional per kind: every `snapshot_every` events the state is
saved with the kind's `snapshot_version`, and activation loads the newest
snapshot whose version matches, replaying only the events after it.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import anyio
import msgspec

from hostsmith.runtime import _backend
from hostsmith.runtime._actor import Mailbox
from hostsmith.runtime._envelope import Envelope, current_envelope
from hostsmith.runtime._errors import (
    ActorCrashed,
    ConflictError,
    JournalError,
    PersistFailed,
    Rejected,
)
from hostsmith.runtime._events import EventRegistry
from hostsmith.runtime._journal import Journal
from hostsmith.runtime._reply import Reply
from hostsmith.runtime._store import Appended, AppendOutcome, NewEvent, Snapshot, StoredEvent

log = logging.getLogger("hostsmith.runtime.aggregate")
_rng = random.Random()  # for actors built without the runtime's seeded one

S = TypeVar("S")
C = TypeVar("C")
E = TypeVar("E", bound=msgspec.Struct)


@dataclass(frozen=True, slots=True, kw_only=True)
class AggregateKind(Generic[S, C, E]):
    """Everything the runtime needs to host one kind of aggregate."""

    name: str
    initial: Callable[[str], S]
    decide: Callable[[S, C], Sequence[E]]
    evolve: Callable[[S, E], S]
    events: EventRegistry
    state_type: type[S] | None = None
    """Needed only for snapshots: the msgspec-decodable type of the state."""
    snapshot_every: int = 0
    snapshot_version: int = 1
    conflict_retries: int = 8
    conflict_backoff: float = 0.002
    """Before deciding again after a conflict, wait a random share of this many
    seconds, doubled each retry: two writers that keep colliding (two daemons
    on one aggregate) fall out of step instead of colliding again."""
    remembered_commands: int = 8
    """How many recent command replies each live aggregate keeps for repeats."""
    batch_limit: int = 32
    """How many queued commands one append may carry (1 turns batching off)."""

    def stream(self, aggregate_id: str) -> str:
        return f"{self.name}-{aggregate_id}"


class Committed(msgspec.Struct, frozen=True, gc=False):
    """The reply to a command: the stream's version after it, and its events."""

    version: int
    events: tuple[Any, ...] = ()
    repeated: bool = False


class Inspect(msgspec.Struct, frozen=True):
    """A read-only query run against the aggregate's current state."""

    view: Callable[[Any], Any]


class _Wake(msgspec.Struct, frozen=True):
    """Sent by the journal callback to wake the actor's task for follow-up work."""


_WAKE = _Wake()

FollowUp = Callable[[], Awaitable[None]]


class _InFlight:
    __slots__ = ("attempt", "command", "envelope", "events")

    def __init__(
        self, command: Any, events: Sequence[Any], envelope: Envelope, attempt: int
    ) -> None:
        self.command = command
        self.events = events
        self.envelope = envelope
        self.attempt = attempt


class _Batch:
    """Queued commands decided one after another and handed over as one append.

    `plan` holds, in mailbox order, each command's envelope with its events
    (possibly none) or the `Rejected` it raised; `events` is every event of
    the plan, in order.
    """

    __slots__ = ("events", "plan")

    def __init__(self, plan: list[tuple[Envelope, Sequence[Any] | Rejected]]) -> None:
        self.plan = plan
        self.events = [
            e for _, decided in plan if not isinstance(decided, Rejected) for e in decided
        ]


class AggregateActor(Generic[S, C, E]):
    __slots__ = (
        "_failure",
        "_follow_up",
        "_holding",
        "_idle_waiter",
        "_in_flight",
        "_mailbox",
        "_recent",
        "id",
        "journal",
        "kind",
        "name",
        "recovered",
        "rng",
        "state",
        "stream",
        "version",
        "wall_clock",
    )

    def __init__(
        self,
        kind: AggregateKind[S, C, E],
        aggregate_id: str,
        journal: Journal,
        wall_clock: Callable[[], float],
        rng: random.Random | None = None,
    ) -> None:
        self.kind = kind
        self.rng = rng or _rng
        self.id = aggregate_id
        self.name = f"{kind.name}/{aggregate_id}"
        self.stream = kind.stream(aggregate_id)
        self.journal = journal
        self.wall_clock = wall_clock
        self.state: S = kind.initial(aggregate_id)
        self.version = 0
        self.recovered = False
        self._recent: dict[str, Committed] | None = None
        # Invariant: the aggregate is busy while `_in_flight` (events handed
        # to the journal, outcome unknown) or `_follow_up` (work only the
        # actor's task may do) is set. No command is decided while busy.
        self._in_flight: _InFlight | _Batch | None = None
        self._follow_up: FollowUp | None = None
        self._failure: BaseException | None = None
        self._holding = False
        self._idle_waiter: object | None = None  # the parked task's handle
        self._mailbox: Mailbox | None = None

    # -- the actor's task -----------------------------------------------------

    async def serve(self, mailbox: Mailbox) -> None:
        """Rebuild state, then take queued messages until the mailbox closes."""
        await self._load_snapshot()
        await self._catch_up()
        self.recovered = True
        self._mailbox = mailbox
        mailbox.actor = self
        try:
            while (envelope := await mailbox.take()) is not None:
                # Holding a taken envelope counts as busy, so that a caller
                # cannot overtake it through the idle fast path.
                self._holding = True
                try:
                    await self._settle()
                    if envelope.payload is _WAKE:
                        pass
                    elif not (len(mailbox) and await self._dispatch_batch(envelope, mailbox)):
                        await self._dispatch(envelope)
                finally:
                    self._holding = False
            await self._settle()
        finally:
            if mailbox.actor is self:
                mailbox.actor = None

    async def _settle(self) -> None:
        """Wait until idle, doing any follow-up work the journal left behind."""
        while True:
            while self._in_flight is not None:
                # Waiting for the journal's outcome is not cancellable (see module
                # doc); a cancellation is delivered after it instead.
                low = _backend.LOW
                self._idle_waiter = handle = low.park_uncancellable()
                await low.wait_uncancellable(handle)
            if self._failure is not None:
                raise self._failure
            follow_up, self._follow_up = self._follow_up, None
            if follow_up is None:
                return
            await follow_up()

    async def _dispatch(self, envelope: Envelope) -> None:
        reply = envelope.reply
        if reply is not None:
            if reply.abandoned:
                return  # the asker gave up while it was queued
            reply.started = True
        message = envelope.payload
        if isinstance(message, Inspect):
            if reply is not None:
                reply.set_value(message.view(self.state))
            return
        token = current_envelope.set(envelope)
        try:
            await self._start(message, envelope, 0)
        finally:
            current_envelope.reset(token)

    # -- commands -------------------------------------------------------------

    async def _dispatch_batch(self, first: Envelope, mailbox: Mailbox) -> bool:
        """Decide `first` and the commands queued behind it as one append.

        A hot aggregate (one template's capacity ledger, under every
        requestMachines) would otherwise pay one durable write per command,
        one after another. Each command is decided against the state the
        ones before it leave, so the outcome is exactly that of taking them
        one at a time; only the write is shared. The batch stops before
        anything that is not a plain new command (a query, a repeat, a
        command whose `decide` fails unexpectedly), which then takes the
        one-at-a-time path. False, with nothing taken, when `first` itself
        is not such a command.
        """
        kind = self.kind
        if kind.batch_limit < 2:
            return False
        decide, evolve = kind.decide, kind.evolve
        state = self.state
        recent = self._recent or {}
        plan: list[tuple[Envelope, Sequence[Any] | Rejected]] = []
        writers = taken = 0
        for envelope in [first, *mailbox.peek(kind.batch_limit - 1)]:
            command: Any = envelope.payload
            if command is _WAKE or isinstance(command, Inspect):
                break
            if envelope.reply is not None and envelope.reply.abandoned:
                taken += 1  # the asker gave up while it was queued
                continue
            if envelope.command_id in recent or any(
                e.command_id == envelope.command_id for e, _ in plan
            ):
                break
            try:
                events = decide(state, command)
                for event in events:
                    state = evolve(state, event)
            except Rejected as rejection:
                plan.append((envelope, rejection))
                continue
            except Exception:
                break
            plan.append((envelope, events))
            writers += bool(events)
        taken += len(plan)
        if not taken:
            return False
        for _ in range(taken - 1):
            mailbox.receive_nowait()  # the same envelopes: nothing ran since the peek
        for envelope, _ in plan:
            if envelope.reply is not None:
                envelope.reply.started = True
        if not writers:  # all decided against the durable state: answer them now
            for envelope, decided in plan:
                _answer(envelope.reply, decided or Committed(self.version))
            return True
        batch = _Batch(plan)
        encoded = []
        for envelope, decided in plan:
            if not isinstance(decided, Rejected):
                encoded += [self._encode(e, envelope, n) for n, e in enumerate(decided)]
        self._in_flight = batch
        try:
            await self.journal.submit(self.stream, self.version, encoded, self._on_batch_outcome)
        except BaseException as failure:
            self._in_flight = None  # never handed over: nothing happened
            if isinstance(failure, Exception):
                refusal = (
                    failure
                    if isinstance(failure, JournalError)
                    else PersistFailed(self.stream, failure)
                )
                for envelope, _ in plan:
                    _answer(envelope.reply, refusal)
            raise
        return True

    def _on_batch_outcome(self, outcome: AppendOutcome) -> None:
        """The journal's callback for a batch: as `_on_outcome`, command by command."""
        batch = self._in_flight
        assert isinstance(batch, _Batch)
        self._in_flight = None
        if isinstance(outcome, Appended) and not outcome.duplicate:
            try:
                state = self._folded(batch.events)
            except Exception as failure:
                for envelope, _ in batch.plan:
                    _answer(envelope.reply, ActorCrashed(self.name, failure))
                self._crash(failure)
                return
            self.state = state
            previous = version = self.version
            for envelope, decided in batch.plan:
                if isinstance(decided, Rejected):
                    _answer(envelope.reply, decided)
                    continue
                version += len(decided)
                committed = Committed(version, tuple(decided))
                self._remember(envelope.command_id, committed)
                _answer(envelope.reply, committed)
            self.version = outcome.version
            self._snapshot_if_due(previous)
        else:
            self._follow_up = lambda: self._recover_batch(outcome, batch)
        self._wake()

    async def _recover_batch(self, outcome: AppendOutcome, batch: _Batch) -> None:
        """A batch that did not simply land is taken apart.

        A failed write fails every command in it (and the actor restarts, as
        for one command). Anything else (a conflict, a command applied
        before, a batch too large for the store) is handled by running the
        commands again one at a time, after catching up with the log.
        """
        if isinstance(outcome, PersistFailed):
            for envelope, _ in batch.plan:
                _answer(envelope.reply, outcome)
            raise outcome
        await self._catch_up()
        for envelope, _ in batch.plan:
            reply = envelope.reply
            if reply is not None and reply.abandoned:
                continue
            token = current_envelope.set(envelope)
            try:
                await self._start(envelope.payload, envelope, 0)
            finally:
                current_envelope.reset(token)
            await self._settle()

    @property
    def idle(self) -> bool:
        mailbox = self._mailbox
        return (
            self._in_flight is None
            and not self._holding
            and self._follow_up is None
            and self._failure is None
            and mailbox is not None
            and mailbox.actor is self
            and not len(mailbox)
        )

    async def execute_here(self, envelope: Envelope) -> None:
        """Start a command in the caller's task; only when `idle` (see module doc).

        The outcome arrives in `envelope.reply`. A bug in `decide` crashes
        the actor (its task raises it), not the caller.
        """
        try:
            await self._start(envelope.payload, envelope, 0)
        except Exception as failure:
            self._crash(failure)

    async def _start(self, command: Any, envelope: Envelope, attempt: int) -> None:
        reply = envelope.reply
        recent = self._recent
        if recent is not None and envelope.command_id in recent:
            _answer(reply, msgspec.structs.replace(recent[envelope.command_id], repeated=True))
            return
        try:
            events = self.kind.decide(self.state, command)
        except Rejected as rejection:
            _answer(reply, rejection)
            return
        except Exception as failure:
            _answer(reply, ActorCrashed(self.name, failure))
            raise
        if not events:
            _answer(reply, Committed(self.version))
            return
        encoded = [self._encode(event, envelope, n) for n, event in enumerate(events)]
        self._in_flight = _InFlight(command, events, envelope, attempt)
        try:
            await self.journal.submit(self.stream, self.version, encoded, self._on_outcome)
        except BaseException as failure:
            self._in_flight = None  # never handed over: nothing happened
            if isinstance(failure, Exception):
                _answer(
                    reply,
                    failure
                    if isinstance(failure, JournalError)
                    else PersistFailed(self.stream, failure),
                )
            raise

    def _on_outcome(self, outcome: AppendOutcome) -> None:
        """The journal's callback: runs in its task, the moment the outcome is known."""
        in_flight = self._in_flight
        assert isinstance(in_flight, _InFlight)
        self._in_flight = None
        if isinstance(outcome, Appended) and not outcome.duplicate:
            try:
                state = self._folded(in_flight.events)
            except Exception as failure:
                _answer(in_flight.envelope.reply, ActorCrashed(self.name, failure))
                self._crash(failure)
                return
            self.state = state
            previous, self.version = self.version, outcome.version
            committed = Committed(outcome.version, tuple(in_flight.events))
            self._remember(in_flight.envelope.command_id, committed)
            _answer(in_flight.envelope.reply, committed)
            self._snapshot_if_due(previous)
        else:
            self._follow_up = lambda: self._recover_from(outcome, in_flight)
        self._wake()

    async def _recover_from(self, outcome: AppendOutcome, in_flight: _InFlight) -> None:
        reply = in_flight.envelope.reply
        if isinstance(outcome, Appended):  # a duplicate: applied before, by someone
            await self._catch_up()
            _answer(reply, Committed(self.version, repeated=True))
        elif isinstance(outcome, ConflictError):
            retrying = in_flight.attempt < self.kind.conflict_retries
            if retrying:
                spread = self.kind.conflict_backoff * 2**in_flight.attempt
                await anyio.sleep(spread * self.rng.random())
            await self._catch_up()
            if not retrying:
                _answer(reply, ConflictError(self.stream, outcome.expected, outcome.actual))
                return
            token = current_envelope.set(in_flight.envelope)
            try:
                await self._start(in_flight.command, in_flight.envelope, in_flight.attempt + 1)
            finally:
                current_envelope.reset(token)
        else:
            failure = (
                outcome
                if isinstance(outcome, PersistFailed)
                else PersistFailed(self.stream, outcome)
            )
            _answer(reply, failure)
            raise failure

    def _crash(self, failure: BaseException) -> None:
        """Make the actor's task raise `failure`, so the supervisor restarts it."""
        self._failure = failure
        if self._mailbox is not None and self._mailbox.actor is self:
            self._mailbox.actor = None
        self._wake()

    def _wake(self) -> None:
        waiter, self._idle_waiter = self._idle_waiter, None
        if waiter is not None:
            _backend.LOW.wake(waiter)
        elif (
            self._follow_up is not None or self._failure is not None
        ) and self._mailbox is not None:
            # The task may be parked on an empty mailbox: nudge it. If the
            # mailbox is full or closed, the task is not parked there.
            try:
                self._mailbox.send_nowait(Envelope(_WAKE, "", ""))
            except (anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError):
                pass

    def _encode(self, event: E, envelope: Envelope, n: int) -> NewEvent:
        type_name, schema_version, data = self.kind.events.encode(event)
        return NewEvent(
            event_id=f"{envelope.command_id}.{n}",
            type=type_name,
            data=data,
            schema_version=schema_version,
            correlation_id=envelope.correlation_id,
            causation_id=envelope.command_id,
            recorded_at=self.wall_clock(),
        )

    def _folded(self, events: Sequence[E]) -> S:
        """The state after `events` (durable now); raises whatever `evolve` raises."""
        state, evolve = self.state, self.kind.evolve
        for event in events:
            state = evolve(state, event)
        return state

    def _snapshot_if_due(self, previous: int) -> None:
        """Save a snapshot next if this write crossed a multiple of `snapshot_every`."""
        every = self.kind.snapshot_every
        if not every or self.kind.state_type is None:
            return
        if self.version // every != previous // every:
            self._follow_up = self._save_snapshot

    def _remember(self, command_id: str, committed: Committed) -> None:
        recent = self._recent
        if recent is None:
            recent = self._recent = {}
        recent[command_id] = committed
        if len(recent) > self.kind.remembered_commands:
            del recent[next(iter(recent))]  # dicts keep insertion order: the oldest

    # -- recovery -------------------------------------------------------------

    async def _catch_up(self) -> None:
        stored = await self.journal.read(self.stream, self.version)
        if stored:
            self._apply(stored)

    def _apply(self, stored: list[StoredEvent]) -> None:
        # Decode everything first: a decoding error must leave state untouched.
        decode = self.kind.events.decode
        events = [decode(s.type, s.schema_version, s.data) for s in stored]
        state, evolve = self.state, self.kind.evolve
        for event in events:
            state = evolve(state, event)
        self.state = state
        self.version = stored[-1].version
        self._remember_tail(stored, events)

    def _remember_tail(self, stored: list[StoredEvent], events: list[Any]) -> None:
        """Rebuild the replies of the last few commands found in the log."""
        by_command: dict[str, list[Any]] = {}
        versions: dict[str, int] = {}
        for record, event in zip(reversed(stored), reversed(events), strict=True):
            command_id = record.causation_id
            if command_id not in by_command:
                if len(by_command) == self.kind.remembered_commands:
                    break
                by_command[command_id] = []
                versions[command_id] = record.version
            by_command[command_id].append(event)
        for command_id in reversed(by_command):
            events_of_command = tuple(reversed(by_command[command_id]))
            self._remember(command_id, Committed(versions[command_id], events_of_command))

    async def _load_snapshot(self) -> None:
        kind = self.kind
        if not kind.snapshot_every or kind.state_type is None:
            return
        snapshot = await self.journal.load_snapshot(self.stream)
        if snapshot is None:
            return
        if snapshot.schema_version != kind.snapshot_version:
            log.warning(
                "ignoring snapshot of %s at version %d: schema v%d, current is v%d; "
                "replaying in full",
                self.stream,
                snapshot.version,
                snapshot.schema_version,
                kind.snapshot_version,
            )
            return
        self.state = msgspec.json.decode(snapshot.state, type=kind.state_type)
        self.version = snapshot.version

    async def _save_snapshot(self) -> None:
        snapshot = Snapshot(
            stream=self.stream,
            version=self.version,
            state=msgspec.json.encode(self.state),
            schema_version=self.kind.snapshot_version,
            recorded_at=self.wall_clock(),
        )
        with anyio.CancelScope(shield=True):
            await self.journal.save_snapshot(snapshot)


def _answer(reply: Reply | None, result: object) -> None:
    if reply is not None:
        reply.set_outcome(result)
