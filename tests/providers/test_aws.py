"""The aws provider against a real moto server: Host Factory's cycle, faults and bad templates.

The end-to-end test runs the real daemon with `provider = "aws"` pointed at
moto, and drives it with `hostsmith hf` processes, as Host Factory would.
Faults come in through a stand-in EC2 client handed to the provider (the
provider is not patched): it fails chosen calls the way AWS does, with a
`ClientError` carrying AWS's error code.
"""

from __future__ import annotations

import json
import pathlib
import re
from collections.abc import Iterator
from typing import Any

import pytest
import stamina
import trio
from botocore.exceptions import ClientError

from hostsmith.actors.errors import ConfigError, PermanentProviderError, redact
from hostsmith.actors.hostfactory import parse_templates
from hostsmith.actors.providers import Gateway, GatewayPolicy
from hostsmith.actors.providers.aws import AwsApi, AwsProvider, AwsSettings, open_aws_provider
from hostsmith.runtime import CircuitOpen, CircuitState, NewEvent, append
from hostsmith.stores import init_store, open_store
from tests.support.daemon import Daemon, hf, hostsmith, write_config

AMI = "ami-1e749f67"  # one of the images moto knows (it refuses unknown ones, as AWS does)
ATTRIBUTES = {"type": ["String", "X86_64"], "ncpus": ["Numeric", "1"], "nram": ["Numeric", "1024"]}
RUN_INSTANCES = {
    "templateId": "run-instances",
    "maxNumber": 10,
    "attributes": ATTRIBUTES,
    "imageId": AMI,
    "vmType": "t3.micro",
    "instanceTags": "team=hpc;cost-centre=42",
    "providerApi": "RunInstances",
}


def aws_config(tmp_path: pathlib.Path, moto: str, templates: list[dict[str, Any]]) -> pathlib.Path:
    path = tmp_path / "templates.json"
    path.write_text(json.dumps({"templates": templates}))
    extra = (
        f'provider = "aws"\ntemplates = "{path}"\n'
        f'[aws]\nregion = "us-east-1"\nendpoint = "{moto}"\n'
        "[gateway]\nreset_timeout = 0.5\n"
    )
    return write_config(tmp_path, extra)


EC2_FLEET = {
    "templateId": "ec2-fleet",
    "maxNumber": 10,
    "attributes": ATTRIBUTES,
    "imageId": AMI,
    "vmTypes": {"t3.micro": 1, "t3a.micro": 1},
    "providerApi": "EC2Fleet",
    "fleetType": "request",
}


SPOT_FLEET = {
    "templateId": "spot-fleet",
    "maxNumber": 10,
    "attributes": ATTRIBUTES,
    "priceType": "spot",
    "imageId": AMI,
    "vmTypes": {"m5.large": 1, "m5a.large": 1},
    "fleetRole": "arn:aws:iam::123456789012:role/aws-ec2-spot-fleet-tagging-role",
    "allocationStrategy": "capacityOptimized",
    "maxSpotPrice": 0.2,
    "providerApi": "SpotFleet",
}


async def a_default_subnet(moto: str) -> str:
    async with open_aws_provider(AwsSettings(region="us-east-1", endpoint=moto)) as aws:
        answer = await aws.aws.ec2.describe_subnets()
    return str(answer["Subnets"][0]["SubnetId"])


def asg_template(subnet: str) -> dict[str, Any]:
    return {
        "templateId": "asg",
        "maxNumber": 10,
        "attributes": ATTRIBUTES,
        "imageId": AMI,
        "vmType": "t3.micro",
        "subnetId": subnet,
        "providerApi": "ASG",
    }


@pytest.fixture
def aws_daemon(tmp_path: pathlib.Path, moto: str) -> Iterator[Daemon]:
    asg = asg_template(trio.run(a_default_subnet, moto))
    templates = [RUN_INSTANCES, EC2_FLEET, SPOT_FLEET, asg]
    running = Daemon(aws_config(tmp_path, moto, templates)).start()
    yield running
    assert running.stop() == 0


def poll(url: str, command: str, payload: Any, done: Any, tries: int = 100) -> dict[str, Any]:
    for _ in range(tries):
        status, answer = hf(command, payload, url=url)
        assert status == 0, answer
        if done(answer):
            return answer
    raise AssertionError(f"{command} did not get there in {tries} polls: {answer}")


async def instance_states(moto: str) -> dict[str, tuple[str, dict[str, str]]]:
    async with open_aws_provider(AwsSettings(region="us-east-1", endpoint=moto)) as aws:
        answer = await aws.aws.ec2.describe_instances()
    return {
        i["InstanceId"]: (i["State"]["Name"], {t["Key"]: t["Value"] for t in i.get("Tags", [])})
        for r in answer["Reservations"]
        for i in r["Instances"]
    }


async def aws_inventory(moto: str) -> dict[str, Any]:
    async with open_aws_provider(AwsSettings(region="us-east-1", endpoint=moto)) as aws:
        fleets = await aws.aws.ec2.describe_fleets()
        spot_fleets = await aws.aws.ec2.describe_spot_fleet_requests()
        groups = await aws.aws.autoscaling.describe_auto_scaling_groups()
        templates = await aws.aws.ec2.describe_launch_templates()
    return {
        "live fleets": [f["FleetId"] for f in fleets["Fleets"] if f["FleetState"] == "active"],
        "live spot fleets": [
            f["SpotFleetRequestId"]
            for f in spot_fleets["SpotFleetRequestConfigs"]
            if f["SpotFleetRequestState"] == "active"
        ],
        "groups": [g["AutoScalingGroupName"] for g in groups["AutoScalingGroups"]],
        "launch templates": [t["LaunchTemplateName"] for t in templates["LaunchTemplates"]],
    }


@pytest.mark.slow
@pytest.mark.parametrize("template_id", ["run-instances", "ec2-fleet", "spot-fleet", "asg"])
def test_each_handler_through_the_whole_host_factory_cycle(
    aws_daemon: Daemon, moto: str, template_id: str
) -> None:
    url = aws_daemon.url
    status, asked = hf(
        "requestMachines", {"template": {"templateId": template_id, "machineCount": 3}}, url=url
    )
    assert status == 0, asked
    request_id = asked["requestId"]
    answer = poll(
        url,
        "getRequestStatus",
        {"requests": [{"requestId": request_id}]},
        lambda a: a["requests"][0]["status"] != "running",
    )
    (entry,) = answer["requests"]
    assert entry["status"] == "complete", entry
    assert [m["result"] for m in entry["machines"]] == ["succeed"] * 3

    launched = trio.run(instance_states, moto)
    ids = {m["machineId"] for m in entry["machines"]}
    assert set(launched) == ids
    for _, tags in launched.values():
        assert tags["hostsmith:request-id"] == request_id
        assert tags["hostsmith:template-id"] == template_id

    machines = [{"name": m["name"], "machineId": m["machineId"]} for m in entry["machines"]]
    status, returned = hf("requestReturnMachines", {"machines": machines}, url=url)
    assert status == 0, returned
    answer = poll(
        url,
        "getRequestStatus",
        {"requests": [{"requestId": returned["requestId"]}]},
        lambda a: a["requests"][0]["status"] != "running",
    )
    assert answer["requests"][0]["status"] == "complete"
    assert {state for state, _ in trio.run(instance_states, moto).values()} == {"terminated"}
    # nothing is left behind: no fleet that would launch again, no launch template
    assert trio.run(aws_inventory, moto) == {
        "live fleets": [],
        "live spot fleets": [],
        "groups": [],
        "launch templates": [],
    }


def test_run_instances_carries_the_templates_instance_tags(moto: str) -> None:
    async def launch() -> dict[str, str]:
        async with open_aws_provider(AwsSettings(region="us-east-1", endpoint=moto)) as aws:
            provisioned = await aws.provision("req-tags", TEMPLATE, 1)
        states = await instance_states(moto)
        return states[provisioned.machines[0].machine_id][1]

    tags = trio.run(launch)
    assert (tags["team"], tags["cost-centre"]) == ("hpc", "42")


class FlakyEc2:
    """A stand-in EC2 client: the first `failures` calls fail with `code`, then all succeed."""

    def __init__(self, real: Any, code: str, failures: int) -> None:
        self.real, self.code, self.failures_left, self.calls = real, code, failures, 0

    def __getattr__(self, operation: str) -> Any:
        async def call(**arguments: Any) -> Any:
            self.calls += 1
            if self.failures_left > 0:
                self.failures_left -= 1
                error = {"Code": self.code, "Message": f"{self.code} from the test"}
                raise ClientError({"Error": error}, operation)
            return await getattr(self.real, operation)(**arguments)

        return call


TEMPLATE = parse_templates(json.dumps({"templates": [RUN_INSTANCES]}).encode())["run-instances"]
QUICK = GatewayPolicy(attempts=4, failure_threshold=3)


@pytest.fixture(autouse=True)
def no_backoff() -> Iterator[None]:
    """Retries without their waits (stamina's test mode keeps our attempt counts)."""
    with stamina.set_testing(True, attempts=1000, cap=True):
        yield


async def test_throttling_is_retried_by_the_gateway(moto: str) -> None:
    async with open_aws_provider(AwsSettings(region="us-east-1", endpoint=moto)) as aws:
        flaky = FlakyEc2(aws.aws.ec2, "RequestLimitExceeded", failures=2)
        gateway = Gateway(AwsProvider(AwsApi(flaky)), QUICK)
        provisioned = await gateway.provision("req-throttled", TEMPLATE, 2)
    assert len(provisioned.machines) == 2
    assert flaky.calls == 4  # two refused lookups, then the lookup and the launch


async def test_a_sustained_outage_opens_the_circuit(moto: str) -> None:
    async with open_aws_provider(AwsSettings(region="us-east-1", endpoint=moto)) as aws:
        flaky = FlakyEc2(aws.aws.ec2, "ThrottlingException", failures=1000)
        gateway = Gateway(AwsProvider(AwsApi(flaky)), QUICK)
        # Attempts 1-3 are throttled and open the circuit (threshold 3); the
        # gateway's fourth attempt is refused by the open circuit, not retried.
        with pytest.raises(CircuitOpen):
            await gateway.describe(["i-0123"])
        assert flaky.calls == QUICK.failure_threshold
        assert gateway.breaker.state is CircuitState.OPEN
        with pytest.raises(CircuitOpen):
            await gateway.describe(["i-0123"])
        assert flaky.calls == QUICK.failure_threshold  # an open circuit does not call AWS at all


async def test_a_permanent_error_is_not_retried_and_keeps_aws_words(moto: str) -> None:
    async with open_aws_provider(AwsSettings(region="us-east-1", endpoint=moto)) as aws:
        flaky = FlakyEc2(aws.aws.ec2, "InvalidAMIID.NotFound", failures=1)
        gateway = Gateway(AwsProvider(AwsApi(flaky)), QUICK)
        with pytest.raises(
            PermanentProviderError,
            match=r"^InvalidAMIID\.NotFound: InvalidAMIID\.NotFound from the test "
            r"\(check the template's imageId\)$",
        ):
            await gateway.provision("req-bad-ami", TEMPLATE, 1)
    assert flaky.calls == 1


def test_a_template_missing_what_its_api_needs_is_left_out_and_named(
    tmp_path: pathlib.Path, moto: str
) -> None:
    """One bad template never takes the service down (issue 12): the others are served."""
    incomplete = {k: v for k, v in RUN_INSTANCES.items() if k != "vmType"} | {"templateId": "bad"}
    config = aws_config(tmp_path, moto, [incomplete, RUN_INSTANCES])
    status, answer = hf("getAvailableTemplates", {}, config=config)
    assert status == 0, answer
    assert [t["templateId"] for t in answer["templates"]] == ["run-instances"]
    checked = hostsmith("templates", "check", "--config", str(config), "--json")
    assert checked.returncode == 1
    assert json.loads(checked.stdout)["left_out"] == [
        f"{tmp_path}/templates.json: $.templates[0] (bad): providerApi RunInstances needs "
        "vmType; add it to the template"
    ]


def test_access_key_ids_are_masked() -> None:
    assert redact("key AKIAIOSFODNN7EXAMPLE refused") == "key AKIA************ refused"
    assert "IOSFODNN7" not in redact("ASIAIOSFODNN7EXAMPLE")


def in_process_request(config: pathlib.Path, template_id: str) -> dict[str, Any]:
    """Ask for one machine through in-process `hostsmith hf`; return the settled status entry."""
    status, asked = hf(
        "requestMachines",
        {"template": {"templateId": template_id, "machineCount": 1}},
        config=config,
    )
    assert status == 0, asked
    for _ in range(20):
        status, answer = hf(
            "getRequestStatus", {"requests": [{"requestId": asked["requestId"]}]}, config=config
        )
        assert status == 0, answer
        entry: dict[str, Any] = answer["requests"][0]
        if entry["status"] != "running":
            return entry
    raise AssertionError(f"the request did not settle: {entry}")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "imageId",
            "ami-00000000deadbeef0",
            r"^InvalidAMIID\.NotFound: .*ami-00000000deadbeef0.* \(check the template's imageId\)$",
        ),
        (
            "subnetId",
            "subnet-0000nope",
            r"^InvalidSubnetID\.NotFound: The subnet ID 'subnet-0000nope' does not exist "
            r"\(check the template's subnetId\)$",
        ),
    ],
)
def test_an_unknown_image_or_subnet_fails_the_request_naming_the_field(
    tmp_path: pathlib.Path, moto: str, field: str, value: str, message: str
) -> None:
    config = aws_config(tmp_path, moto, [RUN_INSTANCES | {field: value}])
    entry = in_process_request(config, "run-instances")
    assert entry["status"] == "complete_with_error"
    assert re.match(message, entry["message"]), entry["message"]
    assert entry["machines"] == []
    assert trio.run(instance_states, moto) == {}


def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> dict[str, str]:
    """Nothing in the credential chain: no keys, profile, files or instance role."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    nothing = {
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    for name, value in nothing.items():
        monkeypatch.setenv(name, value)
    return nothing


NO_CREDENTIALS = (
    "no AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
    "[aws] credential_file, or run where an instance role is available"
)


async def test_missing_credentials_are_found_at_start_up_and_say_where_they_come_from(
    moto: str, monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    no_credentials(monkeypatch, tmp_path)
    with pytest.raises(ConfigError) as refused:
        async with open_aws_provider(AwsSettings(region="us-east-1", endpoint=moto)):
            pytest.fail("opened without credentials")
    assert refused.value.message == f"the aws provider cannot start: {NO_CREDENTIALS}"


async def test_credentials_are_checked_as_each_acquire_begins() -> None:
    """A daemon whose credentials went away refuses the next requestMachines at once."""

    async def none_left() -> None:
        return None

    gateway = Gateway(AwsProvider(AwsApi(ec2=None), credentials=none_left), QUICK)
    with pytest.raises(PermanentProviderError, match=re.escape(NO_CREDENTIALS)):
        await gateway.check_access()


@pytest.mark.slow
def test_without_credentials_the_daemon_refuses_to_start_and_hf_answers_the_reason(
    moto: str, monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    """Found by hand: requestMachines said "Request VM success." and failed at the next poll."""
    nothing = no_credentials(monkeypatch, tmp_path)
    config = aws_config(tmp_path, moto, [RUN_INSTANCES])
    started = hostsmith("serve", "--config", str(config), "--port", "0", environment=nothing)
    assert started.returncode == 2
    assert started.stderr.strip().endswith(
        f"error: the aws provider cannot start: {NO_CREDENTIALS}"
    )
    assert "Traceback" not in started.stderr
    code, answer = hf(
        "requestMachines",
        {"template": {"templateId": "run-instances", "machineCount": 1}},
        config=config,
        environment=nothing,
    )
    assert code == 1
    assert answer == {"message": f"the aws provider cannot start: {NO_CREDENTIALS}"}


def only_an_instance_role(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path, moto: str
) -> None:
    """No keys, profile or files: credentials can come only from the metadata service."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "false")
    # moto's server answers the instance metadata service's paths (IMDSv2 token too).
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", moto)


async def test_an_instance_role_gives_credentials_under_trio(
    moto: str, monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    # botocore resolves credentials with the session's default config; left
    # to aiohttp, the metadata lookup needs an asyncio loop and fails.
    only_an_instance_role(monkeypatch, tmp_path, moto)
    async with open_aws_provider(AwsSettings(region="us-east-1", endpoint=moto)) as aws:
        launched = await aws.provision("req-with-role", TEMPLATE, 1)
    assert len(launched.machines) == 1
    url = f"dynamodb://role-events?region=us-east-1&endpoint={moto}"
    assert await init_store(url)
    async with open_store(url) as store:
        await append(store, "s-1", 0, [NewEvent(event_id="e1", type="T", data=b"{}")])
        assert [e.event_id for e in await store.read("s-1")] == ["e1"]


async def test_rejected_credentials_are_named_as_the_cause(moto: str) -> None:
    async with open_aws_provider(AwsSettings(region="us-east-1", endpoint=moto)) as aws:
        gateway = Gateway(AwsProvider(AwsApi(FlakyEc2(aws.aws.ec2, "AuthFailure", 1))), QUICK)
        with pytest.raises(
            PermanentProviderError,
            match=r"^AuthFailure: AuthFailure from the test \(check the AWS credentials: "
            r"AWS_PROFILE, AWS_ACCESS_KEY_ID, or the instance role\)$",
        ):
            await gateway.describe(["i-0123"])


def test_an_asg_template_without_a_subnet_is_left_out_by_name(
    tmp_path: pathlib.Path, moto: str
) -> None:
    asg = RUN_INSTANCES | {"templateId": "asg", "providerApi": "ASG"}
    checked = hostsmith(
        "templates", "check", "--config", str(aws_config(tmp_path, moto, [asg])), "--json"
    )
    assert checked.returncode == 1
    report = json.loads(checked.stdout)
    assert report["served"] == []
    assert report["left_out"] == [
        f"{tmp_path}/templates.json: $.templates[0] (asg): providerApi ASG needs subnetId; "
        "add it to the template"
    ]


IBM_ON_DEMAND = {  # IBM's awsprov_templates.json examples: no providerApi, no fleetRole
    "templateId": "ibm-ondemand",
    "maxNumber": 5,
    "attributes": ATTRIBUTES,
    "priceType": "ondemand",
    "imageId": AMI,
    "vmType": "t3.micro",
    "instanceTags": "group=hpc;owner=symphony",
    "userData": "IyEvYmluL2Jhc2gKZWNobyBoZWxsbw==",
}
IBM_SPOT = {
    "templateId": "ibm-spot",
    "maxNumber": 5,
    "attributes": ATTRIBUTES,
    "priceType": "spot",
    "imageId": AMI,
    "vmTypes": {"m5.large": 1, "m5a.large": 1},
    "maxSpotPrice": 0.2,
}
IBM_HETEROGENEOUS = {
    "templateId": "ibm-heterogeneous",
    "maxNumber": 5,
    "attributes": ATTRIBUTES,
    "priceType": "heterogeneous",
    "percentOnDemand": 50,
    "imageId": AMI,
    "vmTypes": {"t3.micro": 1, "t3a.micro": 1},
}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("template", "handler"),
    [(IBM_ON_DEMAND, "RunInstances"), (IBM_SPOT, "SpotFleet"), (IBM_HETEROGENEOUS, "EC2Fleet")],
    ids=["ondemand", "spot", "heterogeneous"],
)
def test_ibm_documented_templates_provision_through_the_handler_their_price_type_means(
    tmp_path: pathlib.Path, moto: str, template: dict[str, Any], handler: str
) -> None:
    config = aws_config(tmp_path, moto, [template])
    entry = in_process_request(config, str(template["templateId"]))
    assert entry["status"] == "complete", entry
    (machine,) = entry["machines"]
    _, tags = trio.run(instance_states, moto)[machine["machineId"]]
    assert tags["hostsmith:provider-api"] == handler
    if template is IBM_ON_DEMAND:  # IBM's "k=v;k2=v2" instanceTags, each its own tag
        assert (tags["group"], tags["owner"]) == ("hpc", "symphony")


class SpotRequestsEc2:
    """A stand-in EC2 client with active spot requests over two pages, one not marked."""

    def __init__(self) -> None:
        self.asked: list[dict[str, Any]] = []

    async def describe_spot_instance_requests(self, **arguments: Any) -> dict[str, Any]:
        self.asked.append(arguments)

        def request(instance: str, code: str) -> dict[str, Any]:
            return {"InstanceId": instance, "State": "active", "Status": {"Code": code}}

        if "NextToken" not in arguments:
            first = [request("i-1", "marked-for-termination"), request("i-2", "fulfilled")]
            return {"SpotInstanceRequests": first, "NextToken": "page-2"}
        return {"SpotInstanceRequests": [request("i-3", "marked-for-termination")]}

    async def describe_instances(self, **arguments: Any) -> dict[str, Any]:
        (wanted,) = [f["Values"] for f in arguments["Filters"] if f["Name"] == "instance-id"]
        instances = [{"InstanceId": i, "PrivateDnsName": f"ip-{i}.internal"} for i in wanted]
        return {"Reservations": [{"Instances": instances}]}


async def test_reclaim_notices_are_the_active_spot_requests_marked_for_termination() -> None:
    ec2 = SpotRequestsEc2()
    notices = await AwsProvider(AwsApi(ec2)).reclaim_notices()
    assert [(n.machine_id, n.name, n.grace_period) for n in notices] == [
        ("i-1", "ip-i-1.internal", 120),
        ("i-3", "ip-i-3.internal", 120),
    ]
    assert [asked["Filters"] for asked in ec2.asked] == [
        [{"Name": "state", "Values": ["active"]}]
    ] * 2  # every page, state filtered by EC2; the status code matched here
