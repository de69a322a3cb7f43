"""The DynamoDB store against a real moto server: set-up, bad input, and the group-commit limit."""

from __future__ import annotations

import re
from typing import Any

import pytest

from hostsmith.runtime import JournalError, NewEvent, StoredEvent, StoreOpenError, append
from hostsmith.stores import open_store
from hostsmith.stores._dynamodb import MAX_EVENTS_PER_TRANSACTION, DynamoStore, TooManyEvents
from tests.support.daemon import hostsmith


def table_url(moto: str, table: str = "hostsmith-events") -> str:
    return f"dynamodb://{table}?region=us-east-1&endpoint={moto}"


def test_stores_init_creates_the_table_and_is_safe_twice(moto: str) -> None:
    url = table_url(moto)
    first = hostsmith("stores", "init", url)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == f"created {url}"
    again = hostsmith("stores", "init", url)
    assert again.returncode == 0
    assert again.stdout.strip() == f"{url} exists already"


async def test_a_missing_table_says_how_to_create_it(moto: str) -> None:
    url = table_url(moto, "absent")
    with pytest.raises(
        StoreOpenError,
        match=rf"^DynamoDB table 'absent' does not exist: create it with `hostsmith stores init {re.escape(url)}`$",
    ):
        async with open_store(url):
            pass


async def test_an_append_larger_than_a_transaction_is_refused_clearly(moto: str) -> None:
    url = table_url(moto)
    assert hostsmith("stores", "init", url).returncode == 0
    async with open_store(url) as store:
        events = [
            NewEvent(event_id=f"e{n}", type="T", data=b"{}")
            for n in range(MAX_EVENTS_PER_TRANSACTION + 1)
        ]
        with pytest.raises(
            TooManyEvents,
            match=r"larger than one DynamoDB transaction can hold \(32 events\): split the command's events$",
        ):
            await append(store, "big-1", 0, events)
        assert await store.read_all() == []
        await append(store, "big-1", 0, events[:MAX_EVENTS_PER_TRANSACTION])
        assert len(await store.read("big-1")) == MAX_EVENTS_PER_TRANSACTION


async def test_an_unknown_option_is_named(moto: str) -> None:
    with pytest.raises(
        StoreOpenError, match=r"^unknown option 'consistency' in DynamoDB store URL"
    ):
        async with open_store(f"dynamodb://t?consistency=strong&endpoint={moto}"):
            pass


class FailsAfter:
    """A DynamoDB client that passes calls through, until the Nth bulk write fails.

    It stands in for a process killed in the middle of a bulk load: some of
    the load's items are written and the rest are not.
    """

    def __init__(self, client: Any, writes: int) -> None:
        self._client = client
        self._writes_left = writes

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    async def batch_write_item(self, **arguments: Any) -> Any:
        self._writes_left -= 1
        if self._writes_left < 0:
            raise ConnectionError("the connection dropped")
        return await self._client.batch_write_item(**arguments)


def stored(count: int, prefix: str = "e") -> list[StoredEvent]:
    return [
        StoredEvent(f"s-{n % 7}", n // 7 + 1, n + 1, f"{prefix}{n}", "T", b"{}")
        for n in range(count)
    ]


async def test_an_interrupted_bulk_load_is_hidden_and_only_the_same_data_finishes_it(
    moto: str,
) -> None:
    url = table_url(moto)
    assert hostsmith("stores", "init", url).returncode == 0
    events = stored(600)
    async with open_store(url) as store:
        assert isinstance(store, DynamoStore)
        broken = DynamoStore(FailsAfter(store.client, writes=20), store.table)
        with pytest.raises(ExceptionGroup):
            await broken.load_events(events)
        assert await store.read_all() == []  # the half-written load is not visible

        with pytest.raises(
            JournalError,
            match=r"holds an unfinished load of different data: at position (\d+) it has s-\d v\d+ \(e\d+\), this load has s-\d v\d+ \(x\d+\)\. Delete the table",
        ):
            await store.load_events(stored(600, prefix="x"))
        with pytest.raises(
            JournalError, match=r"holds an unfinished load up to position 600; load from position 1"
        ):
            await store.load_events(events[:300])
        with pytest.raises(
            JournalError,
            match=r"holds an unfinished bulk load \(up to position 600\): run the same `hostsmith migrate` again",
        ):
            await append(store, "s-0", 0, [NewEvent(event_id="early", type="T", data=b"{}")])

        await store.load_events(events)
        assert await store.read_all(0, 1000) == events
        assert await store.read("s-3") == [e for e in events if e.stream == "s-3"]
        # the heads were loaded too: the next append continues each stream
        next_version = len(await store.read("s-0")) + 1
        await append(
            store, "s-0", next_version - 1, [NewEvent(event_id="after", type="T", data=b"{}")]
        )
        assert (await store.read("s-0"))[-1].version == next_version


async def test_a_bulk_load_must_continue_the_log(moto: str) -> None:
    url = table_url(moto)
    assert hostsmith("stores", "init", url).returncode == 0
    async with open_store(url) as store:
        assert isinstance(store, DynamoStore)
        with pytest.raises(
            JournalError,
            match=r"must continue the log at position 1 without gaps; it was given positions 2\.\.600$",
        ):
            await store.load_events(stored(600)[1:])
        assert await store.read_all() == []
