"""The event registry: tags, schema versions, upcasting and unknown types."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from hostsmith.runtime import EventRegistry, UnknownEventType


class Renamed(msgspec.Struct, frozen=True, tag="HostRequested"):
    count: int


class HostRequestedV2(msgspec.Struct, frozen=True, tag="HostRequested"):
    count: int
    template: str
    priority: int = 0  # a new field with a default reads old payloads as they are


def test_an_event_round_trips_through_its_tag() -> None:
    registry = EventRegistry(Renamed)
    type_name, version, data = registry.encode(Renamed(3))
    assert (type_name, version) == ("HostRequested", 1)
    assert registry.decode(type_name, version, data) == Renamed(3)


def test_old_payloads_are_upcast_to_the_current_version() -> None:
    old = EventRegistry(Renamed)
    stored = old.encode(Renamed(3))
    new = EventRegistry()
    new.register(HostRequestedV2, version=2)

    @new.upcaster("HostRequested", from_version=1)
    def add_template(payload: dict[str, Any]) -> dict[str, Any]:
        return {**payload, "template": "default"}

    assert new.decode(*stored) == HostRequestedV2(count=3, template="default")


def test_a_missing_upcaster_is_named() -> None:
    registry = EventRegistry()
    registry.register(HostRequestedV2, version=2)
    with pytest.raises(
        UnknownEventType,
        match=r"^stored event type 'HostRequested v1' is not registered \(registered: HostRequested v2\)",
    ):
        registry.decode("HostRequested", 1, b'{"type":"HostRequested","count":1}')


def test_an_unknown_type_is_an_error_that_names_it() -> None:
    registry = EventRegistry(Renamed)
    with pytest.raises(
        UnknownEventType,
        match=r"^stored event type 'Gone' is not registered \(registered: HostRequested\); register its class",
    ):
        registry.decode("Gone", 1, b"{}")


def test_an_untagged_event_class_is_refused_with_the_fix() -> None:
    class Plain(msgspec.Struct):
        n: int

    with pytest.raises(TypeError, match=r"class Plain\(msgspec.Struct, tag=True, frozen=True\)"):
        EventRegistry(Plain)
