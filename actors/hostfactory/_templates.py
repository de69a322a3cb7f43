"""Host Factory templates: the file that describes them, and the capacity each one has.

A template is configuration, read from a Host Factory templates file
(`{"templates": [...]}`, as in Symphony's `awsprov_templates.json`). It is
decoded into typed structs by msgspec, which names the exact field of a bad
value (`at $.templates[2].maxNumber`); the few rules that types cannot say
(mandatory attributes, `fleetRole` for spot, unique ids) are checked after.

How many machines a template has out at any moment is *state*, and it must
have one authority, or two racing requests could both see room for the last
machine. That authority is the `template` aggregate, one per template id: a
request reserves capacity from it before anything is provisioned, and
releases it when machines are returned or fail. Because an aggregate decides
one command at a time against all previous events, `maxNumber` cannot be
exceeded however many requests race.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal

import msgspec

from hostsmith.actors.errors import TemplateError
from hostsmith.runtime import AggregateKind, EventRegistry, Rejected

UNLIMITED = 10_000
"""What `maxNumber: -1` means: Host Factory's own ceiling."""

TemplateId = Annotated[str, msgspec.Meta(pattern=r"^[0-9A-Za-z_-]{1,64}$")]
Attribute = tuple[str, str]  # [kind, value as a string], e.g. ["Numeric", "2"]


class Template(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    template_id: TemplateId
    max_number: Annotated[int, msgspec.Meta(ge=-1, le=UNLIMITED)]
    attributes: dict[str, Attribute]
    price_type: Literal["ondemand", "spot", "heterogeneous"] = "ondemand"
    image_id: str | None = None
    subnet_id: str | list[str] | None = None
    vm_type: str | None = None
    vm_types: dict[str, Annotated[int, msgspec.Meta(ge=1)]] | None = None
    security_group_ids: list[str] | None = None
    key_name: str | None = None
    instance_tags: str | None = None
    fleet_role: str | None = None
    max_spot_price: float | None = None
    spot_fleet_request_expiry: Annotated[int, msgspec.Meta(ge=1)] = 30
    allocation_strategy: (
        Literal["capacityOptimized", "capacityOptimizedPrioritized", "diversified", "lowestPrice"]
        | None
    ) = None
    percent_on_demand: Annotated[int, msgspec.Meta(ge=0, le=100)] | None = None
    root_device_volume_size: Annotated[int, msgspec.Meta(ge=1)] | None = None
    volume_type: str | None = None
    iops: Annotated[int, msgspec.Meta(ge=1)] | None = None
    instance_profile: str | None = None
    user_data: str | None = None
    """The instances' user data, as text (a script or cloud-init); encoded as AWS needs."""
    user_data_script: str | None = None
    """A file whose text is the user data (relative to the templates file); read when
    the file is loaded, never with `userData` as well."""
    provider_api: Literal["RunInstances", "EC2Fleet", "SpotFleet", "ASG"] | None = None
    fleet_type: Literal["instant", "request", "maintain"] | None = None

    @property
    def limit(self) -> int:
        """The most machines this template may have out at once."""
        return UNLIMITED if self.max_number == -1 else self.max_number


class TemplatesFile(msgspec.Struct, frozen=True):
    """The file's shape, before each template is checked on its own."""

    templates: list[dict[str, Any]]


class TemplatesRead(msgspec.Struct, frozen=True):
    """What a templates file gave: the usable templates, and what was not used, by name."""

    templates: dict[str, Template]
    left_out: list[str]
    """One line per template that cannot be used: where it is and why."""
    ignored_keys: list[str]
    """One line per template with keys hostsmith does not use."""


MANDATORY_ATTRIBUTES = ("type", "ncpus", "nram")
KNOWN_KEYS = frozenset(field.encode_name for field in msgspec.structs.fields(Template))


def read_templates(
    data: bytes,
    source: str = "templates file",
    check: Callable[[Template], None] | None = None,
) -> TemplatesRead:
    """Every template of a Host Factory templates file that can be used.

    A template that cannot be used (a bad value, a rule broken, or one the
    provider's `check` refuses) is left out and named, and the others are
    kept: one bad template must not take every call down. Only a file that
    is not a templates file at all is an error.
    """
    try:
        entries = msgspec.json.decode(data, type=TemplatesFile).templates
    except msgspec.DecodeError as error:
        raise TemplateError(f"{source}: {error}") from None
    templates: dict[str, Template] = {}
    left_out: list[str] = []
    ignored: list[str] = []
    for index, entry in enumerate(entries):
        at = f"$.templates[{index}]"
        try:
            template = msgspec.convert(entry, Template)
        except msgspec.ValidationError as error:
            reason = str(error)
            reason = (
                reason.replace("`$", f"`{at}") if " - at `$" in reason else f"{reason} - at `{at}`"
            )
            left_out.append(f"{source}: {reason}")
            continue
        where = f"{source}: {at} ({template.template_id})"
        try:
            _check_rules(template, templates)
            if check is not None:
                check(template)
        except TemplateError as broken:
            left_out.append(f"{where}: {broken}")
            continue
        templates[template.template_id] = template
        unknown = sorted(set(entry) - KNOWN_KEYS)
        if unknown:
            ignored.append(f"{where}: {', '.join(unknown)} not used by hostsmith")
    return TemplatesRead(templates, left_out, ignored)


def _check_rules(template: Template, earlier: dict[str, Template]) -> None:
    """The rules that types cannot say."""
    missing = [name for name in MANDATORY_ATTRIBUTES if name not in template.attributes]
    if missing:
        raise TemplateError(f"attributes must include {', '.join(missing)}")
    if template.template_id in earlier:
        raise TemplateError(f"templateId {template.template_id!r} appears twice")


def parse_templates(data: bytes, source: str = "templates file") -> dict[str, Template]:
    """Decode and check a templates file strictly: the first template left out is an error."""
    read = read_templates(data, source)
    if read.left_out:
        raise TemplateError(read.left_out[0])
    return read.templates


# -- the capacity ledger: one aggregate per template ---------------------------


class Reserve(msgspec.Struct, frozen=True):
    request_id: str
    count: int
    limit: int
    at: float = 0.0
    """When (epoch seconds): lets a restart find reservations whose request never opened."""


class Release(msgspec.Struct, frozen=True):
    request_id: str
    count: int


class CapacityReserved(msgspec.Struct, frozen=True, tag=True):
    request_id: str
    count: int
    at: float = 0.0


class CapacityReleased(msgspec.Struct, frozen=True, tag=True):
    request_id: str
    count: int


class Capacity(msgspec.Struct, frozen=True):
    template_id: str
    reserved: dict[str, int] = {}  # machines out, by request id
    in_use: int = 0
    reserved_at: dict[str, float] = {}

    def available(self, limit: int) -> int:
        return max(0, limit - self.in_use)


def decide_capacity(state: Capacity, command: Reserve | Release) -> Sequence[msgspec.Struct]:
    if isinstance(command, Release):
        held = state.reserved.get(command.request_id, 0)
        count = min(held, command.count)
        return [CapacityReleased(command.request_id, count)] if count > 0 else []
    if command.count <= 0:
        raise Rejected(f"machineCount must be at least 1, not {command.count}")
    if command.request_id in state.reserved:
        return []  # reserved already: a retry
    available = state.available(command.limit)
    if command.count > available:
        raise Rejected(
            f"template {state.template_id} has {available} of {command.limit} machines "
            f"available; cannot provision {command.count}"
        )
    return [CapacityReserved(command.request_id, command.count, command.at)]


def evolve_capacity(state: Capacity, event: msgspec.Struct) -> Capacity:
    reserved, since = dict(state.reserved), dict(state.reserved_at)
    if isinstance(event, CapacityReserved):
        reserved[event.request_id] = event.count
        since[event.request_id] = event.at
        return Capacity(state.template_id, reserved, state.in_use + event.count, since)
    if isinstance(event, CapacityReleased):
        left = reserved.pop(event.request_id, 0) - event.count
        if left > 0:
            reserved[event.request_id] = left
        else:
            since.pop(event.request_id, None)
        return Capacity(state.template_id, reserved, state.in_use - event.count, since)
    raise TypeError(f"not a template event: {event!r}")


CAPACITY = AggregateKind(
    name="template",
    initial=lambda template_id: Capacity(template_id),
    decide=decide_capacity,
    evolve=evolve_capacity,
    events=EventRegistry(CapacityReserved, CapacityReleased),
    state_type=Capacity,
    snapshot_every=500,
)
