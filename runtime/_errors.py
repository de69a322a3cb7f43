"""The runtime's exception tree.

Every error the engine raises on purpose derives from `RuntimeFault`, so an
embedding program can catch the engine's failures with one clause and still
let its own bugs through. Messages are built in the constructors, so the text
a user reads is pinned in one place and in the tests::

    RuntimeFault
    ├── Rejected                  a decide() refused the command (domain rule)
    ├── AskTimeout                no reply before the ask's deadline
    ├── ActorStopped              the actor is gone and cannot be reactivated
    ├── ActorCrashed              the actor failed while handling the message
    ├── JournalError              the event store could not do what was asked
    │   ├── ConflictError         expected version did not match the stream
    │   ├── DuplicateEventError   some, not all, event ids were already stored
    │   ├── PersistFailed         the write failed; nothing was acknowledged
    │   └── StoreOpenError        a store URL or file cannot be used
    ├── UnknownEventType          a stored event's type is not registered
    └── SupervisorEscalated       restart intensity exceeded; the supervisor gave up
"""

from __future__ import annotations


class RuntimeFault(Exception):
    """Root of every error the hostsmith runtime raises on purpose."""


class Rejected(RuntimeFault):
    """A command was refused by the aggregate's rules.

    Domain code subclasses this (or raises it directly) from `decide`; the
    runtime hands it to the caller unchanged and records nothing.
    """


class AskTimeout(RuntimeFault):
    def __init__(self, target: str, timeout: float, *, maybe_applied: bool = False) -> None:
        self.target = target
        self.timeout = timeout
        self.maybe_applied = maybe_applied
        tail = (
            "; the command may still have been applied: retry it with the same command id"
            if maybe_applied
            else ""
        )
        super().__init__(f"{target} did not answer within {timeout:g}s{tail}")


class ActorStopped(RuntimeFault):
    def __init__(self, target: str) -> None:
        self.target = target
        super().__init__(f"{target} has stopped and can no longer receive messages")


class ActorCrashed(RuntimeFault):
    def __init__(self, target: str, cause: BaseException) -> None:
        self.target = target
        super().__init__(
            f"{target} crashed while handling the message: {type(cause).__name__}: {cause}; "
            "its supervisor restarts it"
        )


class JournalError(RuntimeFault):
    """The event store refused or failed an operation."""


class ConflictError(JournalError):
    def __init__(self, stream: str, expected: int, actual: int) -> None:
        self.stream = stream
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"stream {stream!r} is at version {actual}, not the expected {expected}: "
            "another writer got there first; reload and decide again"
        )


class DuplicateEventError(JournalError):
    def __init__(self, stream: str, event_ids: list[str]) -> None:
        self.stream = stream
        self.event_ids = event_ids
        super().__init__(
            f"append to {stream!r} mixes new events with already stored ids "
            f"{', '.join(event_ids[:3])}{'…' if len(event_ids) > 3 else ''}: "
            "a retried append must repeat exactly the same events"
        )


class PersistFailed(JournalError):
    def __init__(self, stream: str, cause: BaseException) -> None:
        self.stream = stream
        self.cause = cause
        super().__init__(
            f"could not persist events to {stream!r}: {type(cause).__name__}: {cause}; "
            "the aggregate's state did not move, and sending the command again with "
            "the same command id is safe (it is applied at most once)"
        )


class StoreOpenError(JournalError):
    """A store URL names no usable backend, or its file cannot be used."""


class UnknownEventType(RuntimeFault):
    def __init__(self, type_name: str, known: list[str]) -> None:
        self.type_name = type_name
        shown = ", ".join(sorted(known)[:8]) or "none"
        super().__init__(
            f"stored event type {type_name!r} is not registered (registered: {shown}); "
            "register its class, or an upcaster from the stored version"
        )


class SupervisorEscalated(RuntimeFault):
    def __init__(self, supervisor: str, child: str, restarts: int, within: float) -> None:
        self.supervisor = supervisor
        self.child = child
        super().__init__(
            f"supervisor {supervisor!r} gave up: child {child!r} failed more than "
            f"{restarts} times within {within:g}s"
        )
