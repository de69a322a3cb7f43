"""AWS calls for the aws provider: every one classified, every answer mapped.

`AwsApi` holds the EC2 and Auto Scaling clients (aiobotocore on httpx, native
to trio) and is the only place that calls them. It does three things the
handlers should not each do again:
- `call` turns whatever aiobotocore raises into a `TransientProviderError`
  (throttling, capacity, 5xx, a dropped connection: the gateway retries
  those behind its circuit breaker) or a `PermanentProviderError` with AWS's
  own code and message (everything else fails the request at once);
- it finds instances the one way every handler tags them, by the
  `hostsmith:request-id` tag, so a retried launch finds what the first one
  made;
- it maps EC2's instance records onto the provider protocol's `Machine`s
  and states.

Access key ids are masked in every message made here; secret keys never
enter one, since nothing here ever formats a credential.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from hostsmith.actors.errors import PermanentProviderError, ProviderError, TransientProviderError
from hostsmith.actors.hostfactory import Machine, MachineState

T = TypeVar("T")

REQUEST_TAG = "hostsmith:request-id"
TEMPLATE_TAG = "hostsmith:template-id"
API_TAG = "hostsmith:provider-api"
LAUNCH_TAG = "hostsmith:launch"
"""On instances of a launch that replaces stuck ones: its number (the first has none)."""
INSTALLATION_TAG = "hostsmith:installation"
"""On every instance, fleet, group and launch template: the installation that made it
(see `AwsApi.inventory`)."""

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
CREDENTIAL_CODES = frozenset(
    {"AuthFailure", "UnrecognizedClientException", "InvalidClientTokenId", "SignatureDoesNotMatch"}
)

TEMPLATE_HINTS = {
    "InvalidAMIID": "check the template's imageId",
    "InvalidSubnetID": "check the template's subnetId",
    "InvalidSubnet": "check the template's subnetId",
    "InvalidGroup": "check the template's securityGroupIds",
    "InvalidKeyPair": "check the template's keyName",
    "InvalidParameterValue": "check the template's fields",
    "InvalidInstanceType": "check the template's vmType or vmTypes",
    "Unsupported": "check the template's vmType or vmTypes",
}
"""Codes whose cause is in the template, and where to look (matched by prefix)."""

_STATES: dict[str, MachineState] = {
    "pending": "pending",
    "running": "running",
    "shutting-down": "shutting-down",
    "terminated": "terminated",
    "stopping": "failed",
    "stopped": "failed",
}


def classify_code(code: str, message: str, status: int = 0) -> ProviderError:
    """A provider error for AWS's error `code`: transient if retrying may help."""
    text = f"{code}: {message}"
    if code in TRANSIENT_CODES or code.startswith("Throttling") or status >= 500:
        return TransientProviderError(text)
    if code in CREDENTIAL_CODES:
        return PermanentProviderError(
            f"{text} (check the AWS credentials: AWS_PROFILE, AWS_ACCESS_KEY_ID, or the "
            "instance role)"
        )
    hint = next((h for prefix, h in TEMPLATE_HINTS.items() if code.startswith(prefix)), "")
    return PermanentProviderError(f"{text} ({hint})" if hint else text)


NO_CREDENTIALS = (
    "no AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY, [aws] credential_file, or run where an instance role is available"
)


def classify(error: Exception) -> ProviderError:
    """Turn whatever aiobotocore raised into a transient or a permanent provider error."""
    from botocore.exceptions import (
        ClientError,
        ConnectionError as BotoConnectionError,
        NoCredentialsError,
        NoRegionError,
    )

    if isinstance(error, ProviderError):
        return error
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        return classify_code(
            str(details.get("Code", "Unknown")), str(details.get("Message", error)), status
        )
    if isinstance(error, NoCredentialsError):
        return PermanentProviderError(NO_CREDENTIALS)
    if isinstance(error, NoRegionError):
        return PermanentProviderError(
            "no AWS region configured: set [aws] region in the config file, or AWS_REGION"
        )
    if isinstance(error, BotoConnectionError | ConnectionError | OSError):
        return TransientProviderError(f"cannot reach AWS: {error}")
    return PermanentProviderError(f"{type(error).__name__}: {error}")


def error_code(error: Exception) -> str:
    response = getattr(error, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def tag(resource: dict[str, Any], key: str) -> str:
    return next((t["Value"] for t in resource.get("Tags", []) if t["Key"] == key), "")


def machine_name(instance: dict[str, Any]) -> str:
    return str(instance.get("PrivateDnsName") or instance["InstanceId"])


def instance_state(instance: dict[str, Any]) -> tuple[MachineState, str]:
    name = instance["State"]["Name"]
    reason = instance.get("StateReason", {}).get("Message", "")
    state = _STATES.get(name, "failed")
    if state == "failed":
        return state, f"the instance is {name} ({reason or 'outside Host Factory'})"
    return state, reason if state == "terminated" else ""


def to_machine(instance: dict[str, Any]) -> Machine:
    state, message = instance_state(instance)
    launched = instance.get("LaunchTime")
    return Machine(
        machine_id=instance["InstanceId"],
        name=machine_name(instance),
        state=state,
        private_ip=instance.get("PrivateIpAddress", ""),
        public_ip=instance.get("PublicIpAddress", ""),
        launchtime=int(launched.timestamp()) if launched is not None else 0,
        message=message,
    )


class AwsApi:
    def __init__(
        self, ec2: Any, autoscaling: Any = None, sts: Any = None, installation: str = ""
    ) -> None:
        self.ec2 = ec2
        self.autoscaling = autoscaling
        self.sts = sts
        self.installation = installation
        """This installation's id, tagged on what it launches (empty: not tagged)."""
        self._spot_fleet_role = ""

    def installation_tags(self) -> list[dict[str, str]]:
        """The installation's tag, as EC2 takes tags (none without an installation id)."""
        return [{"Key": INSTALLATION_TAG, "Value": self.installation}] if self.installation else []

    async def inventory(self) -> list[dict[str, Any]]:
        """Every instance tagged with this installation that EC2 still lists, any state."""
        if not self.installation:
            return []
        return await self.describe_instances(
            [{"Name": f"tag:{INSTALLATION_TAG}", "Values": [self.installation]}]
        )

    async def spot_fleet_role(self) -> str:
        """AWS's service-linked role for Spot Fleet in this account: a template's default."""
        if not self._spot_fleet_role:
            identity = await self.call(self.sts.get_caller_identity)
            self._spot_fleet_role = (
                f"arn:aws:iam::{identity['Account']}:role/aws-service-role/"
                "spotfleet.amazonaws.com/AWSServiceRoleForEC2SpotFleet"
            )
        return self._spot_fleet_role

    async def call(self, operation: Callable[..., Awaitable[T]], **arguments: Any) -> T:
        try:
            return await operation(**arguments)
        except Exception as error:
            raise classify(error) from None

    async def instances_of(self, request_id: str) -> list[dict[str, Any]]:
        """The request's instances that are starting or running."""
        return await self.describe_instances(
            [
                {"Name": f"tag:{REQUEST_TAG}", "Values": [request_id]},
                {"Name": "instance-state-name", "Values": ["pending", "running"]},
            ]
        )

    async def instances(self, machine_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The instances with these ids that EC2 still knows (unknown ids are skipped)."""
        found: list[dict[str, Any]] = []
        for start in range(0, len(machine_ids), 200):  # a filter takes 200 values
            chunk = list(machine_ids[start : start + 200])
            found += await self.describe_instances([{"Name": "instance-id", "Values": chunk}])
        return found

    async def describe_instances(self, filters: list[dict[str, Any]]) -> list[dict[str, Any]]:
        instances: list[dict[str, Any]] = []
        async for page in self.pages(self.ec2.describe_instances, Filters=filters):
            for reservation in page.get("Reservations", []):
                instances.extend(reservation.get("Instances", []))
        return instances

    async def pages(self, operation: Callable[..., Awaitable[Any]], **arguments: Any) -> Any:
        """Each page of a paginated answer (EC2's `NextToken`)."""
        while True:
            page = await self.call(operation, **arguments)
            yield page
            token = page.get("NextToken")
            if not token:
                return
            arguments["NextToken"] = token
