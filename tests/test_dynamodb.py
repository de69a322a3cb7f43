"""The DynamoDB store against a real moto server: set-up, bad input, and the group-commit limit."""

from __future__ import annotations

import re

import pytest

from hostsmith.runtime import NewEvent, StoreOpenError, append
from hostsmith.stores import open_store
from hostsmith.stores._dynamodb import MAX_EVENTS_PER_TRANSACTION, TooManyEvents
from tests.daemon import hostsmith


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
