"""The Host Factory domain, pure: templates, the capacity ledger, requests,
machines, and Host Factory's wire format.

Everything here is a value or a pure function: the aggregates' `decide`
and `evolve`, the templates file's checks, the inputs and outputs of the
five calls as msgspec Structs. Nothing here does I/O, starts a task or
imports trio, so every rule of the domain can be tested without a clock,
a store or a cloud, and the service, the providers and the proof tooling
all share one definition of a request.

May import: `hostsmith.runtime` (the aggregate kit) and
`hostsmith.actors.errors`. Nothing else of hostsmith's.
"""

from __future__ import annotations

from hostsmith.actors.hostfactory._machines import (
    MACHINE as MACHINE,
    ClaimReturn as ClaimReturn,
    MachineRecord as MachineRecord,
    RecordLaunch as RecordLaunch,
    RecordMachineState as RecordMachineState,
    ReleaseReturn as ReleaseReturn,
    ReturnClaimed as ReturnClaimed,
)
from hostsmith.actors.hostfactory._requests import (
    HF_STATUS as HF_STATUS,
    REQUEST as REQUEST,
    AcquireOpened as AcquireOpened,
    CheckDeadline as CheckDeadline,
    Machine as Machine,
    MachinesLaunched as MachinesLaunched,
    MachineState as MachineState,
    OpenAcquire as OpenAcquire,
    OpenReturn as OpenReturn,
    RecordFailure as RecordFailure,
    RecordLaunched as RecordLaunched,
    RecordStates as RecordStates,
    Request as Request,
    ReturnOpened as ReturnOpened,
    StateChange as StateChange,
    to_host_factory as to_host_factory,
)
from hostsmith.actors.hostfactory._templates import (
    CAPACITY as CAPACITY,
    UNLIMITED as UNLIMITED,
    Capacity as Capacity,
    Release as Release,
    Reserve as Reserve,
    Template as Template,
    TemplatesRead as TemplatesRead,
    parse_templates as parse_templates,
    read_templates as read_templates,
)
from hostsmith.actors.hostfactory._wire import (
    COMMANDS as COMMANDS,
    AvailableTemplates as AvailableTemplates,
    HostFactoryAnswer as HostFactoryAnswer,
    MachineRef as MachineRef,
    Machines as Machines,
    MachineStatus as MachineStatus,
    RequestAccepted as RequestAccepted,
    RequestMachines as RequestMachines,
    RequestStatus as RequestStatus,
    RequestStatusEntry as RequestStatusEntry,
    RequestStatuses as RequestStatuses,
    ReturnNotice as ReturnNotice,
    ReturnRequests as ReturnRequests,
    TemplateEntry as TemplateEntry,
    decode as decode,
)

__all__ = [
    "CAPACITY",
    "COMMANDS",
    "HF_STATUS",
    "MACHINE",
    "REQUEST",
    "UNLIMITED",
    "AcquireOpened",
    "AvailableTemplates",
    "Capacity",
    "CheckDeadline",
    "ClaimReturn",
    "HostFactoryAnswer",
    "Machine",
    "MachineRecord",
    "MachineRef",
    "MachineState",
    "MachineStatus",
    "Machines",
    "MachinesLaunched",
    "OpenAcquire",
    "OpenReturn",
    "RecordFailure",
    "RecordLaunch",
    "RecordLaunched",
    "RecordMachineState",
    "RecordStates",
    "Release",
    "ReleaseReturn",
    "Request",
    "RequestAccepted",
    "RequestMachines",
    "RequestStatus",
    "RequestStatusEntry",
    "RequestStatuses",
    "Reserve",
    "ReturnClaimed",
    "ReturnNotice",
    "ReturnOpened",
    "ReturnRequests",
    "StateChange",
    "Template",
    "TemplateEntry",
    "TemplatesRead",
    "decode",
    "parse_templates",
    "read_templates",
    "to_host_factory",
]
