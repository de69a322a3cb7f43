"""Host Factory's wire format: the five calls' inputs, decoded and checked.

Both front ends (the HTTP API and `hostsmith hf` running in process) decode
through `decode(command, body)`, so they accept exactly the same inputs and
fail with exactly the same messages. Inputs are decoded by
msgspec into structs, which names the bad field (`at $.template.templateId`);
a `requests` that is a single object rather than a list is accepted, as
some Host Factory versions send it.
"""

from __future__ import annotations

import msgspec

from hostsmith.actors.errors import InvalidInput, UnknownCommand

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


class MachineRef(msgspec.Struct, frozen=True):
    name: str = ""
    machine_id: str = msgspec.field(default="", name="machineId")


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
    """Decode a command's JSON input, or raise an error naming what is wrong."""
    if command not in INPUTS:
        raise UnknownCommand(command, COMMANDS)
    if not body.strip():
        body = b"{}"
    try:
        return msgspec.json.decode(body, type=INPUTS[command])
    except msgspec.DecodeError as error:
        raise InvalidInput(command, error) from None
