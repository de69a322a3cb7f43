"""hostsmith's engine: an event-sourced actor runtime on trio or asyncio (through anyio).

Nothing here knows about hosts, clouds or storage backends. The public
surface is re-exported from private modules below and pinned by a test;
`hostsmith.runtime.testing` is the test kit.
"""

from hostsmith.runtime._actor import (
    DEFAULT_ASK_TIMEOUT as DEFAULT_ASK_TIMEOUT,
    Actor as Actor,
    ActorRef as ActorRef,
    Mailbox as Mailbox,
    run_actor as run_actor,
)
from hostsmith.runtime._aggregate import (
    AggregateActor as AggregateActor,
    AggregateKind as AggregateKind,
    Committed as Committed,
    Inspect as Inspect,
)
from hostsmith.runtime._backend import (
    Parking as Parking,
    current_parking as current_parking,
)
from hostsmith.runtime._circuit import (
    CircuitBreaker as CircuitBreaker,
    CircuitOpen as CircuitOpen,
    CircuitState as CircuitState,
)
from hostsmith.runtime._envelope import (
    Envelope as Envelope,
    correlation as correlation,
    current_correlation_id as current_correlation_id,
)
from hostsmith.runtime._errors import (
    ActorCrashed as ActorCrashed,
    ActorStopped as ActorStopped,
    AskTimeout as AskTimeout,
    ConflictError as ConflictError,
    DuplicateEventError as DuplicateEventError,
    JournalError as JournalError,
    PersistFailed as PersistFailed,
    Rejected as Rejected,
    RuntimeFault as RuntimeFault,
    StoreOpenError as StoreOpenError,
    SupervisorEscalated as SupervisorEscalated,
    UnknownEventType as UnknownEventType,
)
from hostsmith.runtime._events import (
    EventRegistry as EventRegistry,
)
from hostsmith.runtime._ids import (
    new_id as new_id,
)
from hostsmith.runtime._journal import (
    Journal as Journal,
    JournalStats as JournalStats,
    WriteFailure as WriteFailure,
)
from hostsmith.runtime._memory import MemoryStore as MemoryStore
from hostsmith.runtime._registry import (
    Registry as Registry,
)
from hostsmith.runtime._store import (
    Appended as Appended,
    AppendOutcome as AppendOutcome,
    AppendRequest as AppendRequest,
    EventStore as EventStore,
    NewEvent as NewEvent,
    Snapshot as Snapshot,
    StoredEvent as StoredEvent,
    append as append,
    plan_appends as plan_appends,
)
from hostsmith.runtime._subscription import (
    Subscription as Subscription,
)
from hostsmith.runtime._supervisor import (
    ChildSpec as ChildSpec,
    Restart as Restart,
    RestartPolicy as RestartPolicy,
    Strategy as Strategy,
    Supervisor as Supervisor,
    open_supervisor as open_supervisor,
)
from hostsmith.runtime._system import (
    AggregateRef as AggregateRef,
    Runtime as Runtime,
    open_runtime as open_runtime,
)

__all__ = [
    "DEFAULT_ASK_TIMEOUT",
    "Actor",
    "ActorCrashed",
    "ActorRef",
    "ActorStopped",
    "AggregateActor",
    "AggregateKind",
    "AggregateRef",
    "AppendOutcome",
    "AppendRequest",
    "Appended",
    "AskTimeout",
    "ChildSpec",
    "CircuitBreaker",
    "CircuitOpen",
    "CircuitState",
    "Committed",
    "ConflictError",
    "DuplicateEventError",
    "Envelope",
    "EventRegistry",
    "EventStore",
    "Inspect",
    "Journal",
    "JournalError",
    "JournalStats",
    "Mailbox",
    "MemoryStore",
    "NewEvent",
    "Parking",
    "PersistFailed",
    "Registry",
    "Rejected",
    "Restart",
    "RestartPolicy",
    "Runtime",
    "RuntimeFault",
    "Snapshot",
    "StoreOpenError",
    "StoredEvent",
    "Strategy",
    "Subscription",
    "Supervisor",
    "SupervisorEscalated",
    "UnknownEventType",
    "append",
    "correlation",
    "current_correlation_id",
    "current_parking",
    "new_id",
    "open_runtime",
    "open_supervisor",
    "plan_appends",
    "run_actor",
]
