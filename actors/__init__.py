"""hostsmith's Host Factory application, in rooms that each hold one concern.

    hostfactory/  the domain, pure: templates, capacity, requests, machines, wire format
    providers/    the Provider protocol, the gateway, the registry; sim/ and aws/
    service/      the five calls, projections, the driver, config and wiring
    server/       the daemon: HTTP API, logging, process tuning
    commands/     the command line, by audience
    proof/        invariants, simulation, soak, crash suite, load generators
    errors.py     the one error tree, with each error's HTTP status and exit code
    cli.py        the entry point: the table of contents of `hostsmith --help`

Dependencies run one way, down this list read from the bottom: the domain
imports nothing of ours but the runtime; only `commands` uses `proof`; a
package is entered through its `__init__`, never through a private module
(tests/test_layering.py checks all of it). What an embedding program needs
is re-exported here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hostsmith.actors.lazy import attach

if TYPE_CHECKING:
    from hostsmith.actors.errors import HostsmithError as HostsmithError
    from hostsmith.actors.providers import (
        Provider as Provider,
        ProviderPlugin as ProviderPlugin,
        ProviderRegistry as ProviderRegistry,
    )
    from hostsmith.actors.service import (
        Application as Application,
        Config as Config,
        HostFactory as HostFactory,
        load_config as load_config,
        open_application as open_application,
    )

__getattr__, __dir__ = attach(__name__, __file__)

__all__ = [
    "Application",
    "Config",
    "HostFactory",
    "HostsmithError",
    "Provider",
    "ProviderPlugin",
    "ProviderRegistry",
    "load_config",
    "open_application",
]
