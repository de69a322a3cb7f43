"""AWS clients that run under trio and asyncio alike: aiobotocore on its httpx backend.

The DynamoDB store and the aws provider both talk to AWS, and both need the
same two things that are easy to get wrong: the httpx session class (the
default, aiohttp, needs an asyncio loop that trio does not have), and that
same config as the session's *default*, because credentials are resolved
with the default config, not the client's: without it, the instance-profile
and container lookups would use aiohttp and fail with "no running event
loop" on every EC2 host with an instance role.
"""

from __future__ import annotations

from typing import Any


def aws_session(**config: Any) -> tuple[Any, Any]:
    """An aiobotocore session and client config for trio or asyncio; `config` goes to `AioConfig`.

    Raises ImportError when the aws extra (aiobotocore) is not installed.
    """
    from aiobotocore.config import AioConfig
    from aiobotocore.httpxsession import HttpxSession
    from aiobotocore.session import get_session

    session = get_session()
    client_config = AioConfig(http_session_cls=HttpxSession, **config)
    session.set_default_client_config(client_config)
    return session, client_config
