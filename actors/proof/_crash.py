"""The crash suite: the real daemon under real load, killed with SIGKILL at seeded moments.

`crash_suite()` starts `hostsmith serve` on SQLite and the sim cloud, on a
free 127.0.0.1 port, drives it with the load-test harness's Host Factory
clients over HTTP, and kills it with SIGKILL after a seeded random while.
It does that `kills` times, restarting the daemon each time, and after
every kill, with the daemon down, it opens the store the way the daemon
will and checks the log (actors/_invariants.py):

- every requestId the daemon answered with is in the log (nothing
  acknowledged was lost);
- every stream's versions are contiguous and event ids unique (nothing
  written twice);
- no sim machine was provisioned twice;
- the reconciler, which runs a pass twice a second (so kills land in its
  passes), terminates orphans, and terminates and replaces the launches
  that never boot (one in fifty), terminated nothing twice and nothing live;
  no request launched more than it asked for and replaced.

After the last kill it starts the daemon once more, leaves it alone until
every acknowledged request has finished (the restarted driver picks them up
from the log), stops it cleanly, and checks once more, now requiring every
request to have settled.

Why a separate process and real signals: a crash test in one process can
only cancel tasks, which runs `finally` blocks; SIGKILL runs nothing, which
is what a power cut or the OOM killer does. The kill moments come from
`random.Random(seed)`, so a run's schedule of kills repeats; what the
daemon was doing at each moment does not, which is the point of running
many. Everything is bounded: `kills` cycles, a time limit for each start
and for the final settling, and loopback only.
"""

from __future__ import annotations

import json
import pathlib
import random
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import msgspec
import trio

from hostsmith.actors.proof._invariants import (
    check_acknowledged,
    check_cloud,
    check_log,
    check_reconciler,
    read_everything,
)
from hostsmith.actors.proof.loadtest import (
    Recorder,
    free_port,
    host_factory_client,
    over_http,
    templates_with_room,
)
from hostsmith.actors.service import load_config
from hostsmith.stores import open_store

START_LIMIT = 60.0
"""Seconds a (re)started daemon may take to listen before the suite calls it a failure."""
SETTLE_LIMIT = 300.0
"""Seconds the final, undisturbed daemon may take to finish every acknowledged request."""

_CONFIG = """\
data_dir = "{data}"
templates = "{templates}"
[requests]
poll_interval = 0.1
timeout = 120
[sim]
latency = 0.005
boot_time = 0.3
shutdown_time = 0.2
capacity = 100000
stuck_rate = 0.02
forget_after = inf
[reconcile]
interval = 0.5
terminate_orphans = true
orphan_grace = 2
pending_timeout = 1
[log]
level = "warning"
"""


class CrashReport(msgspec.Struct, kw_only=True):
    kills: int
    seed: int
    acknowledged: int
    events: int
    lost: int
    duplicate_events: int
    duplicate_machines: int
    unfinished: int
    violations: list[str]

    @property
    def clean(self) -> bool:
        return not self.violations


def prepare(workdir: pathlib.Path) -> pathlib.Path:
    """Write the daemon's config and templates (big enough never to refuse) into `workdir`."""
    workdir.mkdir(parents=True, exist_ok=True)
    templates_with_room(workdir / "templates.json", 10_000)
    config = workdir / "hostsmith.toml"
    config.write_text(_CONFIG.format(data=workdir / "data", templates=workdir / "templates.json"))
    return config


async def crash_suite(
    config_path: pathlib.Path,
    *,
    kills: int,
    seed: int = 0,
    clients: int = 8,
    machines: int = 2,
    report_progress: Callable[[str], None] = lambda line: None,
) -> CrashReport:
    config = load_config(config_path, environ={})
    template_id = json.loads(config.templates_path.read_text())["templates"][0]["templateId"]
    moments = random.Random(seed)
    recorder = Recorder()
    violations: list[str] = []
    for kill in range(1, kills + 1):
        async with _daemon(config_path) as daemon, trio.open_nursery() as load:
            load.start_soon(_drive, daemon.url, recorder, template_id, clients, machines)
            await trio.sleep(moments.uniform(0.2, 2.0))
            daemon.process.send_signal(signal.SIGKILL)
            await daemon.process.wait()
            load.cancel_scope.cancel()
        found = await _check(config.store_url, config.data_path, recorder, settled=False)
        violations += [f"after kill {kill}: {violation}" for violation in found]
        report_progress(
            f"kill {kill}/{kills}: {len(recorder.acknowledged)} requests acknowledged so far, "
            f"{'checks clean' if not found else f'{len(found)} problems'}"
        )
    async with _daemon(config_path) as daemon:
        report_progress("last start: letting every acknowledged request finish")
        with trio.move_on_after(SETTLE_LIMIT):
            # another process's file: there is nothing to wait on but a look
            while await _still_running(config.store_url, recorder):  # noqa: ASYNC110
                await trio.sleep(0.5)
        daemon.process.send_signal(signal.SIGTERM)
        await daemon.process.wait()
    found = await _check(config.store_url, config.data_path, recorder, settled=True)
    violations += [f"at the end: {violation}" for violation in found]
    async with open_store(config.store_url) as store:
        events = len(await read_everything(store))
    return CrashReport(
        kills=kills,
        seed=seed,
        acknowledged=len(recorder.acknowledged),
        events=events,
        lost=sum("is not in the log" in v for v in violations),
        duplicate_events=sum("written twice" in v or "was due" in v for v in violations),
        duplicate_machines=sum("launched by" in v or "asked" in v for v in violations),
        unfinished=sum("never finished" in v for v in violations),
        violations=violations,
    )


async def _drive(
    url: str, recorder: Recorder, template_id: str, clients: int, machines: int
) -> None:
    async def one_client() -> None:
        async with over_http(url) as call:
            await host_factory_client(
                recorder,
                call,
                template_id=template_id,
                machines=machines,
                cycles=1_000_000,  # until the kill
                poll_interval=0.05,
            )

    async with trio.open_nursery() as nursery:
        for _ in range(clients):
            nursery.start_soon(one_client)


async def _check(
    store_url: str, data_dir: pathlib.Path, recorder: Recorder, *, settled: bool
) -> list[str]:
    async with open_store(store_url) as store:
        events = await read_everything(store)
    found = check_acknowledged(events, recorder.acknowledged, settled=settled)
    found += check_log(events)
    cloud = pathlib.Path(data_dir) / "sim-cloud.db"
    found += check_cloud(cloud, events, now=time.time(), all_gone=False)
    found += check_reconciler(events)
    return found


async def _still_running(store_url: str, recorder: Recorder) -> bool:
    async with open_store(store_url) as store:
        events = await read_everything(store)
    return bool(check_acknowledged(events, recorder.acknowledged, settled=True))


_SERVE = (sys.executable, "-m", "hostsmith.actors.cli", "serve")


class _Daemon(msgspec.Struct):
    process: trio.Process
    url: str


@asynccontextmanager
async def _daemon(config_path: pathlib.Path) -> AsyncIterator[_Daemon]:
    """A `hostsmith serve` process on a free loopback port, logging beside its config."""
    port = free_port()
    log_path = config_path.parent / "daemon.log"
    with log_path.open("a") as log:
        process = await trio.lowlevel.open_process(
            [*_SERVE, "--config", str(config_path), "--port", str(port)],
            stdout=subprocess.PIPE,
            stderr=log,
        )
    assert process.stdout is not None
    try:
        first_line = b""
        with trio.move_on_after(START_LIMIT):
            while b"\n" not in first_line and (chunk := await process.stdout.receive_some()):
                first_line += chunk
        if not first_line.startswith(b"hostsmith listening on "):
            tail = log_path.read_text()[-2000:]
            raise RuntimeError(f"the daemon did not start: {first_line.decode()!r}\n{tail}")
        yield _Daemon(process, f"http://127.0.0.1:{port}")
    finally:
        with trio.CancelScope(shield=True):
            if process.returncode is None:
                process.kill()
                await process.wait()
            await process.stdout.aclose()
