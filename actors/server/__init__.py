"""The daemon: hypercorn serving the ASGI app on trio, its logs, and its process tuning.

`serve(config)` runs the Host Factory HTTP API (`Api`) over the service
until it is told to stop, holding its data dir so that it is the one
writer there (`one_shot_claim` is how a one-shot call finds it).
Logging (`configure_logging`) and process tuning (`tune_process`: garbage
collector and GIL switch interval) are here because only hostsmith's own
long-running commands set them, never an embedding program.

May import: `hostsmith.runtime`, `hostsmith.actors.errors`,
`hostsmith.actors.hostfactory` and `hostsmith.actors.service`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hostsmith.actors.lazy import attach

if TYPE_CHECKING:
    from hostsmith.actors.server._claim import (
        DaemonAddress as DaemonAddress,
        one_shot_claim as one_shot_claim,
    )
    from hostsmith.actors.server._daemon import (
        serve as serve,
    )
    from hostsmith.actors.server._http import (
        Api as Api,
    )
    from hostsmith.actors.server._logging import (
        configure_logging as configure_logging,
    )
    from hostsmith.actors.server._tuning import (
        tune_process as tune_process,
    )

__getattr__, __dir__ = attach(__name__, __file__)

__all__ = [
    "Api",
    "DaemonAddress",
    "configure_logging",
    "one_shot_claim",
    "serve",
    "tune_process",
]
