"""The PostgreSQL store against a real server of its own: set-up, bad input, and two writers.

The contract suite runs on it through conftest's backends; these are the
cases only PostgreSQL has: tables made by `hostsmith stores init` (safe
twice), a database that is not there or a password that is wrong (named,
the password never shown), and two stores on one database, whose appends
interleave with no gap in the positions and no version given out twice.
"""

from __future__ import annotations

import pytest
import trio

from hostsmith.runtime import Appended, ConflictError, StoreOpenError, append
from hostsmith.stores import open_store
from hostsmith.stores.testing import event
from tests.support.daemon import hostsmith
from tests.support.postgres_server import new_database


def test_stores_init_makes_the_tables_and_is_safe_twice(postgres: str) -> None:
    url = new_database(postgres)
    first = hostsmith("stores", "init", url)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == f"created {url}"
    again = hostsmith("stores", "init", url)
    assert again.returncode == 0
    assert again.stdout.strip() == f"{url} exists already"


async def test_a_database_that_is_not_there_is_named_and_a_password_never_shown(
    postgres: str,
) -> None:
    absent = f"{postgres}/no_such_database"
    with pytest.raises(StoreOpenError, match=r"no_such_database.*does not exist"):
        async with open_store(absent):
            pass
    with_password = absent.replace("postgres@", "postgres:hunter2@")
    with pytest.raises(StoreOpenError) as refused:
        async with open_store(with_password):
            pass
    assert "hunter2" not in str(refused.value)
    assert "postgres:***@" in str(refused.value)
    with pytest.raises(StoreOpenError, match="names no database"):
        async with open_store(postgres):
            pass


async def test_two_stores_on_one_database_interleave_with_no_gap_and_no_version_twice(
    postgres: str,
) -> None:
    url = new_database(postgres)
    outcomes: list[Appended] = []
    conflicts: list[str] = []

    async def writer(name: str) -> None:
        async with open_store(url) as store:
            for n in range(50):
                for stream in ("shared-1", "shared-2", f"own-{name}"):
                    while True:  # a conflict is the other writer's append: read, try again
                        version = len(await store.read(stream))
                        try:
                            done = await append(
                                store, stream, version, [event(f"{name}-{stream}-{n}")]
                            )
                        except ConflictError:
                            conflicts.append(stream)
                            continue
                        outcomes.append(done)
                        break

    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer, "a")
        nursery.start_soon(writer, "b")
    async with open_store(url) as store:
        everything = await store.read_all(0, 10_000)
        shared = await store.read("shared-1")
    assert [e.position for e in everything] == list(range(1, 301))
    assert [e.version for e in shared] == list(range(1, 101))
    assert len(outcomes) == 300
    assert set(conflicts) <= {"shared-1", "shared-2"}  # the guard refused, never overwrote
