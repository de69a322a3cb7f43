"""A moto server in a process of its own, answering one request at a time.

`python -m tests.support.moto_process PORT` serves moto on 127.0.0.1:PORT until it
is terminated, and prints `ready` once it listens.

Why a process: moto is CPU-bound Python, and in a thread of the test
process it shares one GIL with the code under test (a migration pair into
DynamoDB took 43 s with moto in a thread, 36 s with moto beside it).

Why one request at a time: moto's DynamoDB is not safe under concurrent
requests. A `TransactWriteItems` works on a copy of the table and puts its
copy back, so two at once can undo each other's committed writes, which the
real service never does (the two-daemon test caught it). Serving one
request at a time makes moto linearizable, like the service it stands in for.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

from hostsmith.actors.proof import free_port

ROOT = pathlib.Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def moto_server_process(environment: dict[str, str] | None = None) -> Iterator[str]:
    """A moto server on a free loopback port until the block ends; yields its URL.

    `environment` reaches moto's own settings, such as INITIAL_NO_AUTH_ACTION_COUNT.
    """
    port = free_port()
    with subprocess.Popen(
        [sys.executable, "-m", "tests.support.moto_process", str(port)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=os.environ | (environment or {}),
    ) as server:
        assert server.stdout is not None
        ready = server.stdout.readline()
        assert ready.strip() == "ready", f"the moto server did not start: {ready!r}"
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.terminate()
            server.wait(timeout=30)


def serve(port: int) -> None:
    from moto import settings as moto_settings
    from moto.moto_server.threaded_moto_server import MotoRequestHandler
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    # Behave like AWS where it matters to our error messages: an unknown
    # image is refused, not launched.
    moto_settings.ENABLE_AMI_VALIDATION = True
    app = DomainDispatcherApplication(create_backend_app)
    one_at_a_time = threading.Lock()

    def serial(environ: Any, start_response: Any) -> Any:
        with one_at_a_time:
            return list(app(environ, start_response))

    server = make_server("127.0.0.1", port, serial, True, request_handler=MotoRequestHandler)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    serve(int(sys.argv[1]))
