"""Host Factory's output shapes (HOSTFACTORY.md), as strict msgspec types, for conformance checks.

Decoding an output with these fails on a missing mandatory field, a wrong
type, or a status or result outside the protocol's words.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec


class TemplateOut(msgspec.Struct):
    templateId: Annotated[str, msgspec.Meta(pattern=r"^[0-9A-Za-z_-]{1,64}$")]
    maxNumber: Annotated[int, msgspec.Meta(ge=-1, le=10000)]
    attributes: dict[str, tuple[Literal["String", "Numeric", "Boolean"], str]]
    availableNumber: Annotated[int, msgspec.Meta(ge=0)] | None = None

    def __post_init__(self) -> None:
        missing = {"type", "ncpus", "nram"} - set(self.attributes)
        if missing:
            raise ValueError(f"template {self.templateId} lacks attributes {sorted(missing)}")


class Templates(msgspec.Struct):
    templates: list[TemplateOut]
    message: str


class RequestAccepted(msgspec.Struct, forbid_unknown_fields=True):
    requestId: str
    message: str


class MachineOut(msgspec.Struct, forbid_unknown_fields=True):
    machineId: str
    name: str
    result: Literal["executing", "succeed", "fail"]
    status: str
    privateIpAddress: str
    publicIpAddress: str
    launchtime: int
    message: str

    def __post_init__(self) -> None:
        if self.result == "fail" and not self.message:
            raise ValueError(f"machine {self.machineId} failed without a message")


class RequestOut(msgspec.Struct, forbid_unknown_fields=True):
    requestId: str
    status: Literal["running", "complete", "complete_with_error"]
    message: str
    machines: list[MachineOut]


class RequestStatus(msgspec.Struct):
    requests: list[RequestOut]


class ReturnNotice(msgspec.Struct, forbid_unknown_fields=True):
    machine: str
    gracePeriod: Annotated[int, msgspec.Meta(ge=0)]


class ReturnRequests(msgspec.Struct):
    message: str
    requests: list[ReturnNotice]


SHAPES: dict[str, type[msgspec.Struct]] = {
    "getAvailableTemplates": Templates,
    "requestMachines": RequestAccepted,
    "requestReturnMachines": RequestAccepted,
    "getRequestStatus": RequestStatus,
    "getReturnRequests": ReturnRequests,
}


class Refusal(msgspec.Struct, forbid_unknown_fields=True):
    """Any failed call: one message, which Host Factory shows, and nothing else."""

    message: Annotated[str, msgspec.Meta(min_length=1)]


def conforms(command: str, output: object) -> None:
    """Raise if `output` is not what Host Factory expects from `command`."""
    msgspec.convert(output, SHAPES[command], strict=True)


def refuses(output: object) -> None:
    """Raise if `output` is not a Host Factory error answer: `{"message": "..."}`."""
    msgspec.convert(output, Refusal, strict=True)


def answers(command: str, status: int, output: object) -> None:
    """Check an answer of `hostsmith hf` (exit status) or the API (0 for HTTP 200)."""
    if status == 0:
        conforms(command, output)
    else:
        refuses(output)
