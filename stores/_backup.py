"""Backups: a consistent copy of a store, taken while it is in use, in one SQLite file.

`back_up(url, folder)` writes `folder/events.db` and `folder/backup.json`.
From an SQLite store it uses SQLite's online backup API in one step: the
copy is one read transaction, so it is the store as it was at one commit,
and in WAL mode the daemon's writers are not held up meanwhile. From any
other store it copies the log with `migrate`, which reads it in position
order, so the copy is a prefix of the log as it grows. Either way the copy
is then checked: SQLite's integrity check, and each of its events equal to
the source's at the same position.

Other SQLite files that belong with the store (a provider's state, such as
the simulated cloud's) are copied beside it with the same online backup
(`also`), and named in the manifest.

`restore(folder, url)` checks the backup against its manifest, then copies
it into an *empty* store with `migrate` and verifies the two are equal; it
never writes over events that are there already. The other files go into
`files_into`, each only where no file of its name is yet. Restoring into another
kind of store (a backup of SQLite into DynamoDB) is the same call.
"""

from __future__ import annotations

import pathlib
import sqlite3
import time
from collections.abc import Sequence
from urllib.parse import urlsplit

import anyio
import msgspec

from hostsmith.runtime import StoreOpenError
from hostsmith.stores._migrate import (
    MigrationError,
    MigrationReport,
    agreed_prefix,
    extent,
    migrate,
)
from hostsmith.stores._open import open_store
from hostsmith.stores._sqlite import sqlite_path

EVENTS_FILE = "events.db"
MANIFEST_FILE = "backup.json"


class BackupError(StoreOpenError):
    """A backup cannot be taken or restored: the message says why and what to do."""


class BackupManifest(msgspec.Struct, frozen=True, kw_only=True):
    """What `backup.json` says of the copy beside it."""

    created_at: float
    source: str
    events: int
    """Events in the copy: the source's first `events`, by position."""
    last_position: int
    files: list[str] = []
    """The other SQLite files copied beside the store (`also`)."""


async def back_up(
    url: str, folder: pathlib.Path, *, also: Sequence[pathlib.Path] = ()
) -> BackupManifest:
    """Copy the store at `url` into `folder` (new, or empty), consistently, then check it."""
    await anyio.to_thread.run_sync(_new_folder, folder)
    copy = folder / EVENTS_FILE
    source_url = urlsplit(url)
    async with open_store(url) as source:
        if source_url.scheme == "sqlite":
            await anyio.to_thread.run_sync(copy_sqlite_file, sqlite_path(source_url), copy)
        else:
            async with open_store(f"sqlite://{copy}") as target:
                await migrate(source, target)
        await anyio.to_thread.run_sync(check_integrity, copy)
        async with open_store(f"sqlite://{copy}") as backup:
            events, last_position = await extent(backup)
            try:
                await agreed_prefix(source, backup, 2000)
            except MigrationError as differs:
                raise BackupError(f"the copy in {copy} does not match {url}: {differs}") from None
    for other in also:
        await anyio.to_thread.run_sync(copy_sqlite_file, other, folder / other.name)
    manifest = BackupManifest(
        created_at=time.time(),
        source=url,
        events=events,
        last_position=last_position,
        files=[other.name for other in also],
    )
    encoded = msgspec.json.format(msgspec.json.encode(manifest)) + b"\n"
    await anyio.to_thread.run_sync((folder / MANIFEST_FILE).write_bytes, encoded)
    return manifest


def _new_folder(folder: pathlib.Path) -> None:
    if folder.exists() and any(folder.iterdir()):
        raise BackupError(f"{folder} is not empty: back up into a new folder")
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as error:
        raise BackupError(f"cannot make {folder}: {error.strerror}") from None


async def restore(
    folder: pathlib.Path, url: str, *, files_into: pathlib.Path | None = None
) -> tuple[MigrationReport, list[str]]:
    """Copy the backup in `folder` into the empty store at `url`, and verify it there.

    Returns the migration's report, and the names of the other files put into
    `files_into`."""
    manifest = await anyio.to_thread.run_sync(read_manifest, folder)
    copy = folder / EVENTS_FILE
    await anyio.to_thread.run_sync(check_integrity, copy)
    async with open_store(f"sqlite://{copy}") as backup, open_store(url) as target:
        events, last_position = await extent(backup)
        if (events, last_position) != (manifest.events, manifest.last_position):
            raise BackupError(
                f"{copy} holds {events} events up to position {last_position}, but "
                f"{MANIFEST_FILE} says {manifest.events} up to {manifest.last_position}: "
                "the backup is damaged"
            )
        if await target.read_all(0, 1):
            raise BackupError(
                f"{url} already holds events: restore into an empty store (a new data dir), "
                "or move the old one away first"
            )
        report = await migrate(backup, target)
    if not report.verification.ok:
        raise BackupError(
            "the restored store differs from the backup: "
            + "; ".join(report.verification.mismatches[:5])
        )
    restored = []
    for name in manifest.files if files_into is not None else []:
        assert files_into is not None
        placed = files_into / name
        if not await anyio.to_thread.run_sync(placed.exists):
            await anyio.to_thread.run_sync(copy_sqlite_file, folder / name, placed)
            restored.append(name)
    return report, restored


def read_manifest(folder: pathlib.Path) -> BackupManifest:
    try:
        return msgspec.json.decode((folder / MANIFEST_FILE).read_bytes(), type=BackupManifest)
    except FileNotFoundError:
        raise BackupError(
            f"{folder} is not a hostsmith backup: it has no {MANIFEST_FILE}"
        ) from None
    except msgspec.DecodeError as error:
        raise BackupError(f"{folder / MANIFEST_FILE} is damaged: {error}") from None


def copy_sqlite_file(source: pathlib.Path, target: pathlib.Path) -> None:
    """SQLite's online backup, in one step: one read transaction, one consistent copy."""
    if not source.exists():
        raise BackupError(f"there is no store at {source} to back up")
    reading = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    writing = sqlite3.connect(target)
    try:
        reading.backup(writing, pages=-1)
    finally:
        writing.close()
        reading.close()


def check_integrity(path: pathlib.Path) -> None:
    if not path.exists():
        raise BackupError(f"the backup has no {path.name}: {path} is missing")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        (verdict,) = db.execute("PRAGMA integrity_check").fetchone()
    except sqlite3.DatabaseError as error:
        raise BackupError(f"{path} is not a readable SQLite file: {error}") from None
    finally:
        db.close()
    if verdict != "ok":
        raise BackupError(f"{path} fails SQLite's integrity check: {verdict}")
