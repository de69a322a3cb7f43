"""Read-model checkpoints: the projections saved with the log position they reflect.

Rebuilding the projections from position 0 costs the whole history: a
daemon left for a month took 7 s to start and an in-process call 4.5 s on
a million events. So the projections' state (`ProjectionsState`) is saved
in the store as a snapshot of its own (`READ_MODEL`), and a start loads the
newest one and reads only the log after it.

Why it is built this way:
- The snapshot goes through the store's own snapshot table, so every
  backend keeps it, and a backup, a restore or a migration carries it.
  Its `version` is the log position the state reflects, and
  `READ_MODEL_SCHEMA` says how to read it.
- It is written every `checkpoint_events` events or `checkpoint_seconds`
  seconds (whichever comes first, and only if the log moved), and once
  more at shutdown. The state is encoded at once, between two batches of
  the subscription, so it is exactly the state at its position.
- A snapshot that cannot be read (a schema this hostsmith does not know, a
  corrupt row, a position that does not match) is named in the log, once,
  and the projections are rebuilt from the log: slower, never wrong.
- A one-shot command (`hostsmith hf` with no daemon) writes one only when
  the tail it had to read was longer than `checkpoint_events`: then the
  next call starts from there; otherwise it writes nothing.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import anyio
import msgspec

from hostsmith.actors.service._projections import Projections, ProjectionsState
from hostsmith.runtime import EventStore, Snapshot

log = logging.getLogger("hostsmith.service")

READ_MODEL = "$read-model-hostfactory"
"""The snapshot's stream name ($: never an aggregate's, which are `<kind>-<id>`)."""
READ_MODEL_SCHEMA = 1
"""Raise it when `ProjectionsState` (or what it holds) changes in a way old snapshots
cannot be decoded into: they are then rebuilt from the log, never misread."""
SAVE_LIMIT = 30.0
"""Seconds a save at shutdown may take before it is given up (the next start reads more)."""

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(ProjectionsState).decode


async def restore(projections: Projections, store: EventStore) -> bool:
    """Load the newest read-model snapshot into `projections`; False if there is none usable."""
    snapshot = await store.load_snapshot(READ_MODEL)
    if snapshot is None:
        return False
    problem = ""
    if snapshot.schema_version != READ_MODEL_SCHEMA:
        problem = (
            f"it has schema v{snapshot.schema_version} and this hostsmith reads "
            f"v{READ_MODEL_SCHEMA}"
        )
    else:
        try:
            state = _decode(snapshot.state)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            problem = f"it cannot be decoded ({error})"
        else:
            if state.position != snapshot.version:
                problem = f"it says position {state.position} inside and {snapshot.version} outside"
    if problem:
        log.warning(
            "the read-model snapshot %r (at log position %d) is not usable: %s; rebuilding "
            "the read models from the log (slower, never wrong)",
            READ_MODEL,
            snapshot.version,
            problem,
        )
        return False
    projections.load(state)
    return True


def snapshot_of(projections: Projections, at: float) -> Snapshot:
    """The projections as they are now, ready to save (encoded at once: they move on)."""
    return Snapshot(
        stream=READ_MODEL,
        version=projections.position,
        state=_encode(projections.state()),
        schema_version=READ_MODEL_SCHEMA,
        recorded_at=at,
    )


class Checkpointer:
    """Saves the projections every `every_events` events or `every_seconds` seconds."""

    def __init__(
        self,
        projections: Projections,
        store: EventStore,
        clock: Callable[[], float],
        *,
        every_events: int,
        every_seconds: float,
    ) -> None:
        self.projections = projections
        self.store = store
        self.clock = clock
        self.every_events = every_events
        self.every_seconds = every_seconds
        self.saved = projections.position
        """The position of the last snapshot saved or loaded."""
        self.saves = 0
        self._due = anyio.Event()

    def applied(self) -> None:
        """Called after the projections applied a batch: wakes `run` once enough is new."""
        if self.projections.position - self.saved >= self.every_events:
            self._due.set()

    async def save(self) -> None:
        """Save now, if the projections moved since the last save."""
        if self.projections.position == self.saved:
            return
        snapshot = snapshot_of(self.projections, self.clock())
        await self.store.save_snapshot(snapshot)
        self.saved = snapshot.version
        self.saves += 1

    async def run(self) -> None:
        """Save when due, for ever; once more when cancelled (shutdown), if it can."""
        try:
            while True:
                with anyio.move_on_after(
                    self.every_seconds if math.isfinite(self.every_seconds) else math.inf
                ):
                    await self._due.wait()
                self._due = anyio.Event()
                try:
                    await self.save()
                except Exception as failure:  # a full disk, say: tried again when next due
                    log.warning("could not save the read-model snapshot yet: %s", failure)
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(SAVE_LIMIT):
                try:
                    await self.save()
                except Exception as failure:  # the log holds it all: the next start reads more
                    log.warning("could not save the read-model snapshot at shutdown: %s", failure)
