"""The counter: the smallest useful aggregate, used by the benchmark workload.

It exists so that `hostsmith loadtest --workload counter` measures the
engine itself (mailboxes, decide/evolve, group commit, the store) with as
little domain logic as possible in the way.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from hostsmith.runtime import AggregateKind, EventRegistry, Rejected


class Increment(msgspec.Struct, frozen=True):
    by: int = 1


class Incremented(msgspec.Struct, frozen=True, tag=True):
    by: int


class Counter(msgspec.Struct, frozen=True):
    value: int = 0


def decide(state: Counter, command: Increment) -> Sequence[Incremented]:
    if command.by <= 0:
        raise Rejected(f"a counter only goes up: increment by a positive number, not {command.by}")
    return (Incremented(command.by),)


def evolve(state: Counter, event: Incremented) -> Counter:
    return Counter(state.value + event.by)


COUNTER = AggregateKind(
    name="counter",
    initial=lambda _id: Counter(),
    decide=decide,
    evolve=evolve,
    events=EventRegistry(Incremented),
    state_type=Counter,
)
