"""The HTTP API: Host Factory's five calls as JSON over HTTP, plus health and metrics.

A plain ASGI application served by hypercorn on trio. There is no web
framework because there is almost no routing: `POST /api/v1/<command>`
takes Host Factory's JSON input and answers with Host Factory's JSON
output, exactly what `hostsmith hf <command>` prints.

- `GET /healthz` answers 200 `{"status": "ok", ...}` while the store takes
  writes, and 503 `{"status": "degraded", "store_error": ...}` while it fails
  them (a full disk), until the next write lands.
- `GET /metrics` is Prometheus text: Host Factory call latency, mailbox
  depth, actor restarts, journal batches and the provider circuit's state.
- Bodies larger than `server.max_body` are refused with 413 before they are
  read in full; malformed or invalid JSON gets 400 with a message naming the
  problem; an unknown command 404. Nothing is written for a refused call.
- `POST /admin/reconcile` runs one reconcile pass now (`{"dry_run": true}`
  to act on nothing) and answers with what it found and did; it is what
  `hostsmith reconcile` calls when a daemon serves the data dir.
- With `server.token` set, every call but `/healthz` needs
  `Authorization: Bearer <token>`.
- Each call runs in its own correlation id (the `X-Correlation-Id` header,
  or a fresh one), which the logs and the events it causes carry.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import msgspec
import trio
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from hostsmith.actors.errors import (
    BodyTooLarge,
    InternalError,
    as_hostsmith_error,
)
from hostsmith.actors.hostfactory import HostFactoryAnswer, RequestAccepted, RequestStatuses
from hostsmith.actors.service import Application, answer
from hostsmith.runtime import CircuitState, correlation, new_id

log = logging.getLogger("hostsmith.http")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class RuntimeCollector(Collector):
    """Reads the engine's own counters at scrape time; nothing is pushed."""

    def __init__(self, app: Application) -> None:
        self.app = app

    def collect(self) -> Iterator[Any]:
        runtime, breaker = self.app.runtime, self.app.gateway.breaker
        yield GaugeMetricFamily(
            "hostsmith_mailbox_depth",
            "Messages queued in live actors' mailboxes",
            value=runtime.registry.queued_messages,
        )
        yield GaugeMetricFamily(
            "hostsmith_live_aggregates",
            "Aggregates resident in memory",
            value=runtime.registry.resident,
        )
        yield CounterMetricFamily(
            "hostsmith_actor_restarts",
            "Crashed actors restarted by their supervisor",
            value=runtime.registry.restarts,
        )
        stats = runtime.journal.stats
        yield CounterMetricFamily(
            "hostsmith_journal_transactions", "Store transactions", value=stats.transactions
        )
        yield CounterMetricFamily(
            "hostsmith_journal_events", "Events made durable", value=stats.events
        )
        yield CounterMetricFamily(
            "hostsmith_journal_conflicts",
            "Appends refused because another writer got to the stream first",
            value=stats.conflicts,
        )
        yield CounterMetricFamily(
            "hostsmith_journal_failed_transactions",
            "Batches the store failed to write",
            value=stats.failed_transactions,
        )
        yield GaugeMetricFamily(
            "hostsmith_store_failing",
            "1 while the store fails writes (until its next successful batch)",
            value=0.0 if runtime.journal.write_failure is None else 1.0,
        )
        yield GaugeMetricFamily(
            "hostsmith_journal_mean_batch_size",
            "Appends per transaction, on average",
            value=stats.mean_batch_size,
        )
        circuit = GaugeMetricFamily(
            "hostsmith_circuit_state",
            "1 for the provider circuit's current state",
            labels=["circuit", "state"],
        )
        current = breaker.state
        for state in CircuitState:
            circuit.add_metric([breaker.name, state.value], 1.0 if state is current else 0.0)
        yield circuit
        yield CounterMetricFamily(
            "hostsmith_provider_calls",
            "Calls made to the provider, retries included",
            value=self.app.gateway.calls,
        )
        reconciler = self.app.reconciler
        for name, counts, what in (
            ("findings", reconciler.findings_total, "Drift found between the cloud and the log"),
            ("actions", reconciler.actions_total, "Actions the reconciler took on drift"),
        ):
            family = CounterMetricFamily(f"hostsmith_reconcile_{name}", what, labels=["kind"])
            for kind in ("orphan", "ghost"):
                family.add_metric([kind], counts.get(kind, 0))
            yield family


class ReconcileAsk(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The body of `POST /admin/reconcile` (none: a pass that acts)."""

    dry_run: bool = False


class Api:
    def __init__(self, app: Application) -> None:
        self.app = app
        self.metrics = CollectorRegistry()
        self.metrics.register(RuntimeCollector(app))
        self.latency = Histogram(
            "hostsmith_command_seconds",
            "Host Factory call latency",
            ["command", "outcome"],
            registry=self.metrics,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.in_flight = 0

    def health(self) -> tuple[int, dict[str, Any]]:
        """200 while the store takes writes; 503, with its error, while it fails them.

        The journal clears its failure at the next batch the store writes, so a
        store that recovers (space freed on a full disk) is healthy again with
        no restart; the request driver's retries are such writes.
        """
        failing = self.app.runtime.journal.write_failure
        circuit = self.app.gateway.breaker.state.value
        if failing is None:
            return 200, {"status": "ok", "store": "writable", "provider_circuit": circuit}
        return 503, {
            "status": "degraded",
            "store": "failing writes",
            "store_error": failing.error,
            "failing_for_seconds": round(trio.current_time() - failing.since, 1),
            "provider_circuit": circuit,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if path == "/healthz":
            await _respond(send, *self.health())
            return
        if not self._authorised(scope):
            await _respond(send, 401, {"message": "missing or wrong bearer token"})
            return
        if path == "/metrics" and method == "GET":
            await _respond_bytes(
                send, 200, generate_latest(self.metrics), b"text/plain; version=0.0.4"
            )
            return
        if path == "/admin/reconcile" and method == "POST":
            await self._reconcile(scope, receive, send)
            return
        if not path.startswith("/api/v1/"):
            await _respond(send, 404, {"message": f"no such endpoint: {path}"})
            return
        if method != "POST":
            await _respond(send, 405, {"message": f"use POST for {path}"})
            return
        await self._command(scope, receive, send, path.removeprefix("/api/v1/"))

    async def _command(self, scope: Scope, receive: Receive, send: Send, command: str) -> None:
        headers = dict(scope.get("headers", []))
        correlation_id = headers.get(b"x-correlation-id", b"").decode() or new_id()
        started = time.perf_counter()
        outcome = "ok"
        self.in_flight += 1
        try:
            with correlation(correlation_id):
                try:
                    body = await _read_body(receive, self.app.config.server.max_body, headers)
                    status = 200
                    result: HostFactoryAnswer | dict[str, str] = await answer(
                        self.app.service, command, body
                    )
                except Exception as failure:
                    error = as_hostsmith_error(failure, command)
                    outcome, status = _OUTCOMES.get(error.http_status, "error"), error.http_status
                    result = {"message": error.message}
                    if isinstance(error, InternalError):
                        log.exception("%s failed", command)
                elapsed = time.perf_counter() - started
                _log_call(command, outcome, status, elapsed * 1000, result)
                if elapsed * 1000 >= self.app.config.log.slow_ms:
                    log.warning("slow %s: %.0f ms", command, elapsed * 1000)
        finally:
            self.in_flight -= 1
        self.latency.labels(command, outcome).observe(elapsed)
        await _respond(send, status, result, correlation_id)

    async def _reconcile(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers", []))
        try:
            body = await _read_body(receive, self.app.config.server.max_body, headers)
            asked = msgspec.json.decode(body or b"{}", type=ReconcileAsk)
            done = await self.app.reconciler.reconcile(dry_run=asked.dry_run)
        except Exception as failure:
            error = as_hostsmith_error(failure, "reconcile")
            if isinstance(error, InternalError):
                log.exception("reconcile failed")
            await _respond(send, error.http_status, {"message": error.message})
            return
        await _respond_bytes(send, 200, msgspec.json.encode(done), b"application/json")

    def _authorised(self, scope: Scope) -> bool:
        token = self.app.config.server.token
        if not token:
            return True
        given = dict(scope.get("headers", [])).get(b"authorization", b"").decode()
        return hmac.compare_digest(given, f"Bearer {token}")


_OUTCOMES = {400: "refused", 404: "refused", 413: "refused", 503: "busy"}


def _log_call(
    command: str,
    outcome: str,
    status: int,
    milliseconds: float,
    result: HostFactoryAnswer | dict[str, str],
) -> None:
    """One line per call (the correlation id comes with every line): the traffic, readable.

    A call answered is logged at info with the request ids it concerns; a
    refusal or a "send it again" at warning, with the reason.
    """
    if isinstance(result, dict):
        level = logging.ERROR if status >= 500 and status != 503 else logging.WARNING
        log.log(
            level,
            "%s %s (%d) in %.1f ms: %s",
            command,
            outcome,
            status,
            milliseconds,
            result.get("message", ""),
        )
        return
    if isinstance(result, RequestAccepted):
        ids = result.request_id
    elif isinstance(result, RequestStatuses):
        ids = ",".join(entry.request_id for entry in result.requests) or "-"
    else:
        ids = "-"
    log.info("%s %s %s in %.1f ms", command, ids, outcome, milliseconds)


"""The `outcome` label of the latency histogram, by HTTP status."""


async def _read_body(receive: Receive, limit: int, headers: dict[bytes, bytes]) -> bytes:
    declared = headers.get(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    chunks, size = [], 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _respond(
    send: Send, status: int, payload: HostFactoryAnswer | dict[str, str], correlation_id: str = ""
) -> None:
    await _respond_bytes(
        send, status, msgspec.json.encode(payload), b"application/json", correlation_id
    )


async def _respond_bytes(
    send: Send, status: int, body: bytes, content_type: bytes, correlation_id: str = ""
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if correlation_id:
        headers.append((b"x-correlation-id", correlation_id.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
