"""The `aws` plugin, as the `hostsmith.providers` entry point names it: light to load.

The registry loads a plugin to read its config section; the provider, its
handlers and aiobotocore are imported only when it opens or checks a
template.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

from hostsmith.actors.providers import ProviderContext, ProviderPlugin
from hostsmith.actors.providers.aws._settings import AwsSettings

if TYPE_CHECKING:
    from hostsmith.actors.hostfactory import Template
    from hostsmith.actors.providers.aws._provider import AwsProvider


def open_aws(
    settings: AwsSettings, context: ProviderContext | None = None
) -> AbstractAsyncContextManager[AwsProvider]:
    from hostsmith.actors.providers.aws._provider import open_aws_provider

    return open_aws_provider(settings, context)


def check_aws_template(template: Template) -> None:
    from hostsmith.actors.providers.aws._provider import check_template

    check_template(template)


PLUGIN = ProviderPlugin(
    name="aws",
    settings=AwsSettings,
    open=open_aws,
    check_template=check_aws_template,
    # IBM's awsprov_config.json keys that mean the same here; the rest are named as unused.
    host_factory_keys={
        "AWS_REGION": "region",
        "AWS_ENDPOINT_URL": "endpoint",
        "AWS_CREDENTIAL_FILE": "credential_file",
    },
)
