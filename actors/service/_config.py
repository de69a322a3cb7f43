"""Configuration: one TOML file, decoded into typed structs, with environment overrides.

Every setting has a default, so hostsmith runs with no file at all: SQLite
in the user's data dir (`~/.local/share/hostsmith/`, never a path that
depends on the current directory), the simulated cloud, and the example
templates that ship with hostsmith. A TOML file (`--config FILE`) overrides what it names, and
`HOSTSMITH_*` variables override the file: `HOSTSMITH_STORE`,
`HOSTSMITH_DATA_DIR`, or `HOSTSMITH_<SECTION>_<KEY>` such as
`HOSTSMITH_SERVER_PORT=9000`.

Each section is the settings struct of the component it configures, so a
default is written once, where the component is: `[requests]` is the
service's `RequestSettings`, `[reconcile]` the reconciler's `ReconcileSettings`, `[read_models]`
the read-model checkpoints' `ReadModelSettings`,
`[gateway]` the gateway's `GatewayPolicy`, and
a provider's section (`[sim]`, `[aws]`) belongs to the provider's plugin,
found through the provider registry.

msgspec does the checking, so a bad value is named by its path
(`at $.server.port`); unknown keys are refused too, because a misspelt key
that is silently ignored is a setting the user believes in but does not
have.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec

from hostsmith.actors.errors import ConfigError
from hostsmith.actors.providers import BUILT_IN, GatewayPolicy, ProviderPlugin, ProviderRegistry
from hostsmith.actors.service._hf_files import (
    HostFactoryDirs,
    apply_host_factory_files,
    config_file_in,
    host_factory_dirs,
    read_settings_file,
)
from hostsmith.actors.service._settings import (
    ReadModelSettings,
    ReconcileSettings,
    RequestSettings,
)

if TYPE_CHECKING:
    import ssl

EXAMPLE_TEMPLATES = pathlib.Path(__file__).with_name("example_templates.json")


class Server(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The `[server]` section: where the daemon listens, and who may call it."""

    host: str = "127.0.0.1"
    """Address the daemon binds; beyond loopback it needs `token` (and should have TLS)."""
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 8642
    """TCP port the daemon listens on."""
    token: str = ""
    """Bearer token the API requires; mandatory when binding beyond loopback."""
    max_body: Annotated[int, msgspec.Meta(ge=1024)] = 1_048_576
    """Largest request body accepted, in bytes; larger ones get 413."""
    tls_cert: str = ""
    """PEM certificate (chain) file; with `tls_key`, the daemon serves HTTPS only."""
    tls_key: str = ""
    """PEM private key file of `tls_cert`."""
    tls_ca: str = ""
    """CA bundle that `hostsmith hf` trusts for an https daemon; empty: the system's."""

    def client_tls(self) -> ssl.SSLContext:
        """How a client of this daemon checks its certificate: against `tls_ca`, or the system's."""
        import ssl  # only a call over HTTPS pays for it

        try:
            return ssl.create_default_context(cafile=self.tls_ca or None)
        except OSError as error:
            raise ConfigError(f"server.tls_ca {self.tls_ca}: {error.strerror or error}") from None


class Log(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The `[log]` section: how much the daemon says, and where."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    """The least severe level logged; every Host Factory call is one line at info."""
    format: Literal["text", "json"] = "text"
    """`text` for people, `json` (one object per line) for log collectors."""
    file: str = ""
    """Also write logs here, rotated at `max_bytes` with `backups` kept."""
    max_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 10_485_760
    """Size at which `file` is rotated, in bytes."""
    backups: Annotated[int, msgspec.Meta(ge=0)] = 5
    """Rotated log files kept beside `file`."""
    slow_ms: Annotated[float, msgspec.Meta(ge=0)] = 500.0
    """Host Factory calls slower than this are logged as slow."""


class Config(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    data_dir: str = ""
    """Where state lives; empty: `$XDG_DATA_HOME/hostsmith` (`~/.local/share/hostsmith`),
    never a directory that depends on where hostsmith happens to be run from."""
    store: str = ""
    """Event store URL; empty means SQLite in the data dir."""
    templates: str = ""
    """Host Factory templates file; empty means the example templates."""
    provider: str = "sim"
    """The cloud: `sim` (simulated), `aws` (EC2), or any installed provider's name."""
    url: str = ""
    """A running daemon for `hostsmith hf` to talk to; empty means in-process."""
    server: Server = Server()
    requests: RequestSettings = RequestSettings()
    reconcile: ReconcileSettings = ReconcileSettings()
    read_models: ReadModelSettings = ReadModelSettings()
    gateway: GatewayPolicy = GatewayPolicy()
    log: Log = Log()
    providers: dict[str, Any] = {}
    """Each provider's own section (`[sim]`, `[aws]`), decoded by its plugin's settings struct."""
    warnings: tuple[str, ...] = ()
    """What the admin should hear about: settings in Host Factory's files that are not used."""
    host_factory: HostFactoryDirs | None = None
    """Host Factory's directories for this provider instance, when run under Host Factory."""
    unknown_settings: tuple[str, ...] = ()
    """`HOSTSMITH_*` variables that name no setting: ignored, and an error for `config check`."""

    @property
    def store_url(self) -> str:
        return self.store or f"sqlite://{self.data_path}/events.db"

    @property
    def data_path(self) -> pathlib.Path:
        return pathlib.Path(self.data_dir or default_data_dir(os.environ)).absolute()

    @property
    def templates_path(self) -> pathlib.Path:
        return pathlib.Path(self.templates) if self.templates else EXAMPLE_TEMPLATES

    def provider_settings(self, plugin: ProviderPlugin) -> msgspec.Struct:
        """The plugin's section as configured, or its defaults when the file has none."""
        given = self.providers.get(plugin.name)
        return given if isinstance(given, plugin.settings) else plugin.settings()


def load_config(
    path: pathlib.Path | None = None,
    environ: Mapping[str, str] = os.environ,
    *,
    providers: ProviderRegistry | None = None,
) -> Config:
    """Read `path` (if any), apply `HOSTSMITH_*` overrides, and check everything.

    Top-level tables that are not hostsmith's own sections are provider
    sections: each must name an installed provider, and is decoded by that
    provider's settings struct.
    """
    providers = providers or ProviderRegistry.discover()
    host_factory = host_factory_dirs(environ)
    path = path or config_file_in(host_factory)
    raw: dict[str, Any] = {}
    if path is not None:
        raw = read_settings_file(path, toml=True)
        _resolve_paths(raw, path.parent)
    unknown_settings = _apply_environment(raw, environ, providers)
    warnings = []
    if host_factory is not None:
        warnings = apply_host_factory_files(raw, host_factory, providers)
    if not raw.get("data_dir"):  # absent or "": the default, for this environment
        raw["data_dir"] = default_data_dir(environ)
    source = f"config file {path}" if path else "configuration"
    own = {field.name for field in msgspec.structs.fields(Config)}
    sections = {name: raw.pop(name) for name in list(raw) if name not in own}
    for name in sections:
        if not providers.known(name):  # named as msgspec would name an unknown key
            raise ConfigError(f"{source}: Object contains unknown field `{name}`")
    for derived in DERIVED:  # not settings: filled in below
        raw.pop(derived, None)
    try:
        config = msgspec.convert(raw, Config, strict=False)
    except msgspec.ValidationError as error:
        raise ConfigError(f"{source}: {error}") from None
    decoded: dict[str, Any] = {}
    for name in sorted(sections | {config.provider: {}}):
        plugin = providers.get(name)
        try:
            decoded[name] = msgspec.convert(sections.get(name, {}), plugin.settings, strict=False)
        except msgspec.ValidationError as error:
            raise ConfigError(f"{source}: [{name}] {error}") from None
    return msgspec.structs.replace(
        config,
        providers=decoded,
        warnings=tuple(unknown_settings + warnings),
        unknown_settings=tuple(unknown_settings),
        host_factory=host_factory,
    )


def default_data_dir(environ: Mapping[str, str]) -> str:
    """The user's data dir for hostsmith, as the XDG base directory spec places it."""
    home = environ.get("HOME") or str(pathlib.Path.home())
    base = environ.get("XDG_DATA_HOME") or str(pathlib.Path(home) / ".local" / "share")
    return str(pathlib.Path(base) / "hostsmith")


def _resolve_paths(raw: dict[str, Any], base: pathlib.Path) -> None:
    """Paths in a config file are relative to the file, never to the current directory."""
    server = raw.get("server")
    for holder, key in (
        (raw, "data_dir"),
        (raw, "templates"),
        (raw.get("log"), "file"),
        (server, "tls_cert"),
        (server, "tls_key"),
        (server, "tls_ca"),
    ):
        if isinstance(holder, dict) and isinstance(holder.get(key), str) and holder[key]:
            holder[key] = str(base / pathlib.Path(holder[key]).expanduser())


NOT_SETTINGS = {"HOSTSMITH_CONFIG", "HOSTSMITH_BIN"}
"""Variables the Host Factory scripts read themselves."""
DERIVED = ("providers", "warnings", "host_factory", "unknown_settings")
"""Config fields that are filled in by `load_config`, never set by the admin."""


def _apply_environment(
    raw: dict[str, Any], environ: Mapping[str, str], providers: ProviderRegistry
) -> list[str]:
    """Apply each `HOSTSMITH_*` setting; return one line for each variable that is none.

    A stray variable is named (with the nearest real one) and ignored, never
    fatal: it must not stop Host Factory's calls. `config check` fails on it.
    """
    given = {
        name: value
        for name, value in environ.items()
        if name.startswith("HOSTSMITH_") and name not in NOT_SETTINGS
    }
    known = _environment_settings(providers, BUILT_IN)
    if given.keys() - known.keys():  # perhaps an installed provider's: read them all
        known = _environment_settings(providers, providers.names())
    unknown = []
    for name, value in given.items():
        place = known.get(name)
        if place is None:
            import difflib  # only for a stray variable

            # compared without the prefix that every variable shares
            suffixes = [known_name.removeprefix("HOSTSMITH_") for known_name in known]
            nearest = difflib.get_close_matches(name.removeprefix("HOSTSMITH_"), suffixes, n=1)
            hint = f"; did you mean HOSTSMITH_{nearest[0]}?" if nearest else ""
            unknown.append(f"unknown setting {name} in the environment, ignored{hint}")
        elif place[0]:
            raw.setdefault(place[0], {})[place[1]] = value
        else:
            raw[place[1]] = value
    return unknown


def _environment_settings(
    providers: ProviderRegistry, names: Iterable[str]
) -> dict[str, tuple[str, str]]:
    """Every `HOSTSMITH_*` variable of hostsmith's and of the providers `names`
    -> (section, or "" for top level; key)."""
    known: dict[str, tuple[str, str]] = {}
    sections: dict[str, type[msgspec.Struct]] = {
        name: providers.get(name).settings for name in names
    }
    for field in msgspec.structs.fields(Config):
        if isinstance(field.type, type) and issubclass(field.type, msgspec.Struct):
            sections[field.name] = field.type
        elif field.name not in DERIVED:
            known[f"HOSTSMITH_{field.name.upper()}"] = ("", field.name)
    for section, settings in sections.items():
        for field in msgspec.structs.fields(settings):
            known[f"HOSTSMITH_{section.upper()}_{field.name.upper()}"] = (section, field.name)
    return known


def describe(config: Config) -> dict[str, Any]:
    """The effective configuration, with secrets hidden, for `hostsmith config check`."""
    shown: dict[str, Any] = msgspec.to_builtins(config)
    shown.update(shown.pop("providers"))  # as the file has them: [sim], [aws]
    if shown["server"]["token"]:
        shown["server"]["token"] = "***"
    shown["effective_store"] = config.store_url
    shown["effective_templates"] = str(config.templates_path)
    shown["precedence"] = PRECEDENCE
    return shown


PRECEDENCE = (
    "flags, then HOSTSMITH_* variables, then the config file (--config, HOSTSMITH_CONFIG, or "
    "hostsmith.toml in HF_PROVIDER_CONFDIR), then Host Factory's files and HF_PROVIDER_* "
    "directories, then hostsmith's defaults"
)
