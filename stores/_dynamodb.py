"""The DynamoDB event store: one table shared by any number of daemons.

`dynamodb://TABLE?region=us-east-1&endpoint=http://127.0.0.1:5000` names a
table with a string partition key `pk` and a numeric sort key `sk`. It runs
on aiobotocore with its httpx backend, which runs on trio (no asyncio loop
anywhere) and on asyncio alike: the store contract passes on both.
`hostsmith stores init URL` creates the table.

Items:
- `stream#<name>` / version: an event, in its stream;
- `log#<position // 1000>` / position: the same event, in the global log;
- `id#<event id>` / 0: the event id's position, so an id is stored once;
- `head#<stream>` / 0: the stream's version, the concurrency guard;
- `meta#position` / 0: `last`, the highest position committed;
- `snapshot#<stream>` / 0 and `meta#checkpoints` / 0 (a map of names).

Why `read_all` never skips an event committed late: every append is one
`TransactWriteItems` that both writes its events *and* moves `last` from the
value it read to the new one, on the condition that `last` still has the
value it read. Two writers that read the same `last` cannot both commit, so
positions are handed out in commit order: position N+1 can only be
committed by a transaction that saw N committed. A reader that has read
position N can therefore wait for N+1 and never finds a hole that fills in
later. The loser of such a race waits a moment (growing, with jitter, so
that a slow writer is not starved by a busy one), re-reads `last` and tries
again. A transaction refused for any other reason is an error, not a race.

Group commit works as in the other stores (a batch of appends in one
transaction), up to DynamoDB's limit of 100 items per transaction: three
items per event, one per stream head and one for the counter; a larger
batch is split, and a single append of more than 32 events is refused with
a clear error. Before each transaction one consistent batch read fetches
the counter, the streams' heads and the event ids, and conflicts and
duplicates are decided from it; the transaction's conditions (heads and
counter unchanged, ids and positions new) make that decision safe, and a
transaction cancelled by another writer is planned again from a new read.
"""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import SplitResult

import anyio

from hostsmith.runtime import (
    AppendOutcome,
    AppendRequest,
    JournalError,
    Snapshot,
    StoredEvent,
    StoreOpenError,
    plan_appends,
)
from hostsmith.stores._aws import aws_session
from hostsmith.stores._url import url_options

LOG_BUCKET = 1000
MAX_ITEMS = 100
MAX_EVENTS_PER_TRANSACTION = (MAX_ITEMS - 2) // 3
"""Three items an event, one for the stream's head and one for the position counter."""
COMMIT_ATTEMPTS = 20
MAX_CONNECTIONS = 32
BACKOFF_FIRST = 0.01
BACKOFF_CAP = 1.0
_BATCH_WRITE_ITEMS = 25  # BatchWriteItem's limit
_LOAD_LANES = 8  # BatchWriteItem calls in flight at once during a bulk load


class TooManyEvents(JournalError):
    def __init__(self, stream: str, count: int) -> None:
        super().__init__(
            f"an append of {count} events to {stream!r} is larger than one DynamoDB transaction "
            f"can hold ({MAX_EVENTS_PER_TRANSACTION} events): split the command's events"
        )


def _backoff(attempt: int) -> float:
    """How long to wait before commit attempt `attempt` (1-based) after losing a race.

    Exponential with full jitter. Retrying at once is not enough: a writer
    whose read-to-commit gap is longer than a busy peer's commit cycle loses
    every time, however often it tries, until it waits for the peer to pause.
    (Hand-written rather than stamina: its hooks log every retry as a
    warning, and losing this race is normal contention, not a failure.)
    """
    return random.uniform(0, min(BACKOFF_CAP, BACKOFF_FIRST * 2**attempt))


_RACE_LOST = {"None", "ConditionalCheckFailed", "TransactionConflict"}


def _raise_unless_overtaken(table: str, cancelled: Exception) -> None:
    """A cancelled transaction lost a race, unless an item names another reason."""
    reasons = getattr(cancelled, "response", {}).get("CancellationReasons", [])
    other = [r for r in reasons if r.get("Code", "None") not in _RACE_LOST]
    if other:
        said = "; ".join(f"{r.get('Code')}: {r.get('Message', '')}".strip() for r in other)
        raise JournalError(f"DynamoDB table {table!r} refused the append: {said}")


def _n(value: int | float) -> dict[str, str]:
    return {"N": str(value)}


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _event_item(pk: str, sk: int, event: StoredEvent) -> dict[str, Any]:
    return {
        "pk": _s(pk),
        "sk": _n(sk),
        "stream": _s(event.stream),
        "version": _n(event.version),
        "position": _n(event.position),
        "event_id": _s(event.event_id),
        "type": _s(event.type),
        "data": {"B": event.data},
        "schema_version": _n(event.schema_version),
        "correlation_id": _s(event.correlation_id),
        "causation_id": _s(event.causation_id),
        "recorded_at": _n(event.recorded_at),
    }


def _from_item(item: dict[str, Any]) -> StoredEvent:
    return StoredEvent(
        item["stream"]["S"],
        int(item["version"]["N"]),
        int(item["position"]["N"]),
        item["event_id"]["S"],
        item["type"]["S"],
        bytes(item["data"]["B"]),
        int(item["schema_version"]["N"]),
        item["correlation_id"]["S"],
        item["causation_id"]["S"],
        float(item["recorded_at"]["N"]),
    )


class _HeadLookup:
    """A stream's version from one read of the heads (0 for a new stream)."""

    def __init__(self, heads: dict[str, int]) -> None:
        self.heads = heads

    def __call__(self, stream: str) -> int:
        return self.heads.get(stream, 0)


class DynamoStore:
    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table
        self.transactions = 0
        self.conflicts_at_commit = 0
        # Within one process, commits take turns: racing our own transactions
        # against each other only burns retries (the journal already sends one
        # batch at a time; this covers direct callers).
        self._commit_lock = anyio.Lock()

    # -- appends -------------------------------------------------------------

    async def append_batch(self, requests: Sequence[AppendRequest]) -> list[AppendOutcome]:
        async with self._commit_lock:
            return await self._append_batch(requests)

    async def _append_batch(self, requests: Sequence[AppendRequest]) -> list[AppendOutcome]:
        outcomes: list[AppendOutcome | None] = [None] * len(requests)
        chunk: list[int] = []
        items_in_chunk = 1  # the position counter
        for index, request in enumerate(requests):
            needed = 3 * len(request.events) + 1
            if needed + 1 > MAX_ITEMS:
                outcomes[index] = TooManyEvents(request.stream, len(request.events))
                continue
            if items_in_chunk + needed > MAX_ITEMS:
                await self._commit_chunk(requests, chunk, outcomes)
                chunk, items_in_chunk = [], 1
            chunk.append(index)
            items_in_chunk += needed
        if chunk:
            await self._commit_chunk(requests, chunk, outcomes)
        return [outcome for outcome in outcomes if outcome is not None]

    async def _commit_chunk(
        self,
        requests: Sequence[AppendRequest],
        chunk: list[int],
        outcomes: list[AppendOutcome | None],
    ) -> None:
        for attempt in range(COMMIT_ATTEMPTS):
            if attempt:
                await anyio.sleep(_backoff(attempt))
            pending = [i for i in chunk if outcomes[i] is None]
            last, heads, known = await self._look(requests, pending)
            decided, written = plan_appends(
                [requests[i] for i in pending],
                version_of=_HeadLookup(heads),
                position_of=known.get,
                first_position=last + 1,
            )
            items: list[dict[str, Any]] = []
            for stored in written:
                items.append(
                    self._put(_event_item(f"stream#{stored.stream}", stored.version, stored))
                )
                log_key = f"log#{stored.position // LOG_BUCKET}"
                items.append(self._put(_event_item(log_key, stored.position, stored)))
                id_item = {
                    "pk": _s(f"id#{stored.event_id}"),
                    "sk": _n(0),
                    "position": _n(stored.position),
                }
                items.append(self._put(id_item))
            # One update per stream head: a transaction may touch an item only once.
            finals: dict[str, int] = {}
            for stored in written:
                finals[stored.stream] = stored.version
            for stream, final in finals.items():
                items.append(self._move(f"head#{stream}", "version", heads.get(stream, 0), final))
            position = written[-1].position if written else last
            if not items:
                for index, outcome in zip(pending, decided, strict=True):
                    outcomes[index] = outcome
                return
            items.append(self._move("meta#position", "last", last, position))
            try:
                await self.client.transact_write_items(TransactItems=items)
            except self.client.exceptions.TransactionCanceledException as cancelled:
                _raise_unless_overtaken(self.table, cancelled)
                self.conflicts_at_commit += 1  # someone else committed first: look again
                continue
            self.transactions += 1
            for index, outcome in zip(pending, decided, strict=True):
                outcomes[index] = outcome
            return
        raise JournalError(
            f"could not commit to DynamoDB table {self.table!r}: other writers won the position "
            f"counter {COMMIT_ATTEMPTS} times in a row; nothing was written, and the append can "
            "be sent again"
        )

    async def _look(
        self, requests: Sequence[AppendRequest], pending: list[int]
    ) -> tuple[int, dict[str, int], dict[str, int]]:
        """One consistent read of the counter, the streams' heads and the event ids."""
        streams = list(dict.fromkeys(requests[i].stream for i in pending))
        ids = list(dict.fromkeys(e.event_id for i in pending for e in requests[i].events))
        keys = [{"pk": _s("meta#position"), "sk": _n(0)}]
        keys += [{"pk": _s(f"head#{stream}"), "sk": _n(0)} for stream in streams]
        keys += [{"pk": _s(f"id#{i}"), "sk": _n(0)} for i in ids]
        found: list[dict[str, Any]] = []
        for start in range(0, len(keys), 100):
            wanted = {self.table: {"Keys": keys[start : start + 100], "ConsistentRead": True}}
            while wanted:
                response = await self.client.batch_get_item(RequestItems=wanted)
                found.extend(response["Responses"].get(self.table, []))
                wanted = response.get("UnprocessedKeys") or {}
        last, heads, known = 0, {}, {}
        for item in found:
            key = item["pk"]["S"]
            if key == "meta#position":
                if "loading" in item:
                    raise JournalError(
                        f"DynamoDB table {self.table!r} holds an unfinished bulk load (up to "
                        f"position {item['loading']['N']}): run the same `hostsmith migrate` "
                        "again to finish it before writing to the table"
                    )
                last = int(item["last"]["N"]) if "last" in item else 0
            elif key.startswith("head#"):
                heads[key.removeprefix("head#")] = int(item["version"]["N"])
            else:
                known[key.removeprefix("id#")] = int(item["position"]["N"])
        return last, heads, known

    def _put(self, item: dict[str, Any]) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self.table,
                "Item": item,
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }

    def _move(self, key: str, attribute: str, old: int, new: int) -> dict[str, Any]:
        """Set `attribute` of item `key` from `old` to `new`, only if it still is `old`."""
        condition = "attribute_not_exists(pk)" if old == 0 else "#a = :old"
        values: dict[str, Any] = {":new": _n(new)}
        if old:
            values[":old"] = _n(old)
        return {
            "Update": {
                "TableName": self.table,
                "Key": {"pk": _s(key), "sk": _n(0)},
                "UpdateExpression": "SET #a = :new",
                "ConditionExpression": condition,
                "ExpressionAttributeNames": {"#a": attribute},
                "ExpressionAttributeValues": values,
            }
        }

    async def _last_position(self) -> int:
        last, _ = await self._load_marks()
        return last

    # -- reads -----------------------------------------------------------------

    async def _query(self, pk: str, after: int, limit: int | None = None) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        arguments: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND sk > :after",
            "ExpressionAttributeValues": {":pk": _s(pk), ":after": _n(after)},
            "ConsistentRead": True,
        }
        while True:
            if limit is not None:
                arguments["Limit"] = limit - len(items)
            response = await self.client.query(**arguments)
            items.extend(response.get("Items", []))
            start = response.get("LastEvaluatedKey")
            if not start or (limit is not None and len(items) >= limit):
                return items
            arguments["ExclusiveStartKey"] = start

    async def read(self, stream: str, after_version: int = 0) -> list[StoredEvent]:
        return [_from_item(item) for item in await self._query(f"stream#{stream}", after_version)]

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[StoredEvent]:
        # Everything up to `last` is committed (see the module docstring), so
        # reading up to it can never step over a hole that fills in later.
        last = await self._last_position()
        events: list[StoredEvent] = []
        position = after_position
        while position < last and len(events) < limit:
            bucket = (position + 1) // LOG_BUCKET
            wanted = limit - len(events)
            found = await self._query(f"log#{bucket}", position, wanted)
            events.extend(e for e in map(_from_item, found) if e.position <= last)
            if len(found) < wanted:  # nothing more in this bucket
                position = (bucket + 1) * LOG_BUCKET - 1
            else:
                position = int(found[-1]["sk"]["N"])
        return events[:limit]

    # -- bulk loading, for migration ------------------------------------------

    async def load_events(self, events: Sequence[StoredEvent]) -> None:
        """Write `events`, which continue the log exactly, without transactions.

        This is `hostsmith migrate`'s way in: a transaction holds at most 32
        events and costs a round trip each, while `BatchWriteItem` takes 25
        items a call and calls can overlap. The caller guarantees what the
        append path would check (versions continue each stream, ids are new):
        migration copies a store whose log already obeys those rules, onto an
        exact prefix of it.

        Safe to interrupt: `meta#position` first records the range being
        loaded (`loading`), then the items are written, and only then does
        `last` move past them, so `read_all` never shows a half-loaded range.
        The next load must start at that same range with the same events
        (migration resumes from `last`, so it does); anything else is refused,
        because the leftovers would be overwritten by different data.
        """
        if not events:
            return
        last, loading = await self._load_marks()
        first, end = events[0].position, events[-1].position
        if first != last + 1 or end - first + 1 != len(events):
            raise JournalError(
                f"a bulk load into DynamoDB table {self.table!r} must continue the log at "
                f"position {last + 1} without gaps; it was given positions {first}..{end}"
            )
        if loading > last:
            await self._check_leftovers(last, loading, events)
        await self._mark(last, max(loading, end))
        items: list[dict[str, Any]] = []
        heads: dict[str, int] = {}
        for event in events:
            items.append(_event_item(f"stream#{event.stream}", event.version, event))
            items.append(_event_item(f"log#{event.position // LOG_BUCKET}", event.position, event))
            items.append(
                {"pk": _s(f"id#{event.event_id}"), "sk": _n(0), "position": _n(event.position)}
            )
            heads[event.stream] = event.version
        items += [
            {"pk": _s(f"head#{stream}"), "sk": _n(0), "version": _n(version)}
            for stream, version in heads.items()
        ]
        lanes = anyio.CapacityLimiter(_LOAD_LANES)
        async with anyio.create_task_group() as nursery:
            for start in range(0, len(items), _BATCH_WRITE_ITEMS):
                chunk = items[start : start + _BATCH_WRITE_ITEMS]
                nursery.start_soon(self._batch_write, chunk, lanes)
        await self._mark(last, max(loading, end), committed=end)

    async def _load_marks(self) -> tuple[int, int]:
        response = await self.client.get_item(
            TableName=self.table, Key={"pk": _s("meta#position"), "sk": _n(0)}, ConsistentRead=True
        )
        item = response.get("Item") or {}
        last = int(item["last"]["N"]) if "last" in item else 0
        loading = int(item["loading"]["N"]) if "loading" in item else 0
        return last, loading

    async def _mark(self, last: int, loading: int, *, committed: int | None = None) -> None:
        """Record the range being loaded, or (with `committed`) move `last` and clear it."""
        condition = "attribute_not_exists(#last)" if last == 0 else "#last = :last"
        values: dict[str, Any] = {":loading": _n(loading)}
        if last:
            values[":last"] = _n(last)
        if committed is None:
            update = "SET #loading = :loading"
        else:
            update = "SET #last = :committed REMOVE #loading"
            del values[":loading"]
            values[":committed"] = _n(committed)
        try:
            await self.client.update_item(
                TableName=self.table,
                Key={"pk": _s("meta#position"), "sk": _n(0)},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames={"#last": "last", "#loading": "loading"},
                ExpressionAttributeValues=values,
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            raise JournalError(
                f"DynamoDB table {self.table!r} was written by someone else during a bulk load: "
                "load only into a table nothing else uses"
            ) from None

    async def _check_leftovers(
        self, last: int, loading: int, events: Sequence[StoredEvent]
    ) -> None:
        """The items of an interrupted load must be the very events being loaded now."""
        if events[-1].position < loading:
            raise JournalError(
                f"DynamoDB table {self.table!r} holds an unfinished load up to position "
                f"{loading}; load from position {last + 1} to at least {loading} to finish it"
            )
        incoming = {event.position: event for event in events}
        for bucket in range((last + 1) // LOG_BUCKET, loading // LOG_BUCKET + 1):
            for item in await self._query(f"log#{bucket}", last):
                left = _from_item(item)
                new = incoming.get(left.position)
                if left.position <= loading and left != new:
                    offered = f"{new.stream} v{new.version} ({new.event_id})" if new else "nothing"
                    raise JournalError(
                        f"DynamoDB table {self.table!r} holds an unfinished load of different "
                        f"data: at position {left.position} it has {left.stream} v{left.version} "
                        f"({left.event_id}), this load has {offered}. Delete the table, create "
                        "it again with `hostsmith stores init`, and migrate into it"
                    )

    async def _batch_write(self, items: list[dict[str, Any]], lanes: anyio.CapacityLimiter) -> None:
        wanted = {self.table: [{"PutRequest": {"Item": item}} for item in items]}
        delay = 0.05
        while wanted:
            async with lanes:
                response = await self.client.batch_write_item(RequestItems=wanted)
            wanted = response.get("UnprocessedItems") or {}
            if wanted:  # throttled: DynamoDB asks to back off and send the rest
                await anyio.sleep(delay)
                delay = min(delay * 2, 2.0)

    # -- snapshots and checkpoints ---------------------------------------------

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        await self.client.put_item(
            TableName=self.table,
            Item={
                "pk": _s(f"snapshot#{snapshot.stream}"),
                "sk": _n(0),
                "version": _n(snapshot.version),
                "state": {"B": snapshot.state},
                "schema_version": _n(snapshot.schema_version),
                "recorded_at": _n(snapshot.recorded_at),
            },
        )

    async def load_snapshot(self, stream: str) -> Snapshot | None:
        response = await self.client.get_item(
            TableName=self.table,
            Key={"pk": _s(f"snapshot#{stream}"), "sk": _n(0)},
            ConsistentRead=True,
        )
        item = response.get("Item")
        if item is None:
            return None
        return Snapshot(
            stream=stream,
            version=int(item["version"]["N"]),
            state=bytes(item["state"]["B"]),
            schema_version=int(item["schema_version"]["N"]),
            recorded_at=float(item["recorded_at"]["N"]),
        )

    async def save_checkpoint(self, name: str, position: int) -> None:
        await self.client.update_item(
            TableName=self.table,
            Key={"pk": _s("meta#checkpoints"), "sk": _n(0)},
            UpdateExpression="SET #names = :all",
            ExpressionAttributeNames={"#names": "names"},
            ExpressionAttributeValues={
                ":all": _s(json.dumps({**await self.checkpoints(), name: position}))
            },
        )

    async def checkpoints(self) -> dict[str, int]:
        response = await self.client.get_item(
            TableName=self.table,
            Key={"pk": _s("meta#checkpoints"), "sk": _n(0)},
            ConsistentRead=True,
        )
        item = response.get("Item")
        return {k: int(v) for k, v in json.loads(item["names"]["S"]).items()} if item else {}

    async def load_checkpoint(self, name: str) -> int:
        return (await self.checkpoints()).get(name, 0)

    async def aclose(self) -> None:
        await anyio.lowlevel.checkpoint()


def _options(url: SplitResult) -> tuple[str, dict[str, str]]:
    table = url.netloc or url.path.strip("/")
    if not table:
        raise StoreOpenError(
            f"store URL {url.geturl()!r} names no table: use dynamodb://TABLE?region=REGION"
        )
    return table, url_options(url, "DynamoDB", ("region", "endpoint"))


@asynccontextmanager
async def open_client(options: dict[str, str]) -> AsyncIterator[Any]:
    try:
        session, config = aws_session(
            retries={"max_attempts": 3, "mode": "standard"},
            # Every activation reads, and the journal commits, at once: a small
            # pool whose waiters time out after 5 s (httpx's default) failed
            # commits whenever the table was slow. Waiting for a connection is
            # bounded by the callers' own deadlines instead.
            max_pool_connections=MAX_CONNECTIONS,
            connector_args={"pool_timeout": None},
        )
    except ImportError:
        raise StoreOpenError(
            "the DynamoDB store needs the aws extra: pip install 'hostsmith[aws]'"
        ) from None
    async with session.create_client(
        "dynamodb",
        region_name=options.get("region") or None,
        endpoint_url=options.get("endpoint") or None,
        config=config,
    ) as client:
        yield client


async def create_table(url: SplitResult) -> bool:
    """Create the table the URL names; False if it exists already."""
    table, options = _options(url)
    async with open_client(options) as client:
        with contextlib.suppress(client.exceptions.ResourceInUseException):
            await client.create_table(
                TableName=table,
                KeySchema=[
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"},
                ],
                AttributeDefinitions=[
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "N"},
                ],
                BillingMode="PAY_PER_REQUEST",
            )
            return True
    return False


@asynccontextmanager
async def open_dynamodb_store(url: SplitResult) -> AsyncIterator[DynamoStore]:
    table, options = _options(url)
    async with open_client(options) as client:
        try:
            await client.describe_table(TableName=table)
        except client.exceptions.ResourceNotFoundException:
            raise StoreOpenError(
                f"DynamoDB table {table!r} does not exist: create it with "
                f"`hostsmith stores init {url.geturl()}`"
            ) from None
        except Exception as failure:  # credentials, endpoint, region: say which
            raise StoreOpenError(
                f"cannot reach DynamoDB table {table!r}: {type(failure).__name__}: {failure}"
            ) from None
        yield DynamoStore(client, table)
