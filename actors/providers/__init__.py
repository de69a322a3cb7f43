"""Providers: the clouds hostsmith provisions on, and the one gateway every call goes through.

- `Provider` is the protocol a cloud implements: provision, describe,
  terminate, reclaim notices. Its errors are `TransientProviderError` and
  `PermanentProviderError` (from `hostsmith.actors.errors`).
- `Gateway` wraps any provider in one resilience policy (`GatewayPolicy`,
  the `[gateway]` section): a concurrency cap, deadlines, retries and a
  circuit breaker.
- `ProviderRegistry` finds `ProviderPlugin`s by name through the
  `hostsmith.providers` entry points. `sim` and `aws` live in subpackages
  of their own and are registered there like anyone else's.

May import: `hostsmith.runtime`, `hostsmith.actors.errors`, `hostsmith.stores.aws_session`
(the aws clients, set up for trio once for the store and the provider) and
`hostsmith.actors.hostfactory`. This package's `__init__` never imports a
provider subpackage: a plugin is imported when it is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hostsmith.actors.lazy import attach

if TYPE_CHECKING:
    from hostsmith.actors.providers._gateway import (
        Gateway as Gateway,
        is_transient as is_transient,
    )
    from hostsmith.actors.providers._policy import (
        GatewayPolicy as GatewayPolicy,
    )
    from hostsmith.actors.providers._protocol import (
        Inventory as Inventory,
        Provider as Provider,
        Provisioned as Provisioned,
        ReclaimNotice as ReclaimNotice,
    )
    from hostsmith.actors.providers._registry import (
        BUILT_IN as BUILT_IN,
        ENTRY_POINT_GROUP as ENTRY_POINT_GROUP,
        ProviderContext as ProviderContext,
        ProviderPlugin as ProviderPlugin,
        ProviderRegistry as ProviderRegistry,
    )

__getattr__, __dir__ = attach(__name__, __file__)

__all__ = [
    "BUILT_IN",
    "ENTRY_POINT_GROUP",
    "Gateway",
    "GatewayPolicy",
    "Inventory",
    "Provider",
    "ProviderContext",
    "ProviderPlugin",
    "ProviderRegistry",
    "Provisioned",
    "ReclaimNotice",
    "is_transient",
]
