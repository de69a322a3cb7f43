"""The runtime's behaviours that do not need virtual time, on trio and on asyncio alike.

Every test here is marked `anyio`, so anyio's plugin runs it once on each
backend conftest's `anyio_backend` names: the same code, the same answers.
Nothing waits on the clock: each test waits for the event it is about
(an answer, a restart, a commit). The tests that state *when* something
happens (timeouts, backoff, passivation) stay on trio's virtual clock in
the other modules.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio
import msgspec
import pytest

from hostsmith.runtime import (
    AggregateKind,
    AppendOutcome,
    AppendRequest,
    ChildSpec,
    ConflictError,
    Envelope,
    EventRegistry,
    NewEvent,
    Rejected,
    Restart,
    RestartPolicy,
    Strategy,
    current_parking,
    open_runtime,
    open_supervisor,
)
from hostsmith.runtime.testing import EventCapture, MemoryStore

pytestmark = pytest.mark.anyio


class Add(msgspec.Struct, frozen=True):
    amount: int


class Added(msgspec.Struct, frozen=True, tag=True):
    amount: int


def decide(total: int, command: Add) -> Sequence[Added]:
    if command.amount <= 0:
        raise Rejected(f"add a positive amount, not {command.amount}")
    return [Added(command.amount)]


TALLY = AggregateKind(
    name="tally",
    initial=lambda _id: 0,
    decide=decide,
    evolve=lambda total, event: total + event.amount,
    events=EventRegistry(Added),
    state_type=int,
)


async def test_the_runtime_runs_on_the_library_that_opened_it(anyio_backend: str) -> None:
    async with open_runtime(MemoryStore()):
        assert current_parking().name == anyio_backend


class Echo:
    """Answers an ask with what it was sent; remembers what it was told."""

    def __init__(self) -> None:
        self.told: list[Any] = []
        self.got_told = anyio.Event()

    async def on_start(self) -> None:
        pass

    async def receive(self, envelope: Envelope) -> Any:
        if envelope.reply is None:
            self.told.append(envelope.payload)
            self.got_told.set()
            return None
        if envelope.payload == "refuse":
            raise Rejected("refused, as asked")
        return envelope.payload


async def test_ask_answers_and_tell_delivers() -> None:
    echo = Echo()
    async with open_runtime(MemoryStore()) as runtime:
        ref = await runtime.spawn("echo", lambda: echo)
        assert await ref.ask("hello") == "hello"
        with pytest.raises(Rejected, match="refused, as asked"):
            await ref.ask("refuse")
        await ref.tell("a note")
        await echo.got_told.wait()
    assert echo.told == ["a note"]


class Appends(EventCapture):
    """Records, at each append, what the store held when it returned."""

    def __init__(self) -> None:
        super().__init__(MemoryStore())
        self.durable: list[int] = []

    async def append_batch(self, requests: Sequence[AppendRequest]) -> list[AppendOutcome]:
        outcomes = await super().append_batch(requests)
        self.durable.append(len(await self.inner.read_all(0, 10_000)))
        return outcomes


async def test_a_command_is_answered_only_once_its_events_are_durable() -> None:
    store = Appends()
    async with open_runtime(store, kinds=[TALLY]) as runtime:
        tally = runtime.get(TALLY, "t")
        for n in range(1, 6):
            committed = await tally.execute(Add(n))
            # the answer came after the store held this command's event
            assert len(await store.inner.read_all(0, 10_000)) == committed.version == n
        assert await tally.state() == 15
    assert store.durable == [1, 2, 3, 4, 5]


async def test_a_repeated_command_id_is_applied_once() -> None:
    store = MemoryStore()
    async with open_runtime(store, kinds=[TALLY]) as runtime:
        tally = runtime.get(TALLY, "t")
        first = await tally.execute(Add(5), command_id="add-five")
        again = await tally.execute(Add(5), command_id="add-five")
        assert (first.version, first.repeated) == (1, False)
        assert again.repeated
        assert await tally.state() == 5
    assert len(await store.read("tally-t")) == 1


async def test_many_concurrent_commands_share_few_commits() -> None:
    async with open_runtime(MemoryStore(), kinds=[TALLY]) as runtime:
        before = runtime.journal.stats.transactions
        async with anyio.create_task_group() as clients:
            for n in range(500):
                clients.start_soon(runtime.get(TALLY, str(n % 50)).execute, Add(1))
        transactions = runtime.journal.stats.transactions - before
        totals = [await runtime.get(TALLY, str(n)).state() for n in range(50)]
    assert totals == [10] * 50
    assert transactions < 100  # 500 commands, a handful of group commits


async def test_two_runtimes_on_one_store_conflict_and_lose_no_command() -> None:
    store = MemoryStore()
    async with (
        open_runtime(store, kinds=[TALLY]) as one,
        open_runtime(store, kinds=[TALLY]) as other,
        anyio.create_task_group() as clients,
    ):
        for n in range(40):
            runtime = one if n % 2 else other
            clients.start_soon(runtime.get(TALLY, "shared").execute, Add(1))
    events = await store.read("tally-shared")
    assert [e.version for e in events] == list(range(1, 41))  # no gap, none lost


async def test_a_conflict_past_its_retries_is_reported_not_hidden() -> None:
    # another writer appends behind the actor's back before each of its tries
    racing = _Racing(MemoryStore(), "tally-t")
    async with open_runtime(racing, kinds=[TALLY]) as runtime:
        with pytest.raises(ConflictError):
            await runtime.get(TALLY, "t").execute(Add(1))
    assert racing.committed == []  # its own event never went in


class _Racing(EventCapture):
    """Before each append of `stream`, slips in an event of another writer."""

    def __init__(self, inner: MemoryStore, stream: str) -> None:
        super().__init__(inner)
        self.stream = stream

    async def append_batch(self, requests: Sequence[AppendRequest]) -> list[AppendOutcome]:
        for request in requests:
            if request.stream == self.stream:
                version = len(await self.inner.read(self.stream))
                slipped = AppendRequest(self.stream, version, (_event(version),))
                await self.inner.append_batch([slipped])
        return await super().append_batch(requests)


def _event(version: int) -> NewEvent:
    data = msgspec.json.encode({"amount": 1})
    return NewEvent(event_id=f"other-{version}", type="Added", data=data)


class Worker:
    """A supervised child that fails when told, and counts its starts."""

    def __init__(self, name: str, starts: list[str]) -> None:
        self.name = name
        self.starts = starts
        self.fail = anyio.Event()
        self.running = anyio.Event()

    async def run(self, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        self.starts.append(self.name)
        self.fail = anyio.Event()
        task_status.started()
        self.running.set()
        await self.fail.wait()
        raise RuntimeError(f"{self.name} failed, as told")

    def spec(self) -> ChildSpec:
        return ChildSpec(name=self.name, run=self.run, restart=Restart.PERMANENT)


@pytest.mark.parametrize(
    ("strategy", "restarted"),
    [
        (Strategy.ONE_FOR_ONE, ["b"]),
        (Strategy.REST_FOR_ONE, ["b", "c"]),
        (Strategy.ONE_FOR_ALL, ["a", "b", "c"]),
    ],
)
async def test_each_strategy_restarts_what_it_should(
    strategy: Strategy, restarted: list[str]
) -> None:
    starts: list[str] = []
    workers = {name: Worker(name, starts) for name in "abc"}
    policy = RestartPolicy(strategy=strategy, backoff_initial=0.0, jitter=0.0)
    async with open_supervisor("test", policy) as supervisor:
        for worker in workers.values():
            await supervisor.start(worker.spec())
        assert starts == ["a", "b", "c"]
        for worker in workers.values():
            worker.running = anyio.Event()
        workers["b"].fail.set()
        for name in restarted:
            await workers[name].running.wait()
        assert sorted(starts[3:]) == restarted
        assert supervisor.restarts == 1


class Gated(EventCapture):
    """Holds every append until `opened` is set, and says when one is waiting."""

    def __init__(self) -> None:
        super().__init__(MemoryStore())
        self.opened = anyio.Event()
        self.waiting = anyio.Event()

    async def append_batch(self, requests: Sequence[AppendRequest]) -> list[AppendOutcome]:
        self.waiting.set()
        await self.opened.wait()
        return await super().append_batch(requests)


async def test_a_caller_cancelled_mid_write_leaves_memory_equal_to_the_log() -> None:
    store = Gated()
    async with open_runtime(store, kinds=[TALLY]) as runtime:
        tally = runtime.get(TALLY, "t")
        with anyio.CancelScope() as caller:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(tally.execute, Add(3))
                await store.waiting.wait()  # handed to the store: it may be written
                caller.cancel()
        assert caller.cancelled_caught
        store.opened.set()  # the write goes through after all
        assert await tally.state() == 3  # the actor's memory has it, as the log does
        assert [e.version for e in await store.inner.read("tally-t")] == [1]
