"""Event-sourced aggregates on the runtime: durability first, then state."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import msgspec
import pytest
import trio
import trio.testing

from hostsmith.runtime import (
    AggregateKind,
    AskTimeout,
    ConflictError,
    EventRegistry,
    NewEvent,
    PersistFailed,
    Rejected,
    append,
    open_runtime,
)
from hostsmith.runtime.testing import EventCapture, FaultyStore, MemoryStore


class Deposit(msgspec.Struct, frozen=True):
    amount: int


class Withdraw(msgspec.Struct, frozen=True):
    amount: int


class Deposited(msgspec.Struct, frozen=True, tag=True):
    amount: int


class Withdrawn(msgspec.Struct, frozen=True, tag=True):
    amount: int


class Account(msgspec.Struct, frozen=True):
    balance: int = 0
    decisions: int = 0  # how many times decide ran against this state's history


DECISIONS: list[int] = []


def decide(state: Account, command: Any) -> Sequence[Any]:
    DECISIONS.append(state.balance)
    if isinstance(command, Deposit):
        if command.amount <= 0:
            raise Rejected(f"deposit a positive amount, not {command.amount}")
        return [Deposited(command.amount)]
    if command.amount > state.balance:
        raise Rejected(f"cannot withdraw {command.amount} from a balance of {state.balance}")
    return [Withdrawn(command.amount)]


def evolve(state: Account, event: Any) -> Account:
    if isinstance(event, Deposited):
        return Account(state.balance + event.amount)
    return Account(state.balance - event.amount)


EVENTS = EventRegistry(Deposited, Withdrawn)
ACCOUNT = AggregateKind(
    name="account",
    initial=lambda _id: Account(),
    decide=decide,
    evolve=evolve,
    events=EVENTS,
    state_type=Account,
)


@pytest.fixture(autouse=True)
def _forget_decisions() -> None:
    DECISIONS.clear()


async def test_a_command_is_answered_after_its_events_are_stored() -> None:
    capture = EventCapture()
    async with open_runtime(capture, kinds=[ACCOUNT]) as runtime:
        done = await runtime.get(ACCOUNT, "a").execute(Deposit(10))
        assert done.version == 1
        assert done.events == (Deposited(10),)
        assert capture.decoded(EVENTS, "account-a") == [Deposited(10)]
        assert await runtime.get(ACCOUNT, "a").state() == Account(10)


async def test_a_rejected_command_records_nothing() -> None:
    capture = EventCapture()
    async with open_runtime(capture, kinds=[ACCOUNT]) as runtime:
        account = runtime.get(ACCOUNT, "a")
        with pytest.raises(Rejected, match=r"^cannot withdraw 5 from a balance of 0$"):
            await account.execute(Withdraw(5))
        assert capture.committed == []
        assert await account.state() == Account(0)


async def test_a_conflict_makes_the_actor_reload_and_decide_again(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = MemoryStore()
    async with open_runtime(store, kinds=[ACCOUNT]) as runtime:
        account = runtime.get(ACCOUNT, "a")
        await account.execute(Deposit(10))
        # Another writer (another process) appends behind the actor's back.
        foreign = EVENTS.encode(Withdrawn(4))
        await append(
            store, "account-a", 1, [NewEvent(event_id="x", type=foreign[0], data=foreign[2])]
        )

        done = await account.execute(Withdraw(6))

        assert done.version == 3
        assert DECISIONS == [0, 10, 6]  # decided against 10, conflicted, decided against 6
        assert await account.state() == Account(0)


async def test_conflicts_beyond_the_retry_limit_reach_the_caller(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = FaultyStore()
    async with open_runtime(store, kinds=[ACCOUNT]) as runtime:
        account = runtime.get(ACCOUNT, "a")
        tries = ACCOUNT.conflict_retries + 1
        store.conflict_next_appends(tries)  # the first try and every retry
        began = trio.current_time()
        with pytest.raises(
            ConflictError, match=r"^stream 'account-a' is at version 1, not the expected 0"
        ):
            await account.execute(Deposit(1))
        assert len(DECISIONS) == tries
        # the retries backed off, by at most the doubling spread each
        assert 0 < trio.current_time() - began <= ACCOUNT.conflict_backoff * 2**tries
        assert (await account.execute(Deposit(2))).version == 1


async def test_a_persist_failure_leaves_state_unchanged_replays_and_reports(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = FaultyStore()
    async with open_runtime(store, kinds=[ACCOUNT]) as runtime:
        account = runtime.get(ACCOUNT, "a")
        await account.execute(Deposit(10))
        store.fail_next_appends(1)

        with pytest.raises(
            PersistFailed,
            match=r"^could not persist events to 'account-a': OSError: injected write failure; "
            r"the aggregate's state did not move, and sending the command again with the same "
            r"command id is safe \(it is applied at most once\)$",
        ):
            await account.execute(Deposit(5))

        assert await account.state() == Account(10)
        assert [e.version for e in await store.read("account-a")] == [1]
        assert (await account.execute(Deposit(1))).version == 2
        assert await account.state() == Account(11)
        assert runtime.registry.restarts >= 1


async def test_a_command_retried_with_the_same_id_is_applied_once() -> None:
    capture = EventCapture()
    async with open_runtime(capture, kinds=[ACCOUNT]) as runtime:
        account = runtime.get(ACCOUNT, "a")
        first = await account.execute(Deposit(10), command_id="cmd-1")
        again = await account.execute(Deposit(10), command_id="cmd-1")

        assert again.repeated
        assert not first.repeated
        assert again.version == first.version == 1
        assert again.events == first.events
        assert len(DECISIONS) == 1
        assert len(capture.committed) == 1


async def test_a_repeat_is_recognised_after_passivation_too(
    autojump_clock: trio.testing.MockClock,
) -> None:
    capture = EventCapture()
    async with open_runtime(capture, kinds=[ACCOUNT], idle_timeout=60) as runtime:
        await runtime.get(ACCOUNT, "a").execute(Deposit(10), command_id="cmd-1")
        await trio.sleep(120)
        assert not runtime.registry.is_live("account", "a")

        again = await runtime.get(ACCOUNT, "a").execute(Deposit(10), command_id="cmd-1")

        assert again.repeated
        assert len(capture.committed) == 1


async def test_a_repeat_beyond_memory_is_caught_by_event_id_deduplication() -> None:
    capture = EventCapture()
    async with open_runtime(capture, kinds=[ACCOUNT]) as runtime:
        account = runtime.get(ACCOUNT, "a")
        await account.execute(Deposit(1), command_id="old")
        for n in range(ACCOUNT.remembered_commands + 2):
            await account.execute(Deposit(1), command_id=f"new-{n}")

        again = await account.execute(Deposit(1), command_id="old")

        assert again.repeated
        assert len(capture.committed) == ACCOUNT.remembered_commands + 3
        assert await account.state() == Account(ACCOUNT.remembered_commands + 3)


async def test_a_timeout_during_a_slow_write_says_the_command_may_have_applied(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = FaultyStore(delay=5.0)
    async with open_runtime(store, kinds=[ACCOUNT]) as runtime:
        account = runtime.get(ACCOUNT, "a")
        with pytest.raises(
            AskTimeout,
            match=r"^account/a did not answer within 1s; the command may still have been applied",
        ):
            await account.execute(Deposit(7), timeout=1, command_id="slow")
        await trio.sleep(10)
        # The write went through after the caller left, and memory followed it.
        assert await account.state() == Account(7)
        assert (await account.execute(Deposit(7), command_id="slow")).repeated


async def test_concurrent_commands_on_one_aggregate_are_decided_one_at_a_time() -> None:
    async with open_runtime(MemoryStore(), kinds=[ACCOUNT]) as runtime:
        async with trio.open_nursery() as nursery:
            for _ in range(50):
                nursery.start_soon(runtime.get(ACCOUNT, "a").execute, Deposit(1))
        assert await runtime.get(ACCOUNT, "a").state() == Account(50)
        assert sorted(DECISIONS) == list(range(50))


SNAPSHOTTED = dataclasses.replace(ACCOUNT, snapshot_every=10, snapshot_version=2)


async def test_activation_replays_only_the_tail_after_a_snapshot(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = EventCapture()
    async with open_runtime(store, kinds=[SNAPSHOTTED], idle_timeout=60) as runtime:
        for _ in range(25):
            await runtime.get(SNAPSHOTTED, "a").execute(Deposit(1))
        await trio.sleep(120)  # passivated
        snapshot = await store.load_snapshot("account-a")
        assert snapshot is not None
        assert snapshot.version == 20
        assert snapshot.schema_version == 2

        store.reads.clear()
        assert await runtime.get(SNAPSHOTTED, "a").state() == Account(25)
        assert store.reads == [("account-a", 20)]


async def test_a_snapshot_of_an_old_schema_forces_a_full_replay(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    store = MemoryStore()
    older = dataclasses.replace(SNAPSHOTTED, snapshot_version=1)
    async with open_runtime(store, kinds=[older]) as runtime:
        for _ in range(12):
            await runtime.get(older, "a").execute(Deposit(1))
    async with open_runtime(store, kinds=[SNAPSHOTTED]) as runtime:
        assert await runtime.get(SNAPSHOTTED, "a").state() == Account(12)
    assert (
        "ignoring snapshot of account-a at version 10: schema v1, current is v2; replaying in full"
        in caplog.text
    )


class DepositedV2(msgspec.Struct, frozen=True, tag="Deposited"):
    cents: int  # was `amount` in whole units, in schema v1
    note: str = ""


def evolve_v2(state: Account, event: Any) -> Account:
    if isinstance(event, DepositedV2):
        return Account(state.balance + event.cents // 100)
    return evolve(state, event)


async def test_events_stored_as_v1_are_read_back_as_v2_and_old_snapshots_force_a_full_replay(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    store = EventCapture()
    async with open_runtime(store, kinds=[SNAPSHOTTED]) as runtime:
        for _ in range(12):
            await runtime.get(SNAPSHOTTED, "a").execute(Deposit(5))
    assert (await store.load_snapshot("account-a")).schema_version == 2  # type: ignore[union-attr]

    events_v2 = EventRegistry(Withdrawn)
    events_v2.register(DepositedV2, version=2)

    @events_v2.upcaster("Deposited", from_version=1)
    def to_cents(payload: dict[str, Any]) -> dict[str, Any]:
        return {"cents": payload.pop("amount") * 100}

    v2 = dataclasses.replace(SNAPSHOTTED, events=events_v2, evolve=evolve_v2, snapshot_version=3)
    store.reads.clear()
    async with open_runtime(store, kinds=[v2]) as runtime:
        assert await runtime.get(v2, "a").state() == Account(60)
    assert store.reads == [("account-a", 0)]  # the v2 snapshot was not trusted: a full replay
    assert "schema v2, current is v3; replaying in full" in caplog.text
    assert [e.schema_version for _, e in store.committed] == [1] * 12


async def queue_behind_a_slow_write(
    account: Any, commands: list[tuple[Any, str]], nursery: trio.Nursery
) -> dict[str, Any]:
    """Send `commands` in this order while the account's first write is under way.

    The first goes straight to the journal (the aggregate is idle); each of
    the others is queued in the mailbox before the next is sent.
    """
    answers: dict[str, Any] = {}

    async def send(command: Any, command_id: str) -> None:
        try:
            answers[command_id] = await account.execute(command, command_id=command_id)
        except Exception as failure:
            answers[command_id] = failure

    for command, command_id in commands:
        nursery.start_soon(send, command, command_id)
        await trio.testing.wait_all_tasks_blocked()
    return answers


async def test_commands_queued_behind_a_write_share_one_append_and_see_each_other(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = FaultyStore(delay=1.0)
    async with open_runtime(store, kinds=[ACCOUNT]) as runtime:
        account = runtime.get(ACCOUNT, "a")
        async with trio.open_nursery() as nursery:
            answers = await queue_behind_a_slow_write(
                account,
                [
                    (Deposit(10), "first"),
                    (Deposit(1), "d1"),
                    (Deposit(1), "d2"),
                    (Withdraw(12), "all"),  # only possible after d1 and d2
                    (Withdraw(1), "too-much"),  # refused: all was withdrawn
                    (Deposit(5), "d3"),
                ],
                nursery,
            )
        assert runtime.journal.stats.appends == 2  # the first, then one for the queue
        assert [answers[c].version for c in ("first", "d1", "d2", "all", "d3")] == [1, 2, 3, 4, 5]
        assert answers["all"].events == (Withdrawn(12),)
        assert isinstance(answers["too-much"], Rejected)
        assert str(answers["too-much"]) == "cannot withdraw 1 from a balance of 0"
        assert await account.state() == Account(5)
        stored = await store.read("account-a")
        assert [(e.version, e.causation_id) for e in stored] == [
            (1, "first"), (2, "d1"), (3, "d2"), (4, "all"), (5, "d3"),
        ]  # fmt: skip


async def test_a_failed_batch_fails_each_of_its_commands_and_moves_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = FaultyStore(delay=1.0)
    async with open_runtime(store, kinds=[ACCOUNT]) as runtime:
        account = runtime.get(ACCOUNT, "a")
        async with trio.open_nursery() as nursery:
            answers = await queue_behind_a_slow_write(
                account, [(Deposit(10), "first"), (Deposit(1), "d1"), (Deposit(2), "d2")], nursery
            )
            await trio.sleep(1.5)  # the first write has landed; the queued two's is under way
            store.fail_next_appends(1)
        assert answers["first"].version == 1
        for command_id in ("d1", "d2"):
            assert isinstance(answers[command_id], PersistFailed), answers[command_id]
        assert [e.causation_id for e in await store.read("account-a")] == ["first"]
        assert await account.state() == Account(10)
        assert (await account.execute(Deposit(2), command_id="d2")).version == 2
        assert await account.state() == Account(12)


async def test_a_batch_that_conflicts_is_decided_again_one_command_at_a_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = FaultyStore(delay=1.0)
    async with open_runtime(store, kinds=[ACCOUNT]) as runtime:
        account = runtime.get(ACCOUNT, "a")
        async with trio.open_nursery() as nursery:
            answers = await queue_behind_a_slow_write(
                account,
                [(Deposit(10), "first"), (Withdraw(4), "w1"), (Withdraw(4), "w2")],
                nursery,
            )
            await trio.sleep(1.5)  # the first write has landed; the queued two's is under way
            store.conflict_next_appends(1)
        assert [answers[c].version for c in ("first", "w1", "w2")] == [1, 2, 3]
        assert await account.state() == Account(2)
        assert [e.causation_id for e in await store.read("account-a")] == ["first", "w1", "w2"]


async def test_a_repeat_queued_behind_new_commands_is_answered_as_a_repeat(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = FaultyStore(delay=1.0)
    async with open_runtime(store, kinds=[ACCOUNT]) as runtime:
        account = runtime.get(ACCOUNT, "a")
        async with trio.open_nursery() as nursery:
            answers = await queue_behind_a_slow_write(
                account,
                [(Deposit(10), "first"), (Deposit(1), "d1"), (Deposit(1), "d1")],
                nursery,
            )
        assert answers["d1"].repeated  # the second answer, stored last
        assert await account.state() == Account(11)
        assert [e.causation_id for e in await store.read("account-a")] == ["first", "d1"]
