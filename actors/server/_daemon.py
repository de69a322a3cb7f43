"""`hostsmith serve`: the daemon.

It opens the application, serves the HTTP API with hypercorn on trio, and
prints one line, `hostsmith listening on http://HOST:PORT`, once it accepts
connections (scripts and tests wait for that line, not for a delay).

It claims its data dir first (`_claim`): a second daemon on the same data
dir refuses to start, naming the first one's pid and URL.

On SIGTERM or SIGINT it shuts down gracefully: hypercorn stops accepting
and lets calls in flight finish; then the runtime stops, every aggregate
finishing its queued commands and the journal committing what it holds;
then the process exits 0.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import signal
import sys
from functools import partial

import hypercorn.trio
import trio
from hypercorn.config import Config as HypercornConfig

from hostsmith.actors.errors import ConfigError
from hostsmith.actors.server._claim import claim_data_dir, client_url
from hostsmith.actors.server._http import Api
from hostsmith.actors.service import Config, open_application

log = logging.getLogger("hostsmith.daemon")

LOOPBACK_NAMES = {"localhost"}
ACCEPT_BACKLOG = 4096


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(config: Config) -> None:
    server = config.server
    if not is_loopback(server.host) and not server.token:
        raise ConfigError(
            f"server.host {server.host!r} is not a loopback address: set server.token "
            "(or HOSTSMITH_SERVER_TOKEN) so that callers must authenticate"
        )
    if bool(server.tls_cert) != bool(server.tls_key):
        raise ConfigError("set both server.tls_cert and server.tls_key for HTTPS, or neither")
    for name, path in (("tls_cert", server.tls_cert), ("tls_key", server.tls_key)):
        if path and not os.access(path, os.R_OK):
            raise ConfigError(f"server.{name} {path}: the file cannot be read by this user")
    if not is_loopback(server.host) and not server.tls_cert:
        log.warning(
            "serving %s without TLS: the bearer token and every call cross the network in "
            "clear; set server.tls_cert and server.tls_key, or put a TLS proxy in front",
            server.host,
        )


async def serve(config: Config) -> None:
    check_exposure(config)
    async with claim_data_dir(config.data_path) as claim, open_application(config) as app:
        api = Api(app)
        settings = HypercornConfig()
        settings.bind = [f"{config.server.host}:{config.server.port}"]
        settings.accesslog = None
        settings.include_server_header = False  # a header less to build and check per call
        # Connections waiting to be accepted (hypercorn's default: 100). A burst of
        # Host Factory calls, a process and a connection each, overflowed 100:
        # at 1,000 at once, 600 were reset. The kernel caps it (net.core.somaxconn).
        settings.backlog = ACCEPT_BACKLOG
        settings.errorlog = logging.getLogger("hypercorn.error")
        settings.graceful_timeout = 30.0
        if config.server.tls_cert:
            settings.certfile, settings.keyfile = config.server.tls_cert, config.server.tls_key
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_wait_for_signal, stop)
            bound = await nursery.start(
                partial(
                    hypercorn.trio.serve,
                    api,  # type: ignore[arg-type]  # a plain ASGI callable; hypercorn's union is narrower
                    settings,
                    shutdown_trigger=stop.wait,
                )
            )
            address = bound[0] if bound else settings.bind[0]
            scheme = "https" if config.server.tls_cert else "http"
            claim.publish(client_url(scheme, config.server.host, _port_of(address)))
            sys.stdout.write(f"hostsmith listening on {address}\n")
            sys.stdout.flush()
            log.info("listening on %s (store %s)", address, config.store_url)
            await stop.wait()
            log.info("stopping: finishing calls in flight")
        log.info("stopping: flushing the journal")
    log.info("stopped")


def _port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


async def _wait_for_signal(stop: trio.Event) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for received in signals:
            log.info("received %s", signal.Signals(received).name)
            stop.set()
            return
