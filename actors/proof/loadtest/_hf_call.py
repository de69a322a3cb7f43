"""The `hf-call` workload: what one Host Factory call costs, as Host Factory makes it.

Host Factory starts a new process for each call. So a call's cost is the
interpreter's start, the imports and the work; only the last is hostsmith's
engine. This workload times N runs of each, one after another, in the same
run so that the figures compare:

- `bare_python`: `python -c pass`, the floor no Python program goes under;
- `http_round_trip`: the same getRequestStatus as one raw HTTP POST from
  this process (no new process), what the daemon itself spends;
- `daemon_call`: `hostsmith hf getRequestStatus -f FILE` against a daemon,
  a new process per call, as Host Factory's script runs it;
- `in_process_call`: the same call with no daemon, served in that process.

The calls run with Python's bytecode cache on, as Host Factory's would,
whatever this process was started with: under `PYTHONDONTWRITEBYTECODE`
an editable install has no `.pyc` files, and each call compiled
hostsmith's own modules again (8 ms of a 63 ms call on this repository's
machine). One untimed call of each kind writes the cache first.

It starts its own daemon (and a second data dir for the in-process calls)
in a temporary folder, on a free loopback port, with the simulated cloud,
asks for one machine, and polls that request; everything is removed after.
Wall-clock time is the point here: this is a benchmark, never a test.

The `bulk` workload, beside it, times the calls whose cost grows with the
hosts they name: one request of N machines, its status, one return of all
N, and getReturnRequests for them, through a daemon of its own.
"""

from __future__ import annotations

import http.client
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import msgspec

from hostsmith.actors.proof.loadtest._daemon import HOSTSMITH, own_daemon, templates_with_room


class Timing(msgspec.Struct, kw_only=True):
    runs: int
    p50_ms: float
    p99_ms: float
    min_ms: float


class HfCallReport(msgspec.Struct, kw_only=True):
    workload: str = "hf-call"
    bare_python: Timing
    http_round_trip: Timing
    daemon_call: Timing
    in_process_call: Timing
    daemon_call_over_bare_python: float
    """How many bare interpreter starts one call to the daemon costs (p50 / p50)."""


def run_hf_call(runs: int) -> HfCallReport:
    with tempfile.TemporaryDirectory(prefix="hostsmith-hf-call-") as folder:
        workdir = pathlib.Path(folder)
        served, alone = _config(workdir / "served"), _config(workdir / "alone")
        with own_daemon(served) as daemon:
            port = daemon.port
            request_id = _post(port, "requestMachines", _ONE_MACHINE)["requestId"]
            status = workdir / "status.json"
            status.write_text(json.dumps({"requests": [{"requestId": request_id}]}))
            poll = [*HOSTSMITH, "hf", "getRequestStatus", "-f", str(status)]
            run_quietly([*poll, "--config", str(served)])  # untimed: writes the bytecode cache
            bare = _timed(runs, lambda: run_quietly([sys.executable, "-c", "pass"]))
            http = _timed(
                runs, lambda: _post(port, "getRequestStatus", json.loads(status.read_text()))
            )
            through_daemon = _timed(runs, lambda: run_quietly([*poll, "--config", str(served)]))
            run_quietly([*HOSTSMITH, "hf", "requestMachines", "-d", json.dumps(_ONE_MACHINE),
                  "--config", str(alone)])  # fmt: skip
            in_process = _timed(runs, lambda: run_quietly([*poll, "--config", str(alone)]))
    return HfCallReport(
        bare_python=bare,
        http_round_trip=http,
        daemon_call=through_daemon,
        in_process_call=in_process,
        daemon_call_over_bare_python=round(through_daemon.p50_ms / bare.p50_ms, 2),
    )


class BulkReport(msgspec.Struct, kw_only=True):
    workload: str = "bulk"
    machines: int
    requestMachines_ms: float
    getRequestStatus_ms: float
    requestReturnMachines_ms: float
    getReturnRequests_ms: float
    """Each one call for all `machines`, through the daemon, timed by this process."""
    cloud_boot_ms: float
    """How long the simulated cloud takes to boot a machine."""
    complete_after_ms: float
    """From requestMachines until getRequestStatus says `complete` (polled every 20 ms)."""


def run_bulk(machines: int) -> BulkReport:
    """One request for `machines` hosts, then one return of them all, through a daemon."""
    with tempfile.TemporaryDirectory(prefix="hostsmith-bulk-") as folder:
        config = _config(pathlib.Path(folder) / "daemon", room=machines)
        with own_daemon(config) as daemon:
            port = daemon.port
            asked = {"template": {"templateId": _TEMPLATE, "machineCount": machines}}
            began = time.perf_counter()
            request_id = _post(port, "requestMachines", asked)["requestId"]
            acquired_ms = (time.perf_counter() - began) * 1000
            ask = {"requests": [{"requestId": request_id}]}
            for _ in range(_POLLS):
                entry = _post(port, "getRequestStatus", ask)["requests"]
                if entry[0]["status"] != "running":  # type: ignore[index]
                    break
                time.sleep(0.02)  # a benchmark on the wall clock, waiting for the sim's boot
            complete_ms = (time.perf_counter() - began) * 1000
            held = [
                {"name": m["name"], "machineId": m["machineId"]}
                for m in entry[0]["machines"]  # type: ignore[index]
            ]
            status_ms = _took(lambda: _post(port, "getRequestStatus", ask))
            returned_ms = _took(lambda: _post(port, "requestReturnMachines", {"machines": held}))
            notices_ms = _took(lambda: _post(port, "getReturnRequests", {"machines": held}))
    return BulkReport(
        machines=len(held),
        requestMachines_ms=round(acquired_ms, 1),
        getRequestStatus_ms=round(status_ms, 1),
        requestReturnMachines_ms=round(returned_ms, 1),
        getReturnRequests_ms=round(notices_ms, 1),
        cloud_boot_ms=_BOOT * 1000,
        complete_after_ms=round(complete_ms, 1),
    )


_TEMPLATE = "OnDemand-Minimal-Template-VM"
_POLLS = 6000
_BOOT = 0.5


_ONE_MACHINE = {"template": {"templateId": _TEMPLATE, "machineCount": 1}}


def _config(folder: pathlib.Path, room: int = 0) -> pathlib.Path:
    """A data dir in `folder`, a fast simulated cloud, and templates with `room` hosts."""
    folder.mkdir()
    lines = [f'data_dir = "{folder / "data"}"']
    if room:
        templates = templates_with_room(folder / "templates.json", room)
        lines.append(f'templates = "{templates}"')
    capacity = max(1000, 2 * room)
    lines += ["[sim]", f"boot_time = {_BOOT}", "shutdown_time = 0.5", "latency = 0.001",
              f"capacity = {capacity}"]  # fmt: skip
    config = folder / "hostsmith.toml"
    config.write_text("\n".join(lines) + "\n")
    return config


def _took(once: Callable[[], object]) -> float:
    began = time.perf_counter()
    once()
    return (time.perf_counter() - began) * 1000


CALL_ENVIRONMENT = {
    name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"
}
"""This process's environment, with the bytecode cache on (see the module's docstring)."""


def run_quietly(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, check=False, env=CALL_ENVIRONMENT)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stdout.decode()[:500]}")


def _post(port: int, command: str, payload: object) -> dict[str, object]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request(
            "POST",
            f"/api/v1/{command}",
            json.dumps(payload),
            {"content-type": "application/json"},
        )
        answer: dict[str, object] = json.loads(connection.getresponse().read())
    finally:
        connection.close()
    return answer


def _timed(runs: int, once: Callable[[], object]) -> Timing:
    took = sorted(_took(once) for _ in range(runs))
    return Timing(
        runs=runs,
        p50_ms=round(statistics.median(took), 2),
        p99_ms=round(took[min(len(took) - 1, round(0.99 * (len(took) - 1)))], 2),
        min_ms=round(took[0], 2),
    )
