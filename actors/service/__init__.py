"""The service: the five Host Factory calls, the projections that answer them, and the wiring.

`HostFactory` answers the calls; the driver sees every open request through
on the provider; capacity is settled and orphaned reservations swept; the
projections keep requests and machines ready for status polls. `Config` is
the whole configuration, every section the settings struct of the component
it configures, and `open_application` builds everything from it in one place.
`answer` is the dispatch both front ends (HTTP, `hf` in process) share.

May import: `hostsmith.runtime`, `hostsmith.stores`, `hostsmith.actors.errors`,
`hostsmith.actors.hostfactory` and `hostsmith.actors.providers` (never a
provider subpackage: providers come from the registry).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hostsmith.actors.lazy import attach

if TYPE_CHECKING:
    from hostsmith.actors.service._checkpoint import (
        READ_MODEL as READ_MODEL,
        READ_MODEL_SCHEMA as READ_MODEL_SCHEMA,
    )
    from hostsmith.actors.service._config import (
        EXAMPLE_TEMPLATES as EXAMPLE_TEMPLATES,
        Config as Config,
        Log as Log,
        Server as Server,
        describe as describe,
        load_config as load_config,
    )
    from hostsmith.actors.service._dispatch import (
        answer as answer,
    )
    from hostsmith.actors.service._hostfactory import (
        HostFactory as HostFactory,
        random_request_id as random_request_id,
    )
    from hostsmith.actors.service._reconciler import (
        ReconcilePass as ReconcilePass,
        Reconciler as Reconciler,
    )
    from hostsmith.actors.service._reference import (
        Setting as Setting,
        as_markdown as as_markdown,
        as_toml as as_toml,
        settings_reference as settings_reference,
        undocumented as undocumented,
    )
    from hostsmith.actors.service._settings import (
        ReadModelSettings as ReadModelSettings,
        ReconcileSettings as ReconcileSettings,
        RequestSettings as RequestSettings,
    )
    from hostsmith.actors.service._templates_file import (
        load_templates as load_templates,
        read_templates_file as read_templates_file,
    )
    from hostsmith.actors.service._wiring import (
        Application as Application,
        open_application as open_application,
        open_service as open_service,
    )

__getattr__, __dir__ = attach(__name__, __file__)

__all__ = [
    "EXAMPLE_TEMPLATES",
    "READ_MODEL",
    "READ_MODEL_SCHEMA",
    "Application",
    "Config",
    "HostFactory",
    "Log",
    "ReadModelSettings",
    "ReconcilePass",
    "ReconcileSettings",
    "Reconciler",
    "RequestSettings",
    "Server",
    "Setting",
    "answer",
    "as_markdown",
    "as_toml",
    "describe",
    "load_config",
    "load_templates",
    "open_application",
    "open_service",
    "random_request_id",
    "read_templates_file",
    "settings_reference",
    "undocumented",
]
