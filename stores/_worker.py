"""One dedicated thread per store, and a call into it that costs no scheduling round.

A store that does blocking I/O (sqlite3, fsync) runs it off the event
loop's thread. `anyio.to_thread.run_sync` with a one-slot limiter would do,
but it passes through the scheduler once before the thread starts. The journal depends on
a store call being *dispatched the moment it is made*: it hands the next
batch over and only then wakes the callers of the previous one, so the
next transaction is being written while the trio thread answers
(runtime/_journal.py). With the extra scheduling round the woken callers
would run first and the store would sit idle meanwhile.

A `WorkerThread` owns one OS thread that runs jobs in the order they were
submitted, so the store needs no lock and its connection is used from one
thread only. `run` queues the job and parks the caller (the runtime's
seam, `hostsmith.runtime.current_parking()`, chosen when the worker is made:
trio or asyncio); the thread wakes it through the event loop's thread-safe entry
(trio's token, asyncio's `call_soon_threadsafe`). The wait is not
cancellable, exactly like `to_thread.run_sync`'s default: work that has
started in a thread cannot be interrupted, and the caller must learn its
outcome.

`InlineWorker` has the same two calls but runs each job on the event loop's
thread itself. A daemon never wants that; a run on virtual time does: trio's
`MockClock` jumps ahead whenever every task is waiting, and a task waiting
on another thread counts as waiting, so the clock would run ahead of every
write. The soak test and `hostsmith soak` use it (`?worker=inline`).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import outcome

from hostsmith.runtime import Parking, current_parking

T = TypeVar("T")


class _Job:
    __slots__ = ("args", "function", "handle", "result")

    def __init__(self, function: Callable[..., Any], args: tuple[Any, ...], handle: Any) -> None:
        self.function = function
        self.args = args
        self.handle = handle
        self.result: outcome.Outcome[Any] | None = None


class WorkerThread:
    def __init__(self, name: str) -> None:
        self._low: Parking = current_parking()
        self._wake_from_thread = self._low.waker_from_threads()
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()
        self._stopped = False

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """Run `function(*args)` on the thread, after every job submitted before it."""
        if self._stopped:
            raise RuntimeError("the worker thread is stopped")
        job = _Job(function, args, self._low.park_uncancellable())
        self._jobs.put(job)
        await self._low.wait_uncancellable(job.handle)
        assert job.result is not None
        result: T = job.result.unwrap()
        return result

    async def stop(self, last: Callable[[], object] | None = None) -> None:
        """Run `last` (if any) as the final job, then let the thread end."""
        if self._stopped:
            return
        try:
            if last is not None:
                await self.run(last)
        finally:
            self._stopped = True
            self._jobs.put(None)

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            job.result = outcome.capture(job.function, *job.args)
            self._wake_from_thread(job.handle)


class InlineWorker:
    """A `WorkerThread` stand-in that runs each job on the event loop's thread, in order."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._low: Parking = current_parking()
        self._stopped = False

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        if self._stopped:
            raise RuntimeError("the worker is stopped")
        await self._low.checkpoint()
        return function(*args)

    async def stop(self, last: Callable[[], object] | None = None) -> None:
        if not self._stopped and last is not None:
            await self.run(last)
        self._stopped = True
