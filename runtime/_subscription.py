"""Subscriptions: read the global log in order, from a saved position, forever.

A subscription catches up by reading `read_all` in batches from its
checkpoint, then follows live commits: it wakes when the journal commits a
batch, and also every `poll_interval` seconds, so that it sees events that
another process wrote to a shared store.

Delivery is at least once. The checkpoint is saved after the handler has
finished a batch, so a crash between the two replays that batch on restart.
Handlers therefore dedupe by position (or event id); projections do so by
keeping the last position they applied.

Where it starts: a durable subscription at its saved checkpoint; an
in-memory view at the position it says it reflects (`after`: 0 for a view
built from nothing, or the position of the snapshot it was loaded from).
A subscription that its supervisor restarts after an error resumes after
the last batch it handled, never from its start again: the view it feeds
was not rebuilt, and must not be fed its history twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import anyio
from anyio.abc import TaskStatus

from hostsmith.runtime._journal import Journal
from hostsmith.runtime._store import StoredEvent

Handler = Callable[[Sequence[StoredEvent]], Awaitable[None]]


class Subscription:
    def __init__(
        self,
        journal: Journal,
        name: str,
        handler: Handler,
        *,
        batch_size: int = 500,
        poll_interval: float = 1.0,
        durable: bool = True,
        after: int = 0,
    ) -> None:
        self.journal = journal
        self.name = name
        self.handler = handler
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        # A durable subscription saves its checkpoint in the store; one that
        # rebuilds an in-memory view starts from the beginning every time.
        self.durable = durable
        self.position = after
        """The last position the handler has finished with."""
        self._started = False
        self.caught_up = anyio.Event()

    async def run(self, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        store = self.journal.store
        if self.durable and not self._started:
            self.position = await store.load_checkpoint(self.name)
        self._started = True  # a restart resumes from `position`, where the last batch ended
        task_status.started()
        while True:
            committed = self.journal.next_commit()
            events = await store.read_all(self.position, self.batch_size)
            if events:
                await self.handler(events)
                self.position = events[-1].position
                if self.durable:
                    await store.save_checkpoint(self.name, self.position)
                continue
            self.caught_up.set()
            with anyio.move_on_after(self.poll_interval):
                await committed.wait()
