"""`back_up` and `restore` on their own: any store kind, and a damaged backup refused by name."""

from __future__ import annotations

import json
import pathlib

import pytest

from hostsmith.runtime import NewEvent, append
from hostsmith.stores import BackupError, back_up, open_store, restore


async def fill(url: str, streams: int = 5, each: int = 4) -> None:
    async with open_store(url) as store:
        for n in range(streams):
            for version in range(each):
                event = NewEvent(event_id=f"e{n}-{version}", type="T", data=b'{"n": 1}')
                await append(store, f"s-{n}", version, [event])


async def everything(url: str) -> list[tuple[object, ...]]:
    async with open_store(url) as store:
        return [
            (e.position, e.stream, e.version, e.event_id, e.data)
            for e in await store.read_all(0, 10_000)
        ]


async def test_a_json_store_backs_up_and_restores_into_sqlite(tmp_path: pathlib.Path) -> None:
    source = f"json://{tmp_path / 'json'}"
    await fill(source)
    manifest = await back_up(source, tmp_path / "backup")
    assert (manifest.events, manifest.last_position, manifest.source) == (20, 20, source)
    target = f"sqlite://{tmp_path / 'restored.db'}"
    report, files = await restore(tmp_path / "backup", target)
    assert files == []
    assert report.verification.ok
    assert await everything(target) == await everything(source)


async def test_a_damaged_backup_is_refused_and_nothing_is_written(tmp_path: pathlib.Path) -> None:
    source = f"sqlite://{tmp_path / 'events.db'}"
    await fill(source)
    await back_up(source, tmp_path / "backup")
    manifest = tmp_path / "backup" / "backup.json"
    said = json.loads(manifest.read_text())
    manifest.write_text(json.dumps(said | {"events": said["events"] + 3}))
    target = f"sqlite://{tmp_path / 'restored.db'}"
    with pytest.raises(
        BackupError,
        match=r"holds 20 events up to position 20, but backup.json says 23 up to 20: the backup is damaged$",
    ):
        await restore(tmp_path / "backup", target)
    assert await everything(target) == []
    (tmp_path / "backup" / "events.db").write_bytes(b"not a database at all")
    with pytest.raises(BackupError, match="is not a readable SQLite file"):
        await restore(tmp_path / "backup", target)


async def test_a_backup_goes_into_a_new_folder_only(tmp_path: pathlib.Path) -> None:
    source = f"sqlite://{tmp_path / 'events.db'}"
    await fill(source, streams=1, each=1)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "something").write_text("kept")
    with pytest.raises(BackupError, match=r"is not empty: back up into a new folder$"):
        await back_up(source, tmp_path / "busy")
    assert (tmp_path / "busy" / "something").read_text() == "kept"
