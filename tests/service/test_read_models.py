"""Day thirty (issue 22): the read models start from their checkpoint, forget by the log's
time, apply nothing twice, and are rebuilt around a snapshot they cannot read."""

from __future__ import annotations

import logging
import pathlib

import msgspec
import pytest
import trio
import trio.testing

from hostsmith.actors.service import READ_MODEL, READ_MODEL_SCHEMA, HostFactory, ReadModelSettings
from hostsmith.runtime import Snapshot, StoredEvent
from hostsmith.runtime.testing import FaultyStore, MemoryStore
from tests.service.test_service import acquired, start_service, wait_for_status

RETENTION = 3600.0  # start_service's RequestSettings


class LogReads(FaultyStore):
    """A store that notes where each read of the log began."""

    def __init__(self, inner: MemoryStore) -> None:
        super().__init__(inner)
        self.log_reads: list[int] = []

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[StoredEvent]:
        self.log_reads.append(after_position)
        return await super().read_all(after_position, limit)


async def one_cycle(service: HostFactory) -> str:
    """Host Factory's own calls: acquire two machines, then return them; the return's id."""
    machines = await acquired(service, "OnDemand", 2)
    returned = await service.request_return_machines(machines)
    await wait_for_status(service, returned.request_id, "complete")
    return returned.request_id


def held(service: HostFactory) -> dict[str, object]:
    """What the projections hold, as plain data (positions aside)."""
    state = msgspec.to_builtins(service.projections.state())
    state.pop("position")
    state["requests"] = sorted(state["requests"], key=lambda r: r["request_id"])
    return state


async def test_a_restart_does_not_bring_back_requests_forgotten_after_their_retention(
    tmp_path: pathlib.Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Every historical request counted as "just settled" after a restart, so the whole
    history stayed in memory for another retention. Forgetting goes by the log's time."""
    store = MemoryStore()
    async with trio.open_nursery() as first:
        service = await start_service(tmp_path, first, store)
        old = await one_cycle(service)
        await trio.sleep(RETENTION + 120)  # past the retention, and a forgetting sweep
        assert old not in service.projections.requests
        first.cancel_scope.cancel()
    await store.save_snapshot(Snapshot(stream=READ_MODEL, version=0, state=b"x"))  # no help

    async with trio.open_nursery() as second:
        again = await start_service(tmp_path, second, store)
        assert again.projections.requests == {}
        assert again.projections.machines == again.projections.machine_by_name == {}
        assert (await again.get_request_status([old])).requests[0].status == "complete"
        second.cancel_scope.cancel()


async def test_a_start_loads_the_checkpoint_and_reads_only_the_tail(
    tmp_path: pathlib.Path, autojump_clock: trio.testing.MockClock
) -> None:
    memory = MemoryStore()
    async with trio.open_nursery() as first:
        service = await start_service(tmp_path, first, memory)
        await one_cycle(service)
        first.cancel_scope.cancel()
    snapshot = await memory.load_snapshot(READ_MODEL)
    assert snapshot is not None  # saved at shutdown
    assert snapshot.version == memory.last_position
    assert snapshot.schema_version == READ_MODEL_SCHEMA

    store = LogReads(memory)
    async with trio.open_nursery() as second:
        again = await start_service(tmp_path, second, store)
        assert store.log_reads[0] == snapshot.version  # not from 0
        assert again.projections.position == snapshot.version
        await one_cycle(again)  # and it carries on from there
        second.cancel_scope.cancel()


async def test_the_checkpoint_is_saved_every_n_events_while_running(
    tmp_path: pathlib.Path, autojump_clock: trio.testing.MockClock
) -> None:
    store = MemoryStore()
    async with trio.open_nursery() as nursery:
        every = ReadModelSettings(checkpoint_events=5, checkpoint_seconds=10_000)
        service = await start_service(tmp_path, nursery, store, read_models=every)
        await one_cycle(service)
        await trio.testing.wait_all_tasks_blocked()
        snapshot = await store.load_snapshot(READ_MODEL)
        assert snapshot is not None
        assert store.last_position - snapshot.version < 5
        assert service.checkpointer.saves >= store.last_position // 5 - 1
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("state", "schema", "named"),
    [
        (b'{"position": 3, "requests": "not a list"}', READ_MODEL_SCHEMA, "cannot be decoded"),
        (b"\x00garbage", READ_MODEL_SCHEMA, "cannot be decoded"),
        (b"{}", READ_MODEL_SCHEMA + 1, f"this hostsmith reads v{READ_MODEL_SCHEMA}"),
    ],
    ids=["wrong-shape", "corrupt", "newer-schema"],
)
async def test_an_unusable_snapshot_is_named_once_and_the_read_models_rebuilt_from_the_log(
    tmp_path: pathlib.Path,
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
    state: bytes,
    schema: int,
    named: str,
) -> None:
    store = MemoryStore()
    async with trio.open_nursery() as first:
        service = await start_service(tmp_path, first, store)
        await acquired(service, "OnDemand", 3)  # live machines: something to hold
        await one_cycle(service)
        rebuilt_from_the_log = held(service)
        first.cancel_scope.cancel()
    broken = Snapshot(
        stream=READ_MODEL, version=store.last_position, state=state, schema_version=schema
    )
    await store.save_snapshot(broken)

    with caplog.at_level(logging.WARNING, logger="hostsmith.service"):
        async with trio.open_nursery() as second:
            again = await start_service(tmp_path, second, store)
            assert held(again) == rebuilt_from_the_log
            second.cancel_scope.cancel()
    warnings = [r.getMessage() for r in caplog.records if READ_MODEL in r.getMessage()]
    assert len(warnings) == 1
    assert named in warnings[0]
    assert warnings[0].endswith("rebuilding the read models from the log (slower, never wrong)")


async def test_a_restarted_subscription_applies_nothing_twice(
    tmp_path: pathlib.Path, autojump_clock: trio.testing.MockClock
) -> None:
    """With one injected read error, the projections' subscription restarted from 0 and
    drove every historical request again."""
    store = FaultyStore()
    async with trio.open_nursery() as nursery:
        service = await start_service(tmp_path, nursery, store)
        await one_cycle(service)
        before = held(service)
        store.fail_next_log_reads(1)
        await trio.sleep(3)
        assert service.runtime.supervisor.restarts == 1
        assert held(service) == before
        await one_cycle(service)
        nursery.cancel_scope.cancel()


def test_the_projections_skip_events_at_or_below_their_position() -> None:
    from hostsmith.actors.hostfactory import AcquireOpened
    from hostsmith.actors.service._projections import Projections

    opened = StoredEvent(
        "request-req-1",
        1,
        7,
        "e1",
        "AcquireOpened",
        msgspec.json.encode(AcquireOpened(template_id="t", count=1, deadline=9, opened_at=1)),
        recorded_at=1.0,
    )
    projections = Projections(lambda: 100.0)
    assert projections.apply([opened]) == ["req-1"]
    assert projections.apply([opened]) == []  # seen: not opened (nor driven) again
    assert projections.position == 7


def test_a_machine_whose_name_another_machine_took_is_still_held_live() -> None:
    """Found by the history benchmark: the simulated cloud gave a second live machine the
    first one's address, and the reconciler took the first one for an orphan (its name's
    latest news was the other machine's), and would have terminated a host Host Factory held.
    Machines are known by id; a name only finds one."""
    from hostsmith.actors.hostfactory import AcquireOpened, Machine, MachinesLaunched, StateChange
    from hostsmith.actors.hostfactory._requests import MachineStatesChanged, RequestSettled
    from hostsmith.actors.service._projections import Projections

    log: list[StoredEvent] = []

    def record(request_id: str, *events: msgspec.Struct) -> None:
        for event in events:
            version = sum(1 for e in log if e.stream == f"request-{request_id}") + 1
            log.append(
                StoredEvent(
                    f"request-{request_id}",
                    version,
                    len(log) + 1,
                    f"e{len(log) + 1}",
                    type(event).__name__,
                    msgspec.json.encode(event),
                    recorded_at=10.0,
                )
            )

    name = "ip-10-1-2-3.sim.internal"
    for request_id, machine_id in (("req-1", "i-1"), ("req-2", "i-2")):
        record(
            request_id,
            AcquireOpened(template_id="t", count=1, deadline=99, opened_at=1),
            MachinesLaunched(machines=(Machine(machine_id=machine_id, name=name),), final=True),
            MachineStatesChanged((StateChange(machine_id, "running"),)),
            RequestSettled("completed"),
        )
    record("req-2", MachineStatesChanged((StateChange("i-2", "terminated"),)))
    projections = Projections(lambda: 100.0)
    projections.apply(log)

    assert projections.forget_settled(cutoff=50.0) == 1  # req-2: its machine is gone
    assert set(projections.requests) == {"req-1"}
    assert projections.machines["i-1"].state == "running"
