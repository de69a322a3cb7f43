"""`sim`: the simulated cloud, seeded and deterministic, with its machines in the data dir.

The embedded default: realistic latency, boot and shutdown times,
capacity, throttling and spot reclaims, without a cloud account. `PLUGIN`
is what the `hostsmith.providers` entry point names; `SimSettings` is the
`[sim]` section.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hostsmith.actors.lazy import attach

if TYPE_CHECKING:
    from hostsmith.actors.providers.sim._cloud import (
        SimProvider as SimProvider,
        open_sim_provider as open_sim_provider,
    )
    from hostsmith.actors.providers.sim._plugin import (
        PLUGIN as PLUGIN,
    )
    from hostsmith.actors.providers.sim._settings import (
        SimSettings as SimSettings,
    )

__getattr__, __dir__ = attach(__name__, __file__)

__all__ = ["PLUGIN", "SimProvider", "SimSettings", "open_sim_provider"]
