"""`aws`: the EC2 provider, on aiobotocore's httpx backend (native to trio).

`AwsProvider` implements the provider protocol by dispatching on each
template's `providerApi` to one of four handlers (`_aws_handlers`:
RunInstances, EC2Fleet, SpotFleet, ASG); every AWS call goes through
`_aws_api.AwsApi`, which classifies errors and finds instances by tag.

Why it is built this way:
- Idempotent per request id, as the provider protocol demands: every
  instance carries the tag `hostsmith:request-id`, and a repeated
  `provision` (the daemon crashed after the call but before recording its
  answer) finds what the first call made instead of launching again.
- Returning machines is the same for all handlers: the handler named by the
  instance's `hostsmith:provider-api` tag releases them from their fleet or
  group first, then they are terminated.
- One retry policy, the gateway's: botocore's own retries are off.
- Credentials and region come from the standard AWS chain (environment,
  profile, instance role); `[aws] endpoint` points at a stand-in such as
  moto. Templates are checked when the provider opens, so a template that
  lacks what its handler needs is refused by name before any request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import msgspec

from hostsmith.actors.errors import (
    ConfigError,
    PermanentProviderError,
    TemplateError,
)
from hostsmith.actors.hostfactory import CloudGroup, CloudMachine, StateChange, Template
from hostsmith.actors.providers import ProviderContext, Provisioned, ReclaimNotice
from hostsmith.actors.providers.aws._api import (
    API_TAG,
    NO_CREDENTIALS,
    REQUEST_TAG,
    AwsApi,
    instance_state as _instance_state,
    machine_name,
    tag,
)
from hostsmith.actors.providers.aws._groups import delete_group, list_groups, resize_group
from hostsmith.actors.providers.aws._handlers import HANDLERS, api_of
from hostsmith.actors.providers.aws._settings import AwsSettings
from hostsmith.stores import aws_session

MARKED = "marked-for-termination"
SPOT_NOTICE_SECONDS = 120
"""AWS warns two minutes before it takes a spot instance back."""


def check_template(template: Template) -> None:
    """Refuse, saying why, a template the aws provider cannot launch."""
    api = api_of(template)
    handler = HANDLERS.get(api)
    if handler is None:
        raise TemplateError(f"the aws provider knows providerApi {', '.join(HANDLERS)}")
    values = msgspec.to_builtins(template)
    missing = [
        need.replace("|", " or ")
        for need in handler.needs
        if not any(values.get(field) for field in need.split("|"))
    ]
    if missing:
        raise TemplateError(
            f"providerApi {api} needs {' and '.join(missing)}; add it to the template"
        )


class AwsProvider:
    name = "aws"

    def __init__(
        self, aws: AwsApi, credentials: Callable[[], Awaitable[Any]] | None = None
    ) -> None:
        self.aws = aws
        self.credentials = credentials
        """The session's credential chain (None: the clients' own, unchecked)."""
        self.handlers = {api: handler(aws) for api, handler in HANDLERS.items()}

    async def check_access(self) -> None:
        """Credentials must be at hand, and refreshable ones must still refresh.

        botocore resolves the chain once (environment, files, instance role)
        and caches it, so this costs no call to AWS unless temporary
        credentials are due for renewal.
        """
        if self.credentials is None:
            return
        found = await self.credentials()
        if found is None:
            raise PermanentProviderError(NO_CREDENTIALS)
        try:
            await found.get_frozen_credentials()
        except Exception as error:  # an expired role, an unreachable metadata service
            raise PermanentProviderError(
                f"the AWS credentials could not be renewed: {type(error).__name__}: {error}"
            ) from None

    async def provision(
        self, request_id: str, template: Template, count: int, *, launch: int = 0
    ) -> Provisioned:
        # A replacement of stuck machines is plain instances, whatever made the first
        # launch: the fleet or group was lowered when they were terminated, so it
        # launches nothing in their place.
        api = api_of(template) if launch == 0 else "RunInstances"
        handler = self.handlers.get(api)
        if handler is None:
            raise PermanentProviderError(f"providerApi {api} is not known to the aws provider")
        return await handler.provision(request_id, template, count, launch=launch)

    async def describe(self, machine_ids: Sequence[str]) -> list[StateChange]:
        found = {i["InstanceId"]: i for i in await self.aws.instances(machine_ids)}
        changes = []
        for machine_id in machine_ids:
            instance = found.get(machine_id)
            if instance is None:  # EC2 forgets terminated instances after a while
                changes.append(StateChange(machine_id, "terminated", "no longer known to EC2"))
            else:
                changes.append(StateChange(machine_id, *_instance_state(instance)))
        return changes

    async def terminate(self, machine_ids: Sequence[str]) -> None:
        alive = [
            i
            for i in await self.aws.instances(machine_ids)
            if i["State"]["Name"] not in ("shutting-down", "terminated")
        ]
        by_request: dict[tuple[str, str], set[str]] = {}
        for instance in alive:
            key = (tag(instance, REQUEST_TAG), tag(instance, API_TAG))
            by_request.setdefault(key, set()).add(instance["InstanceId"])
        done: set[str] = set()
        for (request_id, api), leaving in by_request.items():
            handler = self.handlers.get(api)
            if request_id and handler is not None:
                done |= await handler.release(request_id, leaving)
        remaining = [i["InstanceId"] for i in alive if i["InstanceId"] not in done]
        if remaining:
            await self.aws.call(self.aws.ec2.terminate_instances, InstanceIds=remaining)

    async def inventory(self) -> list[CloudMachine]:
        """Every instance tagged with this installation's id, whatever its request or handler."""
        return [
            CloudMachine(
                machine_id=instance["InstanceId"],
                name=machine_name(instance),
                request_id=tag(instance, REQUEST_TAG),
                state=_instance_state(instance)[0],
                launched_at=launched.timestamp()
                if (launched := instance.get("LaunchTime"))
                else 0.0,
                instance_type=instance.get("InstanceType", ""),
            )
            for instance in await self.aws.inventory()
        ]

    async def groups(self) -> list[CloudGroup]:
        return await list_groups(self.aws)

    async def delete_group(self, group: CloudGroup) -> None:
        await delete_group(self.aws, group)

    async def resize_group(self, group: CloudGroup, target: float) -> None:
        await resize_group(self.aws, group, target)

    async def reclaim_notices(self) -> list[ReclaimNotice]:
        """Spot instances AWS has marked for interruption, with the two minutes' warning."""
        # A request marked for termination is still `active`; its status code says the rest.
        # (The status code is matched here, not by a filter: moto lacks that filter.)
        ids = []
        async for page in self.aws.pages(
            self.aws.ec2.describe_spot_instance_requests,
            Filters=[{"Name": "state", "Values": ["active"]}],
        ):
            ids += [
                r["InstanceId"]
                for r in page.get("SpotInstanceRequests", [])
                if "InstanceId" in r and r.get("Status", {}).get("Code") == MARKED
            ]
        if not ids:
            return []
        return [
            ReclaimNotice(i["InstanceId"], machine_name(i), SPOT_NOTICE_SECONDS)
            for i in await self.aws.instances(ids)
        ]


@asynccontextmanager
async def open_aws_provider(
    settings: AwsSettings, context: ProviderContext | None = None
) -> AsyncIterator[AwsProvider]:
    """EC2 and Auto Scaling clients on the standard credential chain, botocore's retries off."""
    try:
        session, config = aws_session(retries={"total_max_attempts": 1, "mode": "standard"})
        if settings.credential_file:
            session.set_config_variable("credentials_file", settings.credential_file)
    except ImportError:
        raise ConfigError(
            "the aws provider needs the aws extra: pip install 'hostsmith[aws]'"
        ) from None
    where = {"region_name": settings.region or None, "endpoint_url": settings.endpoint or None}
    async with (
        session.create_client("ec2", config=config, **where) as ec2,
        session.create_client("autoscaling", config=config, **where) as autoscaling,
        session.create_client("sts", config=config, **where) as sts,
    ):
        installation = context.installation_id if context is not None else ""
        api = AwsApi(ec2, autoscaling, sts, installation)
        provider = AwsProvider(api, session.get_credentials)
        try:  # at start-up: a daemon without credentials says so, and does not start
            await provider.check_access()
        except PermanentProviderError as missing:
            raise ConfigError(f"the aws provider cannot start: {missing.message}") from None
        yield provider
