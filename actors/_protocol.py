"""Host Factory's inputs, decoded and checked, and the dispatch of its five calls.

Both front ends (the HTTP API and `hostsmith hf` running in process) come
through `answer(service, command, body)`, so they accept exactly the same
inputs and fail with exactly the same messages. Inputs are decoded by
msgspec into structs, which names the bad field (`at $.template.templateId`);
a `requests` that is a single object rather than a list is accepted, as
some Host Factory versions send it.
"""

from __future__ import annotations

from typing import Any

import msgspec

from hostsmith.actors._service import HostFactory, HostFactoryError, MachineRef

COMMANDS = (
    "getAvailableTemplates",
    "requestMachines",
    "getRequestStatus",
    "requestReturnMachines",
    "getReturnRequests",
)


class TemplateAsk(msgspec.Struct, frozen=True):
    template_id: str = msgspec.field(name="templateId")
    machine_count: int = msgspec.field(name="machineCount")


class RequestMachines(msgspec.Struct, frozen=True):
    template: TemplateAsk


class RequestRef(msgspec.Struct, frozen=True):
    request_id: str = msgspec.field(name="requestId")


class RequestStatus(msgspec.Struct, frozen=True):
    requests: list[RequestRef] | RequestRef


class Machines(msgspec.Struct, frozen=True):
    machines: list[MachineRef] | MachineRef = []


class Empty(msgspec.Struct, frozen=True):
    pass


INPUTS: dict[str, type[msgspec.Struct]] = {
    "getAvailableTemplates": Empty,
    "requestMachines": RequestMachines,
    "getRequestStatus": RequestStatus,
    "requestReturnMachines": Machines,
    "getReturnRequests": Machines,
}


def decode(command: str, body: bytes) -> msgspec.Struct:
    """Decode a command's JSON input, or raise HostFactoryError naming what is wrong."""
    if command not in INPUTS:
        raise HostFactoryError(f"unknown command {command!r}: use one of {', '.join(COMMANDS)}")
    if not body.strip():
        body = b"{}"
    try:
        return msgspec.json.decode(body, type=INPUTS[command])
    except msgspec.DecodeError as error:
        kind = (
            "malformed JSON"
            if "malformed" in str(error) or "truncated" in str(error)
            else "invalid input"
        )
        raise HostFactoryError(f"{kind} for {command}: {error}") from None


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


async def answer(service: HostFactory, command: str, body: bytes) -> dict[str, Any]:
    """Serve one Host Factory call; HostFactoryError carries the message to show."""
    given = decode(command, body)
    if isinstance(given, RequestMachines):
        count = given.template.machine_count
        if count <= 0:
            raise HostFactoryError(f"machineCount must be at least 1, not {count}")
        return await service.request_machines(given.template.template_id, count)
    if isinstance(given, RequestStatus):
        return await service.get_request_status([r.request_id for r in _listed(given.requests)])
    if isinstance(given, Machines):
        machines = _listed(given.machines)
        if command == "requestReturnMachines":
            return await service.request_return_machines(machines)
        return await service.get_return_requests(machines)
    return await service.get_available_templates()
