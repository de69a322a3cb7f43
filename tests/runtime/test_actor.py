"""Plain actors: asks, deadlines, backpressure, crashes and correlation ids."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from hostsmith.runtime import (
    ActorCrashed,
    AskTimeout,
    Envelope,
    Mailbox,
    Rejected,
    Restart,
    Runtime,
    current_correlation_id,
    open_runtime,
)
from hostsmith.runtime.testing import MemoryStore


class Recorder:
    """Handles ('sleep', s), ('fail', _), ('reject', _), ('ask', ref) and echoes anything else."""

    def __init__(self, log: list[Any]) -> None:
        self.log = log

    async def on_start(self) -> None:
        self.log.append("started")

    async def receive(self, envelope: Envelope) -> Any:
        kind, value = envelope.payload
        self.log.append((kind, envelope.correlation_id))
        if kind == "sleep":
            try:
                await trio.sleep(value)
            except trio.Cancelled:
                self.log.append(("cancelled at", trio.current_time()))
                raise
            return "slept"
        if kind == "fail":
            raise ValueError("handler bug")
        if kind == "reject":
            raise Rejected("not allowed")
        if kind == "ask":
            return await value.ask(("echo", current_correlation_id()))
        return value


async def spawn(runtime: Runtime, log: list[Any], name: str = "recorder", **options: Any) -> Any:
    return await runtime.spawn(name, lambda: Recorder(log), **options)


async def test_ask_returns_the_reply() -> None:
    log: list[Any] = []
    async with open_runtime(MemoryStore()) as runtime:
        ref = await spawn(runtime, log)
        assert await ref.ask(("echo", 42)) == 42


async def test_an_ask_timeout_cancels_the_callees_handler(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[Any] = []
    async with open_runtime(MemoryStore()) as runtime:
        ref = await spawn(runtime, log)
        start = trio.current_time()
        with pytest.raises(
            AskTimeout, match=r"^recorder did not answer within 2s; the command may"
        ):
            await ref.ask(("sleep", 100), timeout=2)
        assert trio.current_time() - start == pytest.approx(2, abs=0.002)
        await trio.testing.wait_all_tasks_blocked()
        assert ("cancelled at", pytest.approx(start + 2, abs=0.002)) in log
        assert await ref.ask(("echo", "still alive")) == "still alive"


async def test_a_message_whose_asker_gave_up_is_skipped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[Any] = []
    async with open_runtime(MemoryStore()) as runtime:
        ref = await spawn(runtime, log)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: ref.ask(("sleep", 5), timeout=10))
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises(AskTimeout, match=r"did not answer within 1s$"):
                await ref.ask(("echo", "late"), timeout=1)
        await trio.testing.wait_all_tasks_blocked()
        assert [entry for entry in log if entry != "started" and entry[0] == "echo"] == []


async def test_a_full_mailbox_blocks_the_sender(autojump_clock: trio.testing.MockClock) -> None:
    log: list[Any] = []
    async with open_runtime(MemoryStore()) as runtime:
        ref = await spawn(runtime, log, mailbox_capacity=2)
        await ref.tell(("sleep", 10))  # taken by the actor at once
        await trio.testing.wait_all_tasks_blocked()
        await ref.tell(("echo", 1))
        await ref.tell(("echo", 2))  # the mailbox is now full
        sent = trio.Event()

        async def third() -> None:
            await ref.tell(("echo", 3))
            sent.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(third)
            await trio.testing.wait_all_tasks_blocked()
            assert not sent.is_set()
            assert ref.mailbox.depth == 2
            await trio.sleep(10)  # the actor finishes sleeping and takes one
            await trio.testing.wait_all_tasks_blocked()
            assert sent.is_set()


async def test_a_rejection_is_an_answer_and_the_actor_carries_on() -> None:
    log: list[Any] = []
    async with open_runtime(MemoryStore()) as runtime:
        ref = await spawn(runtime, log)
        with pytest.raises(Rejected, match=r"^not allowed$"):
            await ref.ask(("reject", None))
        assert await ref.ask(("echo", 1)) == 1
        assert log.count("started") == 1


async def test_a_crash_answers_the_caller_and_restarts_the_actor_on_its_mailbox(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[Any] = []
    async with open_runtime(MemoryStore()) as runtime:
        ref = await spawn(runtime, log, restart=Restart.PERMANENT)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: ref.ask(("sleep", 1)))
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises(
                ActorCrashed,
                match=r"^recorder crashed while handling the message: ValueError: handler bug",
            ):
                await ref.ask(("fail", None))
        assert await ref.ask(("echo", "after")) == "after"
        assert log.count("started") == 2


async def test_the_correlation_id_follows_the_conversation_across_actors() -> None:
    log: list[Any] = []
    async with open_runtime(MemoryStore()) as runtime:
        first = await spawn(runtime, log, "first")
        second = await spawn(runtime, log, "second")
        answer = await first.ask(("ask", second), correlation_id="http-123")
        assert answer == "http-123"
        assert ("ask", "http-123") in log
        assert ("echo", "http-123") in log


def test_a_mailbox_is_bounded_as_asked() -> None:
    mailbox = Mailbox(3)
    assert mailbox.statistics().max_buffer_size == 3
