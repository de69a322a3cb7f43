"""The `[requests]` section: how long requests may take, how often they are looked at.

A module of its own so that the configuration, which every Host Factory
script call reads, does not import the service that uses these settings.
"""

from __future__ import annotations

from typing import Annotated

import msgspec


class RequestSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The `[requests]` section of the config file."""

    timeout: Annotated[float, msgspec.Meta(gt=0)] = 1800.0
    """Seconds an acquire or return request may take before it times out."""
    poll_interval: Annotated[float, msgspec.Meta(gt=0)] = 1.0
    """Seconds between the driver's looks at the cloud for one request; the looks of
    every request in one moment share one describe call (`gateway.describe_window`), so
    a short interval reports machines up (or gone) soon without costing the rate limit."""
    retention: Annotated[float, msgspec.Meta(gt=0)] = 3600.0
    """Seconds a settled request stays in memory for Host Factory's status polls.

    After that it is forgotten by the projections (once none of its machines is
    still running) and read back from the log if anyone asks, so the service's
    memory follows the hosts in play, not the history."""


class ReconcileSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The `[reconcile]` section: how the cloud and the log are kept in agreement."""

    interval: Annotated[float, msgspec.Meta(gt=0)] = 60.0
    """Seconds between the daemon's reconcile passes (`hostsmith reconcile` runs one now)."""
    terminate_orphans: bool = False
    """Terminate machines the cloud runs under this installation's tag that no live request
    holds, once `orphan_grace` has passed since they were found; false: report them only."""
    orphan_grace: Annotated[float, msgspec.Meta(ge=0)] = 600.0
    """Seconds an orphan is reported before `terminate_orphans` terminates it."""
    pending_timeout: Annotated[float, msgspec.Meta(gt=0)] = 180.0
    """Seconds a machine of an open request may stay pending; then it is terminated and its
    request launches a replacement (IBM's AWS_INSTANCE_PENDING_TIMEOUT_SEC)."""


class ReadModelSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The `[read_models]` section: how often what answers Host Factory is checkpointed."""

    checkpoint_events: Annotated[int, msgspec.Meta(ge=1)] = 10_000
    """Save the read models (requests, machines, claims) with their log position after this
    many new events, so that a start reads only the log after it."""
    checkpoint_seconds: Annotated[float, msgspec.Meta(gt=0)] = 60.0
    """...or after this many seconds, whichever comes first (and once more at shutdown)."""
