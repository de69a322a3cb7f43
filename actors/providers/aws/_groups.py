"""What the reconciler asks of AWS beyond instances: the fleets, groups and launch templates.

The aws provider makes three kinds of group for a request (an EC2 Fleet,
a Spot Fleet request, an Auto Scaling group) and a launch template for
each of them, and every one carries the installation's tag. `list_groups`
lists them by that tag as `CloudGroup`s, with what the reconciler needs
to judge them: the request they were made for, whether they keep a count
by launching (a `maintain` fleet, any Auto Scaling group), their target,
and the weight of each instance type, so that their target (in capacity
units) can be compared with the log's machines (instances).

`delete_group` and `resize_group` mend one, and never terminate a machine
themselves: a fleet is deleted without terminating its instances, an Auto
Scaling group's members are detached first, and a lowered target leaves
every instance running (`no-termination`; a group's members are protected
from scale-in first). What then runs outside any request is an orphan,
which the reconciler's orphan rule reports, or terminates if configured.
A group already gone counts as deleted.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Any

from hostsmith.actors.errors import PermanentProviderError
from hostsmith.actors.hostfactory import CloudGroup
from hostsmith.actors.providers.aws._api import INSTALLATION_TAG, REQUEST_TAG, AwsApi, tag
from hostsmith.actors.providers.aws._handlers import auto_scaling_group

_LIVE_FLEET_STATES = frozenset({"submitted", "active", "modifying"})
_GONE_CODES = frozenset(
    {
        "InvalidLaunchTemplateId.NotFound",
        "InvalidLaunchTemplateName.NotFoundException",
        "InvalidFleetId.NotFound",
        "InvalidSpotFleetRequestId.NotFound",
    }
)


async def list_groups(aws: AwsApi) -> list[CloudGroup]:
    """Every fleet, spot fleet, Auto Scaling group and launch template of this installation."""
    if not aws.installation:
        return []
    groups = [group async for group in _fleets(aws)]
    groups += [group async for group in _spot_fleets(aws)]
    groups += [group async for group in _auto_scaling_groups(aws)]
    groups += [group async for group in _launch_templates(aws)]
    return groups


async def delete_group(aws: AwsApi, group: CloudGroup) -> None:
    """Delete it and leave its machines running; gone already is done."""
    with _gone_is_done():
        if group.kind == "ec2-fleet":
            await aws.call(
                aws.ec2.delete_fleets, FleetIds=[group.group_id], TerminateInstances=False
            )
        elif group.kind == "spot-fleet":
            await aws.call(
                aws.ec2.cancel_spot_fleet_requests,
                SpotFleetRequestIds=[group.group_id],
                TerminateInstances=False,
            )
        elif group.kind == "asg":
            members = await _members(aws, group.group_id)
            for start in range(0, len(members), 20):  # DetachInstances takes 20 at a time
                await aws.call(
                    aws.autoscaling.detach_instances,
                    InstanceIds=members[start : start + 20],
                    AutoScalingGroupName=group.group_id,
                    ShouldDecrementDesiredCapacity=True,
                )
            await aws.call(
                aws.autoscaling.delete_auto_scaling_group,
                AutoScalingGroupName=group.group_id,
                ForceDelete=True,
            )
        else:
            await aws.call(aws.ec2.delete_launch_template, LaunchTemplateId=group.group_id)


async def resize_group(aws: AwsApi, group: CloudGroup, target: float) -> None:
    """Set the capacity it keeps (its units), terminating none of its machines."""
    units = round(target)
    if group.kind == "ec2-fleet":
        await aws.call(
            aws.ec2.modify_fleet,
            FleetId=group.group_id,
            TargetCapacitySpecification={"TotalTargetCapacity": units},
            ExcessCapacityTerminationPolicy="no-termination",
        )
    elif group.kind == "spot-fleet":
        await aws.call(
            aws.ec2.modify_spot_fleet_request,
            SpotFleetRequestId=group.group_id,
            TargetCapacity=units,
            ExcessCapacityTerminationPolicy="noTermination",
        )
    elif group.kind == "asg":
        members = await _members(aws, group.group_id)
        if units < group.target and members:  # lowering: the group must pick none to end
            await aws.call(
                aws.autoscaling.set_instance_protection,
                InstanceIds=members,
                AutoScalingGroupName=group.group_id,
                ProtectedFromScaleIn=True,
            )
        sizes = {"MinSize": 0} | ({"MaxSize": units} if units > group.target else {})
        await aws.call(
            aws.autoscaling.update_auto_scaling_group,
            AutoScalingGroupName=group.group_id,
            DesiredCapacity=units,
            **sizes,
        )
    else:
        raise PermanentProviderError(f"a {group.kind} keeps no count to set")


# -- listing ------------------------------------------------------------------------


def _ours(aws: AwsApi, resource: dict[str, Any]) -> bool:
    return tag(resource, INSTALLATION_TAG) == aws.installation


def _seconds(moment: Any) -> float:
    return moment.timestamp() if isinstance(moment, datetime) else 0.0


def _weights(configs: list[dict[str, Any]]) -> dict[str, float]:
    return {
        override["InstanceType"]: float(override.get("WeightedCapacity") or 1)
        for config in configs
        for override in config.get("Overrides") or []
        if "InstanceType" in override
    }


async def _fleets(aws: AwsApi) -> AsyncIterator[CloudGroup]:
    async for page in aws.pages(aws.ec2.describe_fleets):
        for fleet in page.get("Fleets", []):
            if fleet.get("FleetState") not in _LIVE_FLEET_STATES or not _ours(aws, fleet):
                continue
            capacity = fleet.get("TargetCapacitySpecification", {})
            yield CloudGroup(
                group_id=fleet["FleetId"],
                kind="ec2-fleet",
                request_id=tag(fleet, REQUEST_TAG),
                created_at=_seconds(fleet.get("CreateTime")),
                maintains=fleet.get("Type", "maintain") == "maintain",  # AWS's default
                target=float(capacity.get("TotalTargetCapacity", 0)),
                weights=_weights(fleet.get("LaunchTemplateConfigs", [])),
            )


async def _spot_fleets(aws: AwsApi) -> AsyncIterator[CloudGroup]:
    async for page in aws.pages(aws.ec2.describe_spot_fleet_requests):
        for spot_fleet in page.get("SpotFleetRequestConfigs", []):
            state = spot_fleet.get("SpotFleetRequestState")
            if state not in _LIVE_FLEET_STATES or not _ours(aws, spot_fleet):
                continue
            config = spot_fleet.get("SpotFleetRequestConfig", {})
            yield CloudGroup(
                group_id=spot_fleet["SpotFleetRequestId"],
                kind="spot-fleet",
                request_id=tag(spot_fleet, REQUEST_TAG),
                created_at=_seconds(spot_fleet.get("CreateTime")),
                maintains=config.get("Type", "maintain") == "maintain",  # AWS's default
                target=float(config.get("TargetCapacity", 0)),
                weights=_weights(config.get("LaunchTemplateConfigs", [])),
            )


async def _auto_scaling_groups(aws: AwsApi) -> AsyncIterator[CloudGroup]:
    if aws.autoscaling is None:
        return
    async for page in aws.pages(aws.autoscaling.describe_auto_scaling_groups):
        for group in page.get("AutoScalingGroups", []):
            if not _ours(aws, group):
                continue
            mixed = group.get("MixedInstancesPolicy", {}).get("LaunchTemplate", {})
            yield CloudGroup(
                group_id=group["AutoScalingGroupName"],
                kind="asg",
                request_id=tag(group, REQUEST_TAG),
                created_at=_seconds(group.get("CreatedTime")),
                maintains=True,
                target=float(group.get("DesiredCapacity", 0)),
                weights=_weights([mixed]) if mixed else {},
            )


async def _launch_templates(aws: AwsApi) -> AsyncIterator[CloudGroup]:
    filters = [{"Name": f"tag:{INSTALLATION_TAG}", "Values": [aws.installation]}]
    async for page in aws.pages(aws.ec2.describe_launch_templates, Filters=filters):
        for template in page.get("LaunchTemplates", []):
            if not _ours(aws, template):
                continue
            yield CloudGroup(
                group_id=template["LaunchTemplateId"],
                kind="launch-template",
                request_id=tag(template, REQUEST_TAG),
                created_at=_seconds(template.get("CreateTime")),
            )


async def _members(aws: AwsApi, name: str) -> list[str]:
    group = await auto_scaling_group(aws, name)
    return [i["InstanceId"] for i in group.get("Instances", [])] if group else []


@contextlib.contextmanager
def _gone_is_done() -> Iterator[None]:
    try:
        yield
    except PermanentProviderError as error:
        gone = error.message.startswith(tuple(_GONE_CODES)) or "not found" in error.message.lower()
        if not gone:
            raise
