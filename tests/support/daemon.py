"""A real `hostsmith serve` process for end-to-end tests, on a free loopback port.

The daemon prints `hostsmith listening on URL` once it accepts connections;
`start` waits for that line (a blocking read, not a sleep). Its simulated
cloud is configured to be fast, since the daemon runs on the wall clock.
Its stderr goes to a file beside its config, never to a pipe: a pipe that
nobody reads holds 64 KB, and a daemon with more to log stopped on its own
log line (a thousand clients' calls stalled for a minute).
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
from typing import Any

from hostsmith.actors.proof import free_port
from tests.support.hostfactory_shapes import SHAPES, answers

FAST_SIM = """
[requests]
poll_interval = 0.1
[sim]
latency = 0.005
boot_time = 0.2
shutdown_time = 0.1
spot_reclaim_rate = 1.0
spot_lifetime = 2.0
reclaim_notice = 120
"""


def hostsmith(
    *arguments: str, environment: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the `hostsmith` command as a user would, capturing what it prints."""
    return subprocess.run(
        [sys.executable, "-m", "hostsmith.actors.cli", *arguments],
        capture_output=True,
        text=True,
        check=False,
        env=without_hostsmith_settings() | (environment or {}),
    )


def write_config(directory: pathlib.Path, extra: str = "") -> pathlib.Path:
    config = directory / "hostsmith.toml"
    config.write_text(f'data_dir = "{directory / "data"}"\n{extra}\n{FAST_SIM}')
    return config


def without_hostsmith_settings() -> dict[str, str]:
    """This process's environment less any HOSTSMITH_* setting, which a test must pass on purpose."""
    return {k: v for k, v in os.environ.items() if not k.startswith("HOSTSMITH_")}


class Daemon:
    def __init__(self, config: pathlib.Path, environment: dict[str, str] | None = None) -> None:
        self.config = config
        self.environment = environment or {}
        """HOSTSMITH_* settings for this daemon; the caller's own never leak into it."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[str] | None = None
        self.log_path = config.parent / f"daemon-{self.port}.stderr"

    def start(self) -> Daemon:
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "hostsmith.actors.cli",
                    "serve",
                    "--config",
                    str(self.config),
                    "--port",
                    str(self.port),
                ],
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env=without_hostsmith_settings() | self.environment,
            )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line.startswith("hostsmith listening on "), line + self.logs()
        self.url = line.removeprefix("hostsmith listening on ").strip()  # https with TLS
        return self

    def stop(self, how: signal.Signals = signal.SIGTERM) -> int:
        assert self.process is not None
        self.process.send_signal(how)
        self.process.communicate(timeout=60)
        return self.process.returncode

    def logs(self) -> str:
        """What the daemon has logged so far (all of it, once it has stopped)."""
        return self.log_path.read_text() if self.log_path.exists() else ""


def hf(
    command: str,
    payload: Any = None,
    *,
    url: str | None = None,
    config: pathlib.Path | None = None,
    file: pathlib.Path | None = None,
    environment: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    """Run `hostsmith hf` as Host Factory would; returns (exit status, parsed JSON)."""
    arguments = [sys.executable, "-m", "hostsmith.actors.cli", "hf", command]
    if file is not None:
        arguments += ["-f", str(file)]
    elif payload is not None:
        arguments += ["-d", json.dumps(payload)]
    if url:
        arguments += ["--url", url]
    if config:
        arguments += ["--config", str(config)]
    done = subprocess.run(
        arguments,
        capture_output=True,
        text=True,
        env=without_hostsmith_settings() | (environment or {}),
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    answer = json.loads(done.stdout)
    if command in SHAPES:  # Host Factory's shapes, for every answer that any test gets
        answers(command, done.returncode, answer)
    return done.returncode, answer
