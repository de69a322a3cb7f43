"""SQLite specifics that the contract suite cannot see: two connections on one file.

The store caches what its own connection wrote (stream versions and the next
free position) and trusts that cache only while `PRAGMA data_version` says no
other connection has committed. Two stores on one file are two processes'
worth of connections, so they show whether the cache is dropped in time.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from hostsmith.runtime import ConflictError, NewEvent, append
from hostsmith.stores import open_store
from tests.support.small_disk import fill, small_filesystem

__all__ = ["small_filesystem"]  # a fixture, used by name


def event(event_id: str) -> NewEvent:
    return NewEvent(event_id=event_id, type="Thing", data=b"{}")


async def test_two_connections_on_one_file_never_reuse_a_position_or_version(
    tmp_path: Path,
) -> None:
    url = f"sqlite://{tmp_path / 'shared.db'}"
    async with open_store(url) as first, open_store(url) as second:
        await append(first, "a", 0, [event("a1")])
        await append(second, "b", 0, [event("b1")])  # second has cached nothing yet
        await append(first, "c", 0, [event("c1")])  # first's next position is stale
        await append(first, "a", 1, [event("a2")])
        with pytest.raises(ConflictError):
            await append(second, "a", 1, [event("a2-again")])  # second's view of a is stale
        await append(second, "a", 2, [event("a3")])
        await append(first, "a", 3, [event("a4")])

        stored = await second.read_all()
        assert [(s.stream, s.version, s.position) for s in stored] == [
            ("a", 1, 1),
            ("b", 1, 2),
            ("c", 1, 3),
            ("a", 2, 4),
            ("a", 3, 5),
            ("a", 4, 6),
        ]


@pytest.mark.slow
async def test_after_a_full_disk_the_store_appends_again_once_there_is_room(
    small_filesystem: Path,
) -> None:
    """Issue 13: a commit that failed for lack of room left the store's version cache
    moved, so every later append to that stream conflicted until a restart."""
    async with open_store(f"sqlite://{small_filesystem}/events.db") as store:
        await append(store, "template-T", 0, [NewEvent(event_id="e1", type="T", data=b"{}")])
        filler = fill(small_filesystem)
        big = [
            NewEvent(event_id=f"big{n}", type="T", data=b'"' + b"x" * 20_000 + b'"')
            for n in range(4)
        ]
        with pytest.raises(sqlite3.OperationalError, match="database or disk is full"):
            await append(store, "template-T", 1, big)
        filler.unlink()  # the admin frees space; no restart
        appended = await append(
            store, "template-T", 1, [NewEvent(event_id="e2", type="T", data=b"{}")]
        )
        assert appended.version == 2
        assert [e.event_id for e in await store.read("template-T")] == ["e1", "e2"]
