"""Proof that hostsmith holds: invariants, deterministic simulation, soak and the crash suite.

The checks (`_invariants`) read the event log and replay it through the
production `evolve`, so the simulation and the crash suite judge the same
facts. The simulation runs the whole service on virtual time under a
chaotic journal; the soak runs a simulated day; the crash suite SIGKILLs
the real daemon under load. `loadtest` holds the load generators.

May import every package but `commands`; only `commands` imports it.
"""

from __future__ import annotations

from hostsmith.actors.proof._crash import (
    crash_suite as crash_suite,
    prepare as prepare,
)
from hostsmith.actors.proof._invariants import (
    check_acknowledged as check_acknowledged,
    check_cloud as check_cloud,
    check_log as check_log,
    check_reconciler as check_reconciler,
)
from hostsmith.actors.proof._simulation import (
    repro_command as repro_command,
    run_seeds as run_seeds,
    seeded_randomness as seeded_randomness,
    simulate as simulate,
)
from hostsmith.actors.proof._soak import (
    soak as soak,
)
from hostsmith.actors.proof.loadtest import (
    free_port as free_port,
)

__all__ = [
    "check_acknowledged",
    "check_cloud",
    "check_log",
    "check_reconciler",
    "crash_suite",
    "free_port",
    "prepare",
    "repro_command",
    "run_seeds",
    "seeded_randomness",
    "simulate",
    "soak",
]
