"""`aws`: EC2 through aiobotocore on its httpx backend: RunInstances, EC2 Fleet, Spot Fleet, ASG.

`PLUGIN` is what the `hostsmith.providers` entry point names; `AwsSettings`
is the `[aws]` section. aiobotocore (the `aws` extra) is imported only when
the provider opens, so hostsmith runs without it on the other providers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hostsmith.actors.lazy import attach

if TYPE_CHECKING:
    from hostsmith.actors.providers.aws._api import (
        AwsApi as AwsApi,
    )
    from hostsmith.actors.providers.aws._plugin import (
        PLUGIN as PLUGIN,
    )
    from hostsmith.actors.providers.aws._provider import (
        AwsProvider as AwsProvider,
        check_template as check_template,
        open_aws_provider as open_aws_provider,
    )
    from hostsmith.actors.providers.aws._settings import (
        AwsSettings as AwsSettings,
    )

__getattr__, __dir__ = attach(__name__, __file__)

__all__ = ["PLUGIN", "AwsApi", "AwsProvider", "AwsSettings", "check_template", "open_aws_provider"]
