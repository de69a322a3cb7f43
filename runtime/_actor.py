"""Actors: a bounded mailbox, a loop that drains it, and a reference to send to.

An actor is any object with `on_start()` and `receive(envelope)`. Its loop
(`run_actor`) takes one envelope at a time, so the actor's state is only ever
touched by its own task and needs no locks.

Why it is built this way:
- The mailbox is bounded (`_mailbox.BoundedMailbox`, a one-reader channel
  with anyio's semantics and a fraction of its memory). A full mailbox makes
  the sender wait (backpressure); nothing is ever dropped. Its depth is
  visible through `statistics()`.
- `ask` puts a deadline in the envelope. The caller stops waiting at the
  deadline (enforced by the runtime's `Deadlines` task, or by a cancel scope
  for a reference made outside a runtime), and the callee runs the handler
  inside a cancel scope with the same deadline, so abandoned work is
  cancelled rather than left running. A caller cancelled for any other
  reason cancels the callee's work too.
- Errors that leave the actor sound (`ANSWERS`: a rejection, a conflict, a
  nested timeout) go to the caller and the actor carries on.
- Any other exception is a bug or an I/O failure: the caller gets it (or
  `ActorCrashed`) at once, not a timeout later, and the exception
  propagates, so the supervisor restarts the actor on the same mailbox.
- An `ActorRef` whose mailbox was closed (the actor was passivated) asks its
  `reactivate` callback for a fresh mailbox, so callers never notice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

import anyio

from hostsmith.runtime import _backend
from hostsmith.runtime._deadlines import Deadlines
from hostsmith.runtime._envelope import Envelope, current_envelope, wrap
from hostsmith.runtime._errors import (
    ActorCrashed,
    ActorStopped,
    AskTimeout,
    ConflictError,
    Rejected,
    RuntimeFault,
)
from hostsmith.runtime._mailbox import BoundedMailbox
from hostsmith.runtime._reply import Reply

log = logging.getLogger("hostsmith.runtime")

DEFAULT_MAILBOX_CAPACITY = 64
"""Deep enough to absorb a burst from many callers, shallow enough that a
stalled actor pushes back on its callers within a few messages."""

DEFAULT_ASK_TIMEOUT = 10.0

ANSWERS = (Rejected, ConflictError, AskTimeout, ActorStopped, ActorCrashed)
"""Errors a handler may raise that leave the actor's state sound: they go to
the caller and the actor carries on. Anything else crashes the actor."""


class Incarnation(Protocol):
    """What the registry runs for one live actor: serve the mailbox until it closes.

    `recovered` turns true once it has rebuilt its state; a failure before
    that is an activation failure, reported to the queued callers.
    """

    recovered: bool

    async def serve(self, mailbox: Mailbox) -> None: ...


class Actor(Protocol):
    async def on_start(self) -> None:
        """Runs in the actor's task before the first message (recovery goes here)."""

    async def receive(self, envelope: Envelope) -> Any:
        """Handle one message; the return value is the reply to an ask."""


class Mailbox(BoundedMailbox[Envelope]):
    """The bounded mailbox behind one actor, kept across its restarts.

    `actor` is the incarnation currently serving it, once that incarnation
    is ready for work (None while it starts, after it crashed, or once it is
    gone); callers that can be served without a queue look there.
    """

    __slots__ = ("actor",)

    def __init__(self, capacity: int = DEFAULT_MAILBOX_CAPACITY) -> None:
        super().__init__(capacity)
        self.actor: Any = None

    def close(self) -> None:
        """Accept nothing more; the actor drains what is queued, then stops."""
        super().close()
        self.actor = None

    @property
    def depth(self) -> int:
        return len(self)


class ActorRef:
    """The address of an actor. Cheap to copy around; safe to keep after passivation."""

    __slots__ = ("_deadlines", "_mailbox", "_reactivate", "name")

    def __init__(
        self,
        name: str,
        mailbox: Mailbox,
        reactivate: Callable[[], Mailbox] | None = None,
        deadlines: Deadlines | None = None,
    ) -> None:
        self.name = name
        self._mailbox = mailbox
        self._reactivate = reactivate
        self._deadlines = deadlines

    def __repr__(self) -> str:
        return f"<ActorRef {self.name}>"

    @property
    def mailbox(self) -> Mailbox:
        """The mailbox this reference currently delivers to."""
        return self._mailbox

    async def wait_reply(self, reply: Reply, deadline: float, timeout: float) -> Any:
        """Wait for `reply` until `deadline`, for a message already handed over."""
        deadlines = self._deadlines
        if deadlines is not None and deadlines.running:
            key = deadlines.watch(reply, deadline, self.name, timeout)
            try:
                return await reply.wait()
            finally:
                deadlines.forget(reply, key)
        try:
            with anyio.CancelScope(deadline=deadline):
                return await reply.wait()
        finally:
            if not reply.done:
                reply.abandon()
        raise AskTimeout(self.name, timeout, maybe_applied=reply.started)

    async def tell(
        self,
        message: object,
        *,
        command_id: str | None = None,
        correlation_id: str | None = None,
    ) -> None:
        """Send without waiting for an answer. Waits while the mailbox is full."""
        await self._deliver(wrap(message, command_id=command_id, correlation_id=correlation_id))

    async def ask(
        self,
        message: object,
        *,
        timeout: float = DEFAULT_ASK_TIMEOUT,
        command_id: str | None = None,
        correlation_id: str | None = None,
    ) -> Any:
        """Send and wait for the reply, for at most `timeout` seconds in all.

        The deadline covers waiting for mailbox space too. When it passes the
        callee's work on this message is cancelled and `AskTimeout` is raised.
        """
        deadline = _backend.LOW.now() + timeout
        reply = Reply()
        reply.expiry = (self.name, timeout)
        envelope = wrap(
            message,
            deadline=deadline,
            reply=reply,
            command_id=command_id,
            correlation_id=correlation_id,
        )
        deadlines = self._deadlines
        if deadlines is not None and deadlines.running:
            # Fast path: the mailbox has room, and the deadline service
            # bounds the wait without a cancel scope (see _deadlines).
            try:
                self._mailbox.send_nowait(envelope)
            except (anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError):
                pass
            else:
                return await self.wait_reply(reply, deadline, timeout)
        try:
            with anyio.CancelScope(deadline=deadline):
                await self._deliver(envelope)
                return await reply.wait()
        finally:
            if not reply.done:
                reply.abandon()
        raise AskTimeout(self.name, timeout, maybe_applied=reply.started)

    async def _deliver(self, envelope: Envelope) -> None:
        # Two tries: a mailbox closed by passivation is replaced once; a second
        # closed mailbox means the runtime itself is shutting down.
        for _ in range(2):
            try:
                await self._mailbox.send(envelope)
                return
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                if self._reactivate is None:
                    break
                self._mailbox = self._reactivate()
        raise ActorStopped(self.name)


async def run_actor(actor: Actor, mailbox: Mailbox, name: str) -> None:
    """The actor's task: start it, then handle envelopes until the mailbox closes."""
    await actor.on_start()
    scoped = cancels_on_deadline(actor)
    while (envelope := await mailbox.take()) is not None:
        await handle_envelope(actor, envelope, name, scoped=scoped)


def cancels_on_deadline(actor: Actor) -> bool:
    """Whether the actor's handler runs in a cancel scope bounded by the ask's deadline.

    True unless the actor sets `cancel_on_deadline = False`: an actor whose
    handler cannot usefully be cancelled (an aggregate's only wait is the
    uncancellable journal write) saves a cancel scope per message, and
    instead skips messages whose asker has already given up.
    """
    return bool(getattr(actor, "cancel_on_deadline", True))


async def handle_envelope(
    actor: Actor, envelope: Envelope, name: str, *, scoped: bool = True
) -> None:
    reply = envelope.reply
    if reply is not None:
        if reply.abandoned:
            return  # nobody waits for this any more
        reply.started = True
    token = current_envelope.set(envelope)
    try:
        if scoped:
            with anyio.CancelScope(deadline=envelope.deadline) as scope:
                if reply is not None:
                    reply.scope = scope
                await _answer(actor, envelope, reply, name)
            if scope.cancelled_caught and reply is not None:
                # The deadline passed while handling: the asker gives up now.
                target, timeout = reply.expiry or (name, 0.0)
                reply.set_error(AskTimeout(target, timeout, maybe_applied=True))
        else:
            await _answer(actor, envelope, reply, name)
    finally:
        current_envelope.reset(token)


async def _answer(actor: Actor, envelope: Envelope, reply: Reply | None, name: str) -> None:
    try:
        result = await actor.receive(envelope)
    except ANSWERS as answer:
        if reply is None:
            log.info("%s refused a message: %s", name, answer)
        else:
            reply.set_error(answer)
        return
    except Exception as failure:
        if reply is not None:
            # The runtime's own faults explain themselves; anything else is a
            # bug in the actor, reported as a crash.
            known = isinstance(failure, RuntimeFault)
            reply.set_error(failure if known else ActorCrashed(name, failure))
        raise
    if reply is not None:
        reply.set_value(result)
