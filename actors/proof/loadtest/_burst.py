"""The `burst` workload: Host Factory as it behaves when a grid bursts, up to 100,000 hosts.

Host Factory asks for hosts in requests of 1 to 1,000 machines, many at
once when a grid bursts; polls each open request about every 30 s
(`HF_REQUESTOR_POLL_INTERVAL`) and polls getReturnRequests for the hosts it
holds; and later returns them in a wave. This workload does the same, in
three phases, through one `HostFactoryCall`:

1. the burst: requests whose sizes add up to `hosts`, spread over the
   templates, sent by `senders` concurrent callers;
2. the wait: every `poll_interval` seconds, getRequestStatus for the open
   requests (50 to a call) and getReturnRequests for the hosts held
   (1,000 to a call), until every request has settled;
3. the wave of returns: one return per request, polled the same way.

Every call is timed into the shared `Recorder`; each request's time from
requestMachines to `complete` is kept. Time is trio's: the wall clock
against a daemon, virtual time in the test that checks the bookkeeping
(every host requested is seen complete and is returned, and the counts
match the log). Polling is bounded (`max_polls`), so a run always ends.

`run_burst_on_daemon` is the benchmark: a daemon of its own on the
simulated cloud, with templates of at most 10,000 hosts each, reporting
per-call latency, the daemon's RSS and its store's size at the peak, and
events per host.
"""

from __future__ import annotations

import math
import pathlib
import random
import sqlite3
import tempfile
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

import httpx
import msgspec
import trio

from hostsmith.actors.proof.loadtest._daemon import Served, own_daemon
from hostsmith.actors.proof.loadtest._hostfactory import (
    CallFailed,
    CallFigures,
    ErrorReason,
    HostFactoryCall,
    Recorder,
    over_http,
)
from hostsmith.actors.service import EXAMPLE_TEMPLATES

STATUS_BATCH = 50
"""Requests per getRequestStatus call."""
HOSTS_BATCH = 1000
"""Hosts per getReturnRequests (and per return) call."""
TEMPLATE_LIMIT = 10_000
"""The most hosts one template offers (its maxNumber)."""


class BurstPlan(msgspec.Struct, frozen=True, kw_only=True):
    hosts: int
    templates: tuple[str, ...]
    poll_interval: float = 30.0
    senders: int = 50
    largest_request: int = 1000
    template_limit: int = 10_000
    """Each template's maxNumber."""
    seed: int = 0
    max_polls: int = 1000


class BurstOutcome(msgspec.Struct, kw_only=True):
    requests: int = 0
    hosts_requested: int = 0
    hosts_complete: int = 0
    hosts_returned: int = 0
    requests_failed: int = 0
    polls: int = 0
    complete_after: Seconds | None = None
    """From requestMachines until the request was seen `complete`."""


class Seconds(msgspec.Struct, kw_only=True):
    count: int
    p50_s: float
    p90_s: float
    p99_s: float
    max_s: float


def request_sizes(hosts: int, largest: int, rng: random.Random) -> list[int]:
    """Sizes from 1 to `largest` that add up to exactly `hosts`."""
    sizes = []
    left = hosts
    while left:
        size = min(left, rng.randint(1, largest))
        sizes.append(size)
        left -= size
    return sizes


async def run_burst(
    call: HostFactoryCall,
    plan: BurstPlan,
    recorder: Recorder,
    at_peak: Callable[[], None] | None = None,
) -> BurstOutcome:
    """The three phases; `at_peak` runs once every request has settled, before the returns."""
    rng = random.Random(plan.seed)
    sizes = request_sizes(plan.hosts, plan.largest_request, rng)
    outcome = BurstOutcome(requests=len(sizes), hosts_requested=plan.hosts)
    asked_at: dict[str, float] = {}
    sizes_of: dict[str, int] = {}
    # Each request goes where the most room is left, as an admin spreads a burst
    # over templates; chosen before sending, so the concurrency changes nothing.
    room = dict.fromkeys(plan.templates, plan.template_limit)
    chosen = []
    for size in sizes:
        template = max(room, key=lambda name: room[name])
        room[template] -= size
        chosen.append(template)

    async def ask(index: int, size: int) -> None:
        template = chosen[index]
        payload = {"template": {"templateId": template, "machineCount": size}}
        began = trio.current_time()
        try:
            answer = await recorder.timed(call, "requestMachines", payload)
        except CallFailed:
            outcome.requests_failed += 1
            return
        asked_at[answer["requestId"]] = began
        sizes_of[answer["requestId"]] = size

    await _each(plan.senders, [(ask, (n, size)) for n, size in enumerate(sizes)])
    held: dict[str, list[dict[str, str]]] = {}
    took: list[float] = []
    await _until_settled(call, plan, recorder, outcome, set(asked_at), held, asked_at, took)
    outcome.hosts_complete = sum(len(machines) for machines in held.values())
    outcome.complete_after = _seconds(took)
    if at_peak is not None:
        at_peak()

    returns: set[str] = set()

    async def give_back(machines: list[dict[str, str]]) -> None:
        try:
            answer = await recorder.timed(call, "requestReturnMachines", {"machines": machines})
        except CallFailed:
            return
        returns.add(answer["requestId"])

    chunks = [
        machines[start : start + HOSTS_BATCH]
        for machines in held.values()
        for start in range(0, len(machines), HOSTS_BATCH)
    ]
    await _each(plan.senders, [(give_back, (chunk,)) for chunk in chunks])
    returned: dict[str, list[dict[str, str]]] = {}
    await _until_settled(call, plan, recorder, outcome, returns, returned, {}, [])
    outcome.hosts_returned = sum(len(machines) for machines in returned.values())
    return outcome


async def _until_settled(
    call: HostFactoryCall,
    plan: BurstPlan,
    recorder: Recorder,
    outcome: BurstOutcome,
    waiting: set[str],
    settled_machines: dict[str, list[dict[str, str]]],
    asked_at: dict[str, float],
    took: list[float],
) -> None:
    """Poll `waiting` requests (and the hosts held) every poll interval until all settle."""
    for _ in range(plan.max_polls):
        if not waiting:
            return
        await trio.sleep(plan.poll_interval)
        outcome.polls += 1
        ids = sorted(waiting)
        for start in range(0, len(ids), STATUS_BATCH):
            ask = {"requests": [{"requestId": r} for r in ids[start : start + STATUS_BATCH]]}
            try:
                answer = await recorder.timed(call, "getRequestStatus", ask)
            except CallFailed:
                continue
            for entry in answer["requests"]:
                if entry["status"] == "running":
                    continue
                request_id = entry["requestId"]
                waiting.discard(request_id)
                settled_machines[request_id] = [
                    {"name": m["name"], "machineId": m["machineId"]} for m in entry["machines"]
                ]
                if entry["status"] != "complete":
                    outcome.requests_failed += 1
                elif request_id in asked_at:
                    took.append(trio.current_time() - asked_at[request_id])
        hosts = [m for machines in settled_machines.values() for m in machines]
        for start in range(0, len(hosts), HOSTS_BATCH):
            try:
                await recorder.timed(
                    call, "getReturnRequests", {"machines": hosts[start : start + HOSTS_BATCH]}
                )
            except CallFailed:
                continue


async def _each(limit: int, work: list[tuple[Any, tuple[Any, ...]]]) -> None:
    slots = trio.CapacityLimiter(limit)

    async def bounded(step: Any, arguments: tuple[Any, ...]) -> None:
        async with slots:
            await step(*arguments)

    async with trio.open_nursery() as nursery:
        for step, arguments in work:
            nursery.start_soon(bounded, step, arguments)


def _seconds(values: list[float]) -> Seconds | None:
    if not values:
        return None
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)], 3)

    return Seconds(
        count=len(ordered),
        p50_s=at(0.5),
        p90_s=at(0.9),
        p99_s=at(0.99),
        max_s=round(ordered[-1], 3),
    )


class BurstReport(msgspec.Struct, kw_only=True):
    workload: str = "burst"
    hosts: int
    templates: int
    poll_interval_s: float
    elapsed_s: float
    outcome: BurstOutcome
    calls: dict[str, CallFigures]
    errors: dict[str, int]
    error_reasons: list[ErrorReason]
    daemon_rss_bytes: int
    """The daemon's resident set when every host was up (read from /proc)."""
    store_bytes: int
    """The SQLite store's files, then."""
    events_per_host: float
    """Events in the store at the end of the run, per host requested."""
    daemon_side: dict[str, DaemonSide]
    """Each call as the daemon timed it (its `/metrics`): the rest of what `calls` shows is
    the answer's trip over HTTP and this process reading it."""


class DaemonSide(msgspec.Struct, kw_only=True):
    calls: int
    p50_ms_at_most: float
    p99_ms_at_most: float
    """The latency histogram's bucket bounds that hold half and 99% of the calls."""


def daemon_side(metrics_text: str) -> dict[str, DaemonSide]:
    """Per command, the daemon's own p50 and p99, to its histogram's buckets."""
    from prometheus_client.parser import text_string_to_metric_families

    buckets: dict[str, dict[float, float]] = {}
    for family in text_string_to_metric_families(metrics_text):
        if family.name != "hostsmith_command_seconds":
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                counts = buckets.setdefault(sample.labels["command"], {})
                bound = float(sample.labels["le"])
                counts[bound] = counts.get(bound, 0.0) + sample.value  # every outcome
    figures = {}
    for command, counts in sorted(buckets.items()):
        bounds = sorted(counts)  # cumulative counts, by bucket bound; the last is +Inf
        total = counts[bounds[-1]]
        p50, p99 = (
            next(b for b in bounds if counts[b] >= share * total) * 1000 for share in (0.5, 0.99)
        )
        figures[command] = DaemonSide(calls=int(total), p50_ms_at_most=p50, p99_ms_at_most=p99)
    return figures


async def run_burst_on_daemon(
    hosts: int, poll_interval: float, boot_time: float, senders: int
) -> tuple[BurstReport, Recorder]:
    """The benchmark: a daemon of its own on the simulated cloud, driven over HTTP."""
    # a tenth to spare, so that requests of up to 1,000 always fit somewhere
    templates = max(1, math.ceil(hosts * 1.1 / TEMPLATE_LIMIT))
    with tempfile.TemporaryDirectory(prefix="hostsmith-burst-") as folder:
        workdir = pathlib.Path(folder)
        names = _burst_templates(workdir, templates, hosts)
        config = workdir / "hostsmith.toml"
        config.write_text(
            f'data_dir = "{workdir / "data"}"\ntemplates = "{workdir / "templates.json"}"\n'
            f"[sim]\nboot_time = {boot_time}\nshutdown_time = {boot_time}\n"
            f"latency = 0.01\ncapacity = {2 * hosts}\n"
        )
        plan = BurstPlan(
            hosts=hosts,
            templates=names,
            poll_interval=poll_interval,
            senders=senders,
            template_limit=min(TEMPLATE_LIMIT, hosts),
        )
        recorder = Recorder()
        with own_daemon(config) as daemon:  # started before any trio task runs
            report = await _drive(daemon, workdir, plan, recorder, templates)
    return report, recorder


async def _drive(
    daemon: Served, workdir: pathlib.Path, plan: BurstPlan, recorder: Recorder, templates: int
) -> BurstReport:
    peak: dict[str, int] = {}

    def measure() -> None:
        peak["rss"] = _rss_of(daemon.pid)
        peak["store"] = _store_bytes(workdir / "data")

    async with AsyncExitStack() as stack:
        url = f"http://127.0.0.1:{daemon.port}"
        clients = [await stack.enter_async_context(over_http(url)) for _ in range(plan.senders)]
        turn = iter(range(10**12))

        async def call(command: str, payload: dict[str, Any]) -> dict[str, Any]:
            return await clients[next(turn) % len(clients)](command, payload)

        began = trio.current_time()
        outcome = await run_burst(call, plan, recorder, at_peak=measure)
        elapsed = trio.current_time() - began
        async with httpx.AsyncClient() as scraper:
            metrics = (await scraper.get(f"{url}/metrics")).text
    events = _events_in(workdir / "data" / "events.db")
    return BurstReport(
        hosts=plan.hosts,
        templates=templates,
        poll_interval_s=plan.poll_interval,
        elapsed_s=round(elapsed, 1),
        outcome=outcome,
        calls=recorder.figures(),
        errors=recorder.errors,
        error_reasons=recorder.error_reasons(),
        daemon_rss_bytes=peak.get("rss", 0),
        store_bytes=peak.get("store", 0),
        events_per_host=round(events / max(plan.hosts, 1), 2),
        daemon_side=daemon_side(metrics),
    )


def _burst_templates(workdir: pathlib.Path, count: int, hosts: int) -> tuple[str, ...]:
    example = msgspec.json.decode(EXAMPLE_TEMPLATES.read_bytes())
    base = next(t for t in example["templates"] if t["templateId"].startswith("OnDemand"))
    templates = []
    for n in range(count):
        template = dict(base)
        template["templateId"] = f"Burst-{n}"
        template["maxNumber"] = min(TEMPLATE_LIMIT, hosts)
        templates.append(template)
    (workdir / "templates.json").write_bytes(msgspec.json.encode({"templates": templates}))
    return tuple(t["templateId"] for t in templates)


def _rss_of(pid: int) -> int:
    try:
        for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _store_bytes(data_dir: pathlib.Path) -> int:
    return sum(path.stat().st_size for path in data_dir.glob("events.db*"))


def _events_in(path: pathlib.Path) -> int:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        (count,) = db.execute("SELECT count(*) FROM events").fetchone()
    finally:
        db.close()
    return int(count)
