"""The `hostfactory` workload: simulated Host Factory clients running HF's real cycle.

Each of K clients is an actor on hostsmith's own runtime, with a bounded
mailbox. A message asks it for one cycle of Host Factory's: request
machines; poll getRequestStatus, as Host Factory does, until the request is
no longer running; return the machines; poll the return request the same
way; then ask getReturnRequests. Every call is timed into an HDR histogram
per command (hdrhistogram, microsecond resolution, three significant
digits), so percentiles stay exact to 0.1% whatever the spread, and every
failure is counted by kind. Each call is also kept on a timeline for the
`--report` plots.

Two ways to offer load:
- closed loop (the default): each client starts its next cycle when the
  last one ends, for `--cycles` cycles or `--duration` seconds;
- open loop (`--rate R`): a pacer sends a cycle to the clients, round robin,
  every 1/R seconds whatever happens to earlier cycles. A cycle's first call
  and the cycle itself are timed from the moment it *should* have started,
  so time spent queued behind slow work counts as latency (no coordinated
  omission), and a system that cannot keep up shows it.

It talks to hostsmith one of two ways, through the same `HostFactoryCall`:
in process (`--in-process`: the application built from the config, called
the way the HTTP API calls it, with the driver running), or over HTTP to a
daemon (`--target URL`). A load test only ever targets what it is pointed
at; the tests point it at 127.0.0.1.
"""

from __future__ import annotations

import functools
import logging
import math
import re
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
import msgspec
import trio
from hdrh.histogram import HdrHistogram

from hostsmith.actors.errors import ConfigError, HostFactoryError
from hostsmith.actors.hostfactory import COMMANDS
from hostsmith.actors.service import Config, HostFactory, answer, open_application
from hostsmith.runtime import ActorRef, Envelope, open_runtime
from hostsmith.stores import open_store

log = logging.getLogger("hostsmith.loadtest")

HostFactoryCall = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]
"""(command, payload) -> the answer; raises `CallFailed` when the call fails."""

_LOWEST_US, _HIGHEST_US = 1, 3_600_000_000  # 1 µs to an hour


class CallFailed(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


_IDS = re.compile(r"\b(?:req|ret|i|sim|tiny)-[0-9a-zA-Z-]+")
_NUMBERS = re.compile(r"\d+(?:\.\d+)?")


def reason_of(message: str) -> str:
    """`message` with request and machine ids and numbers masked: like failures group."""
    return _NUMBERS.sub("N", _IDS.sub("ID", message))


class CallFigures(msgspec.Struct, kw_only=True):
    calls: int
    errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float


class ErrorReason(msgspec.Struct, kw_only=True):
    """Failed calls that failed the same way: the kind, the reason, how many, one example."""

    kind: str
    """How it failed: `http-503`, `refused`, `ReadTimeout`, ..."""
    reason: str
    """The message with its ids and numbers masked, so that like failures group."""
    count: int
    example: str
    """One message as it came, ids and numbers included."""
    commands: list[str]


class HostFactoryReport(msgspec.Struct, kw_only=True):
    workload: str = "hostfactory"
    target: str
    mode: str
    """closed (each client waits for its last cycle) or open (cycles offered at `rate`)."""
    rate: float | None
    clients: int
    cycles: int
    machines_per_request: int
    elapsed_s: float
    offered_cycles: int
    """Cycles begun (closed loop) or offered on schedule (open loop)."""
    offered_per_s: float
    cycles_per_s: float
    """Cycles completed per second: what the system achieved."""
    cycle: CallFigures | None
    """Whole cycles, timed from when each should have started."""
    calls: dict[str, CallFigures]
    errors: dict[str, int]
    """Failed calls by kind."""
    error_reasons: list[ErrorReason]
    """Failed calls grouped by kind and reason, the most frequent first."""


_TIMELINE_LIMIT = 2_000_000


def _histogram() -> HdrHistogram:
    return HdrHistogram(_LOWEST_US, _HIGHEST_US, 3)


def _micros(seconds: float) -> int:
    return min(_HIGHEST_US, max(_LOWEST_US, round(seconds * 1e6)))


class Recorder:
    """Per-command latency histograms, a timeline and error counts, shared by every client.

    Time is trio's clock: the monotonic clock in a real run, virtual time in
    a simulation (where a call's latency is then its simulated latency).
    """

    def __init__(self) -> None:
        self.histograms = {command: _histogram() for command in COMMANDS}
        self.cycle_histogram = _histogram()
        self.errors: dict[str, int] = {}
        self.errors_by_command: dict[str, int] = dict.fromkeys(COMMANDS, 0)
        self.reasons: dict[tuple[str, str], ErrorReason] = {}
        self.cycles = 0
        self.offered: list[float] = []
        """When each cycle was offered (seconds since `began`): the load asked for."""
        self.completed: list[float] = []
        """When each cycle completed (seconds since `began`): the load achieved."""
        self.acknowledged: list[str] = []
        """Every request id hostsmith answered with, acquire and return alike."""
        self.began = trio.current_time()
        self.timeline: list[tuple[float, str, float, bool]] = []
        """(seconds since `began`, command, milliseconds, succeeded) per call, up to a limit."""

    async def timed(
        self,
        call: HostFactoryCall,
        command: str,
        payload: dict[str, Any],
        since: float | None = None,
    ) -> Any:
        """Make the call and record it; `since` backdates its start (open loop)."""
        began = trio.current_time() if since is None else since
        succeeded = False
        try:
            result = await call(command, payload)
            succeeded = True
            return result
        except CallFailed as failure:
            self.failed(command, failure)
            raise
        finally:
            ended = trio.current_time()
            self.histograms[command].record_value(_micros(ended - began))
            if len(self.timeline) < _TIMELINE_LIMIT:
                entry = (ended - self.began, command, (ended - began) * 1000, succeeded)
                self.timeline.append(entry)

    def failed(self, command: str, failure: CallFailed) -> None:
        self.errors[failure.kind] = self.errors.get(failure.kind, 0) + 1
        self.errors_by_command[command] += 1
        message = str(failure)
        key = (failure.kind, reason_of(message))
        group = self.reasons.get(key)
        if group is None:
            group = self.reasons[key] = ErrorReason(
                kind=failure.kind, reason=key[1], count=0, example=message, commands=[]
            )
        group.count += 1
        if command not in group.commands:
            group.commands.append(command)

    def error_reasons(self) -> list[ErrorReason]:
        return sorted(self.reasons.values(), key=lambda group: -group.count)

    def cycle_offered(self, at: float) -> None:
        if len(self.offered) < _TIMELINE_LIMIT:
            self.offered.append(at - self.began)

    def cycle_done(self, began: float) -> None:
        self.cycles += 1
        now = trio.current_time()
        self.cycle_histogram.record_value(_micros(now - began))
        if len(self.completed) < _TIMELINE_LIMIT:
            self.completed.append(now - self.began)

    def figures(self) -> dict[str, CallFigures]:
        return {
            command: _figures(histogram, self.errors_by_command[command])
            for command, histogram in self.histograms.items()
            if histogram.get_total_count()
        }


def _figures(histogram: HdrHistogram, errors: int = 0) -> CallFigures:
    return CallFigures(
        calls=histogram.get_total_count(),
        errors=errors,
        p50_ms=histogram.get_value_at_percentile(50) / 1000,
        p90_ms=histogram.get_value_at_percentile(90) / 1000,
        p99_ms=histogram.get_value_at_percentile(99) / 1000,
        max_ms=histogram.get_max_value() / 1000,
    )


async def poll_status(
    recorder: Recorder, call: HostFactoryCall, request_id: str, interval: float, limit: int
) -> dict[str, Any]:
    for _ in range(limit):
        answer_ = await recorder.timed(
            call, "getRequestStatus", {"requests": [{"requestId": request_id}]}
        )
        entry: dict[str, Any] = answer_["requests"][0]
        if entry["status"] != "running":
            return entry
        await trio.sleep(interval)
    raise CallFailed("poll-limit", f"request {request_id} still running after {limit} polls")


class CycleShape(msgspec.Struct, frozen=True, kw_only=True):
    template_id: str
    machines: int
    poll_interval: float
    poll_limit: int = 600


async def one_cycle(
    recorder: Recorder, call: HostFactoryCall, shape: CycleShape, since: float | None = None
) -> None:
    """Request, poll, return, poll, check returns; a failed call ends the cycle (counted)."""
    began = trio.current_time() if since is None else since
    recorder.cycle_offered(began)
    try:
        asked = await recorder.timed(
            call,
            "requestMachines",
            {"template": {"templateId": shape.template_id, "machineCount": shape.machines}},
            since=since,
        )
        recorder.acknowledged.append(asked["requestId"])
        entry = await poll_status(
            recorder, call, asked["requestId"], shape.poll_interval, shape.poll_limit
        )
        held = [{"name": m["name"], "machineId": m["machineId"]} for m in entry["machines"]]
        if held:
            returned = await recorder.timed(call, "requestReturnMachines", {"machines": held})
            recorder.acknowledged.append(returned["requestId"])
            await poll_status(
                recorder, call, returned["requestId"], shape.poll_interval, shape.poll_limit
            )
            await recorder.timed(call, "getReturnRequests", {"machines": held})
        recorder.cycle_done(began)
    except CallFailed:
        await trio.sleep(shape.poll_interval)  # counted; the client carries on, as HF would


async def host_factory_client(
    recorder: Recorder,
    call: HostFactoryCall,
    *,
    template_id: str,
    machines: int,
    cycles: int,
    poll_interval: float,
    poll_limit: int = 600,
) -> None:
    """One simulated Host Factory as a plain task: `cycles` cycles, one after another."""
    shape = CycleShape(
        template_id=template_id,
        machines=machines,
        poll_interval=poll_interval,
        poll_limit=poll_limit,
    )
    for _ in range(cycles):
        await one_cycle(recorder, call, shape)


class Cycle(msgspec.Struct, frozen=True):
    since: float | None = None
    """When the cycle should have started (open loop); None: when it is received."""


class Drain(msgspec.Struct, frozen=True):
    """Answered once every cycle queued before it is done."""


class ClientActor:
    """One simulated Host Factory: runs a cycle per `Cycle` message, in order."""

    def __init__(self, recorder: Recorder, call: HostFactoryCall, shape: CycleShape) -> None:
        self.recorder, self.call, self.shape = recorder, call, shape

    async def on_start(self) -> None:
        pass

    async def receive(self, envelope: Envelope) -> None:
        if isinstance(envelope.payload, Cycle):
            await one_cycle(self.recorder, self.call, self.shape, envelope.payload.since)


def calls_into(service: HostFactory) -> HostFactoryCall:
    """Calls served by `service` in this process, the way the HTTP API serves them."""

    async def call(command: str, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            answered = await answer(service, command, msgspec.json.encode(payload))
            return msgspec.to_builtins(answered)  # type: ignore[no-any-return]
        except HostFactoryError as refusal:
            raise CallFailed("refused", str(refusal)) from None
        except Exception as failure:  # what the HTTP API would answer with a 5xx
            raise CallFailed(type(failure).__name__, str(failure)) from None

    return call


@asynccontextmanager
async def in_process(config: Config) -> AsyncIterator[HostFactoryCall]:
    """Calls into an application built from `config`, its driver running."""
    async with open_application(config, drive=True) as application:
        yield calls_into(application.service)


@asynccontextmanager
async def over_http(
    url: str, token: str = "", tls: ssl.SSLContext | bool = True
) -> AsyncIterator[HostFactoryCall]:
    """Calls to a running daemon's HTTP API, over a connection of their own.

    Each simulated Host Factory opens its own client, as each real one is its
    own process: one shared pool of a thousand connections costs the pool a
    scan of every connection per request (httpcore), which made the harness,
    not the daemon, the bottleneck.
    """
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    # Idle connections are let go before the daemon's keep-alive timeout (hypercorn: 5 s)
    # ends them: reusing one it is closing that moment is "connection reset".
    limits = httpx.Limits(max_connections=2, max_keepalive_connections=2, keepalive_expiry=2.0)
    async with httpx.AsyncClient(
        base_url=url.rstrip("/"), headers=headers, timeout=60, limits=limits, verify=tls
    ) as client:

        async def call(command: str, payload: dict[str, Any]) -> dict[str, Any]:
            try:
                response = await client.post(
                    f"/api/v1/{command}", content=msgspec.json.encode(payload)
                )
            except httpx.HTTPError as error:
                raise CallFailed(type(error).__name__, str(error)) from None
            if response.status_code != 200:
                raise CallFailed(f"http-{response.status_code}", _message_of(response))
            # msgspec, not httpx's json: reading a 27,000-host answer with the
            # standard library took 31 ms of a call's 84, the harness's time.
            result: dict[str, Any] = msgspec.json.decode(response.content)
            return result

        yield call


def _message_of(response: httpx.Response) -> str:
    """The `message` of hostsmith's JSON error, or the start of whatever came back."""
    try:
        return str(response.json()["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200] or response.reason_phrase


class Offer(msgspec.Struct, frozen=True, kw_only=True):
    """How much load: per-client cycles or a duration, closed loop or at a fixed rate."""

    clients: int
    cycles: int = 5
    """Cycles per client (closed loop), or cycles in all / clients (open loop)."""
    duration: float | None = None
    """Seconds to offer load for, instead of a number of cycles."""
    rate: float | None = None
    """Cycles per second to start (open loop); None for closed loop."""


Tick = Callable[[Recorder, float], None]


async def check_capacity(
    call: HostFactoryCall, target: str, offer: Offer, shape: CycleShape
) -> str | None:
    """Refuse a template the target does not offer; warn when the load outgrows it.

    Each client holds up to `shape.machines` machines at once, so more than
    `availableNumber` of them in flight are refused by design: the run would
    measure refusals. Said before the run, not discovered in its error count.
    """
    try:
        offered = await call("getAvailableTemplates", {})
    except CallFailed as failure:
        raise ConfigError(f"{target} did not list its templates: {failure}") from None
    templates = {t["templateId"]: t for t in offered.get("templates", [])}
    template = templates.get(shape.template_id)
    if template is None:
        known = ", ".join(sorted(templates)) or "none"
        raise ConfigError(
            f"--template {shape.template_id!r} is not offered by {target} (it offers: {known})"
        )
    wanted = offer.clients * shape.machines
    available = int(template.get("availableNumber", 0))
    if wanted <= available:
        return None
    return (
        f"template {shape.template_id} has {available} machines available, but "
        f"{offer.clients} clients x {shape.machines} machines may hold {wanted} at once: "
        "requests beyond what is available are refused (and counted as errors); "
        "raise its maxNumber, choose another --template, or offer fewer --concurrency"
    )


_ASK_LIMIT = 24 * 3600.0  # a cycle is bounded by its polls; this only guards the harness


async def run_hostfactory(
    config: Config,
    *,
    target: str,
    offer: Offer,
    shape: CycleShape,
    on_tick: Tick | None = None,
    recorder: Recorder | None = None,
    on_warning: Callable[[str], None] = log.warning,
) -> HostFactoryReport:
    async with AsyncExitStack() as connections:
        if target == "in-process":
            calls = [await connections.enter_async_context(in_process(config))] * offer.clients
        else:
            calls = [
                await connections.enter_async_context(
                    over_http(target, config.server.token, config.server.client_tls())
                )
                for _ in range(offer.clients)
            ]
        if warning := await check_capacity(calls[0], target, offer, shape):
            on_warning(warning)
        # the client actors' runtime
        async with open_store("memory://") as nowhere, open_runtime(nowhere, kinds=[]) as runtime:
            recorder = recorder or Recorder()
            recorder.began = trio.current_time()
            # room for every cycle a client is offered (a full mailbox would hold the
            # pacer back; the cycles' start times would still count the wait)
            room = offer.cycles if offer.duration is None else 1024
            clients = [
                await runtime.spawn(
                    f"hf-client-{n}",
                    functools.partial(ClientActor, recorder, calls[n], shape),
                    mailbox_capacity=max(64, room),
                )
                for n in range(offer.clients)
            ]
            async with trio.open_nursery() as nursery:
                if on_tick is not None:
                    nursery.start_soon(_ticking, on_tick, recorder)
                if offer.rate is None:
                    async with trio.open_nursery() as feeders:
                        for client in clients:
                            feeders.start_soon(_closed_loop, client, offer)
                else:
                    await _open_loop(clients, offer)
                for client in clients:
                    await client.ask(Drain(), timeout=_ASK_LIMIT)
                nursery.cancel_scope.cancel()
            elapsed = trio.current_time() - recorder.began
            if on_tick is not None:
                on_tick(recorder, elapsed)
    cycle = recorder.cycle_histogram
    return HostFactoryReport(
        target=target,
        mode="closed" if offer.rate is None else "open",
        rate=offer.rate,
        clients=offer.clients,
        cycles=recorder.cycles,
        machines_per_request=shape.machines,
        elapsed_s=round(elapsed, 3),
        offered_cycles=len(recorder.offered),
        offered_per_s=round(len(recorder.offered) / _offering_seconds(recorder, offer, elapsed), 2),
        cycles_per_s=round(recorder.cycles / elapsed, 2),
        cycle=_figures(cycle) if cycle.get_total_count() else None,
        calls=recorder.figures(),
        errors=recorder.errors,
        error_reasons=recorder.error_reasons(),
    )


def _offering_seconds(recorder: Recorder, offer: Offer, elapsed: float) -> float:
    """How long load was offered for: the schedule's span, not the drain after it."""
    if len(recorder.offered) < 2:
        return elapsed
    span = max(recorder.offered) - min(recorder.offered)
    return span + 1 / offer.rate if offer.rate else max(span, 1e-9)


async def _closed_loop(client: ActorRef, offer: Offer) -> None:
    if offer.duration is None:
        for _ in range(offer.cycles):
            await client.ask(Cycle(), timeout=_ASK_LIMIT)
        return
    # a cycle under way is finished, not cut off: its machines go back
    stop_at = trio.current_time() + offer.duration
    while trio.current_time() < stop_at:
        await client.ask(Cycle(), timeout=_ASK_LIMIT)


async def _open_loop(clients: list[ActorRef], offer: Offer) -> None:
    """Offer a cycle every 1/rate seconds, round robin, on schedule whatever the answers."""
    assert offer.rate is not None
    start = trio.current_time()
    total = math.inf if offer.duration is not None else offer.cycles * len(clients)
    end = start + offer.duration if offer.duration is not None else math.inf
    n = 0
    while n < total:
        due = start + n / offer.rate
        if due >= end:
            break
        await trio.sleep_until(due)
        await clients[n % len(clients)].tell(Cycle(since=due))
        n += 1


async def _ticking(on_tick: Tick, recorder: Recorder) -> None:
    while True:
        await trio.sleep(0.5)
        on_tick(recorder, trio.current_time() - recorder.began)
