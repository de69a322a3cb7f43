"""The `appends` workload: a store's raw append rate, one append per write against group commit.

It appends E single-event appends over A streams straight to the store, the
same events twice on two fresh key ranges: first one append per call (what a
store does when nothing is batched, one transaction per event in SQLite or
DynamoDB), then `batch` appends per call (what the journal's group commit
hands a store under load). Both figures come from one run on one store, so
their ratio is what batching buys on that store, as the store's own latency
and the machine's speed are the same for both.
"""

from __future__ import annotations

import time

import msgspec

from hostsmith.runtime import AppendOutcome, AppendRequest, JournalError, NewEvent
from hostsmith.stores import open_store


class AppendsReport(msgspec.Struct, kw_only=True):
    workload: str = "appends"
    store: str
    events: int
    aggregates: int
    batch: int
    unbatched_appends_per_s: float
    batched_appends_per_s: float
    speedup: float


def _requests(prefix: str, events: int, aggregates: int) -> list[AppendRequest]:
    versions = [0] * aggregates
    data = b'{"by":1}'
    requests = []
    for n in range(events):
        stream = n % aggregates
        requests.append(
            AppendRequest(
                f"{prefix}-{stream}",
                versions[stream],
                (NewEvent(event_id=f"{prefix}-{n}", type="Incremented", data=data),),
            )
        )
        versions[stream] += 1
    return requests


def _check(outcomes: list[AppendOutcome]) -> None:
    for outcome in outcomes:
        if isinstance(outcome, JournalError):
            raise outcome


async def run_appends(store_url: str, events: int, aggregates: int, batch: int) -> AppendsReport:
    async with open_store(store_url) as store:
        single = _requests(f"one-{time.time_ns()}", events, aggregates)
        began = time.perf_counter()
        for request in single:
            _check(await store.append_batch([request]))
        unbatched = events / (time.perf_counter() - began)

        grouped = _requests(f"many-{time.time_ns()}", events, aggregates)
        began = time.perf_counter()
        for start in range(0, events, batch):
            _check(await store.append_batch(grouped[start : start + batch]))
        batched = events / (time.perf_counter() - began)
    return AppendsReport(
        store=store_url,
        events=events,
        aggregates=aggregates,
        batch=batch,
        unbatched_appends_per_s=round(unbatched, 1),
        batched_appends_per_s=round(batched, 1),
        speedup=round(batched / unbatched, 1),
    )
