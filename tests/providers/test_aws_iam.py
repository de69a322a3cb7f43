"""docs/iam-policy.json is enough: the aws provider's whole cycle under IAM enforcement.

moto checks IAM policies when INITIAL_NO_AUTH_ACTION_COUNT is set: the
first N actions go unchecked (here: making two users and their keys, and
finding a subnet), every later one must be signed by a user whose policy
allows its action. The daemon runs as a user holding exactly the policy
in docs/iam-policy.json and takes each handler's templates through Host
Factory's cycle; a user whose policy lacks ec2:RunInstances is refused, by
name, which shows the enforcement is real.

What moto does not check (its IAM is "very basic"): the policy's Resource
and Condition parts. The conditions in the policy (tag only at creation,
terminate only what hostsmith tagged, pass roles only to EC2 and Spot Fleet)
are therefore not proven here, only the actions.
"""

from __future__ import annotations

import copy
import json
import pathlib
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from tests.providers.test_aws import EC2_FLEET, RUN_INSTANCES, SPOT_FLEET, asg_template
from tests.support.daemon import Daemon, hf, write_config
from tests.support.moto_process import moto_server_process

pytestmark = pytest.mark.slow

POLICY = pathlib.Path(__file__).parents[2] / "docs" / "iam-policy.json"
SETUP_ACTIONS = 7  # two users x (CreateUser, PutUserPolicy, CreateAccessKey), DescribeSubnets


class Site(dict[str, Any]):
    """The moto endpoint, each user's keys, and a subnet."""


def without(policy: dict[str, Any], action: str) -> dict[str, Any]:
    narrowed = copy.deepcopy(policy)
    for statement in narrowed["Statement"]:
        actions = statement["Action"]
        if isinstance(actions, list) and action in actions:
            actions.remove(action)
    return narrowed


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    unchecked = {"INITIAL_NO_AUTH_ACTION_COUNT": str(SETUP_ACTIONS)}
    with moto_server_process(unchecked) as endpoint:
        setup = {
            "endpoint_url": endpoint,
            "region_name": "us-east-1",
            "aws_access_key_id": "setup",
            "aws_secret_access_key": "setup",
        }
        iam = boto3.client("iam", **setup)
        policy = json.loads(POLICY.read_text())
        keys = {}
        for user, document in (
            ("hostsmith", policy),
            ("no-launch", without(policy, "ec2:RunInstances")),
        ):
            iam.create_user(UserName=user)
            iam.put_user_policy(
                UserName=user, PolicyName="hostsmith", PolicyDocument=json.dumps(document)
            )
            key = iam.create_access_key(UserName=user)["AccessKey"]
            keys[user] = {
                "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
                "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
                "AWS_DEFAULT_REGION": "us-east-1",
            }
        subnet = boto3.client("ec2", **setup).describe_subnets()["Subnets"][0]["SubnetId"]
        yield Site(endpoint=endpoint, keys=keys, subnet=subnet)


def daemon_as(user: str, site: Site, directory: pathlib.Path) -> Daemon:
    asg = asg_template(site["subnet"])
    templates = directory / "templates.json"
    templates.write_text(json.dumps({"templates": [RUN_INSTANCES, EC2_FLEET, SPOT_FLEET, asg]}))
    config = write_config(
        directory,
        f'provider = "aws"\ntemplates = "{templates}"\n'
        f'[aws]\nregion = "us-east-1"\nendpoint = "{site["endpoint"]}"\n',
    )
    return Daemon(config, environment=site["keys"][user]).start()


def settled(url: str, request_id: str) -> dict[str, Any]:
    for _ in range(100):  # bounded: each poll is a real call
        status, answer = hf("getRequestStatus", {"requests": [{"requestId": request_id}]}, url=url)
        assert status == 0, answer
        entry: dict[str, Any] = answer["requests"][0]
        if entry["status"] != "running":
            return entry
    raise AssertionError(f"{request_id} never settled")


def test_the_documented_policy_is_enough_for_every_handlers_whole_cycle(
    site: Site, tmp_path: pathlib.Path
) -> None:
    daemon = daemon_as("hostsmith", site, tmp_path)
    try:
        for template_id in ("run-instances", "ec2-fleet", "spot-fleet", "asg"):
            status, asked = hf(
                "requestMachines",
                {"template": {"templateId": template_id, "machineCount": 2}},
                url=daemon.url,
            )
            assert status == 0, asked
            entry = settled(daemon.url, asked["requestId"])
            assert entry["status"] == "complete", (template_id, entry)
            machines = [{"name": m["name"], "machineId": m["machineId"]} for m in entry["machines"]]
            assert len(machines) == 2
            status, returned = hf("requestReturnMachines", {"machines": machines}, url=daemon.url)
            assert status == 0, returned
            assert settled(daemon.url, returned["requestId"])["status"] == "complete", template_id
            status, notices = hf("getReturnRequests", {"machines": machines}, url=daemon.url)
            assert status == 0, notices
    finally:
        assert daemon.stop() == 0
    assert "not authorized" not in daemon.logs()


def test_a_policy_without_run_instances_is_refused_naming_the_action(
    site: Site, tmp_path: pathlib.Path
) -> None:
    daemon = daemon_as("no-launch", site, tmp_path)
    try:
        status, asked = hf(
            "requestMachines",
            {"template": {"templateId": "run-instances", "machineCount": 1}},
            url=daemon.url,
        )
        assert status == 0, asked
        entry = settled(daemon.url, asked["requestId"])
    finally:
        assert daemon.stop() == 0
    assert entry["status"] == "complete_with_error"
    assert "ec2:RunInstances" in entry["message"], entry
