"""The mailbox: a bounded FIFO channel with one reader, sized for a million idle actors.

It behaves like an anyio memory stream with one receiver (`send`,
`send_nowait`, `receive`, `receive_nowait`, `close`, `statistics()`), and
is written here for one reason: memory. A trio channel pair is five objects
including a deque and two ordered dicts, about 1.5 KB even when empty (an
anyio stream pair is no smaller), and
a live aggregate is mostly an empty mailbox. This one is a single slotted
object whose queue is a short list (at most `capacity` items, so popping
from its front is cheap) and whose waiting senders are only recorded when
there are some.

Semantics, as in anyio (on trio and asyncio alike; waits go through the
runtime's one seam, `_backend.LOW`):
- `send` waits while the mailbox is full; `send_nowait` raises
  `anyio.WouldBlock` instead. Both raise `anyio.ClosedResourceError` once
  the mailbox is closed, including a sender that was waiting for room.
- `receive` waits while it is empty; after `close()` it returns what is
  left, then raises `anyio.EndOfStream`.
- Both waits are cancellable and are checkpoints; a cancelled sender has
  sent nothing.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

import anyio
import msgspec

from hostsmith.runtime import _backend

T = TypeVar("T")

FAIRNESS_BURST = 64
"""A reader yields to the scheduler at least once per this many items,
even when its mailbox never runs dry."""


class MailboxStatistics(msgspec.Struct, frozen=True, kw_only=True):
    current_buffer_used: int
    max_buffer_size: int
    tasks_waiting_send: int
    tasks_waiting_receive: int
    closed: bool


class BoundedMailbox(Generic[T]):
    __slots__ = ("_burst", "_closed", "_items", "_receiver", "_senders", "capacity")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"a mailbox needs room for at least one message, not {capacity}")
        self.capacity = capacity
        self._items: list[T] = []
        self._receiver: object | None = None  # the parked reader's handle
        # Parked senders' handles, in arrival order; made on first need.
        self._senders: deque[object] | None = None
        self._closed = False
        self._burst = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    def statistics(self) -> MailboxStatistics:
        return MailboxStatistics(
            current_buffer_used=len(self._items),
            max_buffer_size=self.capacity,
            tasks_waiting_send=len(self._senders) if self._senders else 0,
            tasks_waiting_receive=int(self._receiver is not None),
            closed=self._closed,
        )

    def send_nowait(self, item: T) -> None:
        if self._closed:
            raise anyio.ClosedResourceError("the mailbox is closed")
        if len(self._items) >= self.capacity:
            raise anyio.WouldBlock
        self._items.append(item)
        receiver, self._receiver = self._receiver, None
        if receiver is not None:
            _backend.LOW.wake(receiver)

    async def send(self, item: T) -> None:
        low = _backend.LOW
        await low.checkpoint_if_cancelled()
        while len(self._items) >= self.capacity and not self._closed:
            await self._wait_for_room(low)
        self.send_nowait(item)  # raises ClosedResourceError if closed meanwhile
        await low.cancel_shielded_checkpoint()

    async def _wait_for_room(self, low: _backend.Parking) -> None:
        if self._senders is None:
            self._senders = deque()
        senders = self._senders
        handle = low.park()
        senders.append(handle)

        def abort(_: object) -> object:
            senders.remove(handle)
            return _backend.ABORTED

        await low.wait(handle, abort)

    def peek(self, limit: int) -> list[T]:
        """Up to `limit` queued items, oldest first, left in the mailbox."""
        return self._items[:limit]

    def receive_many(self, limit: int) -> list[T]:
        """Up to `limit` queued items at once, oldest first (none: an empty list)."""
        items = self._items
        taken = items[:limit]
        del items[: len(taken)]
        senders = self._senders
        if senders:  # as many waiting senders get room as items left
            for _ in range(min(len(taken), len(senders))):
                _backend.LOW.wake(senders.popleft())
        return taken

    def receive_nowait(self) -> T:
        items = self._items
        if not items:
            if self._closed:
                raise anyio.EndOfStream
            raise anyio.WouldBlock
        item = items.pop(0)
        senders = self._senders
        if senders:
            _backend.LOW.wake(senders.popleft())
        return item

    async def receive(self) -> T:
        low = _backend.LOW
        await low.checkpoint_if_cancelled()
        while not self._items and not self._closed:
            if self._receiver is not None:
                raise anyio.BusyResourceError("receiving from")  # a mailbox has one reader
            self._receiver = handle = low.park()
            await low.wait(handle, self._abort_receive)
        item = self.receive_nowait()  # raises EndOfStream if closed and empty
        await low.cancel_shielded_checkpoint()
        return item

    async def take(self) -> T | None:
        """The next item, or None once the mailbox is closed and empty.

        The actor loop's receive: an item already queued is taken without a
        trip through the scheduler, except once every `FAIRNESS_BURST` items
        in a row, so a busy actor still lets others run. Waiting happens in
        this frame, which keeps an idle actor's stack short.
        """
        low = _backend.LOW
        if self._items:
            self._burst += 1
            if self._burst >= FAIRNESS_BURST:
                self._burst = 0
                await low.checkpoint()
            if self._items:  # only this reader takes items, but stay exact
                return self.receive_nowait()
        self._burst = 0
        await low.checkpoint_if_cancelled()
        while not self._items:
            if self._closed:
                return None
            if self._receiver is not None:
                raise anyio.BusyResourceError("receiving from")  # a mailbox has one reader
            # Waited for in this frame: an idle actor's stack stays short.
            self._receiver = handle = low.park()
            await low.wait(handle, self._abort_receive)
        return self.receive_nowait()

    def _abort_receive(self, _: object) -> object:
        self._receiver = None
        return _backend.ABORTED

    def close(self) -> None:
        """No more sends; waiting senders fail, the reader drains what is left."""
        if self._closed:
            return
        self._closed = True
        low = _backend.LOW
        receiver, self._receiver = self._receiver, None
        if receiver is not None:
            low.wake(receiver)
        senders, self._senders = self._senders, None
        for handle in senders or ():
            low.wake(handle)
