"""Epoch seconds on trio's clock, for the service and the simulated cloud of one test.

Both must read the same clock: the reconciler compares the cloud's launch
times with its own, and a service on the wall clock beside a cloud on
virtual time would take every machine for one launched months ago.
"""

from __future__ import annotations

import trio

START = 1_767_225_600.0
"""2026-01-01T00:00:00Z: virtual time 0."""


def epoch() -> float:
    return START + trio.current_time()
