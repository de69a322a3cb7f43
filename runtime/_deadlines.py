"""One task that enforces every ask's deadline.

The obvious way to bound an ask is a cancel scope with its deadline around the
wait. With a thousand tasks asking at once that cancel scope costs more than
the whole round trip (every scope builds a cancel status and registers a
deadline with the scheduler), so asks that can use this service don't.

Instead each ask files its reply here under its deadline, rounded up to a
`quantum` (1 ms by default), and takes it back when the answer comes. One
task sleeps until the earliest bucket is due and expires what is still in
it: the asker wakes with `AskTimeout`, and the callee's cancel scope, if it
has one, is cancelled. Taking a reply back is a set removal, so memory holds
only the asks that are actually outstanding.
"""

from __future__ import annotations

import heapq
import math

import anyio
from anyio.abc import TaskStatus

from hostsmith.runtime import _backend
from hostsmith.runtime._errors import AskTimeout
from hostsmith.runtime._reply import Reply


class Deadlines:
    def __init__(self, *, quantum: float = 0.001) -> None:
        self.quantum = quantum
        self._buckets: dict[float, set[Reply]] = {}
        self._due: list[float] = []  # heap of bucket keys
        self._sleep = anyio.CancelScope()
        self._waking_at = math.inf
        self.running = False

    def watch(self, reply: Reply, deadline: float, target: str, timeout: float) -> float:
        """File `reply` to expire at `deadline`; returns the key to `forget` it by."""
        key = math.ceil(deadline / self.quantum) * self.quantum
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = set()
            heapq.heappush(self._due, key)
            if key < self._waking_at:
                self._sleep.cancel()  # wake up earlier than planned
        reply.expiry = (target, timeout)
        bucket.add(reply)
        return key

    def forget(self, reply: Reply, key: float) -> None:
        bucket = self._buckets.get(key)
        if bucket is not None:
            bucket.discard(reply)

    async def run(self, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        self.running = True
        task_status.started()
        try:
            while True:
                self._expire_due()
                self._waking_at = self._due[0] if self._due else math.inf
                self._sleep = anyio.CancelScope(deadline=self._waking_at)
                with self._sleep:
                    await anyio.sleep_forever()
        finally:
            self.running = False

    def _expire_due(self) -> None:
        now = _backend.LOW.now()
        while self._due and self._due[0] <= now:
            key = heapq.heappop(self._due)
            for reply in self._buckets.pop(key, ()):
                target, timeout = reply.expiry or ("actor", 0.0)
                reply.set_error(AskTimeout(target, timeout, maybe_applied=reply.started))
                reply.abandon()
