"""Migration between stores: exact, resumable after SIGKILL, verified, and refusing foreign data."""

from __future__ import annotations

import itertools
import json
import pathlib
import signal
import sqlite3
import subprocess
import sys

import pytest
import trio

from hostsmith.runtime import AppendRequest, EventStore, NewEvent, Snapshot
from hostsmith.runtime.testing import MemoryStore
from hostsmith.stores import MigrationError, migrate, open_store, verify
from hostsmith.stores._migrate import BulkLoader
from tests.conftest import needs_server, prepare, url_for
from tests.support.daemon import hostsmith

STREAMS, EVENTS = 500, 10_000
SMALL_STREAMS, SMALL_EVENTS = 50, 500
PERSISTENT = ["sqlite", "json-single", "json-split"]
FULL_SIZE_WITH_DYNAMODB = {("sqlite", "dynamodb"), ("dynamodb", "sqlite")}
"""The DynamoDB pairs copied at full size. Reading DynamoDB does not depend on
the target, nor bulk loading it on the source, so one pair each way covers
that code at size; the other six run small (moto sorts the whole table on
every Query, which made them 73% of the suite's time) to cover each pairing."""


def migration_size(source: str, target: str, quick: bool) -> tuple[int, int]:
    """(streams, events) for a migration test of this pair."""
    if quick or (
        "dynamodb" in (source, target) and (source, target) not in FULL_SIZE_WITH_DYNAMODB
    ):
        return SMALL_STREAMS, SMALL_EVENTS
    return STREAMS, EVENTS


async def fill(store: EventStore, streams: int = STREAMS, events: int = EVENTS) -> None:
    """`events` events over `streams` streams, interleaved, plus snapshots and checkpoints.

    DynamoDB is filled through its bulk loader, as a migration into it would:
    on moto each transaction copies the whole table, so 10,000 events a few
    dozen at a time would take hours.
    """
    if isinstance(store, BulkLoader):
        staged = MemoryStore()
        await fill(staged, streams, events)
        await store.load_events(await staged.read_all(0, events))
        await store.save_snapshot(await staged.load_snapshot("kind0-0"))  # type: ignore[arg-type]
        await store.save_checkpoint("projection", events // 2)
        return
    versions = dict.fromkeys(range(streams), 0)
    batch = []
    for n in range(events):
        stream = (n * 7) % streams
        batch.append(
            AppendRequest(
                f"kind{stream % 3}-{stream}",
                versions[stream],
                (
                    NewEvent(
                        event_id=f"e{n}",
                        type="Counted",
                        data=f'{{"n":{n}}}'.encode(),
                        causation_id=f"c{n}",
                        recorded_at=float(n),
                    ),
                ),
            )
        )
        versions[stream] += 1
        if len(batch) == 1000:
            await store.append_batch(batch)
            batch = []
    if batch:
        await store.append_batch(batch)
    await store.save_snapshot(
        Snapshot(stream="kind0-0", version=3, state=b'{"n":3}', schema_version=2)
    )
    await store.save_checkpoint("projection", events // 2)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("source", "target"),
    list(itertools.permutations(["memory", *PERSISTENT, "dynamodb", "postgresql"], 2)),
)
async def test_migration_copies_everything_between_every_pair(
    tmp_path: pathlib.Path, source: str, target: str, request: pytest.FixtureRequest, quick: bool
) -> None:
    needs_server(request, source)
    needs_server(request, target)
    source_url = await prepare(url_for(source, tmp_path / "a"))
    target_url = await prepare(url_for(target, tmp_path / "b"))
    streams, events = migration_size(source, target, quick)
    async with open_store(source_url) as origin, open_store(target_url) as copy:
        await fill(origin, streams, events)
        report = await migrate(origin, copy, batch=1500)

        assert report.copied == events
        assert report.verification.ok, report.verification.mismatches
        assert (report.verification.events, report.verification.streams) == (events, streams)
        assert await copy.read_all(0, events) == await origin.read_all(0, events)
        assert await copy.load_snapshot("kind0-0") == await origin.load_snapshot("kind0-0")
        assert await copy.checkpoints() == {"projection": events // 2}


async def test_a_second_run_finds_nothing_to_copy() -> None:
    origin, copy = MemoryStore(), MemoryStore()
    await fill(origin, 20, 200)
    await migrate(origin, copy)
    again = await migrate(origin, copy)
    assert (again.copied, again.resumed_from) == (0, 200)
    assert again.verification.ok


async def test_a_target_with_different_data_is_refused() -> None:
    origin, other = MemoryStore(), MemoryStore()
    await fill(origin, 5, 50)
    await other.append_batch(
        [AppendRequest("x-1", 0, (NewEvent(event_id="zzz", type="T", data=b"{}"),))]
    )
    with pytest.raises(
        MigrationError,
        match=r"^the target already holds different data: at position 1 it has x-1 v1 \(zzz\), the source has kind0-0 v1 \(e0\); migrate into an empty store$",
    ):
        await migrate(origin, other)
    assert len(await other.read_all()) == 1


async def test_verify_catches_an_altered_event(tmp_path: pathlib.Path) -> None:
    async with (
        open_store(f"sqlite://{tmp_path}/a.db") as origin,
        open_store(f"sqlite://{tmp_path}/b.db") as copy,
    ):
        await fill(origin, 10, 100)
        assert (await migrate(origin, copy)).verification.ok
    with sqlite3.connect(tmp_path / "b.db") as db:
        db.execute("""UPDATE events SET data = '{"n":999}' WHERE event_id = 'e42'""")
    db.close()
    async with (
        open_store(f"sqlite://{tmp_path}/a.db") as origin,
        open_store(f"sqlite://{tmp_path}/b.db") as copy,
    ):
        result = await verify(origin, copy)
    assert result.mismatches == ["stream 'kind1-4' differs: same 10 events, different content"]

    cli = hostsmith(
        "migrate",
        "--from",
        f"sqlite://{tmp_path}/a.db",
        "--to",
        f"sqlite://{tmp_path}/b.db",
        "--verify-only",
        "--json",
    )
    assert cli.returncode == 2
    assert json.loads(cli.stdout)["verified"] is False
    assert "error: the stores differ: stream 'kind1-4' differs" in cli.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("target_kind", "events", "kill_after"),
    [("json-split", 20_000, 5000), ("dynamodb", 4000, 1500), ("postgresql", 20_000, 5000)],
)
def test_a_migration_killed_mid_way_finishes_when_run_again(
    tmp_path: pathlib.Path,
    target_kind: str,
    events: int,
    kill_after: int,
    request: pytest.FixtureRequest,
    quick: bool,
) -> None:
    """DynamoDB is the bulk loader's case; moto is slow, so it copies fewer events."""
    if quick:
        events, kill_after = events // 4, kill_after // 4
    needs_server(request, target_kind)
    source = f"sqlite://{tmp_path}/a.db"
    target = url_for(target_kind, tmp_path / "copy")

    async def make() -> None:
        await prepare(target)
        async with open_store(source) as origin:
            await fill(origin, 200, events)

    trio.run(make)
    command = [
        sys.executable,
        "-m",
        "hostsmith.actors.cli",
        "migrate",
        "--from",
        source,
        "--to",
        target,
        "--batch",
        "500",
    ]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as first:
        assert first.stderr is not None
        for line in first.stderr:
            if line.startswith("copied ") and int(line.split()[1]) >= kill_after:
                first.send_signal(signal.SIGKILL)
                break
        first.communicate()
    assert first.returncode == -signal.SIGKILL

    second = hostsmith("migrate", "--from", source, "--to", target, "--json")
    assert second.returncode == 0, second.stderr
    report = json.loads(second.stdout)
    assert report["verified"] is True
    assert report["resumed_from"] >= kill_after
    assert report["resumed_from"] + report["copied"] == report["events"] == events
