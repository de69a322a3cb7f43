"""The `[sim]` section: how the simulated cloud behaves.

Apart from the cloud itself so that reading the configuration (every Host
Factory script call does) loads the settings, not the simulator.
"""

from __future__ import annotations

from typing import Annotated

import msgspec


class SimSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The `[sim]` section of the config file."""

    seed: int = 0
    """Seeds the simulated cloud's choices (failures, reclaims, addresses)."""
    latency: Annotated[float, msgspec.Meta(ge=0)] = 0.05
    """Seconds each API call takes."""
    boot_time: Annotated[float, msgspec.Meta(ge=0)] = 3.0
    """Seconds from launch until a machine is running."""
    shutdown_time: Annotated[float, msgspec.Meta(ge=0)] = 2.0
    """Seconds from termination until a machine is gone."""
    capacity: Annotated[int, msgspec.Meta(ge=0)] = 1000
    """Machines the simulated cloud can run at once."""
    failure_rate: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.0
    """The share of calls that fail with a throttling error (transient)."""
    spot_reclaim_rate: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.0
    """The share of spot machines the cloud takes back during their first `spot_lifetime`."""
    spot_lifetime: Annotated[float, msgspec.Meta(gt=0)] = 600.0
    """Seconds over which a spot machine may be reclaimed (see `spot_reclaim_rate`)."""
    reclaim_notice: Annotated[int, msgspec.Meta(ge=0)] = 120
    """Seconds of warning before a spot machine is reclaimed."""
    stuck_rate: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.0
    """The share of machines that never finish booting: pending until terminated."""
    forget_after: Annotated[float, msgspec.Meta(gt=0)] = 3600.0
    """Seconds a machine that has gone (terminated, or reclaimed) stays listed; then the
    simulated cloud forgets it, as EC2 forgets a terminated instance after about an hour
    (`inf`: never, for checks that count every machine ever launched)."""
