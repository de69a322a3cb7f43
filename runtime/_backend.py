"""The one seam between the runtime and its async library: park a task, wake it, check in.

Everything else in the runtime is anyio (task groups, cancel scopes,
deadlines, events, locks, worker threads), which runs on trio and on
asyncio alike. The hot path is not. Every ask parks the asking
task until its reply is set, an idle aggregate parks until the journal has
its outcome, and a mailbox parks its reader until a message comes. With
anyio's `Event` each of those waits costs an object and a few wrapper
calls; trio does it with `wait_task_rescheduled` alone, and that is what
made the engine as fast as it is. So these few operations have one
implementation per library (`Parking`), and the runtime reads the current one
from `LOW`, which `running_on_this_library()` sets when a runtime opens and
puts back when it closes. Until then it is trio's, the runtime's home.

A `Parking` parks the current task with `park()`, which returns a handle, and
`wait(handle, abort)`; whoever holds the handle wakes it with `wake`.
`abort` runs if the wait is cancelled before the wake (to forget the
handle), and returns `ABORTED`. A wait on a handle from
`park_uncancellable()` (`wait_uncancellable`) cannot be cancelled at all:
the cancellation is delivered after the wake (at the next checkpoint on
trio; raised as the wait ends on asyncio, where the handle is a future that
refuses to be cancelled, which costs less than `asyncio.shield`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, cast

import anyio
import sniffio
import trio


class Parking(Protocol):
    name: str

    def now(self) -> float: ...

    def park(self) -> Any: ...

    def park_uncancellable(self) -> Any:
        """A handle for `wait_uncancellable` (on asyncio, a future nobody can cancel)."""
        ...

    def wake(self, handle: Any) -> None: ...

    def wait(self, handle: Any, abort: Callable[[object], Any]) -> Awaitable[Any]:
        """Park until `wake(handle)`. `abort(_)` must return `ABORTED`."""
        ...

    def wait_uncancellable(self, handle: Any) -> Awaitable[Any]: ...

    async def checkpoint(self) -> None: ...

    async def checkpoint_if_cancelled(self) -> None: ...

    async def cancel_shielded_checkpoint(self) -> None: ...

    def waker_from_threads(self) -> Callable[[Any], None]:
        """A `wake` that another thread may call (bound to this event loop)."""
        ...

    def open_task_group(self) -> AbstractAsyncContextManager[TaskGroupLike]:
        """A task group for many small tasks (a supervisor's children: every aggregate).
        On trio a bare nursery: anyio's task group wraps each task in a handle with a
        cancel scope and an event of its own, 2 KB more for every idle aggregate."""
        ...


class TaskGroupLike(Protocol):
    """What trio's nursery and anyio's task group share, and the runtime uses."""

    @property
    def cancel_scope(self) -> Any: ...

    def start_soon(
        self, function: Callable[..., Awaitable[Any]], *args: Any, name: Any = None
    ) -> None: ...

    async def start(
        self, function: Callable[..., Awaitable[Any]], *args: Any, name: Any = None
    ) -> Any: ...


def _refuse(_: object) -> trio.lowlevel.Abort:
    return trio.lowlevel.Abort.FAILED


class _Trio:
    name = "trio"
    now = staticmethod(trio.current_time)
    park = staticmethod(trio.lowlevel.current_task)  # the handle is the task itself
    park_uncancellable = park
    wake = staticmethod(trio.lowlevel.reschedule)
    checkpoint = staticmethod(trio.lowlevel.checkpoint)
    checkpoint_if_cancelled = staticmethod(trio.lowlevel.checkpoint_if_cancelled)
    cancel_shielded_checkpoint = staticmethod(trio.lowlevel.cancel_shielded_checkpoint)

    # Not coroutines of their own: what they return is trio's own wait, awaited by
    # the caller directly, so a parked task (an idle aggregate) carries no extra
    # frame. `abort` returns `ABORTED`, which is trio's `Abort.SUCCEEDED`.
    @staticmethod
    def wait(handle: Any, abort: Callable[[object], Any]) -> Awaitable[Any]:
        return trio.lowlevel.wait_task_rescheduled(abort)  # noqa: ASYNC105 - the caller awaits it

    @staticmethod
    def wait_uncancellable(handle: Any) -> Awaitable[Any]:
        return trio.lowlevel.wait_task_rescheduled(_refuse)  # noqa: ASYNC105 - the caller awaits it

    open_task_group = staticmethod(trio.open_nursery)

    @staticmethod
    def waker_from_threads() -> Callable[[Any], None]:
        token = trio.lowlevel.current_trio_token()
        return lambda task: token.run_sync_soon(trio.lowlevel.reschedule, task)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _Unrefusable(asyncio.Future[None]):
    """A future that cannot be cancelled: a task cancelled while it waits on one is
    told so (asyncio raises `CancelledError` in it) only once the future is done."""

    def cancel(self, msg: Any = None) -> bool:
        return False


class _Asyncio:
    name = "asyncio"
    wake = staticmethod(_resolve)
    cancel_shielded_checkpoint = staticmethod(anyio.lowlevel.cancel_shielded_checkpoint)

    @staticmethod
    def now() -> float:
        return asyncio.get_running_loop().time()

    @staticmethod
    def park() -> asyncio.Future[None]:
        return asyncio.get_running_loop().create_future()

    @staticmethod
    def park_uncancellable() -> asyncio.Future[None]:
        return _Unrefusable(loop=asyncio.get_running_loop())

    @staticmethod
    async def wait(handle: asyncio.Future[None], abort: Callable[[object], Any]) -> None:
        try:
            await handle
        except asyncio.CancelledError:
            if not handle.done() or handle.cancelled():  # cancelled before the wake
                abort(None)
            raise

    @staticmethod
    async def wait_uncancellable(handle: asyncio.Future[None]) -> None:
        """Wait on a handle from `park_uncancellable`: its future refuses the cancel,
        so asyncio raises it in this task only once the wake has come."""
        await handle

    @staticmethod
    async def checkpoint() -> None:
        await asyncio.sleep(0)

    @staticmethod
    async def checkpoint_if_cancelled() -> None:
        """Nothing: on asyncio the wait that follows is where a cancellation lands."""

    @staticmethod
    def open_task_group() -> AbstractAsyncContextManager[TaskGroupLike]:
        return cast(AbstractAsyncContextManager[TaskGroupLike], anyio.create_task_group())

    @staticmethod
    def waker_from_threads() -> Callable[[Any], None]:
        loop = asyncio.get_running_loop()

        def wake(future: asyncio.Future[None]) -> None:
            loop.call_soon_threadsafe(_resolve, future)

        return wake


ABORTED = trio.lowlevel.Abort.SUCCEEDED
"""What an `abort` callback returns: the wait is given up (trio's own value)."""

TRIO: Parking = _Trio()
ASYNCIO: Parking = _Asyncio()
LOW: Parking = TRIO
"""The current library's low-level operations (see the module doc)."""


def current_parking() -> Parking:
    """The `Parking` of the async library running this task."""
    return ASYNCIO if sniffio.current_async_library() == "asyncio" else TRIO


@contextlib.contextmanager
def running_on_this_library() -> Iterator[Parking]:
    """Use the running library's `Parking` until the block ends, then the one before."""
    global LOW
    before, LOW = LOW, current_parking()
    try:
        yield LOW
    finally:
        LOW = before
