"""The `[gateway]` section: the one resilience policy every provider call goes through.

A module of its own so that the configuration, which every Host Factory
script call reads, does not import the gateway (trio, stamina) it configures.
"""

from __future__ import annotations

from typing import Annotated

import msgspec


class GatewayPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The `[gateway]` section of the config file."""

    max_concurrent: Annotated[int, msgspec.Meta(ge=1)] = 16
    """Provider calls in flight at once; the rest wait their turn here."""
    call_timeout: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    """Seconds one attempt may take."""
    attempts: Annotated[int, msgspec.Meta(ge=1)] = 5
    """Tries of one provider call on transient errors, the first included."""
    wait_initial: Annotated[float, msgspec.Meta(ge=0)] = 0.2
    """Seconds before the first retry; the wait grows exponentially, with jitter."""
    wait_max: Annotated[float, msgspec.Meta(ge=0)] = 5.0
    """The longest wait between two retries, in seconds."""
    failure_threshold: Annotated[int, msgspec.Meta(ge=1)] = 5
    """Consecutive transient failures that open the circuit."""
    reset_timeout: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    """Seconds the open circuit waits before it lets a probe through."""
    describe_window: Annotated[float, msgspec.Meta(ge=0)] = 0.05
    """Seconds a look at machines waits for the others of that moment, to share one call."""
