"""The event registry: from stored bytes to typed events, across schema versions.

Events are frozen, tagged `msgspec.Struct`s. The tag (the class name unless
the class says otherwise) is the event's type name in the store, so a class
can be renamed in code while keeping its tag, and the store stays readable.

Each type has a current schema version. Reading an event written at an older
version applies registered upcasters one version at a time (v1 -> v2 -> …)
on the plain JSON object, then converts it into the current class. Reading
an event at the current version takes the fast path: one reused typed
decoder, no intermediate dict.

An unknown type name is an error that names it. It is never skipped: a
silently skipped event is a silently wrong state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from hostsmith.runtime._errors import UnknownEventType

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class _EventType:
    cls: type[msgspec.Struct]
    version: int
    decoder: msgspec.json.Decoder[Any]


def event_tag(cls: type[msgspec.Struct]) -> str:
    tag = cls.__struct_config__.tag
    if not isinstance(tag, str):
        raise TypeError(
            f"{cls.__name__} must be a tagged Struct with a string tag: "
            f"declare it as `class {cls.__name__}(msgspec.Struct, tag=True, frozen=True)`"
        )
    return tag


class EventRegistry:
    """Maps type names to event classes and schema versions, with upcasters."""

    def __init__(self, *classes: type[msgspec.Struct]) -> None:
        self._types: dict[str, _EventType] = {}
        self._by_class: dict[type, tuple[str, int]] = {}  # the encoder's fast path
        self._upcasters: dict[tuple[str, int], Upcaster] = {}
        self._encoder = msgspec.json.Encoder()
        for cls in classes:
            self.register(cls)

    def register(self, cls: type[msgspec.Struct], *, version: int = 1) -> None:
        """Register `cls` as the current shape of its type, at schema `version`."""
        tag = event_tag(cls)
        self._types[tag] = _EventType(cls, version, msgspec.json.Decoder(cls))
        self._by_class[cls] = (tag, version)

    def upcaster(self, type_name: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Decorate a function that lifts a `type_name` payload from `from_version` to the next."""

        def register(function: Upcaster) -> Upcaster:
            self._upcasters[(type_name, from_version)] = function
            return function

        return register

    @property
    def type_names(self) -> list[str]:
        return list(self._types)

    def encode(self, event: msgspec.Struct) -> tuple[str, int, bytes]:
        """Return (type name, schema version, JSON bytes) for a registered event."""
        known = self._by_class.get(type(event))
        if known is None:
            raise UnknownEventType(event_tag(type(event)), self.type_names)
        return known[0], known[1], self._encoder.encode(event)

    def decode(self, type_name: str, schema_version: int, data: bytes) -> Any:
        entry = self._types.get(type_name)
        if entry is None:
            raise UnknownEventType(type_name, self.type_names)
        if schema_version == entry.version:
            return entry.decoder.decode(data)
        payload: dict[str, Any] = msgspec.json.decode(data)
        for version in range(schema_version, entry.version):
            lift = self._upcasters.get((type_name, version))
            if lift is None:
                raise UnknownEventType(
                    f"{type_name} v{version}",
                    [f"{name} v{known.version}" for name, known in self._types.items()],
                )
            payload = lift(payload)
        payload[entry.cls.__struct_config__.tag_field or "type"] = type_name
        return msgspec.convert(payload, entry.cls)
