"""The `sim` plugin, as the `hostsmith.providers` entry point names it: light to load.

The registry loads a plugin to read its config section; the simulator
itself (sqlite, trio) is imported only when the provider opens.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

from hostsmith.actors.providers import ProviderContext, ProviderPlugin
from hostsmith.actors.providers.sim._settings import SimSettings

if TYPE_CHECKING:
    from hostsmith.actors.providers.sim._cloud import SimProvider


def open_sim(
    settings: SimSettings, context: ProviderContext
) -> AbstractAsyncContextManager[SimProvider]:
    from hostsmith.actors.providers.sim._cloud import open_sim_provider

    return open_sim_provider(settings, context)


PLUGIN = ProviderPlugin(name="sim", settings=SimSettings, open=open_sim)
