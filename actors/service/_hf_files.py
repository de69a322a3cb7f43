"""Host Factory's own files and variables, read the way IBM's provider plug-ins read them.

Host Factory runs each script with `HF_PROVIDER_NAME`, `HF_PROVIDER_CONFDIR`,
`HF_PROVIDER_WORKDIR` and `HF_PROVIDER_LOGDIR` set (or `HF_CONFDIR`,
`HF_WORKDIR` and `HF_LOGDIR`, from which IBM derives
`<dir>/providers/<name>/`), from a current directory of its own choosing.
So when those are set, hostsmith takes every path from them and none from
the current directory:

- the templates are `<provider>prov_templates.json` in the conf dir (IBM's
  name, `awsprov_templates.json` for aws), and the provider, if nothing else
  names it, is the one whose templates file is there;
- the provider's settings may come from `<provider>prov_config.json` there:
  each plugin maps IBM's keys (`AWS_REGION`, ...) to its own settings, and a
  key it does not use is named in a warning, never silently dropped;
- an optional `hostsmith.toml` in the conf dir is read as the config file;
- state goes in the work dir and the daemon's log in the log dir.

These are defaults beneath everything the admin says in hostsmith's own
terms: flags, then `HOSTSMITH_*`, then `hostsmith.toml`, then these files.
"""

from __future__ import annotations

import json
import pathlib
import tomllib
from collections.abc import Mapping
from typing import Any

import msgspec

from hostsmith.actors.errors import ConfigError
from hostsmith.actors.providers import ProviderRegistry

CONFIG_FILE = "hostsmith.toml"
LOG_FILE = "hostsmith.log"


class HostFactoryDirs(msgspec.Struct, frozen=True, kw_only=True):
    """Where Host Factory keeps this provider instance's files; empty where it says nothing."""

    name: str = ""
    confdir: str = ""
    workdir: str = ""
    logdir: str = ""


def host_factory_dirs(environ: Mapping[str, str]) -> HostFactoryDirs | None:
    """The provider instance's directories from Host Factory's variables, or None outside HF."""
    name = environ.get("HF_PROVIDER_NAME", "")

    def provider_dir(own: str, top: str) -> str:
        if environ.get(own):
            return environ[own]
        if environ.get(top) and name:
            return str(pathlib.Path(environ[top]) / "providers" / name)
        return ""

    dirs = HostFactoryDirs(
        name=name,
        confdir=provider_dir("HF_PROVIDER_CONFDIR", "HF_CONFDIR"),
        workdir=provider_dir("HF_PROVIDER_WORKDIR", "HF_WORKDIR"),
        logdir=environ.get("HF_PROVIDER_LOGDIR") or environ.get("HF_LOGDIR", ""),
    )
    return dirs if (dirs.confdir or dirs.workdir or dirs.logdir) else None


def config_file_in(dirs: HostFactoryDirs | None) -> pathlib.Path | None:
    """The optional `hostsmith.toml` beside Host Factory's files."""
    if dirs is None or not dirs.confdir:
        return None
    candidate = pathlib.Path(dirs.confdir) / CONFIG_FILE
    return candidate if candidate.is_file() else None


def apply_host_factory_files(
    raw: dict[str, Any], dirs: HostFactoryDirs, providers: ProviderRegistry
) -> list[str]:
    """Fill in what `raw` (file and environment) leaves unsaid; return warnings to show."""
    warnings: list[str] = []
    if "data_dir" not in raw and dirs.workdir:
        raw["data_dir"] = dirs.workdir
    if dirs.logdir:
        raw.setdefault("log", {}).setdefault("file", str(pathlib.Path(dirs.logdir) / LOG_FILE))
    if not dirs.confdir:
        return warnings
    conf = pathlib.Path(dirs.confdir)
    if "provider" not in raw:
        raw["provider"] = _provider_of(conf, providers)
    provider = str(raw["provider"])
    if "templates" not in raw:
        templates = conf / f"{provider}prov_templates.json"
        if not templates.is_file():
            raise ConfigError(
                f"Host Factory's conf dir {conf} has no {templates.name} for the {provider} "
                "provider: put its templates there, or set templates in hostsmith.toml"
            )
        raw["templates"] = str(templates)
    ibm_config = conf / f"{provider}prov_config.json"
    if ibm_config.is_file():
        plugin = providers.get(provider)
        section = raw.setdefault(provider, {})
        for key, value in read_settings_file(ibm_config, toml=False).items():
            field = plugin.host_factory_keys.get(key)
            if field is None:
                warnings.append(
                    f"{ibm_config}: {key} is not used by hostsmith's {provider} provider"
                )
            else:
                section.setdefault(field, value)  # hostsmith's own settings win
    return warnings


def _provider_of(conf: pathlib.Path, providers: ProviderRegistry) -> str:
    suffix = "prov_templates.json"
    present = sorted(
        file.name.removesuffix(suffix)
        for file in conf.glob(f"*{suffix}")
        if file.is_file() and providers.known(file.name.removesuffix(suffix))
    )
    if len(present) == 1:
        return present[0]
    expected = ", ".join(f"{name}prov_templates.json" for name in providers.names())
    if not present:
        raise ConfigError(
            f"Host Factory's conf dir {conf} holds no templates file; expected one of {expected}"
        )
    raise ConfigError(
        f"Host Factory's conf dir {conf} holds templates for {', '.join(present)}: "
        f'name the provider with provider = "..." in {conf / CONFIG_FILE}'
    )


def read_settings_file(path: pathlib.Path, *, toml: bool) -> dict[str, Any]:
    """A settings file (hostsmith's TOML, or IBM's JSON) as a dict; an error names it and why."""
    kind, parse, invalid = (
        ("TOML", tomllib.loads, tomllib.TOMLDecodeError)
        if toml
        else ("JSON", json.loads, json.JSONDecodeError)
    )
    try:
        loaded = parse(path.read_text())
    except OSError as error:
        raise ConfigError(f"cannot read config file {path}: {error.strerror}") from None
    except invalid as error:
        raise ConfigError(f"config file {path} is not valid {kind}: {error}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path} must hold a JSON object of settings")
    return loaded
