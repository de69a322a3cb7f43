"""`aws`: the EC2 provider, on aiobotocore's httpx backend (native to trio).

The template's `providerApi` chooses how machines are asked for. This module
implements `RunInstances`, the default, and `EC2Fleet`; `SpotFleet` and
`ASG` are refused with a message saying so until they land.

`EC2Fleet` makes one launch template per request, named
`hostsmith-<requestId>`, because only a launch template can tag the
instances of a `request` or `maintain` fleet; with the request's tag on
every instance, all handlers find their machines the same way. The fleet
itself carries the tag too, which is how a repeat finds it. Returning
machines lowers a `maintain` fleet's target first (or it would replace
them), and a fleet with nothing left is deleted with its launch template.

Why it is built this way:
- Idempotent per request id, as the provider protocol demands. Every
  instance carries the tag `hostsmith:request-id`, and `RunInstances` gets
  the request id as its `ClientToken`. A repeat (the daemon crashed after
  the call but before recording its answer) first looks for instances with
  that tag and returns them, so no request ever launches twice.
- Errors are classified where they arise. Throttling, capacity and 5xx
  answers are `TransientProviderError`s, which the gateway retries behind
  its circuit breaker; everything else is permanent and fails the request
  with AWS's own code and message. botocore's own retries are off, so that
  there is one retry policy, the gateway's.
- Credentials and region come from the standard AWS chain (environment,
  profile, instance role); `[aws] endpoint` points it at a stand-in such as
  moto. Access key ids are masked in every message this module makes, and
  secrets never enter one.
- The module knows nothing of Host Factory's bookkeeping: it maps EC2's
  answers onto the provider protocol's `Machine`s and states, nothing more.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import msgspec

from hostsmith.actors._provider import (
    PermanentProviderError,
    ProviderError,
    Provisioned,
    ReclaimNotice,
    TransientProviderError,
)
from hostsmith.actors._requests import Machine, MachineState, StateChange
from hostsmith.actors._templates import Template, TemplateError

T = TypeVar("T")

REQUEST_TAG = "hostsmith:request-id"
TEMPLATE_TAG = "hostsmith:template-id"
SPOT_NOTICE_SECONDS = 120
"""AWS warns two minutes before it takes a spot instance back."""

TRANSIENT_CODES = frozenset(
    {
        "RequestLimitExceeded",
        "InsufficientInstanceCapacity",
        "InsufficientCapacity",
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "Unavailable",
        "RequestTimeout",
    }
)

_STATES: dict[str, MachineState] = {
    "pending": "pending",
    "running": "running",
    "shutting-down": "shutting-down",
    "terminated": "terminated",
    "stopping": "failed",
    "stopped": "failed",
}

SUPPORTED_APIS = ("RunInstances", "EC2Fleet")
REQUIRED_FIELDS = {"RunInstances": ("imageId", "vmType"), "EC2Fleet": ("imageId",)}

_ACCESS_KEY = re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{12,}\b")


def redact(text: str) -> str:
    """Mask AWS access key ids (the secret keys never reach a message at all)."""
    return _ACCESS_KEY.sub(lambda m: m.group(1) + "*" * 12, text)


class AwsSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    region: str = ""
    """Empty: the standard chain (AWS_REGION, AWS_DEFAULT_REGION, the profile)."""
    endpoint: str = ""
    """Empty: AWS itself. Set it to talk to a stand-in such as moto."""


def check_templates(templates: dict[str, Template]) -> None:
    """Refuse, by name, a template the aws provider cannot launch."""
    for template in templates.values():
        api = template.provider_api or "RunInstances"
        where = f"template {template.template_id!r} (providerApi {api})"
        if api not in SUPPORTED_APIS:
            raise TemplateError(
                f"{where}: the aws provider supports providerApi {', '.join(SUPPORTED_APIS)} "
                "so far; use one of those for this template"
            )
        values = msgspec.to_builtins(template)
        missing = [name for name in REQUIRED_FIELDS[api] if not values.get(name)]
        if api == "EC2Fleet" and not (template.vm_type or template.vm_types):
            missing.append("vmType or vmTypes")
        if missing:
            raise TemplateError(f"{where}: needs {' and '.join(missing)}; add it to the template")


def classify_code(code: str, message: str, status: int = 0) -> ProviderError:
    """A provider error for AWS's error `code`: transient if retrying may help."""
    text = f"{code}: {redact(message)}"
    if code in TRANSIENT_CODES or code.startswith("Throttling") or status >= 500:
        return TransientProviderError(text)
    if code in {"AuthFailure", "UnrecognizedClientException", "InvalidClientTokenId"}:
        return PermanentProviderError(
            f"{text} (check the AWS credentials: AWS_PROFILE, AWS_ACCESS_KEY_ID, or the "
            "instance role)"
        )
    return PermanentProviderError(text)


def classify(error: Exception) -> ProviderError:
    """Turn whatever aiobotocore raised into a transient or a permanent provider error."""
    from botocore.exceptions import (
        ClientError,
        ConnectionError as BotoConnectionError,
        NoCredentialsError,
        NoRegionError,
    )

    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        return classify_code(
            str(details.get("Code", "Unknown")), str(details.get("Message", error)), status
        )
    if isinstance(error, NoCredentialsError):
        return PermanentProviderError(
            "no AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or run where an instance role is available"
        )
    if isinstance(error, NoRegionError):
        return PermanentProviderError(
            "no AWS region configured: set [aws] region in the config file, or AWS_REGION"
        )
    if isinstance(error, BotoConnectionError | ConnectionError | OSError):
        return TransientProviderError(f"cannot reach AWS: {redact(str(error))}")
    return PermanentProviderError(f"{type(error).__name__}: {redact(str(error))}")


class AwsProvider:
    name = "aws"

    def __init__(self, ec2: Any) -> None:
        self.ec2 = ec2

    # -- the provider protocol -----------------------------------------------

    async def provision(self, request_id: str, template: Template, count: int) -> Provisioned:
        api = template.provider_api or "RunInstances"
        if api == "EC2Fleet":
            return await self._provision_fleet(request_id, template, count)
        if api != "RunInstances":
            raise PermanentProviderError(f"providerApi {api} is not supported by the aws provider")
        existing = await self._instances_of(request_id)
        if existing:
            return Provisioned(tuple(_machine(instance) for instance in existing))
        arguments = _run_instances(request_id, template, count)
        answer = await self._call(self.ec2.run_instances, **arguments)
        return Provisioned(tuple(_machine(instance) for instance in answer["Instances"]))

    async def describe(self, machine_ids: Sequence[str]) -> list[StateChange]:
        found = {i["InstanceId"]: i for i in await self._instances(machine_ids)}
        changes = []
        for machine_id in machine_ids:
            instance = found.get(machine_id)
            if instance is None:  # EC2 forgets terminated instances after a while
                changes.append(StateChange(machine_id, "terminated", "no longer known to EC2"))
                continue
            changes.append(StateChange(machine_id, *_state(instance)))
        return changes

    async def terminate(self, machine_ids: Sequence[str]) -> None:
        instances = await self._instances(machine_ids)
        alive = [i for i in instances if i["State"]["Name"] not in ("shutting-down", "terminated")]
        fleets = await self._fleets_of({_tag(i, REQUEST_TAG) for i in instances} - {""})
        for request_id, fleet in fleets.items():
            leaving = {i["InstanceId"] for i in alive if _tag(i, REQUEST_TAG) == request_id}
            await self._shrink_fleet(request_id, fleet, leaving)
        if alive:
            await self._call(
                self.ec2.terminate_instances, InstanceIds=[i["InstanceId"] for i in alive]
            )

    async def reclaim_notices(self) -> list[ReclaimNotice]:
        answer = await self._call(
            self.ec2.describe_spot_instance_requests,
            Filters=[{"Name": "status-code", "Values": ["marked-for-termination"]}],
        )
        ids = [r["InstanceId"] for r in answer.get("SpotInstanceRequests", []) if "InstanceId" in r]
        if not ids:
            return []
        return [
            ReclaimNotice(i["InstanceId"], _name(i), SPOT_NOTICE_SECONDS)
            for i in await self._instances(ids)
        ]

    # -- EC2 Fleet ---------------------------------------------------------------

    async def _provision_fleet(
        self, request_id: str, template: Template, count: int
    ) -> Provisioned:
        fleet = (await self._fleets_of({request_id})).get(request_id)
        if fleet is None:
            launch_template = await self._launch_template(request_id, template)
            fleet_type = template.fleet_type or "instant"
            answer = await self._call(
                self.ec2.create_fleet, **_create_fleet(request_id, template, count, launch_template)
            )
            for error in answer.get("Errors", []) if fleet_type == "instant" else []:
                if not answer.get("Instances"):
                    raise classify_code(str(error.get("ErrorCode")), str(error.get("ErrorMessage")))
            fleet = {"FleetId": answer["FleetId"], "Type": fleet_type}
        machines = tuple(_machine(i) for i in await self._instances_of(request_id))
        # An instant fleet launches once; a request or maintain fleet keeps
        # launching until it has its capacity, so the request polls again.
        final = fleet.get("Type") == "instant" or len(machines) >= count
        return Provisioned(machines, final=final)

    async def _launch_template(self, request_id: str, template: Template) -> str:
        """One launch template per request: it carries the request's tags onto every instance."""
        name = f"hostsmith-{request_id}"[:128]
        try:
            answer = await self.ec2.create_launch_template(
                LaunchTemplateName=name,
                LaunchTemplateData=_launch_template_data(request_id, template),
                ClientToken=request_id[:64],
            )
            return str(answer["LaunchTemplate"]["LaunchTemplateId"])
        except Exception as error:
            code = getattr(error, "response", {}).get("Error", {}).get("Code", "")
            if code != "InvalidLaunchTemplateName.AlreadyExistsException":
                raise classify(error) from None
        answer = await self._call(self.ec2.describe_launch_templates, LaunchTemplateNames=[name])
        return str(answer["LaunchTemplates"][0]["LaunchTemplateId"])

    async def _fleets_of(self, request_ids: set[str]) -> dict[str, dict[str, Any]]:
        """The live EC2 Fleets of these requests, found by their request-id tag."""
        if not request_ids:
            return {}
        found: dict[str, dict[str, Any]] = {}
        arguments: dict[str, Any] = {
            "Filters": [{"Name": "fleet-state", "Values": ["submitted", "active", "modifying"]}]
        }
        while True:
            answer = await self._call(self.ec2.describe_fleets, **arguments)
            for fleet in answer.get("Fleets", []):
                request_id = _tag(fleet, REQUEST_TAG)
                if request_id in request_ids:
                    found[request_id] = fleet
            token = answer.get("NextToken")
            if not token:
                return found
            arguments["NextToken"] = token

    async def _shrink_fleet(
        self, request_id: str, fleet: dict[str, Any], leaving: set[str]
    ) -> None:
        """Keep a fleet from replacing returned machines; delete it once nothing is left."""
        staying = [
            i for i in await self._instances_of(request_id) if i["InstanceId"] not in leaving
        ]
        if not staying:
            await self._call(
                self.ec2.delete_fleets, FleetIds=[fleet["FleetId"]], TerminateInstances=True
            )
            with contextlib.suppress(ProviderError):  # a leftover template costs nothing
                await self._call(
                    self.ec2.delete_launch_template,
                    LaunchTemplateName=f"hostsmith-{request_id}"[:128],
                )
        elif fleet.get("Type") == "maintain":
            await self._call(
                self.ec2.modify_fleet,
                FleetId=fleet["FleetId"],
                TargetCapacitySpecification={"TotalTargetCapacity": len(staying)},
            )

    # -- EC2 -------------------------------------------------------------------

    async def _instances_of(self, request_id: str) -> list[dict[str, Any]]:
        return await self._describe_instances(
            [
                {"Name": f"tag:{REQUEST_TAG}", "Values": [request_id]},
                {"Name": "instance-state-name", "Values": ["pending", "running"]},
            ]
        )

    async def _instances(self, machine_ids: Sequence[str]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for start in range(0, len(machine_ids), 200):  # a filter takes 200 values
            chunk = list(machine_ids[start : start + 200])
            found += await self._describe_instances([{"Name": "instance-id", "Values": chunk}])
        return found

    async def _describe_instances(self, filters: list[dict[str, Any]]) -> list[dict[str, Any]]:
        instances: list[dict[str, Any]] = []
        arguments: dict[str, Any] = {"Filters": filters}
        while True:
            answer = await self._call(self.ec2.describe_instances, **arguments)
            for reservation in answer.get("Reservations", []):
                instances.extend(reservation.get("Instances", []))
            token = answer.get("NextToken")
            if not token:
                return instances
            arguments["NextToken"] = token

    async def _call(self, operation: Callable[..., Awaitable[T]], **arguments: Any) -> T:
        try:
            return await operation(**arguments)
        except Exception as error:
            raise classify(error) from None


def _run_instances(request_id: str, template: Template, count: int) -> dict[str, Any]:
    tags = _instance_tags(request_id, template)
    arguments: dict[str, Any] = {
        "ImageId": template.image_id,
        "InstanceType": template.vm_type,
        # All or nothing: a call retried with the same ClientToken then never
        # leaves a request half-launched. EC2Fleet is the way to take what
        # capacity there is.
        "MinCount": count,
        "MaxCount": count,
        "ClientToken": request_id[:64],
        "TagSpecifications": [{"ResourceType": "instance", "Tags": tags}],
    }
    subnet = template.subnet_id
    if isinstance(subnet, list):
        subnet = subnet[0] if subnet else None
    if subnet:
        arguments["SubnetId"] = subnet
    if template.security_group_ids:
        arguments["SecurityGroupIds"] = template.security_group_ids
    if template.key_name:
        arguments["KeyName"] = template.key_name
    if template.user_data:
        arguments["UserData"] = template.user_data
    if template.instance_profile:
        key = "Arn" if template.instance_profile.startswith("arn:") else "Name"
        arguments["IamInstanceProfile"] = {key: template.instance_profile}
    if template.price_type == "spot":
        options: dict[str, Any] = {"SpotInstanceType": "one-time"}
        if template.max_spot_price is not None:
            options["MaxPrice"] = str(template.max_spot_price)
        arguments["InstanceMarketOptions"] = {"MarketType": "spot", "SpotOptions": options}
    return arguments


def _instance_tags(request_id: str, template: Template) -> list[dict[str, str]]:
    return [
        {"Key": REQUEST_TAG, "Value": request_id},
        {"Key": TEMPLATE_TAG, "Value": template.template_id},
        *_template_tags(template),
    ]


def _launch_template_data(request_id: str, template: Template) -> dict[str, Any]:
    data: dict[str, Any] = {
        "ImageId": template.image_id,
        "TagSpecifications": [
            {"ResourceType": "instance", "Tags": _instance_tags(request_id, template)}
        ],
    }
    if template.security_group_ids:
        data["SecurityGroupIds"] = template.security_group_ids
    if template.key_name:
        data["KeyName"] = template.key_name
    if template.user_data:
        data["UserData"] = template.user_data
    if template.instance_profile:
        key = "Arn" if template.instance_profile.startswith("arn:") else "Name"
        data["IamInstanceProfile"] = {key: template.instance_profile}
    return data


def _create_fleet(
    request_id: str, template: Template, count: int, launch_template: str
) -> dict[str, Any]:
    weights = template.vm_types or {template.vm_type or "": 1}
    subnets = template.subnet_id if isinstance(template.subnet_id, list) else [template.subnet_id]
    overrides = [
        {"InstanceType": vm_type, "WeightedCapacity": float(weight)}
        | ({"SubnetId": subnet} if subnet else {})
        for vm_type, weight in weights.items()
        for subnet in subnets
    ]
    capacity: dict[str, Any] = {"TotalTargetCapacity": count}
    if template.price_type == "ondemand":
        capacity |= {"DefaultTargetCapacityType": "on-demand", "OnDemandTargetCapacity": count}
    elif template.price_type == "spot":
        capacity |= {"DefaultTargetCapacityType": "spot", "SpotTargetCapacity": count}
    else:  # heterogeneous: spot first, on-demand for the percentage asked for
        on_demand = count * (template.percent_on_demand or 0) // 100
        capacity |= {
            "DefaultTargetCapacityType": "spot",
            "OnDemandTargetCapacity": on_demand,
            "SpotTargetCapacity": count - on_demand,
        }
    arguments: dict[str, Any] = {
        "ClientToken": request_id[:64],
        "Type": template.fleet_type or "instant",
        "TargetCapacitySpecification": capacity,
        "LaunchTemplateConfigs": [
            {
                "LaunchTemplateSpecification": {
                    "LaunchTemplateId": launch_template,
                    "Version": "$Latest",
                },
                "Overrides": overrides,
            }
        ],
        "TagSpecifications": [
            {"ResourceType": "fleet", "Tags": [{"Key": REQUEST_TAG, "Value": request_id}]}
        ],
    }
    if template.price_type != "ondemand":
        spot: dict[str, Any] = {}
        if template.allocation_strategy:
            spot["AllocationStrategy"] = _FLEET_STRATEGIES[template.allocation_strategy]
        if template.max_spot_price is not None:
            spot["MaxTotalPrice"] = str(template.max_spot_price * count)
        if spot:
            arguments["SpotOptions"] = spot
    return arguments


_FLEET_STRATEGIES = {
    "capacityOptimized": "capacity-optimized",
    "capacityOptimizedPrioritized": "capacity-optimized-prioritized",
    "diversified": "diversified",
    "lowestPrice": "lowest-price",
}


def _tag(resource: dict[str, Any], key: str) -> str:
    return next((t["Value"] for t in resource.get("Tags", []) if t["Key"] == key), "")


def _template_tags(template: Template) -> list[dict[str, str]]:
    """Host Factory's `instanceTags`: "key1=value1;key2=value2"."""
    tags = []
    for pair in (template.instance_tags or "").split(";"):
        key, _, value = pair.partition("=")
        if key.strip():
            tags.append({"Key": key.strip(), "Value": value.strip()})
    return tags


def _name(instance: dict[str, Any]) -> str:
    return str(instance.get("PrivateDnsName") or instance["InstanceId"])


def _state(instance: dict[str, Any]) -> tuple[MachineState, str]:
    name = instance["State"]["Name"]
    reason = instance.get("StateReason", {}).get("Message", "")
    state = _STATES.get(name, "failed")
    if state == "failed":
        return state, f"the instance is {name} ({reason or 'outside Host Factory'})"
    return state, reason if state == "terminated" else ""


def _machine(instance: dict[str, Any]) -> Machine:
    state, message = _state(instance)
    launched = instance.get("LaunchTime")
    return Machine(
        machine_id=instance["InstanceId"],
        name=_name(instance),
        state=state,
        private_ip=instance.get("PrivateIpAddress", ""),
        public_ip=instance.get("PublicIpAddress", ""),
        launchtime=int(launched.timestamp()) if launched is not None else 0,
        message=message,
    )


@asynccontextmanager
async def open_aws_provider(settings: AwsSettings) -> AsyncIterator[AwsProvider]:
    """An EC2 client on the standard credential chain, with botocore's retries off."""
    try:
        from aiobotocore.config import AioConfig
        from aiobotocore.httpxsession import HttpxSession
        from aiobotocore.session import get_session
    except ImportError:
        raise ProviderError(
            "the aws provider needs the aws extra: pip install 'hostsmith[aws]'"
        ) from None
    config = AioConfig(
        http_session_cls=HttpxSession, retries={"total_max_attempts": 1, "mode": "standard"}
    )
    async with get_session().create_client(
        "ec2",
        region_name=settings.region or None,
        endpoint_url=settings.endpoint or None,
        config=config,
    ) as ec2:
        yield AwsProvider(ec2)
