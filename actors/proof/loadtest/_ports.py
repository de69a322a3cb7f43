"""A free loopback port, for the daemons the load tests and the crash suite start.

The daemon binds it a moment later; a port taken meanwhile is the rare
race that `hostsmith serve` reports as a port in use.
"""

from __future__ import annotations

import socket


def free_port() -> int:
    """A loopback port nobody listens on now (the daemon binds it a moment later)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
