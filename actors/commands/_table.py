"""The table of contents of `hostsmith --help`: every command, registered with typer.

The commands live by audience: `_operate` (the daemon, `hf`, and what an
operator inspects), `_stores` (set-up, migration, backup) and `_proof`
(load tests, simulation, soak, crash suite). This module only names them,
so `hostsmith --help` and this file list the same things. `run` is the
whole command line; `hostsmith.actors.cli` calls it for every command but
`hf`, which it serves without loading any of this.
"""

from __future__ import annotations

import importlib.metadata
from typing import Annotated

import typer

from hostsmith.actors.commands import (
    backup,
    config_check,
    config_reference,
    console,
    crash,
    events,
    fail,
    hf,
    install,
    loadtest,
    machines_list,
    migrate,
    reconcile,
    requests_list,
    requests_show,
    restore,
    serve,
    simulate,
    soak,
    stores_init,
    templates_check,
    templates_list,
)
from hostsmith.actors.errors import InternalError, as_hostsmith_error

app = typer.Typer(
    name="hostsmith",
    help="Provision and track cloud hosts for IBM Spectrum Symphony Host Factory.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


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


def group(name: str, help: str) -> typer.Typer:
    sub = typer.Typer(help=help, no_args_is_help=True)
    app.add_typer(sub, name=name)
    return sub


# Running hostsmith, and speaking Host Factory.
app.command()(serve)
app.command()(hf)
app.command()(install)
# Looking inside.
config = group("config", "Inspect the configuration, and the reference of every setting.")
config.command("check")(config_check)
config.command("reference")(config_reference)
templates = group("templates", "The configured Host Factory templates.")
templates.command("list")(templates_list)
templates.command("check")(templates_check)
requests = group("requests", "Acquire and return requests.")
requests.command("list")(requests_list)
requests.command("show")(requests_show)
group("machines", "Machines hostsmith has provisioned.").command("list")(machines_list)
app.command()(events)
app.command()(reconcile)
# Stores.
group("stores", "Event stores.").command("init")(stores_init)
app.command()(migrate)
app.command()(backup)
app.command()(restore)
# Proof: load, simulation, soak, crashes.
app.command()(loadtest)
app.command()(simulate)
app.command()(soak)
app.command()(crash)


def run() -> None:
    """Run the command line; an error hostsmith knows is one line and its exit code.

    Commands catch what they expect themselves; this is the net under them,
    so that no error of hostsmith's own tree ever reaches a user as a
    traceback. Anything else is a bug, and keeps its traceback.
    """
    try:
        app()
    except Exception as failure:
        error = as_hostsmith_error(failure, "hostsmith")
        if isinstance(error, InternalError):
            raise
        try:
            fail(error.message, error.exit_code)
        except typer.Exit as leaving:
            raise SystemExit(leaving.exit_code) from None
