"""Configuration: one TOML file, decoded into typed structs, with environment overrides.

Every setting has a default, so hostsmith runs with no file at all: SQLite
in `./.hostsmith/`, the simulated cloud, and the example templates that ship
with hostsmith. A TOML file (`--config FILE`) overrides what it names, and
`HOSTSMITH_*` variables override the file: `HOSTSMITH_STORE`,
`HOSTSMITH_DATA_DIR`, or `HOSTSMITH_<SECTION>_<KEY>` such as
`HOSTSMITH_SERVER_PORT=9000`.

msgspec does the checking, so a bad value is named by its path
(`at $.server.port`); unknown keys are refused too, because a misspelt key
that is silently ignored is a setting the user believes in but does not
have.
"""

from __future__ import annotations

import os
import pathlib
import tomllib
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import msgspec

from hostsmith.actors._aws import AwsSettings

EXAMPLE_TEMPLATES = pathlib.Path(__file__).with_name("example_templates.json")


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the key and why."""


class Server(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    host: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 8642
    token: str = ""
    """Bearer token the API requires; mandatory when binding beyond loopback."""
    max_body: Annotated[int, msgspec.Meta(ge=1024)] = 1_048_576


class Requests(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    timeout: Annotated[float, msgspec.Meta(gt=0)] = 1800.0
    poll_interval: Annotated[float, msgspec.Meta(gt=0)] = 5.0
    retention: Annotated[float, msgspec.Meta(gt=0)] = 3600.0


class Sim(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    seed: int = 0
    latency: Annotated[float, msgspec.Meta(ge=0)] = 0.05
    boot_time: Annotated[float, msgspec.Meta(ge=0)] = 3.0
    shutdown_time: Annotated[float, msgspec.Meta(ge=0)] = 2.0
    capacity: Annotated[int, msgspec.Meta(ge=0)] = 1000
    failure_rate: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.0
    spot_reclaim_rate: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.0
    spot_lifetime: Annotated[float, msgspec.Meta(gt=0)] = 600.0
    reclaim_notice: Annotated[int, msgspec.Meta(ge=0)] = 120


class Gateway(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    max_concurrent: Annotated[int, msgspec.Meta(ge=1)] = 16
    call_timeout: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    attempts: Annotated[int, msgspec.Meta(ge=1)] = 5
    failure_threshold: Annotated[int, msgspec.Meta(ge=1)] = 5
    reset_timeout: Annotated[float, msgspec.Meta(gt=0)] = 30.0


class Log(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["text", "json"] = "text"
    file: str = ""
    """Also write logs here, rotated at `max_bytes` with `backups` kept."""
    max_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 10_485_760
    backups: Annotated[int, msgspec.Meta(ge=0)] = 5
    slow_ms: Annotated[float, msgspec.Meta(ge=0)] = 500.0
    """Host Factory calls slower than this are logged as slow."""


class Config(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    data_dir: str = ".hostsmith"
    store: str = ""
    """Event store URL; empty means SQLite in the data dir."""
    templates: str = ""
    """Host Factory templates file; empty means the example templates."""
    provider: Literal["sim", "aws"] = "sim"
    """`sim`, the simulated cloud, or `aws` (EC2, configured under [aws])."""
    url: str = ""
    """A running daemon for `hostsmith hf` to talk to; empty means in-process."""
    server: Server = Server()
    requests: Requests = Requests()
    sim: Sim = Sim()
    aws: AwsSettings = AwsSettings()
    gateway: Gateway = Gateway()
    log: Log = Log()

    @property
    def store_url(self) -> str:
        return self.store or f"sqlite://{pathlib.Path(self.data_dir).absolute()}/events.db"

    @property
    def templates_path(self) -> pathlib.Path:
        return pathlib.Path(self.templates) if self.templates else EXAMPLE_TEMPLATES


def load_config(
    path: pathlib.Path | None = None, environ: Mapping[str, str] = os.environ
) -> Config:
    """Read `path` (if any), apply `HOSTSMITH_*` overrides, and check everything."""
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text())
        except OSError as error:
            raise ConfigError(f"cannot read config file {path}: {error.strerror}") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"config file {path} is not valid TOML: {error}") from None
    _apply_environment(raw, environ)
    try:
        return msgspec.convert(raw, Config, strict=False)
    except msgspec.ValidationError as error:
        source = f"config file {path}" if path else "configuration"
        raise ConfigError(f"{source}: {error}") from None


NOT_SETTINGS = {"HOSTSMITH_CONFIG", "HOSTSMITH_BIN"}
"""Variables the Host Factory scripts read themselves."""


def _apply_environment(raw: dict[str, Any], environ: Mapping[str, str]) -> None:
    sections = {
        field.name: field.type
        for field in msgspec.structs.fields(Config)
        if isinstance(field.type, type) and issubclass(field.type, msgspec.Struct)
    }
    for name, value in environ.items():
        if not name.startswith("HOSTSMITH_") or name in NOT_SETTINGS:
            continue
        key = name.removeprefix("HOSTSMITH_").lower()
        section = next((s for s in sections if key.startswith(f"{s}_")), None)
        if section is not None:
            raw.setdefault(section, {})[key.removeprefix(f"{section}_")] = value
        elif key in {f.name for f in msgspec.structs.fields(Config)}:
            raw[key] = value
        else:
            raise ConfigError(f"unknown setting {name} in the environment")


def describe(config: Config) -> dict[str, Any]:
    """The effective configuration, with secrets hidden, for `hostsmith config check`."""
    shown: dict[str, Any] = msgspec.to_builtins(config)
    if shown["server"]["token"]:
        shown["server"]["token"] = "***"
    shown["effective_store"] = config.store_url
    shown["effective_templates"] = str(config.templates_path)
    return shown
