"""Bad store URLs and files get one clear line, and files are left untouched."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest

from hostsmith.runtime import StoreOpenError
from hostsmith.stores import open_store


async def open_and_close(url: str) -> None:
    async with open_store(url):
        pass


async def test_an_unknown_scheme_names_it_and_the_known_ones() -> None:
    with pytest.raises(
        StoreOpenError,
        match=r"^unknown store scheme 'mysql' in 'mysql://db': use one of memory://, sqlite:///path/to/events.db, json:///path/to/dir\?layout=single\|split, dynamodb://TABLE\?region=REGION, postgresql://USER@HOST:PORT/DATABASE$",
    ):
        await open_and_close("mysql://db")


async def test_a_string_that_is_no_url_is_refused() -> None:
    with pytest.raises(StoreOpenError, match=r"^'events.db' is not a store URL"):
        await open_and_close("events.db")


async def test_a_file_that_is_not_sqlite_is_named_and_left_untouched(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "notes.txt"
    path.write_bytes(b"these are my notes, not a database\n" * 100)
    before = hashlib.sha256(path.read_bytes()).hexdigest()

    with pytest.raises(
        StoreOpenError,
        match=rf"^{path} is not a SQLite database \(it starts with b'these are my not'\); it was left untouched",
    ):
        await open_and_close(f"sqlite://{path}")

    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


async def test_a_foreign_sqlite_database_is_refused_untouched(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE users (name TEXT)")
    db.close()
    before = hashlib.sha256(path.read_bytes()).hexdigest()

    with pytest.raises(
        StoreOpenError,
        match=r"is a SQLite database but not a hostsmith event store \(it has tables users\); it was left untouched$",
    ):
        await open_and_close(f"sqlite://{path}")

    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


async def test_a_directory_is_not_a_store_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(
        StoreOpenError, match=rf"^SQLite store path {tmp_path} is a directory, not a file$"
    ):
        await open_and_close(f"sqlite://{tmp_path}")


async def test_an_unusable_path_is_named(tmp_path) -> None:  # type: ignore[no-untyped-def]
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(
        StoreOpenError, match=rf"^cannot use SQLite store path {blocker}/sub/events.db: "
    ):
        await open_and_close(f"sqlite://{blocker}/sub/events.db")


async def test_a_missing_directory_is_created(tmp_path) -> None:  # type: ignore[no-untyped-def]
    await open_and_close(f"sqlite://{tmp_path}/new/dir/events.db")
    assert (tmp_path / "new" / "dir" / "events.db").exists()


async def test_an_unknown_url_option_is_named(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(StoreOpenError, match=r"^unknown option 'cache' in SQLite store URL"):
        await open_and_close(f"sqlite://{tmp_path}/e.db?cache=big")
    with pytest.raises(
        StoreOpenError,
        match=r"^synchronous='sometimes' in the SQLite store URL is not one of full, normal, off, extra$",
    ):
        await open_and_close(f"sqlite://{tmp_path}/e.db?synchronous=sometimes")


async def test_a_url_without_a_path_says_how_to_write_one() -> None:
    with pytest.raises(
        StoreOpenError, match=r"names no file: use sqlite:///absolute/path/events.db$"
    ):
        await open_and_close("sqlite://")


async def test_a_new_store_file_is_private(tmp_path) -> None:  # type: ignore[no-untyped-def]
    await open_and_close(f"sqlite://{tmp_path}/events.db")
    assert (tmp_path / "events.db").stat().st_mode & 0o777 == 0o600
