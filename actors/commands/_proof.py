"""The commands that prove hostsmith: load tests, simulation, soak and the crash suite.

`loadtest` drives a built-in workload (counter, replay, Host Factory's cycle
and more) and reports throughput and latency; `simulate`, `soak` and `crash`
run the reliability evidence of the load-test issue. Each is a thin shell
around a module that does the work, so tests can call that module directly.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import logging
import pathlib
import sys
import tempfile
from typing import Annotated

import anyio
import msgspec
import trio
import typer
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from hostsmith.actors.commands._output import (
    configuration,
    console,
    fail,
    positive,
    show,
    stderr,
    table,
)
from hostsmith.actors.errors import HostsmithError
from hostsmith.actors.proof import (
    crash_suite,
    prepare as prepare_crash,
    repro_command,
    run_seeds,
    soak as run_soak,
)
from hostsmith.actors.proof.loadtest import (
    CounterLoad,
    CycleShape,
    HistoryShape,
    HostFactoryReport,
    Offer,
    Recorder,
    ReportError,
    check_report_path,
    compare_loops,
    run_activation,
    run_appends,
    run_bulk,
    run_burst_on_daemon,
    run_counter,
    run_hf_call,
    run_history,
    run_hostfactory,
    run_peer_eventsourcing,
    run_replay,
    run_resident_memory,
    write_report,
)
from hostsmith.actors.server import tune_process
from hostsmith.actors.service import Config
from hostsmith.runtime import RuntimeFault


class Loop(enum.StrEnum):
    trio = "trio"
    asyncio = "asyncio"
    both = "both"


class Workload(enum.StrEnum):
    counter = "counter"
    resident_memory = "resident-memory"
    replay = "replay"
    activation = "activation"
    appends = "appends"
    hostfactory = "hostfactory"
    hf_call = "hf-call"
    history = "history"
    bulk = "bulk"
    burst = "burst"
    peer_eventsourcing = "peer-eventsourcing"


def loadtest(
    workload: Annotated[
        Workload,
        typer.Option(
            help="What to drive: counter commands, resident memory, replay, activation, "
            "raw appends (one per call against batched), hostfactory (Host Factory's "
            "request/poll/return cycle from --concurrency clients), hf-call (one Host "
            "Factory call as a new process, to a daemon and in process, beside a bare "
            "interpreter start and a raw HTTP round trip), bulk (one request and one return "
            "of --machines hosts through a daemon), burst (Host Factory bursting to --hosts "
            "hosts: requests of 1-1,000, polled every --hf-poll s, then returned), history "
            "(a store aged by --events events of Host Factory's calls, measured beside a "
            "fresh one: start, RSS, an in-process call, getRequestStatus, the counter), or "
            "peer-eventsourcing "
            "(the counter workload on the eventsourcing library, to compare with)."
        ),
    ] = Workload.counter,
    store: Annotated[
        str, typer.Option(help="Event store URL, e.g. sqlite:///tmp/bench.db or memory://.")
    ] = "memory://",
    loop: Annotated[
        Loop,
        typer.Option(
            help="counter: the async library to run the engine on; both runs it on trio, "
            "then on asyncio, and reports asyncio_over_trio."
        ),
    ] = Loop.trio,
    aggregates: Annotated[
        int, typer.Option(help="How many aggregates the load spreads over.")
    ] = 1000,
    commands: Annotated[int, typer.Option(help="How many commands in all.")] = 100_000,
    concurrency: Annotated[int, typer.Option(help="How many closed-loop clients.")] = 1000,
    events: Annotated[
        int,
        typer.Option(
            help="Events to write and replay (replay, activation, appends); history: events "
            "of Host Factory's traffic to age the store with."
        ),
    ] = 1_000_000,
    batch: Annotated[
        int, typer.Option(help="Appends per store call in the batched half of `appends`.")
    ] = 32,
    target: Annotated[
        str | None,
        typer.Option(help="hostfactory: a running daemon's URL, e.g. http://127.0.0.1:8642."),
    ] = None,
    in_process: Annotated[
        bool, typer.Option("--in-process", help="hostfactory: run hostsmith in this process.")
    ] = False,
    cycles: Annotated[int, typer.Option(help="hostfactory: cycles per client.")] = 5,
    machines: Annotated[
        int, typer.Option(help="hostfactory: machines per request; bulk: machines in all.")
    ] = 1,
    template: Annotated[
        str, typer.Option(help="hostfactory: the template to request from.")
    ] = "OnDemand-Minimal-Template-VM",
    poll_interval: Annotated[
        float, typer.Option(help="hostfactory: seconds between a client's status polls.")
    ] = 0.5,
    config: Annotated[
        pathlib.Path | None,
        typer.Option("--config", "-c", help="hostfactory --in-process: the TOML config to run."),
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option(
            help="hostfactory: open loop, starting this many cycles per second whatever the "
            "answers (latency then counts from when each cycle was due)."
        ),
    ] = None,
    duration: Annotated[
        float | None,
        typer.Option(help="hostfactory: offer load for this many seconds instead of --cycles."),
    ] = None,
    report: Annotated[
        pathlib.Path | None,
        typer.Option(
            help="hostfactory and burst: also plot throughput, latency over time, its "
            "distribution and the errors into FILE.html or FILE.png."
        ),
    ] = None,
    progress: Annotated[
        bool, typer.Option(help="hostfactory: a live display of throughput, p50, p99, errors.")
    ] = True,
    runs: Annotated[
        int, typer.Option(help="hf-call: runs of each kind of call; history: of each call.")
    ] = 50,
    history_dir: Annotated[
        pathlib.Path | None,
        typer.Option(
            help="history: keep the aged data dir here, and reuse it if it holds --events "
            "events already (ageing millions of events takes minutes)."
        ),
    ] = None,
    hosts: Annotated[int, typer.Option(help="burst: hosts requested in all.")] = 10_000,
    hf_poll: Annotated[
        float, typer.Option(help="burst: seconds between Host Factory's polls (HF: 30).")
    ] = 30.0,
    boot_time: Annotated[
        float, typer.Option(help="burst: seconds the simulated cloud takes to boot a host.")
    ] = 3.0,
    senders: Annotated[int, typer.Option(help="burst: concurrent callers sending the burst.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Drive a built-in workload and report throughput and latency."""
    positive("aggregates", aggregates)
    tune_process()
    try:
        if workload is Workload.hostfactory:
            result: msgspec.Struct = _hostfactory_load(
                configuration(config),
                target=target,
                in_process=in_process,
                offer=Offer(
                    clients=positive("concurrency", concurrency),
                    cycles=positive("cycles", cycles),
                    duration=duration,
                    rate=rate,
                ),
                shape=CycleShape(
                    template_id=template,
                    machines=positive("machines", machines),
                    poll_interval=poll_interval,
                ),
                report=report,
                progress=progress,
            )
        elif workload is Workload.burst:
            if hf_poll <= 0 or boot_time < 0:
                fail("--hf-poll must be above 0 and --boot-time at least 0")
            if report is not None:
                _check_report(report)
            result, recorder = trio.run(
                run_burst_on_daemon,
                positive("hosts", hosts),
                hf_poll,
                boot_time,
                positive("senders", senders),
            )
            if report is not None:
                write_report(report, result, recorder)
                stderr.print(f"wrote {report}", highlight=False, markup=False)
        elif workload is Workload.bulk:
            result = run_bulk(positive("machines", machines))
        elif workload is Workload.hf_call:
            result = run_hf_call(positive("runs", runs))
        elif workload is Workload.history:
            shape = HistoryShape(
                events=positive("events", events),
                runs=positive("runs", runs),
                counter_commands=positive("commands", commands),
            )
            result = run_history(shape, history_dir)
        elif workload is Workload.peer_eventsourcing:
            directory = store.removeprefix("sqlite://") if store.startswith("sqlite://") else ""
            result = run_peer_eventsourcing(directory, aggregates, positive("commands", commands))
        elif workload is Workload.resident_memory:
            result = trio.run(run_resident_memory, store, aggregates)
        elif workload is Workload.replay:
            result = trio.run(run_replay, store, positive("events", events), aggregates)
        elif workload is Workload.activation:
            result = trio.run(run_activation, store, positive("events", events))
        elif workload is Workload.appends:
            result = trio.run(
                run_appends, store, positive("events", events), aggregates, positive("batch", batch)
            )
        else:
            load = CounterLoad(
                store=store,
                aggregates=aggregates,
                commands=positive("commands", commands),
                concurrency=positive("concurrency", concurrency),
            )
            result = (
                compare_loops(load)
                if loop is Loop.both
                else anyio.run(run_counter, load, backend=loop.value)
            )
    except (HostsmithError, RuntimeFault, ValueError, OSError) as fault:
        fail(str(fault))
    show(result, as_json)


def _hostfactory_load(
    config: Config,
    *,
    target: str | None,
    in_process: bool,
    offer: Offer,
    shape: CycleShape,
    report: pathlib.Path | None,
    progress: bool,
) -> HostFactoryReport:
    if (target is None) == (not in_process):
        fail("the hostfactory workload needs exactly one of --target URL or --in-process")
    if offer.rate is not None and offer.rate <= 0:
        fail(f"--rate must be above 0, not {offer.rate:g}")
    if offer.duration is not None and offer.duration <= 0:
        fail(f"--duration must be above 0, not {offer.duration:g}")
    if report is not None:
        _check_report(report)
    live = Live(console=stderr, refresh_per_second=4) if progress and stderr.is_terminal else None

    def on_tick(recorder: Recorder, elapsed: float) -> None:
        if live is not None:
            live.update(progress_table(recorder, elapsed))

    async def run() -> tuple[HostFactoryReport, Recorder]:
        recorder = Recorder()
        done = await run_hostfactory(
            config,
            target=target or "in-process",
            offer=offer,
            shape=shape,
            on_tick=on_tick,
            recorder=recorder,
            on_warning=lambda text: stderr.print(
                f"[bold yellow]warning:[/] {escape(text)}", highlight=False
            ),
        )
        return done, recorder

    with live or contextlib.nullcontext():
        outcome, recorder = trio.run(run)
    if report is not None:
        write_report(report, outcome, recorder)
        stderr.print(f"wrote {report}", highlight=False, markup=False)
    return outcome


def _check_report(path: pathlib.Path) -> None:
    try:
        check_report_path(path)
    except ReportError as error:
        fail(str(error))


def progress_table(recorder: Recorder, elapsed: float) -> Table:
    """The live display: offered and achieved rates, each call's p50, p99 and errors,
    and the most frequent reasons for the errors."""
    errored = sum(recorder.errors.values())
    per_second = max(elapsed, 1e-9)
    shown = Table(
        "call", "calls", "p50 ms", "p99 ms", "errors",
        title=f"{elapsed:.1f} s: {len(recorder.offered)} cycles offered "
        f"({len(recorder.offered) / per_second:.1f}/s), {recorder.cycles} completed "
        f"({recorder.cycles / per_second:.1f}/s), {errored} errors",
    )  # fmt: skip
    for command, figures in recorder.figures().items():
        shown.add_row(
            command,
            f"{figures.calls:,}",
            f"{figures.p50_ms:.2f}",
            f"{figures.p99_ms:.2f}",
            str(figures.errors),
        )
    reasons = recorder.error_reasons()[:3]
    if reasons:
        shown.caption = "\n".join(
            f"{group.count:,} x {group.kind}: {group.reason}" for group in reasons
        )
    return shown


def simulate(
    seed: Annotated[
        int | None, typer.Option(help="Run this one seed (the repro line names it).")
    ] = None,
    seeds: Annotated[int, typer.Option(help="How many seeds to run, from --first.")] = 100,
    first: Annotated[int, typer.Option(help="The first seed of the range.")] = 0,
    twice: Annotated[
        bool, typer.Option("--twice", help="Run each seed twice; a differing trace fails.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per seed.")] = False,
    verbose: Annotated[bool, typer.Option(help="Show the service's own log lines.")] = False,
) -> None:
    """Deterministic simulation: the service on virtual time under seeded faults, checked.

    Each seed runs the whole service in process on the sim cloud and a journal
    that fails, conflicts, loses acknowledgements and dawdles, then checks for
    lost, duplicated or stuck work.

    The same seed always gives the same trace (its fingerprint is printed). A
    failing seed prints the one-line command that replays it.
    """
    chosen = range(seed, seed + 1) if seed is not None else range(first, first + seeds)
    positive("seeds", len(chosen))
    for logger in ("hostsmith", "stamina"):
        logging.getLogger(logger).setLevel(logging.DEBUG if verbose else logging.CRITICAL)
    failed = []
    with tempfile.TemporaryDirectory(prefix="hostsmith-sim-") as workdir:
        for outcome in run_seeds(chosen, pathlib.Path(workdir), twice=twice):
            if as_json:
                sys.stdout.write(msgspec.json.encode(outcome).decode() + "\n")
            else:
                verdict = "clean" if outcome.clean else "FAILED"
                console.print(
                    f"seed {outcome.seed}: {verdict}, trace {outcome.fingerprint}, "
                    f"{outcome.events} events, {outcome.acknowledged} acknowledged, "
                    f"faults {outcome.injected}, {outcome.virtual_seconds:g} virtual s",
                    highlight=False,
                    soft_wrap=True,
                )
            if not outcome.clean:
                failed.append(outcome.seed)
                for violation in outcome.violations:
                    stderr.print(f"  {violation}", highlight=False, markup=False)
                stderr.print(f"  reproduce: {repro_command(outcome.seed)}", highlight=False)
    if failed:
        fail(f"{len(failed)} of {len(chosen)} seeds failed: {failed[:20]}")
    if not as_json:
        console.print(f"{len(chosen)} seeds clean", highlight=False)


def soak(
    hours: Annotated[int, typer.Option(help="Simulated hours to run.")] = 24,
    hosts: Annotated[int, typer.Option(help="Hosts kept in play, with churn.")] = 1000,
    clients: Annotated[int, typer.Option(help="Simulated Host Factories sharing them.")] = 50,
    seed: Annotated[int, typer.Option(help="Seeds the workload's random choices.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Soak on virtual time: hours of Host Factory traffic in minutes, memory sampled hourly.

    Runs the service in process over a temporary SQLite file and the sim cloud.
    Memory should stay flat: idle aggregates passivate and settled requests leave
    the projections after an hour.
    """
    positive("hours", hours)
    positive("hosts", hosts)
    positive("clients", clients)
    for logger in ("hostsmith", "stamina"):
        logging.getLogger(logger).setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="hostsmith-soak-") as workdir:
        report = run_soak(
            pathlib.Path(workdir), hours=hours, hosts=hosts, clients=clients, seed=seed
        )
    if as_json:
        sys.stdout.write(msgspec.json.encode(report).decode() + "\n")
        return
    table([msgspec.structs.asdict(sample) for sample in report.samples], False, "")
    console.print(
        f"{report.cycles} cycles, {report.calls} calls ({report.failed_calls} failed), "
        f"{report.passivated} aggregates passivated",
        highlight=False,
    )


def crash(
    kills: Annotated[int, typer.Option(help="How many times to SIGKILL the daemon.")] = 10,
    seed: Annotated[int, typer.Option(help="Seeds the moments of the kills.")] = 0,
    clients: Annotated[int, typer.Option(help="Host Factory clients driving the load.")] = 8,
    machines: Annotated[int, typer.Option(help="Machines per request.")] = 2,
    workdir: Annotated[
        pathlib.Path | None,
        typer.Option(help="Keep the daemon's files (store, cloud, log) here; default a temp dir."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """The crash suite: the real daemon under load, killed with SIGKILL at seeded moments.

    After every kill the store is opened and checked: every acknowledged request
    is in the log, versions are contiguous, event ids unique, and no sim machine
    was provisioned twice. At the end every acknowledged request must finish.
    """
    positive("kills", kills)
    positive("clients", clients)
    positive("machines", machines)
    with tempfile.TemporaryDirectory(prefix="hostsmith-crash-") as scratch:
        config = prepare_crash(workdir or pathlib.Path(scratch))

        def progress(line: str) -> None:
            stderr.print(line, highlight=False)

        try:
            report = trio.run(
                functools.partial(
                    crash_suite,
                    config,
                    kills=kills,
                    seed=seed,
                    clients=clients,
                    machines=machines,
                    report_progress=progress,
                )
            )
        except RuntimeError as error:
            fail(str(error))
    show(report, as_json)
    if not report.clean:
        fail(f"{len(report.violations)} problems: " + "; ".join(report.violations[:5]))
