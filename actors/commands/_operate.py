"""The operator's commands: run the daemon, speak Host Factory, and look inside.

`serve` runs the daemon; `hf` speaks Host Factory's JSON protocol to a
daemon or, with no daemon, to the store in process; `config check`,
`templates`, `requests`, `machines` and `events` show what hostsmith knows,
read from the store without driving any request forward.
"""

from __future__ import annotations

import enum
import errno
import logging
import pathlib
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import msgspec
import trio
import typer
from rich.table import Table

from hostsmith.actors.commands._hf_script import hf_script
from hostsmith.actors.commands._output import (
    ConfigOption,
    JsonOption,
    configuration,
    console,
    fail,
    table,
)
from hostsmith.actors.errors import (
    HostsmithError,
    as_hostsmith_error,
)
from hostsmith.actors.hostfactory import (
    COMMANDS,
    HF_STATUS,
    RequestStatusEntry,
    TemplatesRead,
)
from hostsmith.actors.providers import ProviderRegistry
from hostsmith.actors.server import (
    configure_logging,
    serve as serve_daemon,
    tune_process,
)
from hostsmith.actors.service import (
    Application,
    Config,
    as_markdown,
    as_toml,
    describe,
    open_application,
    read_templates_file,
    settings_reference,
)
from hostsmith.runtime import RuntimeFault, StoredEvent
from hostsmith.stores import (
    open_store,
)


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
    for warning in settings.warnings:
        logging.getLogger("hostsmith.config").warning("%s", warning)
    tune_process()
    try:
        trio.run(serve_daemon, settings)
    except Exception as failure:  # trio may hand it over in an exception group
        fail(start_up_failure(failure, settings))


def start_up_failure(failure: BaseException, settings: Config) -> str:
    """What stopped the daemon from starting, in one line that says what to do."""
    while isinstance(failure, BaseExceptionGroup) and len(failure.exceptions) == 1:
        failure = failure.exceptions[0]
    if isinstance(failure, OSError) and failure.errno == errno.EADDRINUSE:
        where = f"{settings.server.host}:{settings.server.port}"
        return (
            f"cannot listen on {where}: the port is in use (another hostsmith daemon, or "
            "another program); choose another with --port or server.port"
        )
    if isinstance(failure, OSError):
        return f"cannot start the daemon: {failure}"
    return as_hostsmith_error(failure, "serve").message


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
    """Speak Host Factory's provider protocol: JSON in, JSON out, as the HF scripts expect.

    With a daemon (--url, the config's url, or the daemon that serves the
    data dir) the call is sent to it; otherwise it is served in this process.
    """
    # `hostsmith hf` itself is dispatched before typer loads (see hostsmith.actors.cli);
    # this is the same call for `--help` and for anyone who runs the typer app.
    arguments = [command]
    for flag, value in (("--file", file), ("--data", data), ("--url", url), ("--config", config)):
        if value is not None:
            arguments += [flag, str(value)]
    raise typer.Exit(hf_script(arguments))


def config_check(config: ConfigOption = None) -> None:
    """Print the effective configuration, or name the bad key and why."""
    settings = configuration(config)
    read = check_templates_of(settings, settings.templates_path)
    shown = describe(settings)
    shown["warnings"] = [*settings.warnings, *(f"left out: {line}" for line in read.left_out)]
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(shown), indent=2).decode() + "\n")
    if settings.unknown_settings:  # ignored elsewhere, so that no call fails; an error here
        fail("; ".join(settings.unknown_settings))


class ReferenceFormat(enum.StrEnum):
    markdown = "markdown"
    toml = "toml"


def config_reference(
    output_format: Annotated[
        ReferenceFormat,
        typer.Option(
            "--format",
            help="markdown (docs/config.md) or toml (docs/hostsmith.example.toml).",
        ),
    ] = ReferenceFormat.markdown,
) -> None:
    """Every setting: its default, type, environment variable and meaning.

    Generated from the config structs of hostsmith and of each installed
    provider; `docs/config.md` and `docs/hostsmith.example.toml` are this
    command's output.
    """
    settings = settings_reference()
    render = as_toml if output_format is ReferenceFormat.toml else as_markdown
    sys.stdout.write(render(settings))


def templates_check(
    file: Annotated[
        pathlib.Path | None,
        typer.Argument(help="A templates file (default: the configured one)."),
    ] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check a templates file exactly as `serve` reads it, the provider's needs included.

    Lists the templates that will be served, each one left out and why, and
    the keys hostsmith does not use. Exits 1 when a template is left out.
    """
    settings = configuration(config)
    path = file or settings.templates_path
    read = check_templates_of(settings, path)
    report = {
        "file": str(path),
        "provider": settings.provider,
        "served": sorted(read.templates),
        "left_out": read.left_out,
        "ignored_keys": read.ignored_keys,
    }
    if as_json:
        sys.stdout.write(msgspec.json.encode(report).decode() + "\n")
    else:
        console.print(f"{path}: {len(read.templates)} served", highlight=False, markup=False)
        for line in (*read.left_out, *read.ignored_keys):
            console.print(f"  {line}", highlight=False, markup=False)
    if read.left_out:
        raise typer.Exit(1)


def check_templates_of(settings: Config, path: pathlib.Path) -> TemplatesRead:
    """The templates file read as `serve` reads it, for the configured provider."""
    try:
        plugin = ProviderRegistry.discover().get(settings.provider)
        return read_templates_file(path, plugin.check_template)
    except HostsmithError as error:
        fail(error.message)


def inspect(settings: Config, view: Callable[[Application], Awaitable[Any]]) -> Any:
    """Run `view` on the application in this process, without driving requests."""

    async def run() -> Any:
        async with open_application(settings, drive=False) as application:
            return await view(application)

    try:
        return trio.run(run)
    except (HostsmithError, RuntimeFault, OSError) as error:
        fail(str(error))
    except BaseExceptionGroup as group:
        fail(as_hostsmith_error(group, "the inspection").message)


def templates_list(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Each template with its limit and how many more machines it can provide now."""
    settings = configuration(config)

    async def view(application: Application) -> list[dict[str, Any]]:
        listed = (await application.service.get_available_templates()).templates
        return [
            {
                "templateId": t.template_id,
                "priceType": t.price_type,
                "maxNumber": t.max_number,
                "availableNumber": t.available_number,
                "vmType": t.vm_type or ",".join(t.vm_types or {}),
            }
            for t in listed
        ]

    table(inspect(settings, view), as_json, "no templates are configured")


class StatusFilter(enum.StrEnum):
    """Host Factory's words for a request's state, and hostsmith's own."""

    running = "running"
    complete = "complete"
    complete_with_error = "complete_with_error"
    pending = "pending"
    in_progress = "in_progress"
    completed = "completed"
    partial = "partial"
    failed = "failed"
    cancelled = "cancelled"
    timeout = "timeout"


def requests_list(
    config: ConfigOption = None,
    status: Annotated[
        StatusFilter | None,
        typer.Option(help="Only requests in this state: Host Factory's word or hostsmith's."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Every request, newest first, with its state and machine count."""
    settings = configuration(config)

    def shown(request_status: str) -> bool:
        return status is None or status.value in (request_status, HF_STATUS[request_status])

    async def view(application: Application) -> list[dict[str, Any]]:
        rows = []
        for request in application.service.requests():
            if shown(request.status):
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


def requests_show(
    request_id: Annotated[str, typer.Argument(help="req-… or ret-…")],
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """One request as getRequestStatus reports it, each machine's status as it is now.

    (A machine of an acquire request that was returned since shows as
    terminated here, though the acquire request itself still counts it.)
    """
    settings = configuration(config)

    async def view(application: Application) -> tuple[bool, RequestStatusEntry]:
        service = application.service
        known = await service.request(request_id) is not None
        entry = (await service.get_request_status([request_id])).requests[0]
        now = {machine.machine_id: machine.state for machine, _ in service.machines()}
        machines = [
            msgspec.structs.replace(m, status=now.get(m.machine_id, m.status))
            for m in entry.machines
        ]
        return known, msgspec.structs.replace(entry, machines=machines)

    known, shown = inspect(settings, view)
    encoded = msgspec.json.encode(shown)
    text = encoded.decode() if as_json else msgspec.json.format(encoded, indent=2).decode()
    sys.stdout.write(text + "\n")
    if not known:
        raise typer.Exit(1)


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
                "request": owner,
            }
            for machine, owner in service.machines()
        ]

    table(inspect(settings, view), as_json, "no machines")


def events(
    stream: Annotated[
        str,
        typer.Argument(
            help="A stream (request-req-…, machine-i-…, template-ID), or just the id: "
            "req-…, ret-…, i-…, or a template id."
        ),
    ],
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per event.")] = False,
) -> None:
    """The audit trail of one stream: every event's time, version, type and correlation id."""
    settings = configuration(config)
    tried = streams_for(stream)
    try:
        stored = trio.run(read_first_stream, settings.store_url, tried)
    except RuntimeFault as error:
        fail(str(error))
    if not stored:
        fail(
            f"no events for {stream!r} in {settings.store_url} (looked at {', '.join(tried)}); "
            "give a request id (req-…, ret-…), a machine id (i-…), a template id, or a stream"
        )
    if as_json:
        for event in stored:
            entry = msgspec.structs.asdict(event)
            entry["data"] = msgspec.json.decode(event.data)
            sys.stdout.write(msgspec.json.encode(entry).decode() + "\n")
        return
    shown = Table("version", "time (UTC)", "type", "correlation id", "data")
    for event in stored:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(event.recorded_at))
        shown.add_row(
            str(event.version), when, event.type, event.correlation_id, event.data.decode()
        )
    console.print(shown)


def streams_for(given: str) -> list[str]:
    """The streams an operator may mean: the name as given, then the id's own stream."""
    if given.startswith(("request-", "machine-", "template-")):
        return [given]
    if given.startswith(("req-", "ret-")):
        return [f"request-{given}", given]
    if given.startswith("i-"):
        return [f"machine-{given}", given]
    return [given, f"template-{given}"]


async def read_first_stream(url: str, streams: list[str]) -> list[StoredEvent]:
    """The events of the first of `streams` that has any."""
    async with open_store(url) as store:
        for stream in streams:
            if events := await store.read(stream):
                return events
    return []
