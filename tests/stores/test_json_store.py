"""The JSON-lines store: readable lines, torn tails set aside, corruption named and left alone."""

from __future__ import annotations

import hashlib
import json
import pathlib

import pytest

from hostsmith.runtime import NewEvent, StoreOpenError, append
from hostsmith.stores import open_store


def event(event_id: str, n: int = 1) -> NewEvent:
    return NewEvent(
        event_id=event_id,
        type="Counted",
        data=f'{{"n":{n}}}'.encode(),
        correlation_id="c-1",
        causation_id="cmd-1",
        recorded_at=1700000000.5,
    )


async def fill(url: str) -> None:
    async with open_store(url) as store:
        await append(store, "counter-a", 0, [event("e1"), event("e2", 2)])
        await append(store, "request-r", 0, [event("e3")])


async def test_each_event_is_one_readable_line(tmp_path: pathlib.Path) -> None:
    await fill(f"json://{tmp_path}")
    first = json.loads((tmp_path / "events.jsonl").read_text().splitlines()[0])
    assert first == {
        "stream": "counter-a",
        "version": 1,
        "position": 1,
        "id": "e1",
        "type": "Counted",
        "schema_version": 1,
        "time": 1700000000.5,
        "correlation_id": "c-1",
        "causation_id": "cmd-1",
        "data": {"n": 1},
    }


async def test_split_layout_keeps_one_file_per_aggregate_type(tmp_path: pathlib.Path) -> None:
    await fill(f"json://{tmp_path}?layout=split")
    assert sorted(p.name for p in tmp_path.glob("*.jsonl")) == ["counter.jsonl", "request.jsonl"]
    async with open_store(f"json://{tmp_path}?layout=split") as store:
        assert [e.event_id for e in await store.read_all()] == ["e1", "e2", "e3"]


async def test_a_torn_last_line_is_set_aside_and_reported(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    await fill(f"json://{tmp_path}")
    log = tmp_path / "events.jsonl"
    with log.open("ab") as handle:
        handle.write(b'{"stream": "counter-a", "version": 3, "posi')  # the process died mid-write

    async with open_store(f"json://{tmp_path}") as store:
        assert [e.event_id for e in await store.read_all()] == ["e1", "e2", "e3"]
        await append(store, "counter-a", 2, [event("e4")])  # the log goes on cleanly

    assert (
        tmp_path / "events.jsonl.torn"
    ).read_bytes() == b'{"stream": "counter-a", "version": 3, "posi\n'
    assert (
        "a torn last line (an append that was never acknowledged) was moved to events.jsonl.torn"
        in caplog.text
    )
    assert len(log.read_text().splitlines()) == 4


async def test_a_corrupt_line_in_the_middle_stops_the_open_and_changes_nothing(
    tmp_path: pathlib.Path,
) -> None:
    await fill(f"json://{tmp_path}")
    log = tmp_path / "events.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(lines[0] + b"this is not json\n" + b"".join(lines[1:]))
    before = hashlib.sha256(log.read_bytes()).hexdigest()

    with pytest.raises(
        StoreOpenError,
        match=rf"^{log}:2: corrupt event line \(.*\); the file was not changed: repair or remove that line$",
    ):
        async with open_store(f"json://{tmp_path}"):
            pass

    assert hashlib.sha256(log.read_bytes()).hexdigest() == before
    assert not (tmp_path / "events.jsonl.torn").exists()


async def test_a_batch_that_reached_only_some_files_is_set_aside(tmp_path: pathlib.Path) -> None:
    url = f"json://{tmp_path}?layout=split"
    await fill(url)
    # As if a batch wrote positions 4 (counter) and 5 (request) but died before the request file.
    line = {
        "stream": "counter-a",
        "version": 3,
        "position": 5,
        "id": "late",
        "type": "Counted",
        "data": {"n": 9},
    }
    with (tmp_path / "counter.jsonl").open("a") as handle:
        handle.write(json.dumps(line) + "\n")

    async with open_store(url) as store:
        assert [e.event_id for e in await store.read_all()] == ["e1", "e2", "e3"]
    assert json.loads((tmp_path / "counter.jsonl.torn").read_text())["id"] == "late"


async def test_a_path_that_is_a_file_is_refused(tmp_path: pathlib.Path) -> None:
    file = tmp_path / "file"
    file.write_text("x")
    with pytest.raises(
        StoreOpenError, match=rf"^JSON store path {file} is a file, not a directory$"
    ):
        async with open_store(f"json://{file}"):
            pass
