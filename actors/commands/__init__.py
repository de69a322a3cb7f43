"""The command line, by audience: operating hostsmith, its stores, and its proof tooling.

Each command is a thin shell: it parses and checks its options (typer),
runs one trio program, and prints a table for people or JSON for scripts.
`_operate` serves, speaks Host Factory and inspects; `_reconcile` runs a
reconcile pass by hand; `_stores` initialises
and migrates stores; `_proof` load-tests, simulates, soaks and crashes;
`_output` is what they share; `_table` registers them with typer, and
`_hf_script` is Host Factory's lean path, which stands apart from typer.

May import every other package; it is the only importer of `proof`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hostsmith.actors.lazy import attach

if TYPE_CHECKING:
    from hostsmith.actors.commands._hf_script import hf_script as hf_script
    from hostsmith.actors.commands._install import install as install
    from hostsmith.actors.commands._operate import (
        config_check as config_check,
        config_reference as config_reference,
        events as events,
        hf as hf,
        machines_list as machines_list,
        requests_list as requests_list,
        requests_show as requests_show,
        serve as serve,
        templates_check as templates_check,
        templates_list as templates_list,
    )
    from hostsmith.actors.commands._output import (
        console as console,
        fail as fail,
        stderr as stderr,
    )
    from hostsmith.actors.commands._proof import (
        crash as crash,
        loadtest as loadtest,
        simulate as simulate,
        soak as soak,
    )
    from hostsmith.actors.commands._reconcile import reconcile as reconcile
    from hostsmith.actors.commands._stores import (
        backup as backup,
        migrate as migrate,
        restore as restore,
        stores_init as stores_init,
    )
    from hostsmith.actors.commands._table import app as app, run as run

__getattr__, __dir__ = attach(__name__, __file__)

__all__ = [
    "app",
    "backup",
    "config_check",
    "config_reference",
    "console",
    "crash",
    "events",
    "fail",
    "hf",
    "hf_script",
    "install",
    "loadtest",
    "machines_list",
    "migrate",
    "reconcile",
    "requests_list",
    "requests_show",
    "restore",
    "run",
    "serve",
    "simulate",
    "soak",
    "stderr",
    "stores_init",
    "templates_check",
    "templates_list",
]
