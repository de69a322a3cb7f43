"""The daemon a benchmark starts: a free loopback port, roomy templates, `hostsmith serve`.

The crash suite and the `hf-call`, `bulk` and `burst` workloads each run a
real daemon of their own, as an admin would, on a port nobody listens on
and with templates whose `maxNumber` never refuses the load they offer.
(The daemon binds the port a moment later; a port taken meanwhile is the
rare race that `hostsmith serve` reports as a port in use.)
"""

from __future__ import annotations

import contextlib
import json
import pathlib
import socket
import subprocess
import sys
from collections.abc import Iterator

import msgspec

from hostsmith.actors.service import EXAMPLE_TEMPLATES

HOSTSMITH = [sys.executable, "-m", "hostsmith.actors.cli"]
"""This hostsmith, as a command."""


def free_port() -> int:
    """A loopback port nobody listens on now (the daemon binds it a moment later)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def templates_with_room(path: pathlib.Path, room: int) -> pathlib.Path:
    """The example templates, each offering `room` hosts, written to `path`."""
    example = json.loads(EXAMPLE_TEMPLATES.read_text())
    for template in example["templates"]:
        template["maxNumber"] = room
    path.write_text(json.dumps(example))
    return path


class Served(msgspec.Struct, frozen=True):
    port: int
    pid: int


@contextlib.contextmanager
def own_daemon(config: pathlib.Path) -> Iterator[Served]:
    """`hostsmith serve` on a free loopback port until the block ends: its port and pid."""
    port = free_port()
    with subprocess.Popen(
        [*HOSTSMITH, "serve", "--config", str(config), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as daemon:
        try:
            assert daemon.stdout is not None
            listening = daemon.stdout.readline()
            if not listening.startswith("hostsmith listening on "):
                raise RuntimeError(f"the daemon did not start: {listening!r}")
            yield Served(port, daemon.pid)
        finally:
            daemon.terminate()
            daemon.wait(timeout=60)
