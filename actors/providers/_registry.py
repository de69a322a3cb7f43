"""The provider registry: which clouds hostsmith can talk to, found by name.

A provider package offers one `ProviderPlugin`: its name, its config section
(a msgspec Struct whose defaults are the only defaults of those settings),
a check of the templates it is given, and how to open it. Plugins are found
through the `hostsmith.providers` entry-point group, as stores are through
`hostsmith.stores`, so adding a provider touches its own package and one line
of pyproject.toml. sim and aws are registered there too, and nothing in
hostsmith chooses a provider by comparing its name.

The registry is a value passed to whoever needs it (`load_config`, the
wiring). Reading the entry points means reading every installed package's
metadata (about 20 ms, paid by every Host Factory script call), so it is
done only when a name is not one of the providers that ship with hostsmith
(`BUILT_IN`); a plugin's module is imported only when that plugin is used.
"""

from __future__ import annotations

import importlib
import pathlib
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from hostsmith.actors.errors import ConfigError

if TYPE_CHECKING:  # the configuration reads plugins; it must not load the domain for it
    from importlib.metadata import EntryPoint

    from hostsmith.actors.hostfactory import Template
    from hostsmith.actors.providers._protocol import Provider

ENTRY_POINT_GROUP = "hostsmith.providers"


@dataclass(frozen=True, slots=True)
class ProviderContext:
    """What hostsmith gives a provider when it opens it."""

    templates: dict[str, Template]
    data_dir: pathlib.Path
    """Where the provider may keep state of its own (the sim cloud keeps its machines here)."""
    clock: Callable[[], float]
    """Epoch seconds: virtual in tests, the wall clock in the daemon."""
    installation_id: str = ""
    """This installation's id (kept in its log): the tag on everything the provider makes,
    so that two installations in one account never take each other's machines for theirs."""


def accept_every_template(template: Template) -> None:
    """The default template check: a provider that needs nothing more from a template."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ProviderPlugin:
    name: str
    settings: type[msgspec.Struct]
    """The provider's config section, `[name]` in the config file; its defaults are the defaults."""
    open: Callable[[Any, ProviderContext], AbstractAsyncContextManager[Provider]]
    """Open the provider with its decoded section; it is closed when the block ends."""
    check_template: Callable[[Template], None] = accept_every_template
    """Raise `TemplateError` saying why this provider cannot launch a template; it is left out."""
    host_factory_keys: Mapping[str, str] = field(default_factory=dict)
    """Keys of IBM's `<name>prov_config.json` this provider honours -> its settings' fields."""


BUILT_IN = {"sim": "hostsmith.actors.providers.sim", "aws": "hostsmith.actors.providers.aws"}
"""The providers that ship with hostsmith, by the module whose `PLUGIN` they are (the same
`PLUGIN`s their entry points name): found without reading any package metadata."""


@dataclass(slots=True)
class ProviderRegistry:
    """Plugins by name: those given, those built in, then those installed as entry points."""

    plugins: dict[str, ProviderPlugin] = field(default_factory=dict)
    _installed: dict[str, EntryPoint] | None = None
    """The entry points, read on first need (None until then)."""

    @classmethod
    def discover(cls, extra: Iterable[ProviderPlugin] = ()) -> ProviderRegistry:
        return cls({plugin.name: plugin for plugin in extra})

    @property
    def installed(self) -> dict[str, EntryPoint]:
        if self._installed is None:
            from importlib.metadata import entry_points

            found = entry_points(group=ENTRY_POINT_GROUP)
            self._installed = {entry.name: entry for entry in found}
        return self._installed

    def names(self) -> list[str]:
        """Every provider there is (this reads the installed packages' metadata)."""
        return sorted(self.plugins.keys() | BUILT_IN.keys() | self.installed.keys())

    def known(self, name: str) -> bool:
        """Whether `name` is a provider, reading metadata only for a name not built in."""
        return name in self.plugins or name in BUILT_IN or name in self.installed

    def get(self, name: str) -> ProviderPlugin:
        plugin = self.plugins.get(name)
        if plugin is not None:
            return plugin
        if name in BUILT_IN:
            where = f"{BUILT_IN[name]}:PLUGIN"
            loaded = importlib.import_module(BUILT_IN[name]).PLUGIN
        else:
            entry = self.installed.get(name)
            if entry is None:
                raise ConfigError(
                    f"unknown provider {name!r}: the installed providers are "
                    f"{', '.join(self.names())}"
                )
            where = entry.value
            loaded = entry.load()
        if not isinstance(loaded, ProviderPlugin) or loaded.name != name:
            raise ConfigError(
                f"the entry point {where!r} for provider {name!r} "
                "does not name a ProviderPlugin of that name"
            )
        self.plugins[name] = loaded
        return loaded
