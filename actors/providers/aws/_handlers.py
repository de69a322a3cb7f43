"""The four ways the aws provider asks EC2 for machines, one class each.

A template's `providerApi` picks the handler. Each handler does two things:
`provision` (idempotent per request id) and `release`, which runs before
returned machines are terminated, so that a fleet or group does not
replace them and is deleted once it has nothing left (deleting a fleet
terminates its machines, and `release` says so, so they are not
terminated twice).

Why they are shaped this way:
- Every instance carries the tag `hostsmith:request-id`, whichever way it
  was launched, so finding a request's machines is one query for all four
  (`AwsApi.instances_of`). `RunInstances` sets the tag itself. The fleets
  and the group launch from a launch template made for the request
  (`hostsmith-<requestId>`), because a launch template is the only way to
  tag the instances of a `request` or `maintain` fleet or an Auto Scaling
  group at launch.
- The fleet or group is found again by the same tag on itself (or, for
  ASG, by its name `hf-<requestId>`), never by remembering it: after a
  crash the daemon asks EC2, the only source of truth, what exists.
- `RunInstances` launches all of a request or none (`MinCount = MaxCount`),
  so a retry with the same `ClientToken` never leaves it half done. The
  fleets and the group take what capacity there is and keep trying; the
  request polls until it has its machines or its deadline passes.
- A launch that replaces stuck machines (`launch` > 0) is its own
  `RunInstances`, with its own client token and a `hostsmith:launch` tag,
  whichever handler made the first launch: a fleet or group was lowered
  (released) when its stuck machines were terminated, so it launches none
  in their place, and the replacements are plain instances of the
  template's first type, returned as any RunInstances machine is.
- `priceType` `heterogeneous` asks for spot first, and on-demand for
  `percentOnDemand` of the count.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
from typing import Any, ClassVar, Protocol

from hostsmith.actors.errors import ProviderError
from hostsmith.actors.hostfactory import Template
from hostsmith.actors.providers import Provisioned
from hostsmith.actors.providers.aws._api import (
    API_TAG,
    LAUNCH_TAG,
    REQUEST_TAG,
    TEMPLATE_TAG,
    AwsApi,
    classify,
    classify_code,
    error_code,
    tag,
    to_machine,
)


class Handler(Protocol):
    api: ClassVar[str]
    needs: ClassVar[tuple[str, ...]]
    """Template fields this handler cannot do without ("a|b": either)."""

    async def provision(
        self, request_id: str, template: Template, count: int, *, launch: int = 0
    ) -> Provisioned: ...

    async def release(self, request_id: str, leaving: set[str]) -> set[str]:
        """Free `leaving` from the fleet or group; returns those it terminated itself."""
        ...


# -- RunInstances -----------------------------------------------------------------


class RunInstances:
    api = "RunInstances"
    needs = ("imageId", "vmType")

    def __init__(self, aws: AwsApi) -> None:
        self.aws = aws

    async def provision(
        self, request_id: str, template: Template, count: int, *, launch: int = 0
    ) -> Provisioned:
        existing = [
            instance
            for instance in await self.aws.instances_of(request_id)
            if tag(instance, LAUNCH_TAG) == (str(launch) if launch else "")
        ]
        if existing:
            return Provisioned(tuple(to_machine(instance) for instance in existing))
        arguments: dict[str, Any] = {
            "MinCount": count,
            "MaxCount": count,
            "ClientToken": (request_id if not launch else f"{request_id}/{launch}")[:64],
            **_launch_data(self.aws, request_id, template, self.api, launch),
        }
        instance_type = template.vm_type or next(iter(template.vm_types or {}), None)
        if instance_type:  # a fleet's template, replacing its stuck machines: its first type
            arguments["InstanceType"] = instance_type
        subnet = _subnets(template)[0]
        if subnet:
            arguments["SubnetId"] = subnet
        if template.price_type == "spot":
            options: dict[str, Any] = {"SpotInstanceType": "one-time"}
            if template.max_spot_price is not None:
                options["MaxPrice"] = str(template.max_spot_price)
            arguments["InstanceMarketOptions"] = {"MarketType": "spot", "SpotOptions": options}
        answer = await self.aws.call(self.aws.ec2.run_instances, **arguments)
        return Provisioned(tuple(to_machine(instance) for instance in answer["Instances"]))

    async def release(self, request_id: str, leaving: set[str]) -> set[str]:
        return set()  # plain instances: terminating them is all there is


# -- EC2 Fleet --------------------------------------------------------------------

_FLEET_STRATEGIES = {
    "capacityOptimized": "capacity-optimized",
    "capacityOptimizedPrioritized": "capacity-optimized-prioritized",
    "diversified": "diversified",
    "lowestPrice": "lowest-price",
}


class Ec2Fleet:
    api = "EC2Fleet"
    needs = ("imageId", "vmType|vmTypes")

    def __init__(self, aws: AwsApi) -> None:
        self.aws = aws

    async def provision(
        self, request_id: str, template: Template, count: int, *, launch: int = 0
    ) -> Provisioned:
        fleet = await self._fleet_of(request_id)
        fleet_type = template.fleet_type or "instant"
        if fleet is None:
            launch_template = await _launch_template(self.aws, request_id, template, self.api)
            answer = await self.aws.call(
                self.aws.ec2.create_fleet,
                ClientToken=request_id[:64],
                Type=fleet_type,
                TargetCapacitySpecification=_capacity(template, count),
                LaunchTemplateConfigs=[_launch_config(launch_template, template)],
                TagSpecifications=[_request_tag_spec(self.aws, "fleet", request_id)],
                **_fleet_spot_options(template, count),
            )
            if fleet_type == "instant" and not answer.get("Instances") and answer.get("Errors"):
                error = answer["Errors"][0]
                raise classify_code(str(error.get("ErrorCode")), str(error.get("ErrorMessage")))
        else:
            fleet_type = fleet.get("Type", fleet_type)
        machines = tuple(to_machine(i) for i in await self.aws.instances_of(request_id))
        # An instant fleet launches once; the others keep launching until full.
        return Provisioned(machines, final=fleet_type == "instant" or len(machines) >= count)

    async def release(self, request_id: str, leaving: set[str]) -> set[str]:
        fleet = await self._fleet_of(request_id)
        if fleet is None:
            return set()
        staying = await _staying(self.aws, request_id, leaving)
        if not staying:
            await self.aws.call(
                self.aws.ec2.delete_fleets, FleetIds=[fleet["FleetId"]], TerminateInstances=True
            )
            await _delete_launch_template(self.aws, request_id)
            return leaving
        if fleet.get("Type") == "maintain":
            await self.aws.call(
                self.aws.ec2.modify_fleet,
                FleetId=fleet["FleetId"],
                TargetCapacitySpecification={"TotalTargetCapacity": staying},
            )
        return set()

    async def _fleet_of(self, request_id: str) -> dict[str, Any] | None:
        filters = [{"Name": "fleet-state", "Values": ["submitted", "active", "modifying"]}]
        pages = self.aws.pages(self.aws.ec2.describe_fleets, Filters=filters)
        async with contextlib.aclosing(pages):  # closed at once when found early
            async for page in pages:
                for fleet in page.get("Fleets", []):
                    if tag(fleet, REQUEST_TAG) == request_id and fleet.get("FleetState") in (
                        "submitted",
                        "active",
                        "modifying",
                    ):
                        return dict(fleet)
        return None


# -- Spot Fleet -------------------------------------------------------------------


class SpotFleet:
    api = "SpotFleet"
    needs = ("imageId", "vmType|vmTypes")  # fleetRole defaults to AWS's service-linked role

    def __init__(self, aws: AwsApi) -> None:
        self.aws = aws

    async def provision(
        self, request_id: str, template: Template, count: int, *, launch: int = 0
    ) -> Provisioned:
        if await self._request_of(request_id) is None:
            launch_template = await _launch_template(self.aws, request_id, template, self.api)
            expiry = datetime.timedelta(minutes=template.spot_fleet_request_expiry)
            config: dict[str, Any] = {
                "ClientToken": request_id[:64],
                "IamFleetRole": template.fleet_role or await self.aws.spot_fleet_role(),
                "TargetCapacity": count,
                "Type": "maintain" if template.fleet_type == "maintain" else "request",
                "ValidUntil": datetime.datetime.now(datetime.UTC) + expiry,
                "LaunchTemplateConfigs": [_launch_config(launch_template, template)],
                "TagSpecifications": [
                    _request_tag_spec(self.aws, "spot-fleet-request", request_id)
                ],
            }
            if template.price_type == "heterogeneous":
                config["OnDemandTargetCapacity"] = _on_demand_share(template, count)
            # Spot Fleet's own default, said explicitly (IBM's default too)
            config["AllocationStrategy"] = template.allocation_strategy or "lowestPrice"
            if template.max_spot_price is not None:
                config["SpotPrice"] = str(template.max_spot_price)
            await self.aws.call(self.aws.ec2.request_spot_fleet, SpotFleetRequestConfig=config)
        machines = tuple(to_machine(i) for i in await self.aws.instances_of(request_id))
        return Provisioned(machines, final=len(machines) >= count)

    async def release(self, request_id: str, leaving: set[str]) -> set[str]:
        spot_fleet = await self._request_of(request_id)
        if spot_fleet is None:
            return set()
        staying = await _staying(self.aws, request_id, leaving)
        if not staying:
            await self.aws.call(
                self.aws.ec2.cancel_spot_fleet_requests,
                SpotFleetRequestIds=[spot_fleet["SpotFleetRequestId"]],
                TerminateInstances=True,
            )
            await _delete_launch_template(self.aws, request_id)
            return leaving
        else:
            # Lower the target without letting the fleet pick which machines
            # go: the ones Host Factory returned are terminated by the caller.
            await self.aws.call(
                self.aws.ec2.modify_spot_fleet_request,
                SpotFleetRequestId=spot_fleet["SpotFleetRequestId"],
                TargetCapacity=staying,
                ExcessCapacityTerminationPolicy="noTermination",
            )
        return set()

    async def _request_of(self, request_id: str) -> dict[str, Any] | None:
        pages = self.aws.pages(self.aws.ec2.describe_spot_fleet_requests)
        async with contextlib.aclosing(pages):  # closed at once when found early
            async for page in pages:
                for spot_fleet in page.get("SpotFleetRequestConfigs", []):
                    state = spot_fleet.get("SpotFleetRequestState")
                    if tag(spot_fleet, REQUEST_TAG) == request_id and state in (
                        "submitted",
                        "active",
                        "modifying",
                    ):
                        return dict(spot_fleet)
        return None


# -- Auto Scaling group -----------------------------------------------------------


class AutoScalingGroup:
    api = "ASG"
    needs = ("imageId", "vmType|vmTypes", "subnetId")

    def __init__(self, aws: AwsApi) -> None:
        self.aws = aws

    async def provision(
        self, request_id: str, template: Template, count: int, *, launch: int = 0
    ) -> Provisioned:
        name = _group_name(request_id)
        if await self._group(name) is None:
            launch_template = await _launch_template(self.aws, request_id, template, self.api)
            arguments: dict[str, Any] = {
                "AutoScalingGroupName": name,
                "MinSize": 0,
                "MaxSize": count,
                "DesiredCapacity": count,
                "VPCZoneIdentifier": ",".join(s for s in _subnets(template) if s),
                "Tags": [
                    {"Key": tag["Key"], "Value": tag["Value"], "PropagateAtLaunch": True}
                    for tag in [
                        {"Key": REQUEST_TAG, "Value": request_id},
                        *self.aws.installation_tags(),
                    ]
                ],
            }
            if template.vm_types:
                arguments["MixedInstancesPolicy"] = _mixed_instances(launch_template, template)
            else:
                arguments["LaunchTemplate"] = {
                    "LaunchTemplateId": launch_template,
                    "Version": "$Latest",
                }
            try:
                await self.aws.autoscaling.create_auto_scaling_group(**arguments)
            except Exception as error:
                if error_code(error) != "AlreadyExists":
                    raise classify(error) from None
        machines = tuple(to_machine(i) for i in await self.aws.instances_of(request_id))
        return Provisioned(machines, final=len(machines) >= count)

    async def release(self, request_id: str, leaving: set[str]) -> set[str]:
        name = _group_name(request_id)
        group = await self._group(name)
        if group is None:
            return set()
        units = {
            i["InstanceId"]: float(i.get("WeightedCapacity") or 1)
            for i in group.get("Instances", [])
        }
        detach = sorted(leaving & set(units))
        for start in range(0, len(detach), 20):  # DetachInstances takes 20 at a time
            await self.aws.call(
                self.aws.autoscaling.detach_instances,
                InstanceIds=detach[start : start + 20],
                AutoScalingGroupName=name,
                ShouldDecrementDesiredCapacity=True,
            )
        staying = sum(weight for i, weight in units.items() if i not in leaving)
        if not staying:
            await self.aws.call(
                self.aws.autoscaling.delete_auto_scaling_group,
                AutoScalingGroupName=name,
                ForceDelete=True,
            )
            await _delete_launch_template(self.aws, request_id)
        elif detach:
            # What stays, in the group's units: a target the reconciler already set to
            # the log's count is not lowered once more when the machines the group
            # added back (its orphans) are detached.
            await self.aws.call(
                self.aws.autoscaling.update_auto_scaling_group,
                AutoScalingGroupName=name,
                DesiredCapacity=round(staying),
            )
        return set()  # detached machines are the caller's to terminate

    async def _group(self, name: str) -> dict[str, Any] | None:
        return await auto_scaling_group(self.aws, name)


HANDLERS: dict[str, type[RunInstances | Ec2Fleet | SpotFleet | AutoScalingGroup]] = {
    handler.api: handler for handler in (RunInstances, Ec2Fleet, SpotFleet, AutoScalingGroup)
}

IBM_MEANING = {"ondemand": "RunInstances", "spot": "SpotFleet", "heterogeneous": "EC2Fleet"}
"""The handler a template without `providerApi` means, by its `priceType`, as IBM's awsprov
has it: on-demand instances, a Spot Fleet, or a fleet mixing on-demand and spot by
`percentOnDemand`."""


def api_of(template: Template) -> str:
    """The provisioning API a template asks for: its `providerApi`, else IBM's meaning."""
    return template.provider_api or IBM_MEANING[template.price_type]


# -- shared pieces ----------------------------------------------------------------


async def auto_scaling_group(aws: AwsApi, name: str) -> dict[str, Any] | None:
    """The Auto Scaling group of this name as AWS describes it, or None."""
    answer = await aws.call(
        aws.autoscaling.describe_auto_scaling_groups, AutoScalingGroupNames=[name]
    )
    groups = answer.get("AutoScalingGroups", [])
    return dict(groups[0]) if groups else None


def _group_name(request_id: str) -> str:
    return f"hf-{request_id}"[:255]


def _launch_template_name(request_id: str) -> str:
    return f"hostsmith-{request_id}"[:128]


def instance_tags(
    request_id: str, template: Template, api: str, installation: list[dict[str, str]]
) -> list[dict[str, str]]:
    tags = [
        {"Key": REQUEST_TAG, "Value": request_id},
        {"Key": TEMPLATE_TAG, "Value": template.template_id},
        {"Key": API_TAG, "Value": api},
        *installation,
    ]
    for pair in (template.instance_tags or "").split(";"):  # "key1=value1;key2=value2"
        key, _, value = pair.partition("=")
        if key.strip():
            tags.append({"Key": key.strip(), "Value": value.strip()})
    return tags


def _launch_data(
    aws: AwsApi, request_id: str, template: Template, api: str, launch: int = 0
) -> dict[str, Any]:
    """What RunInstances and a launch template share: image, network, tags."""
    tags = instance_tags(request_id, template, api, aws.installation_tags())
    if launch:  # a launch replacing stuck machines: told apart from the first
        tags.append({"Key": LAUNCH_TAG, "Value": str(launch)})
    data: dict[str, Any] = {
        "ImageId": template.image_id,
        "TagSpecifications": [{"ResourceType": "instance", "Tags": tags}],
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


async def _launch_template(aws: AwsApi, request_id: str, template: Template, api: str) -> str:
    """The request's own launch template, made now or found from an earlier try."""
    name = _launch_template_name(request_id)
    data = _launch_data(aws, request_id, template, api)
    if "UserData" in data:  # RunInstances encodes it itself (botocore); a launch template not
        data["UserData"] = base64.b64encode(data["UserData"].encode()).decode()
    if template.vm_type and not template.vm_types:
        data["InstanceType"] = template.vm_type
    try:
        answer = await aws.ec2.create_launch_template(
            LaunchTemplateName=name,
            LaunchTemplateData=data,
            ClientToken=request_id[:64],
            TagSpecifications=[_request_tag_spec(aws, "launch-template", request_id)],
        )
        return str(answer["LaunchTemplate"]["LaunchTemplateId"])
    except Exception as error:
        if error_code(error) != "InvalidLaunchTemplateName.AlreadyExistsException":
            raise classify(error) from None
    answer = await aws.call(aws.ec2.describe_launch_templates, LaunchTemplateNames=[name])
    return str(answer["LaunchTemplates"][0]["LaunchTemplateId"])


async def _delete_launch_template(aws: AwsApi, request_id: str) -> None:
    with contextlib.suppress(ProviderError):  # a leftover template costs nothing
        await aws.call(
            aws.ec2.delete_launch_template, LaunchTemplateName=_launch_template_name(request_id)
        )


async def _staying(aws: AwsApi, request_id: str, leaving: set[str]) -> int:
    """How many of the request's machines are not being returned."""
    return sum(1 for i in await aws.instances_of(request_id) if i["InstanceId"] not in leaving)


def _subnets(template: Template) -> list[str | None]:
    subnet = template.subnet_id
    if isinstance(subnet, list):
        return list(subnet) or [None]
    return [subnet]


def _weights(template: Template) -> dict[str, int]:
    return template.vm_types or ({template.vm_type: 1} if template.vm_type else {})


def _launch_config(launch_template: str, template: Template) -> dict[str, Any]:
    overrides = [
        {"InstanceType": vm_type, "WeightedCapacity": float(weight)}
        | ({"SubnetId": subnet} if subnet else {})
        for vm_type, weight in _weights(template).items()
        for subnet in _subnets(template)
    ]
    return {
        "LaunchTemplateSpecification": {"LaunchTemplateId": launch_template, "Version": "$Latest"},
        "Overrides": overrides,
    }


def _on_demand_share(template: Template, count: int) -> int:
    return count * (template.percent_on_demand or 0) // 100


def _capacity(template: Template, count: int) -> dict[str, Any]:
    capacity: dict[str, Any] = {"TotalTargetCapacity": count}
    if template.price_type == "ondemand":
        return capacity | {
            "DefaultTargetCapacityType": "on-demand",
            "OnDemandTargetCapacity": count,
        }
    share = _on_demand_share(template, count) if template.price_type == "heterogeneous" else 0
    return capacity | {
        "DefaultTargetCapacityType": "spot",
        "OnDemandTargetCapacity": share,
        "SpotTargetCapacity": count - share,
    }


def _fleet_spot_options(template: Template, count: int) -> dict[str, Any]:
    if template.price_type == "ondemand":
        return {}
    spot: dict[str, Any] = {}
    if template.allocation_strategy:
        spot["AllocationStrategy"] = _FLEET_STRATEGIES[template.allocation_strategy]
    if template.max_spot_price is not None:
        spot["MaxTotalPrice"] = str(template.max_spot_price * count)
    return {"SpotOptions": spot} if spot else {}


def _mixed_instances(launch_template: str, template: Template) -> dict[str, Any]:
    percent = {"ondemand": 100, "spot": 0}.get(template.price_type, template.percent_on_demand or 0)
    return {
        "LaunchTemplate": {
            "LaunchTemplateSpecification": {
                "LaunchTemplateId": launch_template,
                "Version": "$Latest",
            },
            "Overrides": [
                {"InstanceType": vm_type, "WeightedCapacity": str(weight)}
                for vm_type, weight in _weights(template).items()
            ],
        },
        "InstancesDistribution": {
            "OnDemandBaseCapacity": 0,
            "OnDemandPercentageAboveBaseCapacity": percent,
        },
    }


def _request_tag_spec(aws: AwsApi, resource_type: str, request_id: str) -> dict[str, Any]:
    tags = [{"Key": REQUEST_TAG, "Value": request_id}, *aws.installation_tags()]
    return {"ResourceType": resource_type, "Tags": tags}
