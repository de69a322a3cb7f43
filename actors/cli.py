"""The `hostsmith` command line.

Each command is a thin shell: it parses and checks its options (typer), runs
one trio program, and prints the result as a table for people or as JSON for
scripts (`--json`). Errors that the user can fix are printed as one line
naming the problem, with exit status 2; they never show a traceback.
"""

from __future__ import annotations

import enum
import importlib.metadata
import sys
from typing import Annotated, NoReturn

import msgspec
import trio
import typer
from rich.console import Console
from rich.table import Table

from hostsmith.actors._loadtest_counter import CounterLoad, run_counter, run_resident_memory
from hostsmith.actors._process import tune_garbage_collector
from hostsmith.runtime import RuntimeFault

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


def fail(message: str) -> NoReturn:
    errors.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def positive(name: str, value: int) -> int:
    if value < 1:
        fail(f"--{name} must be at least 1, not {value}")
    return value


@app.command()
def loadtest(
    workload: Annotated[
        Workload, typer.Option(help="What to drive: counter commands, or resident memory.")
    ] = Workload.counter,
    store: Annotated[
        str, typer.Option(help="Event store URL, e.g. sqlite:///tmp/bench.db or memory://.")
    ] = "memory://",
    aggregates: Annotated[
        int, typer.Option(help="How many aggregates the load spreads over.")
    ] = 1000,
    commands: Annotated[int, typer.Option(help="How many commands in all.")] = 100_000,
    concurrency: Annotated[int, typer.Option(help="How many closed-loop clients.")] = 1000,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Drive a built-in workload and report throughput and latency."""
    positive("aggregates", aggregates)
    tune_garbage_collector()
    try:
        if workload is Workload.resident_memory:
            report: msgspec.Struct = trio.run(run_resident_memory, store, aggregates)
        else:
            load = CounterLoad(
                store=store,
                aggregates=aggregates,
                commands=positive("commands", commands),
                concurrency=positive("concurrency", concurrency),
            )
            report = trio.run(run_counter, load)
    except RuntimeFault as fault:
        fail(str(fault))
    show(report, as_json)


def show(report: msgspec.Struct, as_json: bool) -> None:
    fields = msgspec.structs.asdict(report)
    if as_json:
        sys.stdout.write(msgspec.json.encode(fields).decode() + "\n")
        return
    table = Table(show_header=False, box=None)
    for key, value in fields.items():
        table.add_row(key, f"{value:,}" if isinstance(value, int | float) else str(value))
    console.print(table)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
