"""Reconciling on a real moto server: drift made directly with the EC2 API.

Each installation tags what it launches with its id, and lists only that.
The drift is made as it happens in an AWS account: an instance terminated
in the console, an instance tagged with this installation that no request
holds (a lost data dir), another installation's instance (never listed,
never touched), a fleet, group and launch templates left behind, and a
maintain fleet whose target was raised behind hostsmith's back, so that it
added a machine. The service runs in process on the aws provider and an
in-memory log; a dry run changes nothing.
"""

from __future__ import annotations

import json
import pathlib
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from hostsmith.actors.hostfactory import CloudGroup, Template, parse_templates
from hostsmith.actors.providers import ProviderContext
from hostsmith.actors.providers.aws import AwsProvider, AwsSettings, open_aws_provider
from hostsmith.actors.service import Application, Config, ReconcileSettings, open_service
from hostsmith.runtime.testing import MemoryStore
from tests.providers.test_aws import (
    EC2_FLEET,
    RUN_INSTANCES,
    SPOT_FLEET,
    a_default_subnet,
    asg_template,
    instance_states,
)

TEMPLATES = parse_templates(json.dumps({"templates": [RUN_INSTANCES]}).encode())
TEMPLATE = TEMPLATES["run-instances"]


@asynccontextmanager
async def aws_of(moto: str, installation: str) -> AsyncIterator[AwsProvider]:
    context = ProviderContext(
        TEMPLATES, pathlib.Path("unused-by-aws"), lambda: 0.0, installation_id=installation
    )
    async with open_aws_provider(AwsSettings(region="us-east-1", endpoint=moto), context) as aws:
        yield aws


@asynccontextmanager
async def service_on(
    aws: AwsProvider,
    templates: dict[str, Template] = TEMPLATES,
    clock: Callable[[], float] = time.time,
    **reconcile: Any,
) -> AsyncIterator[Application]:
    config = Config(reconcile=ReconcileSettings(**reconcile))
    async with open_service(
        config, MemoryStore(), aws, templates, drive=False, clock=clock
    ) as application:
        yield application


def an_hour_later() -> float:
    """The service's clock: what was just made is an hour old (past the launch margin)."""
    return time.time() + 3600


async def complete(application: Application, template_id: str, count: int) -> list[str]:
    """Acquire `count` machines through the service, as Host Factory would; their ids."""
    service = application.service
    asked = await service.request_machines(template_id, count)
    for _ in range(20):  # bounded: moto's instances run at once
        await service.advance([asked.request_id])
        (entry,) = (await service.get_request_status([asked.request_id])).requests
        if entry.status == "complete":
            return [m.machine_id for m in entry.machines]
    raise AssertionError(f"{asked.request_id} did not complete: {entry}")


async def test_the_inventory_lists_this_installations_instances_only(moto: str) -> None:
    async with aws_of(moto, "hs-ours") as ours, aws_of(moto, "hs-theirs") as theirs:
        mine = await ours.provision("req-mine", TEMPLATE, 2)
        other = await theirs.provision("req-other", TEMPLATE, 1)
        await ours.aws.ec2.run_instances(ImageId=RUN_INSTANCES["imageId"], MinCount=1, MaxCount=1)
        listed = await ours.inventory()
    assert sorted(m.machine_id for m in listed) == sorted(m.machine_id for m in mine.machines)
    assert {m.request_id for m in listed} == {"req-mine"}
    assert {m.state for m in listed} <= {"pending", "running"}
    tags = (await instance_states(moto))[other.machines[0].machine_id][1]
    assert tags["hostsmith:installation"] == "hs-theirs"


async def test_drift_made_with_the_ec2_api_is_found_and_acted_on_as_configured(moto: str) -> None:
    async with aws_of(moto, "hs-ours") as ours, aws_of(moto, "hs-theirs") as theirs:
        neighbours = await theirs.provision("req-theirs", TEMPLATE, 1)
        lost = await ours.provision("req-from-a-lost-data-dir", TEMPLATE, 1)
        async with service_on(ours, terminate_orphans=True, orphan_grace=0.0) as application:
            held = await complete(application, "run-instances", 2)
            await ours.aws.ec2.terminate_instances(InstanceIds=[held[0]])  # the console

            would = await application.reconciler.reconcile(dry_run=True)
            states = await instance_states(moto)
            done = await application.reconciler.reconcile()
            again = await application.reconciler.reconcile()

    found = sorted((f.kind, f.resource_id) for f in would.findings)
    assert found == sorted([("ghost", held[0]), ("orphan", lost.machines[0].machine_id)])
    # the dry run did nothing: the orphan still ran after it
    assert states[lost.machines[0].machine_id][0] == "running"
    assert sorted((f.kind, f.resource_id) for f in done.findings) == found
    assert sorted(a.action for a in done.actions) == ["recorded terminated", "terminated"]
    after = await instance_states(moto)
    assert after[lost.machines[0].machine_id][0] in ("shutting-down", "terminated")
    assert after[held[1]][0] == "running"  # Host Factory's host is left alone
    assert after[neighbours.machines[0].machine_id][0] == "running"  # and the neighbour's
    assert again.findings == []  # the cloud and the log agree now


def templates_of(*templates: dict[str, Any]) -> dict[str, Template]:
    return parse_templates(json.dumps({"templates": list(templates)}).encode())


async def test_fleets_groups_and_launch_templates_left_behind_are_deleted(moto: str) -> None:
    templates = templates_of(EC2_FLEET, asg_template(await a_default_subnet(moto)))
    async with aws_of(moto, "hs-ours") as ours, aws_of(moto, "hs-theirs") as theirs:
        # a data dir lost after its requests launched: a fleet and a group nobody holds
        lost_fleet = await ours.provision("req-lost-fleet", templates["ec2-fleet"], 1)
        lost_group = await ours.provision("req-lost-group", templates["asg"], 1)
        await theirs.provision("req-theirs", templates["ec2-fleet"], 1)
        made = await ours.groups()
        async with service_on(ours, templates, clock=an_hour_later) as application:
            would = await application.reconciler.reconcile(dry_run=True)
            after_dry_run = await ours.groups()
            done = await application.reconciler.reconcile()
            again = await application.reconciler.reconcile()
        left = await ours.groups()
        neighbours = await theirs.groups()
    assert sorted((g.kind, g.request_id) for g in made) == [
        ("asg", "req-lost-group"),
        ("ec2-fleet", "req-lost-fleet"),
        ("launch-template", "req-lost-fleet"),
        ("launch-template", "req-lost-group"),
    ]
    leaks = sorted((f.kind, f.resource_id) for f in would.findings if f.kind == "leak")
    assert leaks == sorted(("leak", g.group_id) for g in made)
    assert after_dry_run == made  # the dry run deleted nothing
    assert sorted(a.resource_id for a in done.actions if a.action == "deleted") == [
        resource_id for _, resource_id in leaks
    ]
    assert left == []
    assert [g.request_id for g in neighbours] == ["req-theirs", "req-theirs"]  # untouched
    # their machines are left running, reported as orphans (terminate_orphans is off)
    machines = [*lost_fleet.machines, *lost_group.machines]
    states = await instance_states(moto)
    assert [states[m.machine_id][0] for m in machines] == ["running"] * len(machines)
    assert sorted(f.resource_id for f in again.findings) == sorted(m.machine_id for m in machines)
    assert {f.kind for f in again.findings} == {"orphan"}


async def raise_outside(aws: AwsProvider, group: CloudGroup, target: int) -> None:
    """Raise a group's target behind hostsmith's back (a lost lowering): it adds machines."""
    if group.kind == "spot-fleet":
        await aws.aws.ec2.modify_spot_fleet_request(
            SpotFleetRequestId=group.group_id, TargetCapacity=target
        )
    else:
        await aws.aws.autoscaling.update_auto_scaling_group(
            AutoScalingGroupName=group.group_id, DesiredCapacity=target, MaxSize=target
        )


@pytest.mark.parametrize("kind", ["spot-fleet", "asg"])
async def test_a_group_that_added_a_machine_back_is_set_to_the_logs_count(
    moto: str, kind: str
) -> None:
    if kind == "spot-fleet":
        template = {**SPOT_FLEET, "fleetType": "maintain"}
    else:
        template = asg_template(await a_default_subnet(moto))
    templates = templates_of(template)
    async with aws_of(moto, "hs-ours") as ours:
        async with service_on(
            ours, templates, clock=an_hour_later, terminate_orphans=True, orphan_grace=0.0
        ) as application:
            held = await complete(application, template["templateId"], 2)
            (group,) = [g for g in await ours.groups() if g.kind == kind]
            await raise_outside(ours, group, 3)
            would = await application.reconciler.reconcile(dry_run=True)
            done = await application.reconciler.reconcile()
            (mended,) = [g for g in await ours.groups() if g.kind == kind]
            again = await application.reconciler.reconcile()
            (after,) = [g for g in await ours.groups() if g.kind == kind]
        machines = {m.machine_id: m.state for m in await ours.inventory()}
    added = sorted(m for m in machines if m not in held)
    assert len(added) == 1
    drift = [(f.kind, f.resource_id, f.count) for f in would.findings if f.kind == "fleet"]
    assert drift == [("fleet", group.group_id, 2.0)]
    assert [(f.kind, f.resource_id) for f in would.findings if f.kind != "fleet"] == [
        ("orphan", added[0])
    ]
    assert sorted(a.action for a in done.actions) == ["target set to 2", "terminated"]
    assert mended.target == 2.0
    # the orphan it added was terminated, and the group kept the log's count, no less
    assert machines[added[0]] in ("shutting-down", "terminated")
    assert [machines[m] for m in held] == ["running", "running"]
    assert after.target == 2.0
    assert [f for f in again.findings if f.kind == "fleet"] == []


async def test_a_replacement_launch_is_plain_instances_of_its_own_whatever_made_the_first(
    moto: str,
) -> None:
    fleet = templates_of(EC2_FLEET)["ec2-fleet"]
    async with aws_of(moto, "hs-ours") as ours:
        first = await ours.provision("req-fleet", fleet, 2)
        replacement = await ours.provision("req-fleet", fleet, 1, launch=1)
        again = await ours.provision("req-fleet", fleet, 1, launch=1)  # a retry
        listed = await ours.inventory()
    assert [m.machine_id for m in again.machines] == [m.machine_id for m in replacement.machines]
    (added,) = replacement.machines
    assert added.machine_id not in {m.machine_id for m in first.machines}
    tags = (await instance_states(moto))[added.machine_id][1]
    assert tags["hostsmith:request-id"] == "req-fleet"
    assert tags["hostsmith:launch"] == "1"
    assert tags["hostsmith:provider-api"] == "RunInstances"  # returned as a plain instance
    assert {m.request_id for m in listed} == {"req-fleet"}
    assert len(listed) == 3
