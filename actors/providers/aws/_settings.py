"""The `[aws]` section: where the aws provider finds AWS.

Apart from the provider so that reading the configuration (every Host
Factory script call does) does not load botocore.
"""

from __future__ import annotations

import msgspec


class AwsSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The `[aws]` section of the config file."""

    region: str = ""
    """Empty: the standard chain (AWS_REGION, AWS_DEFAULT_REGION, the profile)."""
    endpoint: str = ""
    """Empty: AWS itself. Set it to talk to a stand-in such as moto."""
    credential_file: str = ""
    """An AWS shared credentials file; empty: the standard chain's (~/.aws/credentials)."""
