"""Reconciling on a real moto server: drift made directly with the EC2 API.

Each installation tags what it launches with its id, and lists only that.
The drift is made as it happens in an AWS account: an instance terminated
in the console, an instance tagged with this installation that no request
holds (a lost data dir), and another installation's instance, which is
never listed and never touched. The service runs in process on the aws
provider and an in-memory log; a dry run changes nothing.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from hostsmith.actors.hostfactory import parse_templates
from hostsmith.actors.providers import ProviderContext
from hostsmith.actors.providers.aws import AwsProvider, AwsSettings, open_aws_provider
from hostsmith.actors.service import Application, Config, ReconcileSettings, open_service
from hostsmith.runtime.testing import MemoryStore
from tests.providers.test_aws import RUN_INSTANCES, instance_states

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
async def service_on(aws: AwsProvider, **reconcile: Any) -> AsyncIterator[Application]:
    config = Config(reconcile=ReconcileSettings(**reconcile))
    async with open_service(config, MemoryStore(), aws, TEMPLATES, drive=False) as application:
        yield application


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
            service = application.service
            asked = await service.request_machines("run-instances", 2)
            for _ in range(20):  # bounded: moto's instances run at once
                await service.advance([asked.request_id])
                (entry,) = (await service.get_request_status([asked.request_id])).requests
                if entry.status == "complete":
                    break
            held = [m.machine_id for m in entry.machines]
            await ours.aws.ec2.terminate_instances(InstanceIds=[held[0]])  # the console

            would = await application.reconciler.reconcile(dry_run=True)
            states = await instance_states(moto)
            done = await application.reconciler.reconcile()
            again = await application.reconciler.reconcile()

    found = sorted((f.kind, f.machine_id) for f in would.findings)
    assert found == sorted([("ghost", held[0]), ("orphan", lost.machines[0].machine_id)])
    # the dry run did nothing: the orphan still ran after it
    assert states[lost.machines[0].machine_id][0] == "running"
    assert sorted((f.kind, f.machine_id) for f in done.findings) == found
    assert sorted(a.action for a in done.actions) == ["recorded terminated", "terminated"]
    after = await instance_states(moto)
    assert after[lost.machines[0].machine_id][0] in ("shutting-down", "terminated")
    assert after[held[1]][0] == "running"  # Host Factory's host is left alone
    assert after[neighbours.machines[0].machine_id][0] == "running"  # and the neighbour's
    assert again.findings == []  # the cloud and the log agree now
