"""The `hostfactory` workload: simulated Host Factory clients running HF's real cycle.

Each of K clients repeats Host Factory's cycle for a number of cycles:
request machines; poll getRequestStatus, as Host Factory does, until the
request is no longer running; return the machines; poll the return request
the same way; then ask getReturnRequests. Every call is timed into an
HDR histogram per command (hdrhistogram, microsecond resolution, three
significant digits), so percentiles stay exact to 0.1% whatever the spread,
and every failure is counted by kind.

It talks to hostsmith one of two ways, through the same `HostFactoryCall`:
in process (`--in-process`: the application built from the config, called
the way the HTTP API calls it, with the driver running), or over HTTP to a
daemon (`--target URL`). A load test only ever targets what it is pointed
at; the tests point it at 127.0.0.1.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import msgspec
import trio
from hdrh.histogram import HdrHistogram

from hostsmith.actors._app import open_application
from hostsmith.actors._config import Config
from hostsmith.actors._protocol import COMMANDS, answer
from hostsmith.actors._service import HostFactory, HostFactoryError

HostFactoryCall = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]
"""(command, payload) -> the answer; raises `CallFailed` when the call fails."""

_LOWEST_US, _HIGHEST_US = 1, 3_600_000_000  # 1 µs to an hour


class CallFailed(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class CallFigures(msgspec.Struct, kw_only=True):
    calls: int
    errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float


class HostFactoryReport(msgspec.Struct, kw_only=True):
    workload: str = "hostfactory"
    target: str
    clients: int
    cycles: int
    machines_per_request: int
    elapsed_s: float
    cycles_per_s: float
    calls: dict[str, CallFigures]
    errors: dict[str, int]


class Recorder:
    """Per-command latency histograms and error counts, shared by every client."""

    def __init__(self) -> None:
        self.histograms = {
            command: HdrHistogram(_LOWEST_US, _HIGHEST_US, 3) for command in COMMANDS
        }
        self.errors: dict[str, int] = {}
        self.errors_by_command: dict[str, int] = dict.fromkeys(COMMANDS, 0)
        self.cycles = 0
        self.acknowledged: list[str] = []
        """Every request id hostsmith answered with, acquire and return alike."""

    async def timed(self, call: HostFactoryCall, command: str, payload: dict[str, Any]) -> Any:
        began = time.perf_counter()
        try:
            return await call(command, payload)
        except CallFailed as failure:
            self.errors[failure.kind] = self.errors.get(failure.kind, 0) + 1
            self.errors_by_command[command] += 1
            raise
        finally:
            elapsed_us = max(_LOWEST_US, round((time.perf_counter() - began) * 1e6))
            self.histograms[command].record_value(min(elapsed_us, _HIGHEST_US))

    def figures(self) -> dict[str, CallFigures]:
        return {
            command: CallFigures(
                calls=histogram.get_total_count(),
                errors=self.errors_by_command[command],
                p50_ms=histogram.get_value_at_percentile(50) / 1000,
                p90_ms=histogram.get_value_at_percentile(90) / 1000,
                p99_ms=histogram.get_value_at_percentile(99) / 1000,
                max_ms=histogram.get_max_value() / 1000,
            )
            for command, histogram in self.histograms.items()
            if histogram.get_total_count()
        }


async def _poll(
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
    """One simulated Host Factory: `cycles` times request, poll, return, poll, check returns."""
    for _ in range(cycles):
        try:
            asked = await recorder.timed(
                call,
                "requestMachines",
                {"template": {"templateId": template_id, "machineCount": machines}},
            )
            recorder.acknowledged.append(asked["requestId"])
            entry = await _poll(recorder, call, asked["requestId"], poll_interval, poll_limit)
            held = [{"name": m["name"], "machineId": m["machineId"]} for m in entry["machines"]]
            if held:
                returned = await recorder.timed(call, "requestReturnMachines", {"machines": held})
                recorder.acknowledged.append(returned["requestId"])
                await _poll(recorder, call, returned["requestId"], poll_interval, poll_limit)
                await recorder.timed(call, "getReturnRequests", {"machines": held})
            recorder.cycles += 1
        except CallFailed:
            await trio.sleep(poll_interval)  # counted; the client carries on, as HF would


def calls_into(service: HostFactory) -> HostFactoryCall:
    """Calls served by `service` in this process, the way the HTTP API serves them."""

    async def call(command: str, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            return await answer(service, command, msgspec.json.encode(payload))
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
async def over_http(url: str, token: str = "") -> AsyncIterator[HostFactoryCall]:
    """Calls to a running daemon's HTTP API."""
    headers = {"authorization": f"Bearer {token}"} if token else {}
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)
    async with httpx.AsyncClient(
        base_url=url.rstrip("/"), headers=headers, timeout=60, limits=limits
    ) as client:

        async def call(command: str, payload: dict[str, Any]) -> dict[str, Any]:
            try:
                response = await client.post(f"/api/v1/{command}", json=payload)
            except httpx.HTTPError as error:
                raise CallFailed(type(error).__name__, str(error)) from None
            if response.status_code != 200:
                raise CallFailed(f"http-{response.status_code}", response.text[:200])
            result: dict[str, Any] = response.json()
            return result

        yield call


async def run_hostfactory(
    config: Config,
    *,
    target: str,
    clients: int,
    cycles: int,
    machines: int,
    template_id: str,
    poll_interval: float,
) -> HostFactoryReport:
    recorder = Recorder()
    connect = (
        in_process(config) if target == "in-process" else over_http(target, config.server.token)
    )
    async with connect as call:
        began = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(clients):
                nursery.start_soon(
                    lambda: host_factory_client(
                        recorder,
                        call,
                        template_id=template_id,
                        machines=machines,
                        cycles=cycles,
                        poll_interval=poll_interval,
                    )
                )
        elapsed = time.perf_counter() - began
    return HostFactoryReport(
        target=target,
        clients=clients,
        cycles=recorder.cycles,
        machines_per_request=machines,
        elapsed_s=round(elapsed, 3),
        cycles_per_s=round(recorder.cycles / elapsed, 2),
        calls=recorder.figures(),
        errors=recorder.errors,
    )
