"""The dispatch of Host Factory's five calls: decoded input in, the service's answer out.

Both front ends (the HTTP API and `hostsmith hf` in process) come through
`answer(service, command, body)`, so a call means the same thing however it
arrives. Checks that the wire types cannot express (a positive count) are
made here, before the service is asked.
"""

from __future__ import annotations

from hostsmith.actors.errors import Refused
from hostsmith.actors.hostfactory import (
    HostFactoryAnswer,
    Machines,
    RequestMachines,
    RequestStatus,
    decode,
)
from hostsmith.actors.service._hostfactory import HostFactory


async def answer(service: HostFactory, command: str, body: bytes) -> HostFactoryAnswer:
    """Serve one Host Factory call; a HostFactoryError carries the message to show."""
    given = decode(command, body)
    if isinstance(given, RequestMachines):
        count = given.template.machine_count
        if count <= 0:
            raise Refused(f"machineCount must be at least 1, not {count}")
        return await service.request_machines(given.template.template_id, count)
    if isinstance(given, RequestStatus):
        return await service.get_request_status(given.request_ids())
    if isinstance(given, Machines):
        machines = given.listed()
        if command == "requestReturnMachines":
            return await service.request_return_machines(machines)
        return await service.get_return_requests(machines)
    return await service.get_available_templates()
