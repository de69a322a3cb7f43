"""The `hostsmith` command line.

Each command is a thin shell: it parses and checks its options (typer), runs
one trio program, and prints the result as a table for people or as JSON for
scripts (`--json`). Errors that the user can fix are printed as one line
naming the problem, with exit status 2; they never show a traceback.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import importlib.metadata
import logging
import pathlib
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, NoReturn
from urllib.parse import urlsplit

import httpx
import msgspec
import trio
import typer
from rich.console import Console
from rich.live import Live
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from hostsmith.actors._app import Application, open_application
from hostsmith.actors._aws_api import redact
from hostsmith.actors._config import Config, ConfigError, describe, load_config
from hostsmith.actors._crash import crash_suite, prepare as prepare_crash
from hostsmith.actors._daemon import serve as serve_daemon
from hostsmith.actors._loadtest_appends import run_appends
from hostsmith.actors._loadtest_counter import CounterLoad, run_counter, run_resident_memory
from hostsmith.actors._loadtest_hostfactory import (
    CycleShape,
    HostFactoryReport,
    Offer,
    Recorder,
    run_hostfactory,
)
from hostsmith.actors._loadtest_replay import run_activation, run_replay
from hostsmith.actors._loadtest_report import ReportError, check_report_path, write_report
from hostsmith.actors._logging import configure_logging
from hostsmith.actors._process import tune_process
from hostsmith.actors._protocol import COMMANDS, RequestStatus, answer, decode
from hostsmith.actors._provider import ProviderError
from hostsmith.actors._service import HostFactoryError
from hostsmith.actors._simulation import repro_command, run_seeds
from hostsmith.actors._soak import soak as run_soak
from hostsmith.actors._templates import TemplateError, load_templates
from hostsmith.runtime import RuntimeFault, StoredEvent
from hostsmith.stores import (
    MigrationReport,
    Verification,
    migrate as migrate_store,
    open_store,
    verify,
)
from hostsmith.stores._dynamodb import create_table

app = typer.Typer(
    name="hostsmith",
    help="Provision and track cloud hosts for IBM Spectrum Symphony Host Factory.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
errors = Console(stderr=True)


def print_version(requested: bool) -> None:
    if requested:
        console.print(f"hostsmith {importlib.metadata.version('hostsmith')}")
        raise typer.Exit()


@app.callback()
def hostsmith(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", is_eager=True, callback=print_version
        ),
    ] = False,
) -> None:
    """Provision and track cloud hosts for IBM Spectrum Symphony Host Factory."""


class Workload(enum.StrEnum):
    counter = "counter"
    resident_memory = "resident-memory"
    replay = "replay"
    activation = "activation"
    appends = "appends"
    hostfactory = "hostfactory"


def fail(message: str) -> NoReturn:
    errors.print(f"[bold red]error:[/] {redact(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def positive(name: str, value: int) -> int:
    if value < 1:
        fail(f"--{name} must be at least 1, not {value}")
    return value


@app.command()
def loadtest(
    workload: Annotated[
        Workload,
        typer.Option(
            help="What to drive: counter commands, resident memory, replay, activation, "
            "raw appends (one per call against batched), or hostfactory (Host Factory's "
            "request/poll/return cycle from --concurrency clients)."
        ),
    ] = Workload.counter,
    store: Annotated[
        str, typer.Option(help="Event store URL, e.g. sqlite:///tmp/bench.db or memory://.")
    ] = "memory://",
    aggregates: Annotated[
        int, typer.Option(help="How many aggregates the load spreads over.")
    ] = 1000,
    commands: Annotated[int, typer.Option(help="How many commands in all.")] = 100_000,
    concurrency: Annotated[int, typer.Option(help="How many closed-loop clients.")] = 1000,
    events: Annotated[
        int, typer.Option(help="Events to write and replay (replay, activation, appends).")
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
    machines: Annotated[int, typer.Option(help="hostfactory: machines per request.")] = 1,
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
            help="hostfactory: also plot latency over time and its distribution "
            "into FILE.html or FILE.png."
        ),
    ] = None,
    progress: Annotated[
        bool, typer.Option(help="hostfactory: a live display of throughput, p50, p99, errors.")
    ] = True,
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
            result = trio.run(run_counter, load)
    except (RuntimeFault, ValueError, TemplateError, ProviderError, OSError) as fault:
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
        try:
            check_report_path(report)
        except ReportError as error:
            fail(str(error))
    live = Live(console=errors, refresh_per_second=4) if progress and errors.is_terminal else None

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
        )
        return done, recorder

    with live or contextlib.nullcontext():
        outcome, recorder = trio.run(run)
    if report is not None:
        write_report(report, outcome, recorder)
        errors.print(f"wrote {report}", highlight=False)
    return outcome


def progress_table(recorder: Recorder, elapsed: float) -> Table:
    """The live display: throughput so far, and each call's p50, p99 and errors."""
    errored = sum(recorder.errors.values())
    shown = Table(
        "call", "calls", "p50 ms", "p99 ms", "errors",
        title=f"{elapsed:.1f} s: {recorder.cycles} cycles "
        f"({recorder.cycles / max(elapsed, 1e-9):.1f}/s), {errored} errors",
    )  # fmt: skip
    for command, figures in recorder.figures().items():
        shown.add_row(
            command,
            f"{figures.calls:,}",
            f"{figures.p50_ms:.2f}",
            f"{figures.p99_ms:.2f}",
            str(figures.errors),
        )
    return shown


ConfigOption = Annotated[
    pathlib.Path | None,
    typer.Option("--config", "-c", help="TOML config file (HOSTSMITH_* variables override it)."),
]


def configuration(path: pathlib.Path | None) -> Config:
    try:
        config = load_config(path)
    except ConfigError as error:
        fail(str(error))
    return config


@app.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="Address to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind (default 8642).")] = None,
) -> None:
    """Run the daemon: the Host Factory HTTP API on the configured store and provider."""
    settings = configuration(config)
    overrides = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    if overrides:
        settings = msgspec.structs.replace(
            settings, server=msgspec.structs.replace(settings.server, **overrides)
        )
    configure_logging(settings.log)
    tune_process()
    try:
        trio.run(serve_daemon, settings)
    except (ConfigError, RuntimeFault, TemplateError, ProviderError, OSError) as error:
        fail(str(error))


@app.command()
def hf(
    command: Annotated[str, typer.Argument(help=f"One of: {', '.join(COMMANDS)}.")],
    file: Annotated[
        pathlib.Path | None, typer.Option("--file", "-f", help="Read the JSON input from FILE.")
    ] = None,
    data: Annotated[str | None, typer.Option("--data", "-d", help="The JSON input itself.")] = None,
    url: Annotated[
        str | None, typer.Option(help="A running daemon (default: HOSTSMITH_URL or config url).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Speak Host Factory's provider protocol: JSON in, JSON out, as the HF scripts expect."""
    if command not in COMMANDS:
        hf_fail(f"unknown command {command!r}: use one of {', '.join(COMMANDS)}")
    if file is not None:
        try:
            body = file.read_bytes()
        except OSError as error:
            hf_fail(f"cannot read input file {file}: {error.strerror}")
    else:
        body = (data or "").encode()
    try:
        settings = load_config(config)
    except ConfigError as error:
        hf_fail(str(error))
    target = url or settings.url
    if target:
        status, answer_bytes = hf_remote(target, command, body, settings.server.token)
        print_json(answer_bytes)
        raise typer.Exit(0 if status == 200 else 1)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:
        result = trio.run(hf_in_process, settings, command, body)
    except HostFactoryError as refusal:
        hf_fail(str(refusal))
    except (ConfigError, RuntimeFault, TemplateError, ProviderError, OSError) as error:
        hf_fail(str(error))
    print_json(msgspec.json.encode(result))


def hf_fail(message: str) -> NoReturn:
    print_json(msgspec.json.encode({"message": redact(message)}))
    raise typer.Exit(1)


def print_json(body: bytes) -> None:
    try:
        text = msgspec.json.format(body, indent=2).decode()
    except msgspec.DecodeError:
        text = msgspec.json.encode({"message": body.decode(errors="replace")}).decode()
    sys.stdout.write(text + "\n")


def hf_remote(url: str, command: str, body: bytes, token: str) -> tuple[int, bytes]:
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    try:
        response = httpx.post(
            f"{url.rstrip('/')}/api/v1/{command}", content=body, headers=headers, timeout=60
        )
    except httpx.HTTPError as error:
        hf_fail(f"cannot reach the hostsmith daemon at {url}: {error}")
    return response.status_code, response.content


async def hf_in_process(config: Config, command: str, body: bytes) -> dict[str, Any]:
    async with open_application(config, drive=False) as application:
        service = application.service
        given = decode(command, body)
        if isinstance(given, RequestStatus):
            ids = [
                r.request_id
                for r in (given.requests if isinstance(given.requests, list) else [given.requests])
            ]
            await service.advance(ids)
        result = await answer(service, command, body)
        if command == "requestMachines":
            await service.advance([result["requestId"]])
        return result


config_app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("check")
def config_check(config: ConfigOption = None) -> None:
    """Print the effective configuration, or name the bad key and why."""
    settings = configuration(config)
    try:
        load_templates(settings.templates_path)
    except TemplateError as error:
        fail(str(error))
    sys.stdout.write(
        msgspec.json.format(msgspec.json.encode(describe(settings)), indent=2).decode() + "\n"
    )


templates_app = typer.Typer(help="The configured Host Factory templates.", no_args_is_help=True)
requests_app = typer.Typer(help="Acquire and return requests.", no_args_is_help=True)
machines_app = typer.Typer(help="Machines hostsmith has provisioned.", no_args_is_help=True)
app.add_typer(templates_app, name="templates")
app.add_typer(requests_app, name="requests")
app.add_typer(machines_app, name="machines")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def inspect(settings: Config, view: Callable[[Application], Awaitable[Any]]) -> Any:
    """Run `view` on the application in this process, without driving requests."""

    async def run() -> Any:
        async with open_application(settings, drive=False) as application:
            return await view(application)

    try:
        return trio.run(run)
    except (RuntimeFault, TemplateError, OSError) as error:
        fail(str(error))


def table(rows: list[dict[str, Any]], as_json: bool, empty: str) -> None:
    if as_json:
        sys.stdout.write(msgspec.json.encode(rows).decode() + "\n")
        return
    if not rows:
        console.print(empty)
        return
    shown = Table(*rows[0].keys())
    for row in rows:
        shown.add_row(*(str(value) for value in row.values()))
    console.print(shown)


@templates_app.command("list")
def templates_list(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Each template with its limit and how many more machines it can provide now."""
    settings = configuration(config)

    async def view(application: Application) -> list[dict[str, Any]]:
        listed = (await application.service.get_available_templates())["templates"]
        return [
            {
                "templateId": t["templateId"],
                "priceType": t["priceType"],
                "maxNumber": t["maxNumber"],
                "availableNumber": t["availableNumber"],
                "vmType": t.get("vmType") or ",".join(t.get("vmTypes") or {}),
            }
            for t in listed
        ]

    table(inspect(settings, view), as_json, "no templates are configured")


@requests_app.command("list")
def requests_list(
    config: ConfigOption = None,
    status: Annotated[str | None, typer.Option(help="Only requests in this state.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Every request, newest first, with its state and machine count."""
    settings = configuration(config)

    async def view(application: Application) -> list[dict[str, Any]]:
        rows = []
        for request in sorted(
            application.service.requests.values(), key=lambda r: r.opened_at, reverse=True
        ):
            if status is None or request.status == status:
                rows.append(
                    {
                        "requestId": request.request_id,
                        "kind": request.kind,
                        "template": request.template_id,
                        "status": request.status,
                        "machines": len(request.machines),
                        "opened": time.strftime(
                            "%Y-%m-%d %H:%M:%S", time.gmtime(request.opened_at)
                        ),
                    }
                )
        return rows

    table(inspect(settings, view), as_json, "no requests")


@requests_app.command("show")
def requests_show(
    request_id: Annotated[str, typer.Argument(help="req-… or ret-…")], config: ConfigOption = None
) -> None:
    """One request as getRequestStatus reports it."""
    settings = configuration(config)

    async def view(application: Application) -> dict[str, Any]:
        return await application.service.get_request_status([request_id])

    shown = inspect(settings, view)["requests"][0]
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(shown), indent=2).decode() + "\n")
    if shown["message"] == f"request {request_id} is unknown":
        raise typer.Exit(1)


@machines_app.command("list")
def machines_list(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Every machine hostsmith provisioned, with the request that asked for it."""
    settings = configuration(config)

    async def view(application: Application) -> list[dict[str, Any]]:
        service = application.service
        return [
            {
                "machineId": machine.machine_id,
                "name": machine.name,
                "state": machine.state,
                "privateIp": machine.private_ip,
                "request": service.owner_of_machine.get(machine.machine_id, ""),
            }
            for machine in service.machine_by_name.values()
        ]

    table(inspect(settings, view), as_json, "no machines")


stores_app = typer.Typer(help="Event stores.", no_args_is_help=True)
app.add_typer(stores_app, name="stores")


@stores_app.command("init")
def stores_init(
    url: Annotated[str, typer.Argument(help="e.g. dynamodb://TABLE?region=REGION")],
) -> None:
    """Create what a store needs (a DynamoDB table); safe to run again."""
    parts = urlsplit(url)
    if parts.scheme != "dynamodb":
        try:
            trio.run(_open_and_close, url)
        except RuntimeFault as error:
            fail(str(error))
        sys.stdout.write(f"{url} is ready (it needs no set-up beyond opening it)\n")
        return
    try:
        created = trio.run(create_table, parts)
    except RuntimeFault as error:
        fail(str(error))
    except Exception as error:  # credentials, endpoint, permissions
        fail(f"cannot create the DynamoDB table for {url}: {type(error).__name__}: {error}")
    sys.stdout.write(f"created {url}\n" if created else f"{url} exists already\n")


async def _open_and_close(url: str) -> None:
    async with open_store(url):
        pass


@app.command()
def migrate(
    source: Annotated[
        str, typer.Option("--from", help="The store to copy, e.g. sqlite:///old/events.db")
    ],
    target: Annotated[
        str, typer.Option("--to", help="The store to fill, e.g. json:///new?layout=split")
    ],
    verify_only: Annotated[
        bool, typer.Option("--verify-only", help="Only compare the two stores.")
    ] = False,
    batch: Annotated[int, typer.Option(help="Events per read and per append.")] = 2000,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Copy every event, snapshot and checkpoint from one store to another, then verify.

    Run it again after an interruption and it carries on where it stopped. It
    refuses a target that already holds different data.
    """
    positive("batch", batch)
    try:
        report = trio.run(run_migration, source, target, verify_only, batch, as_json)
    except RuntimeFault as error:
        fail(str(error))
    verification = report.verification if isinstance(report, MigrationReport) else report
    summary = {
        "from": source,
        "to": target,
        "events": verification.events,
        "streams": verification.streams,
        "verified": verification.ok,
        "mismatches": verification.mismatches,
    }
    if isinstance(report, MigrationReport):
        summary |= {
            "copied": report.copied,
            "resumed_from": report.resumed_from,
            "snapshots": report.snapshots,
            "checkpoints": report.checkpoints,
        }
    if as_json:
        sys.stdout.write(msgspec.json.encode(summary).decode() + "\n")
    else:
        table([{"what": key, "value": value} for key, value in summary.items()], False, "")
    if not verification.ok:
        fail("the stores differ: " + "; ".join(verification.mismatches[:5]))


async def run_migration(
    source_url: str, target_url: str, verify_only: bool, batch: int, quiet: bool
) -> MigrationReport | Verification:
    async with open_store(source_url) as source, open_store(target_url) as target:
        if verify_only:
            return await verify(source, target, batch=batch)
        with Progress(
            TextColumn("copying events"),
            BarColumn(),
            MofNCompleteColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=errors,
            disable=quiet and not errors.is_terminal,
        ) as bar:
            task = bar.add_task("copy", total=None)

            def advance(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)
                if not errors.is_terminal:
                    errors.print(f"copied {done} of {total} events", highlight=False)

            return await migrate_store(source, target, batch=batch, progress=advance)


@app.command()
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
                    errors.print(f"  {violation}", highlight=False, markup=False)
                errors.print(f"  reproduce: {repro_command(outcome.seed)}", highlight=False)
    if failed:
        fail(f"{len(failed)} of {len(chosen)} seeds failed: {failed[:20]}")
    if not as_json:
        console.print(f"{len(chosen)} seeds clean", highlight=False)


@app.command()
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


@app.command()
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
            errors.print(line, highlight=False)

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


@app.command()
def events(
    stream: Annotated[
        str, typer.Argument(help="A stream, e.g. request-req-… or template-OnDemand.")
    ],
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per event.")] = False,
) -> None:
    """The audit trail of one stream: every event's time, version, type and correlation id."""
    settings = configuration(config)
    try:
        stored = trio.run(read_stream, settings.store_url, stream)
    except RuntimeFault as error:
        fail(str(error))
    if not stored:
        fail(f"stream {stream!r} has no events in {settings.store_url}")
    if as_json:
        for event in stored:
            entry = msgspec.structs.asdict(event)
            entry["data"] = msgspec.json.decode(event.data)
            sys.stdout.write(msgspec.json.encode(entry).decode() + "\n")
        return
    table = Table("version", "time (UTC)", "type", "correlation id", "data")
    for event in stored:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(event.recorded_at))
        table.add_row(
            str(event.version), when, event.type, event.correlation_id, event.data.decode()
        )
    console.print(table)


async def read_stream(url: str, stream: str) -> list[StoredEvent]:
    async with open_store(url) as store:
        return await store.read(stream)


def show(report: msgspec.Struct, as_json: bool) -> None:
    fields = msgspec.structs.asdict(report)
    if as_json:
        sys.stdout.write(msgspec.json.encode(fields).decode() + "\n")
        return
    table = Table(show_header=False, box=None)
    per_call = fields.pop("calls", None)
    if isinstance(per_call, dict) and fields.get("cycle") is not None:
        per_call = per_call | {"whole cycle": fields["cycle"]}
    fields.pop("cycle", None)
    for key, value in fields.items():
        table.add_row(key, f"{value:,}" if isinstance(value, int | float) else str(value))
    console.print(table)
    if isinstance(per_call, dict):
        calls = Table("call", "calls", "errors", "p50 ms", "p90 ms", "p99 ms", "max ms")
        for command, figures in per_call.items():
            row = msgspec.structs.astuple(figures)
            calls.add_row(command, *(f"{v:,}" for v in row))
        console.print(calls)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
