"""What every `hostsmith` command shares: its consoles, its one-line errors, its output.

Errors a user can fix are printed as one line naming the problem, with exit
status 2, and never a traceback; results are a rich table for people or
one JSON document for scripts (`--json`). Kept apart from the commands so
that each command module reads as its options and its one trio program.
"""

from __future__ import annotations

import pathlib
import sys
from typing import Annotated, Any, NoReturn

import msgspec
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hostsmith.actors.errors import ConfigError, redact
from hostsmith.actors.service import Config, load_config

console = Console(soft_wrap=True)  # what scripts parse must never wrap
stderr = Console(stderr=True, soft_wrap=True)


def fail(message: str, exit_code: int = 2) -> NoReturn:
    """One line on stderr naming the problem, and the exit status; never a traceback."""
    # escaped: a message may hold brackets ("[sim]", "hostsmith[aws]") that are not markup
    stderr.print(f"[bold red]error:[/] {escape(redact(message))}", highlight=False)
    raise typer.Exit(exit_code)


def positive(name: str, value: int) -> int:
    if value < 1:
        fail(f"--{name} must be at least 1, not {value}")
    return value


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


JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def table(rows: list[dict[str, Any]], as_json: bool, empty: str) -> None:
    """Rows as JSON, as a table for a terminal, or as tab-separated lines when piped.

    Piped, a value is never cut to fit a width: an id must survive being
    copied into the next command.
    """
    if as_json:
        sys.stdout.write(msgspec.json.encode(rows).decode() + "\n")
        return
    if not rows:
        console.print(empty)
        return
    if not console.is_terminal:
        lines = ["\t".join(rows[0]), *("\t".join(str(v) for v in row.values()) for row in rows)]
        sys.stdout.write("\n".join(lines) + "\n")
        return
    shown = Table(*rows[0].keys())
    for row in rows:
        shown.add_row(*(str(value) for value in row.values()))
    console.print(shown)


def show(report: msgspec.Struct, as_json: bool) -> None:
    fields = msgspec.structs.asdict(report)
    if as_json:
        sys.stdout.write(msgspec.json.encode(fields).decode() + "\n")
        return
    shown = Table(show_header=False, box=None)
    per_call = fields.pop("calls", None)
    if isinstance(per_call, dict) and fields.get("cycle") is not None:
        per_call = per_call | {"whole cycle": fields["cycle"]}
    fields.pop("cycle", None)
    reasons = fields.pop("error_reasons", None)
    for key, value in fields.items():
        shown.add_row(key, f"{value:,}" if isinstance(value, int | float) else str(value))
    console.print(shown)
    if isinstance(per_call, dict):
        calls = Table("call", "calls", "errors", "p50 ms", "p90 ms", "p99 ms", "max ms")
        for command, figures in per_call.items():
            row = msgspec.structs.astuple(figures)
            calls.add_row(command, *(f"{v:,}" for v in row))
        console.print(calls)
    if reasons:
        grouped = Table("errors", "kind", "calls", "reason (an example)", title="errors by reason")
        for group in reasons:
            grouped.add_row(
                f"{group.count:,}", group.kind, ", ".join(group.commands), group.example
            )
        console.print(grouped)
