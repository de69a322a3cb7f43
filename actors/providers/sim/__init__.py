"""`sim`: the simulated cloud, seeded and deterministic, with its machines in the data dir.

The embedded default: realistic latency, boot and shutdown times,
capacity, throttling and spot reclaims, without a cloud account. `PLUGIN`
is what the `hostsmith.providers` entry point names; `SimSettings` is the
`[sim]` section.
"""

from __future__ import annotations

from hostsmith.actors.providers.sim._cloud import (
    PLUGIN as PLUGIN,
    SimProvider as SimProvider,
    SimSettings as SimSettings,
    open_sim_provider as open_sim_provider,
)

__all__ = ["PLUGIN", "SimProvider", "SimSettings", "open_sim_provider"]
