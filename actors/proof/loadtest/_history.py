"""The `history` workload: what weeks of Host Factory's traffic do to a start, a call and memory.

An admin who leaves hostsmith for a month comes back to a store that holds
the month. This workload makes such a store the way Host Factory would, and
then measures the same things on it and on a fresh store, in one run:

1. **Ageing.** In this process, on trio's virtual clock, the application
   (as the daemon wires it, with its driver and reconciler) serves
   `clients` Host Factories, each with its own cycle of Host Factory's calls:
   requestMachines for `machines` hosts, getRequestStatus every
   `hf_poll` seconds until `complete`, hold them `hold` seconds,
   requestReturnMachines, getRequestStatus until `complete`. That is a
   cluster of `clients x machines` hosts that turns over every `hold`
   seconds. Cycles start until the store holds `events` events; the last
   ones finish, so no host is live at the end. The history is dated so that
   it ends before now (the virtual clock starts that long ago), as a
   month's would.
2. **Measuring**, each on the aged store and on a fresh one, alternately:
   `hostsmith serve` until `/healthz` answers 200 (and the daemon's RSS
   then), getRequestStatus through that daemon (`runs` calls of one
   request), one in-process `hostsmith hf getAvailableTemplates` as a new
   process with no daemon (`runs` of them), and the counter workload's
   commands per second on that store's file.

Each figure is reported for both, with its aged/fresh ratio: a cost's
ratio (for the counter, the time a commit takes). The issue's target is
every ratio at most 1.2. `--history-dir` keeps the aged data dir, and a
later run reuses it if it holds enough events (ageing 5,000,000 events
takes a while). Wall-clock time is the point of the measuring; this is a
benchmark, never a test.
"""

from __future__ import annotations

import http.client
import json
import math
import pathlib
import shutil
import sqlite3
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from typing import Any

import msgspec
import trio
import trio.testing

from hostsmith.actors.proof.loadtest._counter import CounterLoad, run_counter
from hostsmith.actors.proof.loadtest._daemon import HOSTSMITH, free_port, templates_with_room
from hostsmith.actors.proof.loadtest._hf_call import CALL_ENVIRONMENT, run_quietly
from hostsmith.actors.proof.loadtest._hostfactory import CallFailed, calls_into

TEMPLATE = "OnDemand-Minimal-Template-VM"
EVENTS_PER_MACHINE = 5.0
"""About what one machine's cycle writes (measured: 1,000,000 events for 200,000 machines);
used only to date the history so that it ends before now."""
TEMPLATE_LIMIT = 10_000
"""Each template's maxNumber (Host Factory's ceiling): room for the cluster's live hosts."""
HEALTH_POLL = 0.01
"""Seconds between looks at `/healthz` while a daemon starts (a benchmark's wall clock)."""
START_LIMIT = 600.0
"""Seconds a daemon may take to be healthy before the run gives up on it."""
HEALTH_LIMIT = 3000
"""Looks at a daemon before it is taken for broken."""


class HistoryShape(msgspec.Struct, frozen=True, kw_only=True):
    events: int
    clients: int = 200
    machines: int = 5
    hold: float = 3600.0
    hf_poll: float = 30.0
    runs: int = 20
    counter_commands: int = 50_000


class HistoryFigures(msgspec.Struct, kw_only=True):
    events: int
    store_mb: float
    start_to_healthy_s: float
    rss_after_start_mb: float
    get_request_status_ms: float
    in_process_call_ms: float
    counter_commands_per_s: float


class HistoryReport(msgspec.Struct, kw_only=True):
    workload: str = "history"
    events: int
    machines: int
    requests: int
    history_days: float
    """How many days of the cluster's life the history covers (virtual time)."""
    ageing_s: float
    """Wall-clock seconds it took to make the history (0 if reused)."""
    aged: HistoryFigures
    fresh: HistoryFigures
    ratios: dict[str, float]
    """Aged over fresh, of each cost: start, RSS, an in-process call, getRequestStatus,
    and the counter's time per commit (fresh commands/s over aged)."""


class _Aged(msgspec.Struct, kw_only=True):
    """What ageing made, kept beside the data dir so that a later run can reuse it."""

    events: int
    machines: int
    requests: int
    history_days: float
    ageing_s: float


def run_history(shape: HistoryShape, keep: pathlib.Path | None = None) -> HistoryReport:
    with tempfile.TemporaryDirectory(prefix="hostsmith-history-") as scratch:
        work = pathlib.Path(scratch)
        aged_dir = keep or work / "aged"
        aged = _aged_store(aged_dir, shape)
        fresh_dir = work / "fresh"
        _folder(fresh_dir)
        aged_config, fresh_config = _config(aged_dir, shape), _config(fresh_dir, shape)
        # Alternately, so that a drift in the machine's speed falls on both alike.
        starts: dict[str, list[float]] = {"aged": [], "fresh": []}
        rss: dict[str, list[float]] = {"aged": [], "fresh": []}
        status: dict[str, list[float]] = {"aged": [], "fresh": []}
        for _ in range(3):
            for name, config in (("aged", aged_config), ("fresh", fresh_config)):
                took, resident, polls = _serve_and_poll(config, shape.runs)
                starts[name].append(took)
                rss[name].append(resident)
                status[name].extend(polls)
        calls = {
            name: _in_process_calls(config, shape.runs)
            for name, config in (("aged", aged_config), ("fresh", fresh_config))
        }
        held = {
            name: (_events_in(folder), _store_bytes(folder))
            for name, folder in (("aged", aged_dir), ("fresh", fresh_dir))
        }
        counter = {  # last: it adds its own events to each store
            name: _counter(folder, shape.counter_commands)
            for name, folder in (("aged", aged_dir), ("fresh", fresh_dir))
        }
        figures = {
            name: HistoryFigures(
                events=held[name][0],
                store_mb=round(held[name][1] / 1e6, 1),
                start_to_healthy_s=round(statistics.median(starts[name]), 3),
                rss_after_start_mb=round(statistics.median(rss[name]) / 1e6, 1),
                get_request_status_ms=round(statistics.median(status[name]), 2),
                in_process_call_ms=round(calls[name], 1),
                counter_commands_per_s=round(counter[name], 1),
            )
            for name, folder in (("aged", aged_dir), ("fresh", fresh_dir))
        }
    old, new = figures["aged"], figures["fresh"]
    return HistoryReport(
        events=aged.events,
        machines=aged.machines,
        requests=aged.requests,
        history_days=aged.history_days,
        ageing_s=aged.ageing_s,
        aged=old,
        fresh=new,
        ratios={
            "start": _ratio(old.start_to_healthy_s, new.start_to_healthy_s),
            "rss": _ratio(old.rss_after_start_mb, new.rss_after_start_mb),
            "in_process_call": _ratio(old.in_process_call_ms, new.in_process_call_ms),
            "get_request_status": _ratio(old.get_request_status_ms, new.get_request_status_ms),
            "counter_commit_time": _ratio(new.counter_commands_per_s, old.counter_commands_per_s),
        },
    )


def _ratio(aged: float, fresh: float) -> float:
    return round(aged / fresh, 3) if fresh else math.nan


# -- ageing ---------------------------------------------------------------------


def _folder(folder: pathlib.Path) -> pathlib.Path:
    (folder / "data").mkdir(parents=True, exist_ok=True)
    templates_with_room(folder / "templates.json", TEMPLATE_LIMIT)
    return folder


def _config(folder: pathlib.Path, shape: HistoryShape, *, store: str = "") -> pathlib.Path:
    """The folder's config: its data dir, roomy templates, a quick simulated cloud."""
    lines = [f'data_dir = "{folder / "data"}"', f'templates = "{folder / "templates.json"}"']
    if store:  # ageing: the history as a daemon writes it, with its periodic work less often
        lines += [f'store = "{store}"', "[reconcile]", "interval = 600",
                  "[read_models]", "checkpoint_seconds = 600"]  # fmt: skip
    capacity = max(10_000, 4 * shape.clients * shape.machines)
    lines += ["[sim]", "boot_time = 3", "shutdown_time = 2", "latency = 0.001",
              f"capacity = {capacity}", "[log]", 'level = "warning"']  # fmt: skip
    name = "ageing.toml" if store else "hostsmith.toml"
    (folder / name).write_text("\n".join(lines) + "\n")
    return folder / name


def _aged_store(folder: pathlib.Path, shape: HistoryShape) -> _Aged:
    record = folder / "history.json"
    if record.exists():
        kept = msgspec.json.decode(record.read_bytes(), type=_Aged)
        if kept.events >= shape.events:
            return msgspec.structs.replace(kept, ageing_s=0.0)
        shutil.rmtree(folder)
    _folder(folder)
    began = time.perf_counter()
    machines = shape.events / EVENTS_PER_MACHINE
    span = machines / (shape.clients * shape.machines) * shape.hold
    start = time.time() - 1.25 * span - 86_400  # ends at least a day before now
    # Inline: on virtual time. Unsynced: the history need not survive a power cut.
    store = f"sqlite://{folder / 'data' / 'events.db'}?worker=inline&synchronous=off"
    config = _config(folder, shape, store=store)
    made = trio.run(_age, config, shape, start, clock=trio.testing.MockClock(autojump_threshold=0))
    aged = msgspec.structs.replace(made, ageing_s=round(time.perf_counter() - began, 1))
    record.write_bytes(msgspec.json.encode(aged))
    return aged


async def _age(config_path: pathlib.Path, shape: HistoryShape, start: float) -> _Aged:
    from hostsmith.actors.service import load_config, open_application

    config = load_config(config_path)

    def clock() -> float:
        return start + trio.current_time()

    counts = {"machines": 0, "requests": 0}
    async with open_application(config, clock=clock) as application:
        call = calls_into(application.service)
        projections = application.service.projections

        def enough() -> bool:
            # the projections follow the log: their position is the newest event's, no I/O
            # (a thread here would let the virtual clock run ahead of the store)
            return projections.position >= shape.events

        async def client(n: int) -> None:
            await trio.sleep(n * shape.hold / shape.clients)  # spread, as a cluster's churn is
            while not enough():
                held = await _acquire(call, shape)
                counts["requests"] += 2
                counts["machines"] += len(held)
                await trio.sleep(shape.hold)
                if held:
                    await _give_back(call, held, shape)

        async with trio.open_nursery() as nursery:
            for n in range(shape.clients):
                nursery.start_soon(client, n)
        ended = trio.current_time()
        await trio.sleep(5)  # the projections catch up with the last commits
        events = projections.position
    return _Aged(
        events=events,
        machines=counts["machines"],
        requests=counts["requests"],
        history_days=round(ended / 86_400, 2),
        ageing_s=0.0,
    )


def _max_position(path: pathlib.Path) -> int:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        (last,) = db.execute("SELECT coalesce(max(position), 0) FROM events").fetchone()
    return int(last)


async def _acquire(call: Callable[..., Any], shape: HistoryShape) -> list[dict[str, str]]:
    ask = {"template": {"templateId": TEMPLATE, "machineCount": shape.machines}}
    try:
        request_id = (await call("requestMachines", ask))["requestId"]
    except CallFailed as refused:
        if "available" not in str(refused):  # anything but a full template is a broken run
            raise RuntimeError(f"the history cannot be made: {refused}") from None
        await trio.sleep(shape.hf_poll)
        return []
    entry = await _until_done(call, request_id, shape)
    return [{"name": m["name"], "machineId": m["machineId"]} for m in entry["machines"]]


async def _give_back(
    call: Callable[..., Any], held: list[dict[str, str]], shape: HistoryShape
) -> None:
    while True:
        try:
            request_id = (await call("requestReturnMachines", {"machines": held}))["requestId"]
            break
        except CallFailed:
            await trio.sleep(shape.hf_poll)
    await _until_done(call, request_id, shape)


async def _until_done(
    call: Callable[..., Any], request_id: str, shape: HistoryShape
) -> dict[str, Any]:
    while True:
        await trio.sleep(shape.hf_poll)
        try:
            answer = await call("getRequestStatus", {"requests": [{"requestId": request_id}]})
        except CallFailed:
            continue
        entry: dict[str, Any] = answer["requests"][0]
        if entry["status"] != "running":
            return entry


# -- measuring ------------------------------------------------------------------


def _serve_and_poll(config: pathlib.Path, runs: int) -> tuple[float, float, list[float]]:
    """Start a daemon: (seconds until healthy, its RSS in bytes, `runs` polls in ms)."""
    port = free_port()
    began = time.perf_counter()
    with subprocess.Popen(
        [*HOSTSMITH, "serve", "--config", str(config), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=CALL_ENVIRONMENT,
    ) as daemon:
        try:
            while _get(port, "/healthz") != 200:
                if time.perf_counter() - began > START_LIMIT:  # fmt: skip
                    raise RuntimeError(
                        f"the daemon on {config} is not healthy after {START_LIMIT:g} s"
                    )
                if daemon.poll() is not None:
                    raise RuntimeError(f"the daemon on {config} exited with {daemon.returncode}")
                time.sleep(HEALTH_POLL)
            took = time.perf_counter() - began
            resident = _rss_of(daemon.pid)
            ask = {"template": {"templateId": TEMPLATE, "machineCount": 1}}
            request_id = _post(port, "requestMachines", ask)["requestId"]
            poll = {"requests": [{"requestId": request_id}]}
            polls = []
            for _ in range(runs):
                once = time.perf_counter()
                _post(port, "getRequestStatus", poll)
                polls.append((time.perf_counter() - once) * 1000)
            _return_when_up(port, request_id)  # the aged store keeps no live host of ours
        finally:
            daemon.terminate()
            daemon.wait(timeout=120)
    return took, resident, polls


def _return_when_up(port: int, request_id: str) -> None:
    machines = _wait_until_done(port, request_id)
    held = [{"name": m["name"], "machineId": m["machineId"]} for m in machines]
    if held:
        returned = _post(port, "requestReturnMachines", {"machines": held})
        _wait_until_done(port, returned["requestId"])


def _wait_until_done(port: int, request_id: str) -> list[dict[str, Any]]:
    poll = {"requests": [{"requestId": request_id}]}
    for _ in range(HEALTH_LIMIT):
        (entry,) = _post(port, "getRequestStatus", poll)["requests"]
        if entry["status"] != "running":
            machines: list[dict[str, Any]] = entry["machines"]
            return machines
        time.sleep(HEALTH_POLL * 10)  # a benchmark on the wall clock, waiting for the sim
    raise RuntimeError(f"{request_id} is still running after {HEALTH_LIMIT} polls")


def _in_process_calls(config: pathlib.Path, runs: int) -> float:
    """The median milliseconds of `hostsmith hf getAvailableTemplates` in process."""
    call = [*HOSTSMITH, "hf", "getAvailableTemplates", "-d", "{}", "--config", str(config)]
    run_quietly(call)  # untimed: writes the bytecode cache
    took = []
    for _ in range(runs):
        began = time.perf_counter()
        run_quietly(call)
        took.append((time.perf_counter() - began) * 1000)
    return statistics.median(took)


def _counter(folder: pathlib.Path, commands: int) -> float:
    load = CounterLoad(
        store=f"sqlite://{folder / 'data' / 'events.db'}",
        aggregates=1000,
        commands=commands,
        concurrency=1000,
    )
    return trio.run(run_counter, load).commands_per_s


def _rss_of(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return float(line.split()[1]) * 1024
    return math.nan


def _events_in(folder: pathlib.Path) -> int:
    return _max_position(folder / "data" / "events.db")


def _store_bytes(folder: pathlib.Path) -> int:
    return sum(
        path.stat().st_size for path in (folder / "data").glob("events.db*") if path.is_file()
    )


def _get(port: int, path: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    except OSError:
        return 0
    finally:
        connection.close()


def _post(port: int, command: str, payload: object) -> dict[str, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request(
            "POST", f"/api/v1/{command}", json.dumps(payload), {"content-type": "application/json"}
        )
        answer: dict[str, Any] = json.loads(connection.getresponse().read())
    finally:
        connection.close()
    return answer


__all__ = ["HistoryFigures", "HistoryReport", "HistoryShape", "run_history"]
