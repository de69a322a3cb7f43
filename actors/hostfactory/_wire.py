"""Host Factory's wire format: the five calls' inputs, decoded and checked, and their outputs.

Outputs are msgspec Structs whose encoded names are exactly HOSTFACTORY.md's
(camelCase, and `launchtime` as Host Factory spells it), so the service
returns typed values and each front end only encodes them.

Both front ends (the HTTP API and `hostsmith hf` running in process) decode
through `decode(command, body)`, so they accept exactly the same inputs and
fail with exactly the same messages. Inputs are decoded by
msgspec into structs, which names the bad field (`at $.template.templateId`);
a `requests` that is a single object rather than a list is accepted, as
some Host Factory versions send it.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from hostsmith.actors.errors import InvalidInput, UnknownCommand
from hostsmith.actors.hostfactory._templates import Template

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

    def request_ids(self) -> list[str]:
        """The ids asked about, whether Host Factory sent a list or one object."""
        listed = self.requests if isinstance(self.requests, list) else [self.requests]
        return [ref.request_id for ref in listed]


class MachineRef(msgspec.Struct, frozen=True):
    name: str = ""
    machine_id: str = msgspec.field(default="", name="machineId")


class Machines(msgspec.Struct, frozen=True):
    """Hosts, as a list, as one object, or (IBM's requestReturnMachines page) as the
    top-level object itself: `{"name": "host"}`."""

    machines: list[MachineRef] | MachineRef = []
    name: str = ""
    machine_id: str = msgspec.field(default="", name="machineId")

    def listed(self) -> list[MachineRef]:
        if isinstance(self.machines, MachineRef):
            return [self.machines]
        if not self.machines and (self.name or self.machine_id):
            return [MachineRef(self.name, self.machine_id)]
        return self.machines


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


# -- outputs: what each call answers, field for field as HOSTFACTORY.md writes it ----------------

HostFactoryStatus = Literal["running", "complete", "complete_with_error"]
MachineResult = Literal["executing", "succeed", "fail"]


class TemplateEntry(Template, frozen=True, kw_only=True):
    """A template as getAvailableTemplates lists it: the template, and how many more it has."""

    available_number: Annotated[int, msgspec.Meta(ge=0)]


class AvailableTemplates(msgspec.Struct, frozen=True):
    templates: list[TemplateEntry]
    message: str = "Get available templates success."


class RequestAccepted(msgspec.Struct, frozen=True, rename="camel"):
    """requestMachines' and requestReturnMachines' answer."""

    request_id: str
    message: str


class MachineStatus(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    machine_id: str
    name: str
    result: MachineResult
    status: str
    private_ip_address: str
    public_ip_address: str
    launchtime: int
    """Epoch seconds (UTC); Host Factory spells it in lower case."""
    message: str
    """Mandatory when `result` is `fail`."""


class RequestStatusEntry(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    request_id: str
    status: HostFactoryStatus
    message: str
    machines: list[MachineStatus]


class RequestStatuses(msgspec.Struct, frozen=True):
    requests: list[RequestStatusEntry]
    message: str = ""


class ReturnNotice(msgspec.Struct, frozen=True, rename="camel"):
    machine: str
    """The host name."""
    grace_period: Annotated[int, msgspec.Meta(ge=0)]
    """Seconds before the cloud takes it back; 0 when it is gone already."""


class ReturnRequests(msgspec.Struct, frozen=True):
    requests: list[ReturnNotice]
    message: str = "Machines to return."


HostFactoryAnswer = AvailableTemplates | RequestAccepted | RequestStatuses | ReturnRequests
