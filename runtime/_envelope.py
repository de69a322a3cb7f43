"""Envelopes: what travels through a mailbox besides the message itself.

The payload is the caller's message (usually a msgspec Struct). Around it the
envelope carries what the runtime needs to keep a conversation traceable and
bounded in time:

- `correlation_id` names the whole conversation (one HTTP call, one CLI run)
  and is copied into every message sent while handling this one, and into
  every event it produces;
- `causation_id` names the message that caused this one;
- `command_id` is the idempotency key: events record it, and a command that
  arrives again with the same id is answered without being decided again;
- `deadline` is in the async library's time (`inf` for none); the callee cancels its work on
  the message when it passes, just as the caller stops waiting.

While an actor handles an envelope it is the *current* envelope (a context
variable), which is how ids flow across actor hops without being passed by
hand.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Iterator

import msgspec

from hostsmith.runtime._ids import new_id
from hostsmith.runtime._reply import Reply


class Envelope(msgspec.Struct):
    payload: object
    command_id: str
    correlation_id: str
    causation_id: str | None = None
    deadline: float = math.inf
    reply: Reply | None = None


current_envelope: contextvars.ContextVar[Envelope | None] = contextvars.ContextVar(
    "hostsmith_current_envelope", default=None
)


_ambient_correlation: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "hostsmith_ambient_correlation", default=None
)


@contextlib.contextmanager
def correlation(correlation_id: str) -> Iterator[None]:
    """Messages sent inside this block, outside any actor, carry `correlation_id`.

    This is how an edge (an HTTP call, a CLI run) names its conversation.
    """
    token = _ambient_correlation.set(correlation_id)
    try:
        yield
    finally:
        _ambient_correlation.reset(token)


def wrap(
    payload: object,
    *,
    deadline: float = math.inf,
    reply: Reply | None = None,
    command_id: str | None = None,
    correlation_id: str | None = None,
) -> Envelope:
    """Put `payload` in an envelope that continues the current conversation."""
    parent = current_envelope.get()
    cid = command_id or new_id()
    if correlation_id is None:
        if parent is not None:
            correlation_id = parent.correlation_id
        else:
            correlation_id = _ambient_correlation.get() or cid
    return Envelope(
        payload,
        cid,
        correlation_id,
        parent.command_id if parent is not None else None,
        deadline,
        reply,
    )


def current_correlation_id() -> str | None:
    """The correlation id of the message being handled by this task, if any."""
    parent = current_envelope.get()
    return parent.correlation_id if parent is not None else _ambient_correlation.get()
